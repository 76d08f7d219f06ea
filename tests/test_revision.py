"""The director's side of a response a coordinator returned with comments, through the real
Dispatcher: only the returned answers open, «rx» walks through exactly them, the submit waits
until each changed, and the resubmission tells the coordinator what changed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select

from forms.engine import Slot
from handlers import revision_texts
from storage import repo, review
from storage.admin import reopen_response
from storage.models import (
    Account,
    Answer,
    AnswerReview,
    Attachment,
    AuditLog,
    ConversationState,
    Delivery,
    Person,
    Response,
    ResponseEvent,
    ResponseStatus,
    School,
    Verdict,
)
from tests.pg import settings_on_both_databases
from tests.walk import PDF, position, press_payload, response_of, started, walk_to_review

settings = settings_on_both_databases()

RETURNED = {
    "diag_subject": "Проверьте число: в приказе указано 7 педагогов.",
    "pd_events": "Приложите приказ об участии за этот учебный год.",
}
NEW_DOCUMENT = "приказ_2026.pdf"


async def numbers(services, region) -> dict[str, int]:
    """The number the director sees for each question of their response."""
    engine = services.forms.engine("shnor_school", 1)
    async with services.sessions() as session:
        school = await session.get(School, region.school_ids["S1"])
        response = await session.scalar(select(Response).where(Response.school_id == school.id))
        answers, _ = await repo.load_walk_rows(session, response.id)
        slots = engine.slots(answers, school.flags())
    return {slot.question_id: index for index, slot in enumerate(slots, start=1) if not slot.row}


async def submitted_with_coordinator(services, region):
    """A director who sent the questionnaire, and their municipality's coordinator."""
    harness, director = await started(services, region)
    await walk_to_review(services, director)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("отправлена")
    coordinator = harness.user(2002, "Ирина")
    await coordinator.send(f"/start {region.codes['Северный район']}")
    coordinator.expect("координатор")
    return harness, director, coordinator


async def person_of(services, user_id: int) -> Person:
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(
                Account.platform == "tg", Account.platform_user_id == str(user_id)
            )
        )
        return await session.get(Person, account.person_id)


async def put_state(services, user_id: int, mode: str, question_id: str) -> None:
    """Where a user's conversation stands, as another messenger may have left it."""
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(
                Account.platform == "tg", Account.platform_user_id == str(user_id)
            )
        )
        state = await session.get(ConversationState, account.id)
        state.mode, state.question_id, state.row = mode, question_id, 0
        await session.commit()


async def return_answers(services, region, comments: dict[str, str]) -> int:
    """What the coordinator's side does: a verdict with a snapshot per answer, then the move."""
    coordinator = await person_of(services, 2002)
    now = datetime.now(UTC)
    async with services.sessions() as session:
        response = await session.scalar(
            select(Response).where(Response.school_id == region.school_ids["S1"])
        )
        for question_id, comment in comments.items():
            answer = await session.scalar(
                select(Answer).where(
                    Answer.response_id == response.id, Answer.question_id == question_id
                )
            )
            names = await session.scalars(
                select(Attachment.original_name).where(
                    Attachment.response_id == response.id, Attachment.question_id == question_id
                )
            )
            snapshot = {"value": answer.value, "note": answer.note, "documents": list(names)}
            await review.set_verdict(
                session,
                response.id,
                Slot(question_id, 0),
                Verdict.RETURNED,
                coordinator.id,
                now,
                comment=comment,
                snapshot=snapshot,
            )
        await review.move(
            session, response, ResponseStatus.RETURNED, coordinator.id, now, "Исправьте ответы"
        )
        await session.commit()
        return response.id


async def writes(services) -> int:
    """Audit rows of answers, notes and documents: every write leaves one."""
    actions = ("answer", "note", "attach", "attachment_removed", "attachments_removed")
    async with services.sessions() as session:
        return await session.scalar(
            select(func.count()).select_from(AuditLog).where(AuditLog.action.in_(actions))
        )


async def reviews(services, response_id: int) -> dict[str, AnswerReview]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AnswerReview).where(AnswerReview.response_id == response_id)
        )
        return {r.question_id: r for r in rows}


async def fix_both(director, rid: int) -> None:
    """rx: the number, then «да» with a new document."""
    await press_payload(director.harness, director, f"rx|{rid}")
    await director.send("7")
    await director.click("Да")
    await director.send_document(PDF, NEW_DOCUMENT, "application/pdf")
    await director.click("✅ Готово")


