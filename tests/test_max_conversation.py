"""Conversation stories through the real MaxChannel against a fake MAX API (schema.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers import callbacks as cb
from handlers.types import OutText
from scheduler.sender import Outcome, Sender
from storage.models import (
    Account,
    Answer,
    Attachment,
    AttachmentStatus,
    AuditLog,
    Invite,
    Response,
    ResponseStatus,
)
from tests import fake_max_api as fake
from tests.max_harness import MaxHarness, walk_to_review
from tests.pg import settings_on_both_databases
from tests.walk import NOTE, PDF, PNG, attachments, position, response_of

# Every story runs on SQLite, and on PostgreSQL too when TEST_POSTGRES_URL is set.
settings = settings_on_both_databases()


@pytest.fixture
async def harness(services):
    async with MaxHarness.open(services.conversation) as harness:
        services.conversation.register_fetcher("max", harness.channel.fetcher)
        yield harness


async def count(services, model) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


async def registered(harness, region, school="S1", user_id=1001):
    user = harness.user(user_id, "Анна")
    await user.start(region.codes[school])
    return user


async def started(harness, region, school="S1", *, past_counts=False):
    user = await registered(harness, region, school)
    await user.click("▶ Начать заполнение")
    if past_counts:
        for _ in range(8):
            await user.send("10")
    return user


# --- registration -------------------------------------------------------------------------


async def test_deep_link_payload_registers_the_director(harness, region):
    user = await registered(harness, region)
    user.expect("зарегистрированы", "МБОУ СОШ № 1", "Северный район", "Мониторинг 2026")
    await user.click("▶ Начать заполнение")
    user.expect("Раздел 1.2.3 · вопрос 1 из 17", "Количество педагогических работников")


async def test_typed_code_registers_too(harness, region):
    user = harness.user(1002)
    await user.start()  # «Начать» without a deep link
    user.expect("код приглашения", "/start КОД")
    await user.send(f"/start {region.codes['S2'].lower()}")
    user.expect("зарегистрированы", "МБОУ СОШ № 2")


async def test_unknown_deep_link_code_binds_nothing(harness, services, region):
    accounts = Invite.__table__.metadata.tables["accounts"]
    before = await count(services, accounts)
    user = harness.user(1003)
    await user.start("NOSUCH99")
    user.expect("не найден")
    assert await count(services, accounts) == before


# --- the walk -----------------------------------------------------------------------------


async def test_whole_form_with_documents_review_and_submit(harness, services, region):
    user = await started(harness, region)
    answered = await walk_to_review(services, user, yes=True)
    assert answered == 17
    user.expect("Заполнено: 17 из 17", "Да 📎 pd_events.pdf")
    await user.click("📨 Отправить анкету")
    user.expect("Отправить анкету", "только координатор")
    await user.click("Да, отправить")
    user.expect("Спасибо! Анкета «Мониторинг 2026» отправлена")

    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED
    stored = await attachments(services)
    assert len(stored) == 9
    for attachment in stored:
        assert attachment.status == AttachmentStatus.STORED
        assert attachment.platform == "max"
        path = services.files.absolute(attachment.storage_path)
        assert path.read_bytes() == PDF
        assert Path(services.settings.storage.data_dir) in path.parents
    await user.send("/resume")
    user.expect("уже отправлена", "координатор")


async def test_no_answers_need_an_explanatory_note(harness, services, region):
    user = await started(harness, region, "S2")
    assert await walk_to_review(services, user, yes=False) == 14
    async with services.sessions() as session:
        notes = [a.note for a in await session.scalars(select(Answer)) if a.value is False]
    assert len(notes) == 6 and all(n == NOTE for n in notes)


async def test_wrong_input_gets_specific_messages_and_writes_nothing(harness, services, region):
    user = await started(harness, region)
    for text, fragment in [("-1", "отрицательным"), ("12.5", "целое"), ("двенадцать", "цифрами")]:
        await user.send(text)
        user.expect(fragment, "Количество педагогических работников")
    await user.send_sticker()
    user.expect("текст, кнопки и файлы")
    assert await count(services, Answer) == 0
    await user.send("12")
    user.expect("✅ Сохранено", "вопрос 2 из 17")


async def test_bad_files_are_refused_and_nothing_is_written(harness, services, region):
    user = await started(harness, region, past_counts=True)
    await user.click("Да")
    user.expect("Прикрепите подтверждающий документ")
    await user.send_image()
    user.expect("как файл")
    await user.send_file(b"MZ\x90\x00binary", "setup.exe")
    user.expect("не принимаются", "PDF")
    await user.send_file(b"just some text, not a pdf", "report.pdf")
    user.expect("не похож на документ")
    assert await attachments(services) == []
    await user.send_file(PNG, "скан.png")
    user.expect("«скан.png» сохранён", "Прикреплено файлов: 1")


async def test_several_files_in_one_message_are_refused(harness, services, region):
    user = await started(harness, region, past_counts=True)
    await user.click("Да")
    first = harness.server.serve_file("a", PDF)
    second = harness.server.serve_file("b", PDF)
    files = [
        {"type": "file", "payload": {"url": u, "token": t}, "filename": n, "size": len(PDF)}
        for u, t, n in ((first, "t1", "a.pdf"), (second, "t2", "b.pdf"))
    ]
    await user.act(fake.user_message(user.user, None, files))
    user.expect("по одному")
    assert await attachments(services) == []


async def test_a_long_file_url_is_fetched_through_the_message(harness, services, region):
    user = await started(harness, region, past_counts=True)
    await user.click("Да")
    url = harness.server.serve_file("long", PDF) + "?sig=" + "x" * 400
    mid = fake.next_mid()
    attachment = {
        "type": "file",
        "payload": {"url": url, "token": "tl"},
        "filename": "приказ.pdf",
        "size": len(PDF),
    }
    await user.act(fake.user_message(user.user, None, [attachment], mid=mid))
    user.expect("«приказ.pdf» сохранён")
    [stored] = await attachments(services)
    assert stored.platform_file_id == f"{mid}#0"
    assert services.files.absolute(stored.storage_path).read_bytes() == PDF


async def test_back_review_edit(harness, region):
    user = await started(harness, region)
    await user.send("20")
    await user.send("5")
    await user.click("◀ Назад")
    user.expect("вопрос 2 из 17", "Текущий ответ: 5")
    await user.send("6")
    user.expect("вопрос 3 из 17")
    await user.click("📋 Все ответы")
    user.expect("Заполнено: 2 из 17", ": 20", ": 6", "не заполнено")
    await user.click("1")
    user.expect("вопрос 1 из 17", "Текущий ответ: 20")
    await user.send("30")
    user.expect("Заполнено: 2 из 17", ": 30")


async def test_pressed_keyboard_is_removed_by_the_answer(harness, region):
    user = await started(harness, region)
    [(callback_id, body)] = harness.server.answers
    assert body["message"]["attachments"] == []
    pressed = harness.server.messages[harness.server.callbacks[callback_id]]
    assert pressed.keyboard is None and pressed.last_keyboard
    user.expect("вопрос 1 из 17")


async def test_edited_message_is_not_taken_into_account(harness, services, region):
    user = await started(harness, region)
    await user.send("20")
    mid = next(reversed(harness.server.user_messages))
    await user.edit(mid, "25")
    user.expect("Исправления", "не учитываются")
    async with services.sessions() as session:
        assert await session.scalar(select(Answer.value)) == 20


# --- buttons that must not work ---------------------------------------------------------------


async def test_forged_button_cannot_touch_another_schools_response(harness, services, region):
    anna = await started(harness, region, "S1")
    await anna.send("20")
    victim = await response_of(services, region.school_ids["S1"])
    boris = harness.user(1002, "Борис")
    await boris.start(region.codes["U1"])
    await boris.click("▶ Начать заполнение")
    audit_before = await count(services, AuditLog)
    for payload in (
        cb.encode(cb.Action.ANSWER, victim.id, "teachers_total", 0, "1"),
        cb.encode(cb.Action.EDIT, victim.id, "teachers_total", 0),
        cb.encode(cb.Action.CONFIRM, victim.id),
    ):
        await boris.press(payload)
        boris.expect("недоступна")
    await boris.send("7")
    async with services.sessions() as session:
        rows = await session.scalars(select(Answer).where(Answer.response_id == victim.id))
        assert [(a.question_id, a.value) for a in rows] == [("teachers_total", 20)]
        status = await session.scalar(select(Response.status).where(Response.id == victim.id))
        assert status == ResponseStatus.DRAFT
    assert await count(services, AuditLog) == audit_before + 1


async def test_stale_answer_button_does_not_answer_another_question(harness, services, region):
    user = await started(harness, region, past_counts=True)
    assert user.buttons()[:2] == ["Да", "Нет"]
    question = user.keyboard_message()
    await user.click("Нет")
    await user.send(NOTE)
    await user.click("Да", stale=True, message=question)  # a late tap on the answered question
    user.expect("другому вопросу")
    async with services.sessions() as session:
        value = await session.scalar(select(Answer.value).where(Answer.question_id == "pd_events"))
    assert value is False
    assert await count(services, Attachment) == 0


async def test_the_same_update_twice_is_one_event(harness, services, region):
    user = await started(harness, region)
    update = fake.user_message(user.user, "20")
    harness.server.push(update)
    harness.server.push(update)
    await harness.pump()
    assert await count(services, Answer) == 1
    _mode, slot = await position(services, "max", "1001")
    assert slot.question_id != "teachers_total"


# --- unreachable users and groups -------------------------------------------------------------


async def unreachable(services, user_id: str) -> bool:
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(Account.platform == "max", Account.platform_user_id == user_id)
        )
        return account is not None and account.unreachable_since is not None


async def test_blocked_user_is_reported_and_nothing_else_is_sent(harness, services, region):
    user = await started(harness, region)
    harness.server.blocked.add(user.user_id)
    sent_before = len(harness.server.messages)
    await user.send("20")
    assert await unreachable(services, "1001")
    assert len(harness.server.messages) == sent_before


async def test_bot_stopped_marks_the_account_unreachable_and_says_nothing(
    harness, services, region
):
    user = await registered(harness, region)
    assert not await unreachable(services, "1001")
    await user.stop()
    assert await unreachable(services, "1001")
    assert user.texts() == []


async def test_group_chats_are_ignored(harness, region):
    user = harness.user(1001)
    await user.act(
        fake.user_message(user.user, f"/start {region.codes['S1']}", chat_type="chat", chat_id=-77)
    )
    assert harness.server.messages == {}


# --- bot-initiated messages -----------------------------------------------------------------


async def test_notices_reach_a_max_director_and_a_block_marks_the_account(
    harness, services, region
):
    user = await registered(harness, region)
    sender = Sender({"max": harness.channel}, sessions=services.sessions)
    result = await sender.send("max", "1001", OutText("Напоминание: анкета ждёт вас"))
    assert result.outcome == Outcome.SENT
    assert harness.server.messages[result.message_id].text == "Напоминание: анкета ждёт вас"
    assert harness.server.messages[result.message_id].user_id == user.user_id

    harness.server.blocked.add(user.user_id)
    result = await sender.send("max", "1001", OutText("Ещё одно напоминание"))
    assert result.outcome == Outcome.BLOCKED
    async with services.sessions() as session:
        account = await session.scalar(select(Account).where(Account.platform == "max"))
    assert account.chat_id == "1001" and account.unreachable_since is not None
