"""Conversation stories through the VK channel (vkbottle's API) against a fake VK API."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from handlers import callbacks as cb
from handlers.types import OutText
from storage.models import (
    Answer,
    Attachment,
    AttachmentStatus,
    AuditLog,
    Invite,
    Response,
    ResponseStatus,
)
from tests.pg import settings_on_both_databases
from tests.vk_harness import VkHarness, walk_to_review
from tests.walk import NOTE, PDF, PNG, attachments, position, response_of

# Every story runs on SQLite, and on PostgreSQL too when TEST_POSTGRES_URL is set.
settings = settings_on_both_databases()


@pytest.fixture
async def harness(services):
    harness = await VkHarness.start(services.conversation)
    yield harness
    await harness.stop()


async def registered(harness, region, school_code="S1", user_id=1001):
    user = harness.user(user_id)
    await user.send(f"/start {region.codes[school_code]}")
    return user


async def started(harness, region, school_code="S1", *, past_counts=False):
    user = await registered(harness, region, school_code)
    await user.click("▶ Начать заполнение")
    if past_counts:
        for _ in range(8):
            await user.send("10")
    return user


async def count(services, model) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model))


# --- registration -----------------------------------------------------------------------------


async def test_typed_code_registers_the_director(services, region, harness):
    user = await registered(harness, region)
    user.expect("зарегистрированы", "МБОУ СОШ № 1", "Северный район", "Мониторинг 2026")
    await user.click("▶ Начать заполнение")
    user.expect("Раздел 1.2.3 · вопрос 1 из 17", "Количество педагогических работников")


async def test_ref_from_the_deep_link_registers_on_the_first_message(services, region, harness):
    user = harness.user(1002)
    await user.send("Начать", ref=region.codes["S2"].lower())
    user.expect("зарегистрированы", "МБОУ СОШ № 2")


async def test_start_word_without_code_explains_how_to_get_one(services, region, harness):
    user = harness.user(1001)
    await user.send("Начать")
    user.expect("код приглашения")
    await user.send("12")
    user.expect("не зарегистрированы")


async def test_unknown_code_binds_nothing(services, region, harness):
    before = await count(services, Invite.__table__.metadata.tables["accounts"])
    user = harness.user(1001)
    await user.send("/start NOSUCH99", ref=None)
    user.expect("не найден")
    assert await count(services, Invite.__table__.metadata.tables["accounts"]) == before


# --- the walk -----------------------------------------------------------------------------------


async def test_whole_form_with_documents_review_and_submit(services, region, harness):
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
        path = services.files.absolute(attachment.storage_path)
        assert path.read_bytes() == PDF
        assert Path(services.settings.storage.data_dir) in path.parents
    await user.send("/resume")
    user.expect("уже отправлена", "координатор")


async def test_every_keyboard_sent_keeps_within_vk_limits(services, region, harness):
    """The fake API rejects a keyboard VK would reject (error 911), so a walk that reaches
    the review proves every keyboard on the way fit; the review's numbers are paginated."""
    user = await started(harness, region)
    await walk_to_review(services, user)
    numbers = [b for b in user.buttons() if b.isdigit()]
    assert numbers == [str(n) for n in range(1, 18)]
    assert len(user.replies()) > 1 and user.replies()[-1].text == "Ещё…"
    for message in harness.api.messages:
        if message.keyboard:
            assert message.keyboard["inline"] is True
            assert len(message.buttons()) <= 10


async def test_counts_reject_bad_input_with_specific_messages(services, region, harness):
    user = await started(harness, region)
    for text, fragment in [
        ("-1", "отрицательным"),
        ("12.5", "целое"),
        ("двенадцать", "цифрами"),
    ]:
        await user.send(text)
        user.expect(fragment, "Количество педагогических работников")
    assert await count(services, Answer) == 0
    await user.send(" 12 ")
    user.expect("✅ Сохранено", "вопрос 2 из 17")


async def test_bad_files_are_refused_and_nothing_is_written(services, region, harness):
    user = await started(harness, region, past_counts=True)
    await user.click("Да")
    user.expect("Прикрепите подтверждающий документ")
    await user.send_photo()
    user.expect("как файл")
    await user.send_document(b"MZ\x90\x00binary", "setup.exe")
    user.expect("не принимаются", "PDF")
    await user.send_document(b"just some text, not a pdf", "report.pdf")
    user.expect("не похож на документ")
    await user.send_document(b"%PDF" + b"0" * 16, "big.pdf", size=25 * 2**20)
    user.expect("слишком большой", "20 МБ")
    await user.send_sticker()
    user.expect("Я понимаю текст, кнопки и файлы-документы")
    assert await attachments(services) == []


async def test_several_files_in_one_message_are_each_stored(services, region, harness):
    user = await started(harness, region, past_counts=True)
    await user.click("Да")
    await user.send_documents([(PDF, "приказ.pdf"), (PNG, "скан.png")])
    user.expect("«приказ.pdf» сохранён", "Прикреплено файлов: 2")
    await user.click("✅ Готово")
    user.expect("вопрос 10 из 17")
    stored = await attachments(services)
    assert [a.original_name for a in stored] == ["приказ.pdf", "скан.png"]
    assert [a.mime_type for a in stored] == ["application/pdf", "image/png"]


async def test_an_edited_message_is_not_taken_into_account(services, region, harness):
    user = await started(harness, region)
    await user.send("20")
    await user.edit("30")
    user.expect("Исправленные сообщения не учитываются")
    async with services.sessions() as session:
        assert list(await session.scalars(select(Answer.value))) == [20]


async def test_group_chat_messages_are_ignored(services, region, harness):
    user = harness.user(2_000_000_001)
    await user.send(f"/start {region.codes['S1']}")
    assert user.replies() == []
    assert await count(services, Invite.__table__.metadata.tables["accounts"]) == 0


