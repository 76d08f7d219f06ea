"""The coordinator reviews a school's response in the chat: two Telegram users, a municipal
coordinator (registered by invite) and a director, through the real intake, on SQLite and
PostgreSQL."""

from __future__ import annotations

from sqlalchemy import func, select

import tests.walk
from handlers import coordinator_texts as t
from handlers.coordinator_pages import PAGE_LIMIT
from handlers.wire import decode
from storage.models import (
    AnswerReview,
    Attachment,
    AttachmentStatus,
    AuditLog,
    Delivery,
    Person,
    Response,
    ResponseEvent,
    ResponseStatus,
    Role,
    Verdict,
)
from tests.pg import settings_on_both_databases
from tests.walk import PDF, harness_for, press_payload, registered, response_of, walk_to_review

settings = settings_on_both_databases()

COMMENT_9 = "Приложите приказ об участии, а не программу мероприятия."
COMMENT_12 = "Программа не подписана директором, пришлите подписанную."
# S1 (risk zone) has 17 answers: 8 counts, then 9 yes/no questions with a document each
PAGE_1_DOCS = ["pd_events.pdf", "curator_assigned.pdf"]  # answers 9 and 10
PAGE_2_DOCS = [
    "quality_program.pdf",
    "failure_prevention.pdf",
    "iup.pdf",
    "tutor_support.pdf",
    "risk_internet.pdf",
    "risk_computers.pdf",
    "risk_staff.pdf",
]


async def submit(services, harness, region, school: str, user_id: int, *, yes: bool = True):
    """A director registers, answers everything and sends the questionnaire."""
    director = await registered(harness, region, school, user_id)
    await director.click("▶ Начать заполнение")
    await walk_to_review(services, director, yes=yes)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("отправлена")
    return director


async def two_users(services, region, *, yes: bool = True):
    harness = harness_for(services)
    director = await submit(services, harness, region, "S1", 1001, yes=yes)
    coordinator = harness.user(2001, "Ольга")
    await coordinator.send(f"/start {region.codes['Северный район']}")
    response = await response_of(services, region.school_ids["S1"])
    return harness, director, coordinator, response.id


def short_enough(user) -> None:
    assert all(len(text) <= PAGE_LIMIT for text in user.texts()), [len(x) for x in user.texts()]


async def reviews(services, response_id: int) -> dict[str, AnswerReview]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AnswerReview).where(AnswerReview.response_id == response_id)
        )
        return {r.question_id: r for r in rows}


async def status_and_events(services, response_id: int) -> tuple[str, list[tuple[str, int]]]:
    async with services.sessions() as session:
        response = await session.get(Response, response_id)
        events = await session.scalars(
            select(ResponseEvent)
            .where(ResponseEvent.response_id == response_id)
            .order_by(ResponseEvent.id)
        )
        return response.status, [(e.status, e.person_id, e.comment) for e in events]


async def person_id(services, role: str, school_id: int | None = None) -> int:
    async with services.sessions() as session:
        query = select(Person.id).where(Person.role == role)
        if school_id is not None:
            query = query.where(Person.school_id == school_id)
        return await session.scalar(query)


async def notices_to(services, person: int) -> list[Delivery]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(Delivery)
            .where(Delivery.person_id == person, Delivery.kind == "notice")
            .order_by(Delivery.id)
        )
        return list(rows)


async def written(services) -> tuple[int, int, int]:
    """What a refused press must not change: verdicts, response steps, audit rows."""
    async with services.sessions() as session:
        counts = []
        for model in (AnswerReview, ResponseEvent, AuditLog):
            counts.append(await session.scalar(select(func.count()).select_from(model)))
        return tuple(counts)


# --- the list and the response ----------------------------------------------------------------


