"""The Telegram channel (bot/telegram/) driven through the intake: JSON updates -> inbox ->
processor -> parse -> core -> outbox -> a recording Bot API session."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiogram.exceptions import TelegramBadRequest
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    EditMessageText,
    SendDocument,
    SendMessage,
    SetMyCommands,
)
from aiogram.types import CallbackQuery, InaccessibleMessage, InlineKeyboardMarkup, Location, Update

from bot.telegram import (
    BOT_COMMANDS,
    ERROR_TEXT,
    UNSUPPORTED_TEXT,
    TelegramFileFetcher,
    TelegramMessenger,
    create_bot,
    parse_command,
    set_commands,
    split_text,
    utf16_len,
)
from handlers.types import (
    Button,
    EventKind,
    Incoming,
    OutFile,
    Outgoing,
    OutText,
    Platform,
    RecipientBlocked,
    RetryLater,
)
from tests.tg_harness import RecordingSession, TgHarness


class FakeCore:
    """Records events; replies with the scripted list (or the result of a callable)."""

    def __init__(self) -> None:
        self.events: list[Incoming] = []
        self.replies: list[Outgoing] = [OutText("ok")]
        self.error: Exception | None = None

    async def handle(self, event: Incoming) -> list[Outgoing]:
        self.events.append(event)
        if self.error is not None:
            raise self.error
        return list(self.replies)

    @property
    def last(self) -> Incoming:
        return self.events[-1]


@pytest.fixture
def core() -> FakeCore:
    return FakeCore()


@pytest.fixture
async def h(core: FakeCore):
    harness = TgHarness.for_core(core)
    yield harness
    await harness.close()


YES_NO = [[Button("Да", "ans:yes"), Button("Нет", "ans:no")], [Button("Назад", "nav:back")]]


# --------------------------------------------------------------------------- incoming


@pytest.mark.parametrize(
    ("text", "command", "args"),
    [
        ("/start ABC123", "start", "ABC123"),
        ("/start@MyBot ABC123", "start", "ABC123"),
        ("/RESUME", "resume", ""),
        ("/start   spaced  args  ", "start", "spaced  args"),
        ("/start\nABC", "start", "ABC"),
    ],
)
async def test_commands(h: TgHarness, core: FakeCore, text: str, command: str, args: str) -> None:
    await h.user(1001, "Анна", "Петрова").send(text)
    event = core.last
    assert event.kind is EventKind.COMMAND
    assert (event.command, event.args) == (command, args)
    assert event.user.platform is Platform.TELEGRAM
    assert (event.user.user_id, event.user.chat_id) == ("1001", "1001")
    assert event.user.display_name == "Анна Петрова"


@pytest.mark.parametrize("text", ["/", "/ start", "/@bot", "просто текст"])
def test_not_commands(text: str) -> None:
    assert parse_command(text) is None


async def test_plain_text(h: TgHarness, core: FakeCore) -> None:
    user = h.user()
    calls = await user.send("  42 учителя ")
    assert core.last.kind is EventKind.TEXT
    assert core.last.text == "  42 учителя "
    assert core.last.command is None
    assert [type(c) for c in calls] == [SendMessage]
    assert user.texts() == ["ok"]


async def test_document_fields(h: TgHarness, core: FakeCore) -> None:
    await h.user().send_document(
        b"PK\x03\x04xlsx", "План.xlsx", mime_type="application/vnd.ms-excel", caption="мой план"
    )
    event = core.last
    assert event.kind is EventKind.DOCUMENT
    assert event.text == "мой план"
    doc = event.document
    assert doc is not None
    assert doc.file_name == "План.xlsx"
    assert doc.mime_type == "application/vnd.ms-excel"
    assert doc.size == 8
    assert doc.file_unique_id == f"u-{doc.file_id}"
    assert h.files[doc.file_id] == b"PK\x03\x04xlsx"


async def test_photo_is_photo_with_largest_size(h: TgHarness, core: FakeCore) -> None:
    await h.user().send_photo(b"\xff\xd8" + b"x" * 1000, caption="скан")
    event = core.last
    assert event.kind is EventKind.PHOTO
    assert event.text == "скан"
    assert event.document is not None
    assert event.document.size == 1002
    assert h.files[event.document.file_id] == b"\xff\xd8" + b"x" * 1000


async def test_unsupported_content_answered_by_adapter(h: TgHarness, core: FakeCore) -> None:
    user = h.user()
    await user.send_sticker()
    assert user.texts() == [UNSUPPORTED_TEXT]
    await user.send_message(location=Location(latitude=55.75, longitude=37.61))
    assert user.texts() == [UNSUPPORTED_TEXT]
    assert core.events == []


async def test_group_chat_ignored(h: TgHarness, core: FakeCore) -> None:
    member = h.user(2002, "Пётр", chat_type="group")
    assert await member.send("/start ABC") == []
    assert core.events == []
    member.expect_silence()


# --------------------------------------------------------------------------- buttons


async def test_keyboard_rendered_as_inline_markup(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("Есть ли у школы план?", YES_NO)]
    user = h.user()
    (call,) = await user.send("/resume")
    assert isinstance(call, SendMessage)
    assert isinstance(call.reply_markup, InlineKeyboardMarkup)
    rows = [[(b.text, b.callback_data) for b in row] for row in call.reply_markup.inline_keyboard]
    assert rows == [[("Да", "ans:yes"), ("Нет", "ans:no")], [("Назад", "nav:back")]]
    assert user.buttons() == ["Да", "Нет", "Назад"]
    assert user.payloads() == ["ans:yes", "ans:no", "nav:back"]


async def test_click_gives_button_event_answers_and_removes_keyboard(
    h: TgHarness, core: FakeCore
) -> None:
    core.replies = [OutText("Есть ли у школы план?", YES_NO)]
    user = h.user()
    await user.send("/resume")
    question_id = h.session.calls_of(SendMessage)[-1]
    message_id = next(iter(h.session.messages))
    core.replies = [OutText("Записал.")]

    calls = await user.click("Нет")

    event = core.last
    assert event.kind is EventKind.BUTTON
    assert event.payload == "ans:no"
    assert event.message_id == str(message_id)
    assert event.user.user_id == "1001"
    assert [type(c) for c in calls] == [AnswerCallbackQuery, EditMessageReplyMarkup, SendMessage]
    assert calls[1].reply_markup is None and calls[1].message_id == message_id
    assert user.texts() == ["Записал."]
    assert user.buttons() == []  # the keyboard is gone
    assert question_id.text == "Есть ли у школы план?"
    with pytest.raises(AssertionError, match="was removed"):
        await user.click("Да")


async def test_click_by_payload_and_unknown_button(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("Вопрос", YES_NO)]
    user = h.user()
    await user.send("/resume")
    with pytest.raises(AssertionError, match=r"(?s)No button 'Может быть'.*'Да' -> 'ans:yes'"):
        await user.click("Может быть")
    await user.click("nav:back")
    assert core.last.payload == "nav:back"


async def test_double_tap_reaches_core_once(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("Вопрос", YES_NO)]
    user = h.user()
    await user.send("/resume")
    core.replies = [OutText("Записал.")]
    await user.click("Да")
    calls = await user.click("Да", stale=True)  # the tap the client sent before the removal
    assert [type(c) for c in calls] == [AnswerCallbackQuery, EditMessageReplyMarkup]
    assert [e.kind for e in core.events] == [EventKind.COMMAND, EventKind.BUTTON]


async def test_click_on_uneditable_message_still_reaches_core(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("Вопрос", YES_NO)]
    user = h.user()
    await user.send("/resume")
    h.session.fail_next(AnswerCallbackQuery, "Bad Request: query is too old")
    h.session.fail_next(EditMessageReplyMarkup, "Bad Request: message can't be edited")
    core.replies = [OutText("ok")]
    await user.click("Да")
    assert core.last.payload == "ans:yes"
    assert user.texts() == ["ok"]


async def test_too_long_payload_gives_apology_not_half_reply(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("первое"), OutText("второе", [[Button("Длинная", "x" * 65)]])]
    user = h.user()
    await user.send("/resume")
    assert user.texts() == [ERROR_TEXT]


async def test_payload_limit_counts_utf8_bytes(h: TgHarness, core: FakeCore) -> None:
    core.replies = [OutText("ok", [[Button("Ровно", "я" * 32)]])]  # 64 bytes: allowed
    user = h.user()
    await user.send("/x")
    assert user.payloads() == ["я" * 32]
    core.replies = [OutText("ok", [[Button("Много", "я" * 32 + "a")]])]  # 65 bytes
    await user.send("/x")
    assert user.texts() == [ERROR_TEXT]


# --------------------------------------------------------------------------- outgoing


async def test_long_text_split_on_lines_keyboard_on_last(h: TgHarness, core: FakeCore) -> None:
    lines = [f"{i:04d} " + "ш" * 90 for i in range(100)]  # ~9500 chars
    core.replies = [OutText("\n".join(lines), [[Button("Дальше", "next")]])]
    user = h.user()
    calls = await user.send("/review")
    sends = [c for c in calls if isinstance(c, SendMessage)]
    assert len(sends) == 3
    assert all(utf16_len(c.text) <= 4096 for c in sends)
    assert "\n".join(c.text for c in sends) == "\n".join(lines)
    assert [c.reply_markup is not None for c in sends] == [False, False, True]


def test_split_text_counts_utf16_and_cuts_long_lines() -> None:
    emoji_text = "😀" * 3000  # 6000 UTF-16 units on one line
    parts = split_text(emoji_text)
    assert len(parts) == 2
    assert "".join(parts) == emoji_text
    assert all(utf16_len(p) <= 4096 for p in parts)
    words = " ".join(["слово"] * 1500)
    parts = split_text(words)
    assert all(utf16_len(p) <= 4096 for p in parts)
    assert all(p.endswith("слово") or p.endswith("слово ") for p in parts)
    assert split_text("короткий") == ["короткий"]


async def test_outfile_sent_as_document(h: TgHarness, core: FakeCore, tmp_path: Path) -> None:
    path = tmp_path / "export-123.xlsx"
    path.write_bytes(b"excel bytes")
    core.replies = [OutText("Готово:"), OutFile(path, "Мониторинг.xlsx", caption="Выгрузка")]
    user = h.user()
    calls = await user.send("/export")
    assert [type(c) for c in calls] == [SendMessage, SendDocument]
    (doc,) = user.sent_documents()
    assert (doc.filename, doc.content, doc.caption) == (
        "Мониторинг.xlsx",
        b"excel bytes",
        "Выгрузка",
    )
    core.replies = [OutText("ok")]
    await user.send("/help")
    assert user.sent_documents() == []
    assert len(user.all_documents()) == 1


async def test_outfile_with_long_caption(h: TgHarness, core: FakeCore, tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"x")
    core.replies = [OutFile(path, "f.txt", caption="пояснение " * 200)]
    user = h.user()
    calls = await user.send("/export")
    assert [type(c) for c in calls] == [SendDocument, SendMessage]
    assert calls[0].caption is None
    assert calls[1].text.startswith("пояснение")


async def test_core_exception_gives_russian_apology(
    h: TgHarness, core: FakeCore, caplog: pytest.LogCaptureFixture
) -> None:
    core.error = RuntimeError("boom")
    user = h.user()
    await user.send("/resume")
    assert user.texts() == [ERROR_TEXT]
    assert "boom" in caplog.text
    core.error = None
    await user.send("/resume")  # polling survives
    assert user.texts() == ["ok"]


async def test_blocked_user_does_not_crash(h: TgHarness, core: FakeCore) -> None:
    h.session.fail_next(SendMessage, "Forbidden: bot was blocked by the user", status_code=403)
    user = h.user()
    await user.send("/resume")
    assert user.texts() == ["ok"]  # the attempt was made, nothing else (no apology loop)


async def test_flood_control_retried(
    h: TgHarness, core: FakeCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("bot.processor.asyncio.sleep", fake_sleep)
    h.session.fail_next(SendMessage, "Too Many Requests: retry after 3", 429, retry_after=3)
    user = h.user()
    await user.send("/resume")
    assert slept == [3]
    assert user.texts() == ["ok", "ok"]  # the failed attempt is recorded too


async def test_updates_of_one_chat_are_serialized(h: TgHarness) -> None:
    order: list[str] = []

    class SlowCore:
        async def handle(self, event: Incoming) -> list[Outgoing]:
            order.append(f"start {event.text}")
            await asyncio.sleep(0.01 if event.text == "a" else 0)
            order.append(f"end {event.text}")
            return [OutText(event.text)]

    h2 = TgHarness.for_core(SlowCore())
    user = h2.user()
    await asyncio.gather(user.send("a"), user.send("b"))
    await h2.close()
    assert order == ["start a", "end a", "start b", "end b"]


async def test_users_are_separate(h: TgHarness, core: FakeCore) -> None:
    anna, petr = h.user(1, "Анна"), h.user(2, "Пётр")
    core.replies = [OutText("вопрос", YES_NO)]
    await anna.send("/resume")
    core.replies = [OutText("другое")]
    await petr.send("/help")
    assert anna.texts() == ["вопрос"]
    assert petr.texts() == ["другое"]
    assert petr.buttons() == []
    assert anna.buttons() == ["Да", "Нет", "Назад"]


# --------------------------------------------------------------------------- services


async def test_file_fetcher_downloads(h: TgHarness, core: FakeCore, tmp_path: Path) -> None:
    await h.user().send_document(b"content" * 100_000, "big.xlsx")
    file_id = core.last.document.file_id  # type: ignore[union-attr]
    dest = tmp_path / "in" / "big.xlsx"
    await TelegramFileFetcher(h.bot).fetch(file_id, dest)
    assert dest.read_bytes() == b"content" * 100_000
    assert list(dest.parent.iterdir()) == [dest]


async def test_file_fetcher_failure_leaves_nothing(
    h: TgHarness, core: FakeCore, tmp_path: Path
) -> None:
    await h.user().send_document(b"content" * 1000, "a.xlsx")
    file_id = core.last.document.file_id  # type: ignore[union-attr]
    dest = tmp_path / "a.xlsx"
    h.session.fail_downloads = True
    with pytest.raises(aiohttp.ClientError):
        await TelegramFileFetcher(h.bot).fetch(file_id, dest)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TelegramBadRequest, match="invalid file_id"):
        await TelegramFileFetcher(h.bot).fetch("nope", dest)
    assert list(tmp_path.iterdir()) == []


async def test_messenger_send_and_edit(h: TgHarness) -> None:
    user = h.user(7, "Ольга")
    messenger = TelegramMessenger(h.bot)
    message_id = await messenger.send("7", OutText("Экспорт: 10%", [[Button("Отмена", "x")]]))
    assert message_id is not None
    assert user.texts() == ["Экспорт: 10%"]
    await messenger.edit("7", message_id, OutText("Экспорт: 50%", [[Button("Отмена", "x")]]))
    await messenger.edit("7", message_id, OutText("Экспорт: 50%", [[Button("Отмена", "x")]]))
    edits = h.session.calls_of(EditMessageText)
    assert [e.text for e in edits] == ["Экспорт: 50%", "Экспорт: 50%"]  # 2nd: not modified
    assert user.last_text() == "Экспорт: 50%"
    assert user.buttons() == ["Отмена"]


async def test_messenger_send_file_and_errors(h: TgHarness, tmp_path: Path) -> None:
    user = h.user(7, "Ольга")
    path = tmp_path / "r.xlsx"
    path.write_bytes(b"r")
    messenger = TelegramMessenger(h.bot)
    assert await messenger.send("7", OutFile(path, "Отчёт.xlsx")) is not None
    assert [d.filename for d in user.all_documents()] == ["Отчёт.xlsx"]
    h.session.fail_next(SendMessage, "Forbidden: bot was blocked by the user", 403)
    with pytest.raises(RecipientBlocked):
        await messenger.send("7", OutText("Напоминание"))
    h.session.fail_next(SendMessage, "Too Many Requests: retry after 7", 429, retry_after=7)
    with pytest.raises(RetryLater) as flood:
        await messenger.send("7", OutText("Напоминание"))
    assert flood.value.seconds == 7
    with pytest.raises(TelegramBadRequest, match="not found"):
        await messenger.edit("7", "999", OutText("нет такого"))


def test_create_bot_with_local_api_server() -> None:
    bot = create_bot("42:TEST", api_url="http://127.0.0.1:8081/", local_files=True)
    api = bot.session.api
    assert api.base == "http://127.0.0.1:8081/bot{token}/{method}"
    assert api.file == "http://127.0.0.1:8081/file/bot{token}/{path}"
    assert api.is_local is True
    assert bot.default.parse_mode is None
    assert create_bot("42:TEST").session.api.base.startswith("https://api.telegram.org/")


async def test_set_commands_in_russian() -> None:
    session = RecordingSession()
    bot = create_bot("42:TEST", session=session)
    await set_commands(bot)
    (call,) = session.calls_of(SetMyCommands)
    commands = {c.command: c.description for c in call.commands}
    assert commands == dict(BOT_COMMANDS)
    assert commands["start"] == "Начать / ввести код приглашения"
    assert list(commands) == [
        "start",
        "resume",
        "review",
        "help",
        "export",
        "check",
        "status",
        "deadlines",
        "link",
    ]
    assert not session.calls_of(DeleteWebhook)


async def test_press_on_inaccessible_old_message(h: TgHarness, core: FakeCore) -> None:
    """Telegram sends InaccessibleMessage (date=0) for very old messages; still a BUTTON."""
    user = h.user()
    callback = CallbackQuery(
        id="old-1",
        from_user=user.tg_user,
        chat_instance="ci",
        message=InaccessibleMessage(chat=user.chat, message_id=77),
        data="ans:yes",
    )
    await h.feed(Update(update_id=h.next_update_id(), callback_query=callback))
    assert (core.last.kind, core.last.payload, core.last.message_id) == (
        EventKind.BUTTON,
        "ans:yes",
        "77",
    )
    assert user.last_text() == "ok"