async def test_locked_answers_are_refused_and_nothing_is_written(services, region):
    harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    before = await writes(services)
    await director.send("/review")
    screen = director.expect("↩️ вернули: Проверьте число", "↩️ вернули: Приложите приказ")
    assert revision_texts.HINT in screen
    shown = await numbers(services, region)
    two, nine = shown["diag_subject"], shown["pd_events"]
    assert [b for b in director.buttons() if b.isdigit()] == [
        str(two),
        str(nine),
    ]  # only the returned answers have buttons

    await press_payload(harness, director, f"e|{rid}|teachers_total|0")  # an old review button
    director.expect(revision_texts.NOT_RETURNED)
    await director.send(str(shown["teachers_total"]))
    director.expect(revision_texts.NOT_RETURNED)
    assert (await position(services, "tg", "1001"))[0] == "review"

    # a question left on screen in another messenger: the typed answer is refused too
    await put_state(services, 1001, "question", "teachers_total")
    await director.send("25")
    director.expect(revision_texts.NOT_RETURNED)
    await put_state(services, 1001, "documents", "curator_assigned")
    await director.send_document(PDF, "лишний.pdf", "application/pdf")
    director.expect(revision_texts.NOT_RETURNED)
    async with services.sessions() as session:
        locked_file = await session.scalar(
            select(Attachment.id).where(Attachment.question_id == "curator_assigned")
        )
    await press_payload(harness, director, f"rf|{rid}|{locked_file}")
    director.expect(revision_texts.NOT_RETURNED)

    assert await writes(services) == before
    async with services.sessions() as session:
        total = await session.scalar(
            select(Answer.value).where(Answer.question_id == "teachers_total")
        )
        files = await session.scalar(select(func.count()).select_from(Attachment))
    assert total == 20 and files == 9  # nine «да» answers, one document each
    assert all(r.fixed_at is None for r in (await reviews(services, rid)).values())


async def test_rx_walks_through_exactly_the_returned_answers(services, region):
    harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    shown = await numbers(services, region)
    two, nine = shown["diag_subject"], shown["pd_events"]
    await press_payload(harness, director, f"rx|{rid}")
    director.expect(f"№{two}, №{nine}", RETURNED["diag_subject"], f"вопрос {two} из")
    assert await position(services, "tg", "1001") == ("question", Slot("diag_subject", 0))
    await director.send("7")
    director.expect("✅ Сохранено", RETURNED["pd_events"], f"вопрос {nine} из")
    assert await position(services, "tg", "1001") == ("question", Slot("pd_events", 0))
    await director.click("◀ Назад")  # back to the previous returned answer, not a locked one
    director.expect(RETURNED["diag_subject"], f"вопрос {two} из")
    await director.click("▶ Продолжить")
    director.expect(RETURNED["pd_events"], f"вопрос {nine} из")
    await director.click("Да")
    await director.send_document(PDF, NEW_DOCUMENT, "application/pdf")
    await director.click("✅ Готово")
    screen = director.expect(revision_texts.WALK_DONE, "✅ исправлено")
    assert "↩️ вернули" not in screen and revision_texts.HINT_READY in screen  # both changed
    assert "📨 Отправить анкету" in director.buttons()
    assert (await position(services, "tg", "1001"))[0] == "review"
    fixed = await reviews(services, rid)
    assert fixed["diag_subject"].fixed_at is not None and fixed["pd_events"].fixed_at is not None


async def test_submit_waits_until_every_returned_answer_changed(services, region):
    harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    shown = await numbers(services, region)
    await press_payload(harness, director, f"rx|{rid}")
    await director.send("7")
    await director.send("/review")
    screen = director.expect("✅ исправлено", "↩️ вернули: Приложите приказ")
    assert screen.count("✅ исправлено") == 1
    await director.click("📨 Отправить анкету")
    warning = director.expect("Ещё не исправлены ответы")
    assert f"№{shown['pd_events']}" in warning and f"№{shown['diag_subject']}" not in warning
    await press_payload(harness, director, f"C|{rid}")  # a forged confirmation
    director.expect("Ещё не исправлены ответы")
    assert (await response_of(services, region.school_ids["S1"])).status == ResponseStatus.RETURNED
    fixed = await reviews(services, rid)
    assert fixed["diag_subject"].fixed_at is not None and fixed["pd_events"].fixed_at is None

    # changed back to what the coordinator saw: not fixed any more
    await director.click(str(shown["diag_subject"]))
    await director.send("5")
    director.expect("↩️ вернули: Проверьте число")
    assert (await reviews(services, rid))["diag_subject"].fixed_at is None