async def test_check_lists_the_response_and_opening_it_resends_the_documents(services, region):
    _h, _director, coordinator, rid = await two_users(services, region)
    await coordinator.send("/check")
    listing = coordinator.expect("Анкеты на проверке: 1")
    assert "МБОУ СОШ № 1 (Северный район)" in listing and "«Мониторинг 2026»" in listing
    assert coordinator.payloads() == [f"cr|{rid}|0"]

    await coordinator.click("1. МБОУ СОШ № 1")
    page = coordinator.expect("МБОУ СОШ № 1", "Страница 1 из 2")
    for fragment in (
        "Северный район",
        f"Анкета №{region.campaign_id} «Мониторинг 2026»",
        "Статус: отправлена на проверку",
        "Отправлена ",
        "Анна",
        "1. Педагогов всего: 20",
        "9. Участие в мероприятиях по профмастерству: Да",
        "📎 pd_events.pdf",
    ):
        assert fragment in page, fragment
    assert "11." not in page
    sent = coordinator.sent_documents()
    assert [d.filename for d in sent] == PAGE_1_DOCS
    assert all(d.content == PDF for d in sent)
    assert sent[0].caption == "Ответ 9: Участие в мероприятиях по профмастерству"
    assert "✅ Принять 9" in coordinator.buttons() and "↩️ Вернуть 10" in coordinator.buttons()
    assert f"hi|{rid}|0" in coordinator.payloads()  # «История», built by another flow
    short_enough(coordinator)

    await coordinator.click("Далее ›")
    page = coordinator.expect("Страница 2 из 2", "17. Риск ликвидирован — кадры: Да")
    assert "\n9." not in page
    assert [d.filename for d in coordinator.sent_documents()] == PAGE_2_DOCS
    await coordinator.click("‹ Назад")
    coordinator.expect("Страница 1 из 2")
    assert coordinator.sent_documents() == []  # sent on the way forward already


async def test_a_long_response_is_paged_within_the_message_limit(services, region, monkeypatch):
    note = ("Мероприятия запланированы на второе полугодие, приказ готовится. " * 13).strip()
    assert 800 < len(note) < 900
    monkeypatch.setattr(tests.walk, "NOTE", note)
    _h, _director, coordinator, rid = await two_users(services, region, yes=False)
    await press_payload(_h, coordinator, f"cr|{rid}|0")  # the submission notice's button
    seen: list[str] = []
    for _ in range(10):
        short_enough(coordinator)
        page = coordinator.texts()[-1]
        seen += [line.split(".")[0] for line in page.splitlines() if line[:1].isdigit()]
        assert coordinator.sent_documents() == []  # «нет» answers have notes, no documents
        if "Далее ›" not in coordinator.buttons():
            break
        await coordinator.click("Далее ›")
    assert seen == [str(n) for n in range(1, 18)]  # every answer once, in order
    assert f"Пояснение: {note}" in page
    pages = int(page.split("Страница ")[1].split(" из ")[0])
    assert pages >= 3 and f"Страница {pages} из {pages}" in page


async def test_a_document_not_downloaded_yet_or_lost_is_named_not_sent(services, region):
    harness = harness_for(services)
    harness.session.fail_downloads = True  # every document stays pending, retried later
    await submit(services, harness, region, "S1", 1001)
    coordinator = harness.user(2001, "Ольга")
    await coordinator.send(f"/start {region.codes['Северный район']}")
    rid = (await response_of(services, region.school_ids["S1"])).id
    await press_payload(harness, coordinator, f"cr|{rid}|0")
    page = coordinator.expect("МБОУ СОШ № 1")
    assert "⏳ pd_events.pdf — ещё загружается" in page
    assert coordinator.sent_documents() == []

    async with services.sessions() as session:  # the retry got it; then the disk lost it
        attachment = await session.scalar(
            select(Attachment).where(Attachment.question_id == "pd_events")
        )
        attachment.status = AttachmentStatus.STORED
        attachment.storage_path = "ab/cd/lost.pdf"
        await session.commit()
    await press_payload(harness, coordinator, f"cr|{rid}|0")
    page = coordinator.expect("МБОУ СОШ № 1")
    assert "⚠️ pd_events.pdf — файл не найден на сервере" in page
    assert "⏳ curator_assigned.pdf — ещё загружается" in page
    assert coordinator.sent_documents() == []


# --- verdicts on one answer -------------------------------------------------------------------