async def test_back_edit_and_review(services, region, harness):
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
    await user.click("📨 Отправить анкету")
    user.expect("нельзя отправить", "вопрос 3 из 17")
    assert (await response_of(services, region.school_ids["S1"])).status == ResponseStatus.DRAFT


async def test_no_answers_need_an_explanatory_note(services, region, harness):
    user = await started(harness, region, "S2")
    answered = await walk_to_review(services, user, yes=False)
    assert answered == 14
    async with services.sessions() as session:
        rows = list(await session.scalars(select(Answer)))
    notes = [a.note for a in rows if a.value is False]
    assert len(notes) == 6 and all(n == NOTE for n in notes)


# --- buttons: answered, forged, stale --------------------------------------------------------


async def test_every_press_is_answered_with_send_message_event_answer(services, region, harness):
    user = await registered(harness, region)
    await user.click("▶ Начать заполнение")
    [answer] = harness.api.calls_of("messages.sendMessageEventAnswer")
    assert answer.params["user_id"] == "1001" and answer.params["peer_id"] == "1001"
    assert answer.params["event_id"].startswith("cb")


async def test_forged_button_cannot_touch_another_schools_response(services, region, harness):
    anna = await registered(harness, region, "S1", 1001)
    await anna.click("▶ Начать заполнение")
    await anna.send("20")
    victim = await response_of(services, region.school_ids["S1"])
    boris = await registered(harness, region, "U1", 1002)
    await boris.click("▶ Начать заполнение")
    audit_before = await count(services, AuditLog)
    for payload in (
        cb.encode(cb.Action.ANSWER, victim.id, "teachers_total", 0, "1"),
        cb.encode(cb.Action.EDIT, victim.id, "teachers_total", 0),
        cb.encode(cb.Action.CONFIRM, victim.id),
        cb.encode(cb.Action.SKIP, victim.id),
    ):
        await boris.press({"c": payload})
        boris.expect("недоступна")
    await boris.press("not json at all {")  # garbage is «where was I», not a crash
    boris.expect("вопрос 1 из")
    await boris.send("7")
    async with services.sessions() as session:
        anna_answers = list(
            await session.scalars(select(Answer).where(Answer.response_id == victim.id))
        )
        assert [(a.question_id, a.value) for a in anna_answers] == [("teachers_total", 20)]
        status = await session.scalar(select(Response.status).where(Response.id == victim.id))
        assert status == ResponseStatus.DRAFT
        assert await session.scalar(select(func.count()).select_from(AuditLog)) == audit_before + 1


async def test_stale_answer_button_does_not_answer_another_question(services, region, harness):
    user = await started(harness, region, past_counts=True)
    old = [m for m in user.replies() if "Да" in [b for b, _ in m.buttons()]][-1]
    yes = dict(old.buttons())["Да"]
    await user.click("Нет")
    await user.send(NOTE)
    await user.press(yes, old.id)  # the «Да» under a question already answered
    user.expect("другому вопросу")
    async with services.sessions() as session:
        value = await session.scalar(select(Answer.value).where(Answer.question_id == "pd_events"))
    assert value is False
    assert await count(services, Attachment) == 0
    _mode, slot = await position(services, "vk", "1001")
    assert slot.question_id != "pd_events"


# --- unprompted messages -----------------------------------------------------------------------


async def test_a_director_who_closed_messages_is_marked_unreachable(services, region, harness):
    """Error 901 on a reminder: the sender marks the VK account unreachable."""
    from scheduler.runner import create_sender
    from scheduler.sender import Outcome
    from storage.models import Account

    await registered(harness, region)
    sender = create_sender(services, {"vk": harness.channel})
    sent = await sender.send("vk", "1001", OutText("Напоминание: срок через 3 дня"))
    assert sent.outcome == Outcome.SENT
    harness.api.blocked.add(1001)
    blocked = await sender.send("vk", "1001", OutText("Напоминание: срок завтра"))
    assert blocked.outcome == Outcome.BLOCKED
    async with services.sessions() as session:
        account = await session.scalar(select(Account).where(Account.platform == "vk"))
        assert account.unreachable_since is not None
    assert [m.text for m in harness.api.to_peer(1001)][-1] == "Напоминание: срок через 3 дня"


async def test_a_director_who_denies_messages_is_marked_unreachable(services, region, harness):
    """VK's message_deny (the user forbade the community's messages) goes through the inbox
    and marks the account unreachable; coordinators see it."""
    from storage.models import Account

    user = await registered(harness, region)
    sent = len(harness.api.to_peer(1001))
    await user._act("message_deny", {"user_id": 1001})
    async with services.sessions() as session:
        account = await session.scalar(select(Account).where(Account.platform == "vk"))
        assert account.unreachable_since is not None
    assert len(harness.api.to_peer(1001)) == sent


async def test_a_pressed_keyboard_is_taken_off_its_message(services, region, harness):
    user = await registered(harness, region)
    [welcome] = [m for m in user.replies() if m.buttons()]
    text = welcome.text
    await user.click("▶ Начать заполнение")
    assert welcome.keyboard is None and welcome.text == text
    user.expect("вопрос 1 из 17")


async def test_the_director_is_named_from_users_get(services, region, harness):
    from storage.models import Account, Person

    harness.api.names[1001] = ("Анна", "Петрова")
    await registered(harness, region)
    async with services.sessions() as session:
        account = await session.scalar(select(Account).where(Account.platform == "vk"))
        person = await session.get(Person, account.person_id)
        assert person.full_name == "Анна Петрова"
        assert account.display_name == "Анна Петрова"
    await harness.user(1001).send("/help")
    assert len(harness.api.calls_of("users.get")) == 1  # asked once per user