async def test_resubmission_tells_the_coordinator_what_changed(services, region):
    _harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    await fix_both(director, rid)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("Исправленная анкета", "снова отправлена координатору", "исправлено ответов: 2")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.RESUBMITTED
    coordinator = await person_of(services, 2002)
    async with services.sessions() as session:
        events = list(
            await session.scalars(
                select(ResponseEvent)
                .where(ResponseEvent.response_id == rid)
                .order_by(ResponseEvent.id)
            )
        )
        notices = list(
            await session.scalars(
                select(Delivery).where(Delivery.person_id == coordinator.id).order_by(Delivery.id)
            )
        )
    assert [e.status for e in events] == ["submitted", "returned", "resubmitted"]
    assert events[-1].person_id == (await person_of(services, 1001)).id
    text = notices[-1].message["text"]
    assert notices[-1].key.startswith(f"submitted:{rid}:{events[-1].id}")
    assert "исправила и снова отправила" in text
    shown = await numbers(services, region)
    two, nine = shown["diag_subject"], shown["pd_events"]
    assert f"№{two} " in text and "5 → 7" in text
    assert f"№{nine} " in text and f"новые документы: {NEW_DOCUMENT}" in text
    assert f"cr|{rid}|0" in str(notices[-1].message["buttons"])


async def test_a_forged_rx_is_refused(services, region):
    harness, _director, coordinator = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    other = harness.user(1002, "Борис")
    await other.send(f"/start {region.codes['S2']}")
    for user in (other, coordinator):
        await press_payload(harness, user, f"rx|{rid}")
        user.expect(revision_texts.NOT_THEIRS)
    await press_payload(harness, other, "rx|abc")
    other.expect(revision_texts.NOT_THEIRS)
    async with services.sessions() as session:
        states = list(await session.scalars(select(ConversationState)))
    assert [s.response_id for s in states if s.response_id == rid] == [rid]  # the director's only
    assert (await response_of(services, region.school_ids["S1"])).status == ResponseStatus.RETURNED


async def test_a_whole_reopen_stays_fully_editable(services, region):
    harness, director, _ = await submitted_with_coordinator(services, region)
    async with services.sessions() as session:
        await reopen_response(session, region.campaign_id, "S1")
        await session.commit()
    response = await response_of(services, region.school_ids["S1"])
    await press_payload(harness, director, f"rx|{response.id}")
    screen = director.expect("📋 Ваши ответы", "Чтобы изменить ответ")
    assert "↩️" not in screen
    shown = await numbers(services, region)
    assert [b for b in director.buttons() if b.isdigit()] == [str(n) for n in shown.values()]
    await director.click("1")
    await director.send("25")
    director.expect("✅ Сохранено")
    await director.send("/review")
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("отправлена")
    assert (await response_of(services, region.school_ids["S1"])).status == (
        ResponseStatus.RESUBMITTED
    )


async def test_a_second_return_opens_only_its_own_answers(services, region):
    _harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, RETURNED)
    await fix_both(director, rid)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    again = "Всё ещё не сходится с приказом: там 6 педагогов."
    await return_answers(services, region, {"diag_subject": again})
    await director.send("/review")
    screen = director.expect(f"↩️ вернули: {again}")
    assert RETURNED["pd_events"] not in screen  # fixed in the first round, locked now
    shown = await numbers(services, region)
    assert [b for b in director.buttons() if b.isdigit()] == [str(shown["diag_subject"])]
    await director.send(str(shown["pd_events"]))
    director.expect(revision_texts.NOT_RETURNED)
    await director.click(str(shown["diag_subject"]))
    await director.send("6")
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("исправлено ответов: 1")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.RESUBMITTED


async def test_a_yes_turned_no_tells_the_new_note_and_the_removed_document(services, region):
    harness, director, _ = await submitted_with_coordinator(services, region)
    rid = await return_answers(services, region, {"pd_events": RETURNED["pd_events"]})
    await press_payload(harness, director, f"rx|{rid}")
    await director.click("Нет")
    await director.send("Мероприятий в этом году не было, участие запланировано на весну.")
    director.expect(revision_texts.WALK_DONE, "✅ исправлено")
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("исправлено ответов: 1")
    coordinator = await person_of(services, 2002)
    async with services.sessions() as session:
        notice = await session.scalar(
            select(Delivery)
            .where(Delivery.person_id == coordinator.id)
            .order_by(Delivery.id.desc())
        )
    text = notice.message["text"]
    assert "Да → Нет" in text
    assert "новое пояснение: «Мероприятий в этом году не было" in text
    assert "убраны документы: pd_events.pdf" in text and "новые документы" not in text