async def test_accept_one_and_return_one_with_a_comment(services, region):
    _h, _director, coordinator, rid = await two_users(services, region)
    await press_payload(_h, coordinator, f"cr|{rid}|0")
    await coordinator.click("✅ Принять 9")
    page = coordinator.expect(t.ACCEPTED_ONE.format(number=9))
    accepted = "9. Участие в мероприятиях по профмастерству: Да\n   📎 pd_events.pdf\n   ✅ Принято"
    assert accepted in page
    assert coordinator.sent_documents() == []  # the files are sent once, when opened

    await coordinator.click("↩️ Вернуть 10")
    coordinator.expect("Ответ 10: Определен куратор", "Напишите комментарий")
    await coordinator.send(COMMENT_9)
    page = coordinator.expect(t.RETURNED_ONE.format(number=10))
    assert f"↩️ Возвращено: {COMMENT_9}" in page

    found = await reviews(services, rid)
    coordinator_id = await person_id(services, Role.MUNICIPAL)
    assert {q: (r.verdict, r.comment, r.person_id) for q, r in found.items()} == {
        "pd_events": (Verdict.ACCEPTED, None, coordinator_id),
        "curator_assigned": (Verdict.RETURNED, COMMENT_9, coordinator_id),
    }
    assert found["pd_events"].snapshot == {
        "value": True,
        "note": None,
        "documents": ["pd_events.pdf"],
    }
    status, _ = await status_and_events(services, rid)
    assert status == ResponseStatus.SUBMITTED  # one verdict does not move the response


async def test_a_too_short_comment_is_refused_and_nothing_is_written(services, region):
    _h, _director, coordinator, rid = await two_users(services, region)
    await press_payload(_h, coordinator, f"cr|{rid}|0")
    await coordinator.click("↩️ Вернуть 9")
    before = await written(services)
    await coordinator.send("Нет")
    coordinator.expect("слишком короткий", "хотя бы 5 символов")
    await coordinator.send("Я" * 1001)
    coordinator.expect("слишком длинный", "1001", "до 1000")
    assert await written(services) == before
    await coordinator.click("Отмена")
    coordinator.expect(t.COMMENT_CANCELLED, "Страница 1 из 2")
    await coordinator.send(COMMENT_9)  # no longer a comment: the mode was left
    assert await written(services) == before
    assert await reviews(services, rid) == {}


# --- the whole response -----------------------------------------------------------------------


async def test_accept_all_accepts_the_response_and_tells_the_director(services, region):
    _h, _director, coordinator, rid = await two_users(services, region)
    await press_payload(_h, coordinator, f"cr|{rid}|0")
    await coordinator.click("✅ Принять 9")
    await coordinator.click("✅ Принять всё")
    coordinator.expect(t.ACCEPTED_ALL.format(school="МБОУ СОШ № 1"))

    found = await reviews(services, rid)
    assert len(found) == 17 and {r.verdict for r in found.values()} == {Verdict.ACCEPTED}
    coordinator_id = await person_id(services, Role.MUNICIPAL)
    director_id = await person_id(services, Role.DIRECTOR, region.school_ids["S1"])
    status, events = await status_and_events(services, rid)
    assert status == ResponseStatus.ACCEPTED
    assert events == [
        (ResponseStatus.SUBMITTED, director_id, None),
        (ResponseStatus.ACCEPTED, coordinator_id, None),
    ]
    (notice,) = await notices_to(services, director_id)
    assert notice.key.startswith(f"accepted:{rid}:")
    assert "Координатор принял анкету" in decode(notice.message).text

    before = await written(services)
    await press_payload(_h, coordinator, f"ca|{rid}|10")  # the old page: a stale button
    coordinator.expect("Анкета уже принята.")
    await press_payload(_h, coordinator, f"cA|{rid}|0")
    coordinator.expect("Анкета уже принята.")
    await coordinator.click("📥 К списку")
    assert await written(services) == before
    coordinator.expect("Анкет на проверке нет")


