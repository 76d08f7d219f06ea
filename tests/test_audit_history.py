"""Every change of an answer, a note or a document leaves an audit row (who, old → new); an
unchanged value leaves none. The «история» of a response, newest first, for the people who
may see the school, and for nobody else."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from forms.engine import Slot
from handlers.callbacks import encode
from storage import repo, review
from storage.models import Account, AuditLog, Person, Response, ResponseStatus, Verdict
from tests.pg import settings_on_both_databases
from tests.test_hot_path import statements
from tests.walk import NOTE, PDF, press_payload, registered, response_of, started, walk_to_review

settings = settings_on_both_databases()


async def changes(services, response_id: int) -> list[tuple[str, str | None, object, object]]:
    """(action, question, old, new) of the response's audit rows, oldest first."""
    async with services.sessions() as session:
        rows = await session.scalars(
            select(AuditLog)
            .where(AuditLog.entity == "response", AuditLog.entity_id == response_id)
            .order_by(AuditLog.id)
        )
        return [
            (r.action, r.details.get("question"), r.details.get("old"), r.details.get("new"))
            for r in rows
        ]


async def test_value_note_and_document_changes_are_audited_unchanged_ones_not(services, region):
    _harness, user = await started(services, region)
    await user.send("20")  # teachers_total
    response = await response_of(services, region.school_ids["S1"])
    await user.click("◀ Назад")
    with statements(services.engine) as seen:
        await user.send("20")  # the same value again
    user.expect("Сохранено")
    assert not [s for s in seen if "INSERT INTO audit_log" in s]
    await user.click("◀ Назад")
    await user.send("14")
    assert await changes(services, response.id) == [
        ("answer", "teachers_total", None, 20),
        ("answer", "teachers_total", 20, 14),
    ]


async def test_documents_added_and_removed_and_the_note_are_audited(services, region):
    _harness, user = await started(services, region, past_counts=True)
    response = await response_of(services, region.school_ids["S1"])
    before = len(await changes(services, response.id))
    await user.click("Да")  # pd_events
    await user.send_document(PDF, "приказ.pdf", "application/pdf")
    user.expect("приказ.pdf")
    await user.click("✅ Готово")
    await user.click("◀ Назад")
    await user.click("Нет")  # the document goes, a note is asked for
    await user.send(NOTE)
    await user.click("◀ Назад")
    await user.click("Нет")  # the same answer: no row; the note may be rewritten
    await user.send(NOTE + " Уточнение.")
    rows = (await changes(services, response.id))[before:]
    sha = next(r[3]["sha256"] for r in rows if r[0] == "attach")
    assert len(sha) == 64
    assert rows == [
        ("answer", "pd_events", None, True),
        ("attach", "pd_events", None, {"name": "приказ.pdf", "sha256": sha}),
        ("attachment_removed", "pd_events", {"name": "приказ.pdf", "sha256": sha}, None),
        ("answer", "pd_events", True, False),
        ("note", "pd_events", None, NOTE),
        ("note", "pd_events", NOTE, NOTE + " Уточнение."),
    ]
    async with services.sessions() as session:
        people = set(
            await session.scalars(
                select(AuditLog.person_id).where(
                    AuditLog.entity == "response", AuditLog.entity_id == response.id
                )
            )
        )
    assert len(people) == 1 and None not in people  # the director, on every row


# --- «история» -------------------------------------------------------------------------------


async def coordinator(harness, region, municipality: str, user_id: int, name: str):
    user = harness.user(user_id, name)
    await user.send(f"/start {region.codes[municipality]}")
    return user