async def test_return_for_revision_and_the_resubmission_shows_what_changed(services, region):
    _h, director, coordinator, rid = await two_users(services, region)
    await press_payload(_h, coordinator, f"cr|{rid}|0")
    await coordinator.click("↩️ Вернуть на доработку")
    coordinator.expect(t.NOTHING_TO_RETURN, "Страница 1 из 2")
    assert (await status_and_events(services, rid))[0] == ResponseStatus.SUBMITTED

    await coordinator.click("↩️ Вернуть 9")
    await coordinator.send(COMMENT_9)
    await coordinator.click("Далее ›")
    await coordinator.click("↩️ Вернуть 12")
    await coordinator.send(COMMENT_12)
    await coordinator.click("✅ Принять всё")
    coordinator.expect(t.RETURNED_PENDING.format(numbers="9, 12"), "Страница 2 из 2")
    await coordinator.click("↩️ Вернуть на доработку")
    coordinator.expect("возвращена на доработку: ответы 9, 12")

    director_id = await person_id(services, Role.DIRECTOR, region.school_ids["S1"])
    status, events = await status_and_events(services, rid)
    assert status == ResponseStatus.RETURNED
    assert events[-1][0] == ResponseStatus.RETURNED
    assert events[-1][2] == "Вернуть на доработку ответы 9, 12"
    (notice,) = await notices_to(services, director_id)
    message = decode(notice.message)
    assert "вернул анкету" in message.text
    assert f"9. Участие в мероприятиях по профмастерству\n   Комментарий: {COMMENT_9}" in (
        message.text
    )
    assert f"12. Программа профилактики неуспешности\n   Комментарий: {COMMENT_12}" in (
        message.text
    )
    assert [[(b.text, b.payload) for b in row] for row in message.buttons] == [
        [(t.BTN_FIX, f"rx|{rid}")]
    ]
    await press_payload(_h, coordinator, f"cA|{rid}|1")  # a stale button now
    coordinator.expect("уже возвращена на доработку")

    # the director changes answers 9 and 12 to «нет» and sends the questionnaire again
    await director.send("/review")
    await director.click("9")
    await director.click("Нет")
    await director.send(tests.walk.NOTE)
    await director.click("12")  # every returned answer must change before sending again
    await director.click("Нет")
    await director.send(tests.walk.NOTE)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    await press_payload(_h, coordinator, f"cr|{rid}|0")
    page = coordinator.expect("Статус: исправлена и отправлена снова")
    assert "9. Участие в мероприятиях по профмастерству: Нет\n" in page
    block_9 = page.split("\n9. ")[1].split("\n10. ")[0]
    assert "✏️ изменено после возврата" in block_9 and "было: Да" in block_9
    assert "изменено" not in page.split("\n10. ")[1].split("\n11. ")[0]  # 10 was not returned
    await coordinator.click("✅ Принять всё")  # last round's returns were answered
    coordinator.expect(t.ACCEPTED_ALL.format(school="МБОУ СОШ № 1"))
    assert (await status_and_events(services, rid))[0] == ResponseStatus.ACCEPTED


# --- scope ------------------------------------------------------------------------------------


async def test_a_director_gets_a_refusal_for_every_coordinator_command_and_button(services, region):
    harness, director, _coordinator, rid = await two_users(services, region)
    before = await written(services)
    await director.send("/check")
    director.expect(t.NOT_FOR_DIRECTORS)
    for payload in (f"cr|{rid}|0", f"cp|{rid}|0", f"ca|{rid}|9", f"cx|{rid}|9", f"cA|{rid}|0"):
        await press_payload(harness, director, payload)
        director.expect(t.NOT_FOR_DIRECTORS)
    await press_payload(harness, director, f"cR|{rid}|0")
    director.expect(t.NOT_FOR_DIRECTORS)
    await press_payload(harness, director, "cl|0")
    director.expect(t.NOT_FOR_DIRECTORS)
    assert await written(services) == before
    assert (await status_and_events(services, rid))[0] == ResponseStatus.SUBMITTED


async def test_forged_and_out_of_scope_ids_are_refused(services, region, caplog):
    harness, _director, coordinator, rid = await two_users(services, region)
    await submit(services, harness, region, "U1", 1003)  # another municipality's school
    other = (await response_of(services, region.school_ids["U1"])).id
    await coordinator.send("/check")
    listing = coordinator.expect("Анкеты на проверке: 1")
    assert "Южное" not in listing
    before = await written(services)
    for payload in (
        f"cr|{other}|0",
        f"ca|{other}|1",
        f"cx|{other}|1",
        f"cA|{other}",
        f"cR|{other}",
        "cr|999999|0",
        "cr|-1|0",
        "cr|abc|0",
        "cA",
    ):
        await press_payload(harness, coordinator, payload)
        coordinator.expect(t.NOT_FOUND)
        assert coordinator.sent_documents() == []
    refused = [r for r in caplog.records if "outside their scope" in r.getMessage()]
    assert len(refused) == 9 and f"cr|{other}|0" in refused[0].getMessage()
    for payload in (f"ca|{rid}|0", f"ca|{rid}|18", f"cx|{rid}|x", f"ca|{rid}"):
        await press_payload(harness, coordinator, payload)
        coordinator.expect(t.STALE)
    assert await written(services) == before
    assert (await status_and_events(services, other))[0] == ResponseStatus.SUBMITTED
    admin = harness.user(900, "Админ")  # ADMINS=tg:900: every school
    await admin.send("/check")
    listing = admin.expect("Анкеты на проверке: 2")
    assert listing.index("МБОУ ООШ с. Южное") < listing.index("МБОУ СОШ № 1")  # newest first