async def test_history_newest_first_with_verdicts_and_steps(services, region):
    harness, anna = await started(services, region)  # the director of S1, «Анна»
    await anna.send("20")
    await anna.click("◀ Назад")
    await anna.send("14")
    await walk_to_review(services, anna)
    await anna.click("📨 Отправить анкету")
    await anna.click("Да, отправить")
    response = await response_of(services, region.school_ids["S1"])
    boris = await coordinator(harness, region, "Северный район", 2001, "Петров Борис Ильич")
    async with services.sessions() as session:
        person = await session.scalar(
            select(Person.id).join(Account).where(Account.platform_user_id == "2001")
        )
        now = datetime.now(UTC)
        await review.set_verdict(
            session, response.id, Slot("teachers_total"), Verdict.ACCEPTED, person, now
        )
        await review.set_verdict(
            session, response.id, Slot("pd_events"), Verdict.RETURNED, person, now,
            comment="Приложите приказ, а не программу",
        )  # fmt: skip
        loaded = await session.get(Response, response.id)
        await review.move(session, loaded, ResponseStatus.RETURNED, person, now, "Два ответа")
        await session.commit()

    await boris.send(f"/history {response.id}")
    text = boris.expect("🕘 История анкеты «Мониторинг 2026» (МБОУ СОШ № 1)")
    lines = [line for line in text.splitlines() if re.match(r"\d\d\.\d\d \d\d:\d\d ", line)]
    assert lines[0].endswith(
        "Петров Б. И. (муниципальный координатор): анкета возвращена: Два ответа"
    )
    assert lines[1].endswith(
        "Петров Б. И. (муниципальный координатор): №9 «Участие в мероприятиях по профмастерству»: "
        "возвращён: Приложите приказ, а не программу"
    )
    assert lines[2].endswith(
        "Петров Б. И. (муниципальный координатор): №1 «Педагогов всего»: принят"
    )
    assert lines[3].endswith("Анна (директор): анкета отправлена")
    assert "Анна (директор): №1 «Педагогов всего»: 20 → 14" in text
    assert "Анна (директор): №1 «Педагогов всего»: — → 20" in text
    assert "Анна (директор): №9 «Участие в мероприятиях по профмастерству»: — → Да" in text
    assert "добавлен документ «pd_events.pdf»" in text
    assert text.index("20 → 14") < text.index("— → 20")  # newest first

    await anna.send("/history")  # the director: their own school's response
    assert anna.expect("🕘 История анкеты").count("\n") == text.count("\n")

    async with services.sessions() as session:
        loaded = await session.get(Response, response.id)
        director = loaded.submitted_by
        await review.move(session, loaded, ResponseStatus.RESUBMITTED, director, now)
        await review.move(session, loaded, ResponseStatus.ACCEPTED, person, now)
        await session.commit()
    await boris.send(f"/history {response.id}")
    lines = [line for line in boris.last_text().splitlines() if re.match(r"\d\d\.\d\d ", line)]
    assert lines[0].endswith("Петров Б. И. (муниципальный координатор): анкета принята")
    assert lines[1].endswith("Анна (директор): анкета исправлена и отправлена")


async def test_history_is_paged_within_the_message_limit(services, region):
    _harness, anna = await started(services, region)
    await anna.send("1")
    response = await response_of(services, region.school_ids["S1"])
    async with services.sessions() as session:
        loaded = await session.get(Response, response.id)
        for value in range(2, 202):  # 200 more changes of «Педагогов всего»
            await repo.save_answer(session, loaded, Slot("teachers_total"), value, None)
        await session.commit()
    await anna.send("/history")
    first = anna.expect("Страница 1 из ")
    assert len(first) <= 3500
    assert "система: №1 «Педагогов всего»: 200 → 201" in first  # the newest change first
    assert anna.buttons() == ["Старее ▶"]
    pages = int(first.split("Страница 1 из ")[1].split(".")[0])
    assert pages > 1
    await anna.click("Старее ▶")
    second = anna.expect("Страница 2 из ")
    assert len(second) <= 3500 and "200 → 201" not in second
    assert "◀ Новее" in anna.buttons()
    for _ in range(pages - 2):
        await anna.click("Старее ▶")
    last = anna.expect(f"Страница {pages} из {pages}")
    assert "Анна (директор): №1 «Педагогов всего»: — → 1" in last
    assert anna.buttons() == ["◀ Новее"]


async def test_history_refused_for_forged_ids_and_outside_the_scope(services, region):
    harness, anna = await started(services, region)
    await anna.send("20")
    response = await response_of(services, region.school_ids["S1"])
    other_director = await registered(harness, region, "U1", 1002)
    other_coordinator = await coordinator(harness, region, "Южный район", 2002, "Вера")
    for user in (other_director, other_coordinator):
        for payload in (
            encode("hi", response.id, 0),
            encode("hi", 999_999, 0),
            "hi|-1|0",
            "hi|abc|0",
            "hi",
        ):
            await press_payload(harness, user, payload)
            text = user.expect("Эта история недоступна")
            assert "Педагогов" not in text and "МБОУ СОШ № 1" not in text
        await user.send(f"/history {response.id}")
        user.expect("Эта история недоступна")
    await press_payload(harness, anna, encode("hi", response.id, 99))  # a page past the end
    anna.expect("🕘 История анкеты", "— → 20")
