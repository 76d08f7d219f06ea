"""A network-free Telegram test harness: drive the real aiogram Dispatcher like a user would.

``RecordingSession`` plays the Bot API server: it records every method call, remembers which
bot message carries which inline keyboard (so a removed keyboard cannot be "pressed" again, and
editing to the same markup fails with "message is not modified" as on real Telegram), and serves
downloads from an in-memory ``files`` dict.

``TgHarness``/``TgUser`` build real ``aiogram.types.Update`` objects and feed them, as JSON,
through the production intake (inbox, processor, outbox) and Telegram channel::

    h = TgHarness.for_core(core)
    user = h.user(1001, "Анна")
    await user.send("/start ABC123")
    user.expect("Добро пожаловать")
    await user.click("Да")
    await user.send_document(b"...", "plan.xlsx")
    assert user.sent_documents()[0].filename == "report.xlsx"

Every action returns the Bot API calls addressed to this user during it (SendMessage,
SendDocument, EditMessageText, EditMessageReplyMarkup, AnswerCallbackQuery…); the inspection
helpers (``texts()``, ``calls()``, ``sent_documents()``) look at everything addressed to the
user since the start of their last action, including messages other users' actions or
background jobs sent them meanwhile.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import shutil
import tempfile
from collections.abc import AsyncGenerator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteWebhook,
    EditMessageReplyMarkup,
    EditMessageText,
    GetFile,
    GetMe,
    SendDocument,
    SendMessage,
    TelegramMethod,
)
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Chat,
    Document,
    File,
    FSInputFile,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    PhotoSize,
    Sticker,
    Update,
    User,
)

if TYPE_CHECKING:
    from handlers.core import ConversationCore

TEST_TOKEN = "42:TEST"
BOT_USER = User(id=42, is_bot=True, first_name="Тестовый бот", username="test_bot")

_TEXT_METHODS = (SendMessage, EditMessageText)
_UPDATE_IDS = itertools.count(1)


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _markup_key(markup: Any) -> Any:
    return markup.model_dump() if markup is not None else None


@dataclass(frozen=True, slots=True)
class SentDocument:
    """A document the bot sent; ``content`` is read at send time (the file may be gone later)."""

    message_id: int
    chat_id: int
    filename: str
    content: bytes
    caption: str | None
    call_index: int = -1  # position of the SendDocument call in RecordingSession.calls


@dataclass(slots=True)
class BotMessage:
    """Server-side state of a message the bot sent (as Telegram would keep it)."""

    message_id: int
    chat_id: int
    date: datetime
    text: str | None
    markup: InlineKeyboardMarkup | None  # what the user currently sees
    last_markup: InlineKeyboardMarkup | None  # last non-empty keyboard (for stale presses)
    document: SentDocument | None = None


@dataclass(slots=True)
class _ScriptedError:
    method: type[TelegramMethod[Any]]
    description: str
    status_code: int
    retry_after: int | None


class RecordingSession(BaseSession):
    """A fake Bot API: records calls, returns plausible results, serves downloads from memory."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[TelegramMethod[Any]] = []
        self.files: dict[str, bytes] = {}  # file_id -> content, for get_file/download
        self.fail_downloads = False  # stream half a file, then raise aiohttp.ClientPayloadError
        self.hang_downloads = False  # a download that never finishes (until cancelled)
        self.messages: dict[int, BotMessage] = {}  # bot messages by message_id
        self.documents: list[SentDocument] = []
        self.chats: dict[int, Chat] = {}
        self.callback_chats: dict[str, int] = {}  # callback_query_id -> chat_id
        self._errors: list[_ScriptedError] = []
        self._ids = itertools.count(1)

    # ---- knobs for tests

    def next_message_id(self) -> int:
        """Message ids are shared by user and bot messages, so they grow like in a real chat."""
        return next(self._ids)

    def fail_next(
        self,
        method: type[TelegramMethod[Any]],
        description: str = "Bad Request: simulated failure",
        status_code: int = 400,
        retry_after: int | None = None,
    ) -> None:
        """Make the next call of ``method`` fail as the Bot API would (400 -> TelegramBadRequest,
        403 -> TelegramForbiddenError, 429 + retry_after -> TelegramRetryAfter…)."""
        self._errors.append(_ScriptedError(method, description, status_code, retry_after))

    def calls_of(self, method: type[TelegramMethod[Any]]) -> list[Any]:
        return [call for call in self.calls if isinstance(call, method)]

    # ---- BaseSession

    async def close(self) -> None:
        pass

    async def make_request(
        self, bot: Bot, method: TelegramMethod[Any], timeout: int | None = None
    ) -> Any:
        self.calls.append(method)
        for i, error in enumerate(self._errors):
            if isinstance(method, error.method):
                del self._errors[i]
                self._raise(bot, method, error.status_code, error.description, error.retry_after)
        result = self._result(bot, method)
        if hasattr(result, "as_"):
            result = result.as_(bot)
        return result

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        file_id = url.rsplit("/documents/", 1)[-1]
        if file_id not in self.files:
            raise aiohttp.ClientConnectionError(f"404 for {url}")
        content = self.files[file_id]
        if self.hang_downloads:
            await asyncio.Event().wait()
        if self.fail_downloads:
            yield content[: len(content) // 2]
            raise aiohttp.ClientPayloadError("simulated broken download")
        for start in range(0, len(content), chunk_size):
            yield content[start : start + chunk_size]

    # ---- internals

    def _raise(
        self,
        bot: Bot,
        method: TelegramMethod[Any],
        status_code: int,
        description: str,
        retry_after: int | None = None,
    ) -> None:
        payload: dict[str, Any] = {"ok": False, "error_code": status_code}
        payload["description"] = description
        if retry_after is not None:
            payload["parameters"] = {"retry_after": retry_after}
        self.check_response(bot, method, status_code, json.dumps(payload))
        raise AssertionError("check_response did not raise")  # pragma: no cover

    def _chat(self, chat_id: int | str) -> Chat:
        chat_id = int(chat_id)
        return self.chats.get(chat_id) or Chat(id=chat_id, type="private")

    def _message_result(self, state: BotMessage) -> Message:
        document = None
        if state.document is not None:
            doc = state.document
            document = Document(
                file_id=f"sent-{state.message_id}",
                file_unique_id=f"u-sent-{state.message_id}",
                file_name=doc.filename,
                file_size=len(doc.content),
            )
        return Message(
            message_id=state.message_id,
            date=state.date,
            chat=self._chat(state.chat_id),
            from_user=BOT_USER,
            text=state.text if state.document is None else None,
            caption=state.document.caption if state.document is not None else None,
            document=document,
            reply_markup=state.markup,
        )

    def _result(self, bot: Bot, method: TelegramMethod[Any]) -> Any:
        if isinstance(method, SendMessage):
            state = BotMessage(
                message_id=self.next_message_id(),
                chat_id=int(method.chat_id),
                date=_now(),
                text=method.text,
                markup=method.reply_markup,
                last_markup=method.reply_markup,
            )
            self.messages[state.message_id] = state
            return self._message_result(state)
        if isinstance(method, SendDocument):
            message_id = self.next_message_id()
            doc = SentDocument(
                message_id=message_id,
                chat_id=int(method.chat_id),
                filename=getattr(method.document, "filename", None) or "file",
                content=_read_input(method.document),
                caption=method.caption,
                call_index=len(self.calls) - 1,
            )
            self.documents.append(doc)
            state = BotMessage(
                message_id=message_id,
                chat_id=doc.chat_id,
                date=_now(),
                text=None,
                markup=method.reply_markup,
                last_markup=method.reply_markup,
                document=doc,
            )
            self.messages[message_id] = state
            return self._message_result(state)
        if isinstance(method, EditMessageText | EditMessageReplyMarkup):
            state = self.messages.get(int(method.message_id or 0))
            if state is None or state.chat_id != int(method.chat_id or 0):
                self._raise(bot, method, 400, "Bad Request: message to edit not found")
            assert state is not None
            new_text = method.text if isinstance(method, EditMessageText) else state.text
            if new_text == state.text and _markup_key(method.reply_markup) == _markup_key(
                state.markup
            ):
                self._raise(
                    bot,
                    method,
                    400,
                    "Bad Request: message is not modified: specified new message content and "
                    "reply markup are exactly the same as a current content and reply markup "
                    "of the message",
                )
            state.text = new_text
            state.markup = method.reply_markup
            if method.reply_markup is not None:
                state.last_markup = method.reply_markup
            if isinstance(method, EditMessageText):
                return self._message_result(state)
            return True
        if isinstance(method, GetFile):
            if method.file_id not in self.files:
                self._raise(bot, method, 400, "Bad Request: invalid file_id")
            return File(
                file_id=method.file_id,
                file_unique_id=f"u-{method.file_id}",
                file_size=len(self.files[method.file_id]),
                file_path=f"documents/{method.file_id}",
            )
        if isinstance(method, GetMe):
            return BOT_USER
        if isinstance(method, AnswerCallbackQuery | DeleteWebhook):
            return True
        if method.__returning__ is bool:
            return True  # set_my_commands, send_chat_action, delete_message…
        raise NotImplementedError(
            f"RecordingSession cannot fake {type(method).__name__}; teach it in tests/tg_harness.py"
        )


def _read_input(document: Any) -> bytes:
    if isinstance(document, FSInputFile):
        return Path(document.path).read_bytes()
    if isinstance(document, BufferedInputFile):
        return document.data
    return b""  # a file_id / URL string


def _chat_id_of(call: TelegramMethod[Any]) -> int | None:
    chat_id = getattr(call, "chat_id", None)
    if chat_id is None:
        return None
    try:
        return int(chat_id)
    except (TypeError, ValueError):
        return None


class TgHarness:
    """Feeds updates through the production path (channel -> inbox -> processor -> core ->
    outbox -> Bot API) and lets tests act as Telegram users.

    A core with ``sessions`` (the real Conversation) keeps the inbox in its own database; any
    other core (a test double) gets a throw-away SQLite file with the schema.
    """

    def __init__(self, bot: Bot, core: Any, sessions: Any = None) -> None:
        from bot.telegram import TelegramChannel

        if not isinstance(bot.session, RecordingSession):
            raise TypeError("TgHarness needs a Bot whose session is a RecordingSession")
        self.bot = bot
        self.session: RecordingSession = bot.session
        self.channel = TelegramChannel(bot)
        self.core = core
        self.sessions = sessions
        self.processor: Any = None
        self._engine: Any = None
        self._tmp: Path | None = None
        self._setup = asyncio.Lock()
        self._update_ids = _UPDATE_IDS  # unique across harnesses: a restart shares the inbox
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)

    @classmethod
    def for_core(cls, core: ConversationCore, sessions: Any = None) -> TgHarness:
        """The production Telegram channel and processor around ``core``, recording bot."""
        from bot.telegram import create_bot

        bot = create_bot(TEST_TOKEN, session=RecordingSession())
        return cls(bot, core, sessions or getattr(core, "sessions", None))

    async def get_processor(self) -> Any:
        from bot.processor import Processor

        async with self._setup:
            if self.processor is None:
                if self.sessions is None:
                    self.sessions = await self._intake_only_database()
                self.processor = Processor(
                    self.sessions, {"tg": self.channel}, self.core, retry_delay=0
                )
        return self.processor

    async def _intake_only_database(self) -> Any:
        from storage.database import create_engine, create_sessionmaker
        from storage.models import InboxEvent

        self._tmp = Path(tempfile.mkdtemp(prefix="tg-harness-"))
        self._engine = create_engine(f"sqlite+aiosqlite:///{self._tmp / 'intake.sqlite3'}")
        async with self._engine.begin() as connection:
            await connection.run_sync(InboxEvent.metadata.create_all)
        return create_sessionmaker(self._engine)

    async def close(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def user(
        self,
        user_id: int = 1001,
        first_name: str = "Анна",
        last_name: str | None = None,
        *,
        chat_id: int | None = None,
        chat_type: str = "private",
    ) -> TgUser:
        return TgUser(self, user_id, first_name, last_name, chat_id=chat_id, chat_type=chat_type)

    @property
    def calls(self) -> list[TelegramMethod[Any]]:
        return self.session.calls

    @property
    def files(self) -> dict[str, bytes]:
        return self.session.files

    def new_file_id(self, prefix: str = "doc") -> str:
        return f"{prefix}-{next(self._file_ids)}"

    async def feed(self, update: Update) -> None:
        await self.feed_raw([update.model_dump(mode="json", by_alias=True, exclude_none=True)])

    async def feed_raw(self, updates: list[dict[str, Any]]) -> None:
        """One polling batch as JSON: stored in the inbox, then processed to the end."""
        processor = await self.get_processor()
        await processor.accept(list(self.channel.raw_events(updates)))
        await processor.drain()

    def next_update_id(self) -> int:
        return next(self._update_ids)

    def next_callback_id(self) -> str:
        return f"cbq-{next(self._callback_ids)}"


@dataclass(frozen=True, slots=True)
class ButtonView:
    text: str
    payload: str | None


@dataclass
class TgUser:
    """One Telegram user chatting with the bot (private chat unless told otherwise)."""

    harness: TgHarness
    user_id: int
    first_name: str = "Анна"
    last_name: str | None = None
    chat_id: int | None = None
    chat_type: str = "private"
    _cursor: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.chat_id is None:
            self.chat_id = self.user_id if self.chat_type == "private" else -100_000 - self.user_id
        self.tg_user = User(
            id=self.user_id,
            is_bot=False,
            first_name=self.first_name,
            last_name=self.last_name,
            language_code="ru",
        )
        if self.chat_type == "private":
            self.chat = Chat(
                id=self.chat_id,
                type="private",
                first_name=self.first_name,
                last_name=self.last_name,
            )
        else:
            self.chat = Chat(id=self.chat_id, type=self.chat_type, title="Тестовая группа")
        self.harness.session.chats[self.chat_id] = self.chat

    @property
    def session(self) -> RecordingSession:
        return self.harness.session

    # ---- actions

    async def send(self, text: str) -> list[TelegramMethod[Any]]:
        """Send a text message; ``/command args`` is sent with a bot_command entity."""
        return await self._act(self.text_update(text))

    async def send_document(
        self,
        content: bytes,
        file_name: str,
        mime_type: str | None = None,
        caption: str | None = None,
    ) -> list[TelegramMethod[Any]]:
        """Send a file as a document; its bytes become downloadable by the returned file_id."""
        file_id = self.harness.new_file_id("doc")
        self.session.files[file_id] = content
        document = Document(
            file_id=file_id,
            file_unique_id=f"u-{file_id}",
            file_name=file_name,
            mime_type=mime_type,
            file_size=len(content),
        )
        return await self.send_message(document=document, caption=caption)

    async def send_photo(
        self, content: bytes = b"\xff\xd8\xff\xe0fake-jpeg", caption: str | None = None
    ) -> list[TelegramMethod[Any]]:
        """Send a compressed photo (a thumbnail and a full size, like Telegram does)."""
        small_id = self.harness.new_file_id("photo")
        large_id = self.harness.new_file_id("photo")
        self.session.files[small_id] = content[:64]
        self.session.files[large_id] = content
        sizes = [
            PhotoSize(
                file_id=small_id,
                file_unique_id=f"u-{small_id}",
                width=90,
                height=68,
                file_size=len(content[:64]),
            ),
            PhotoSize(
                file_id=large_id,
                file_unique_id=f"u-{large_id}",
                width=1280,
                height=960,
                file_size=len(content),
            ),
        ]
        return await self.send_message(photo=sizes, caption=caption)

    async def send_sticker(self) -> list[TelegramMethod[Any]]:
        """Something the bot does not understand."""
        sticker = Sticker(
            file_id=self.harness.new_file_id("sticker"),
            file_unique_id="u-sticker",
            type="regular",
            width=512,
            height=512,
            is_animated=False,
            is_video=False,
        )
        return await self.send_message(sticker=sticker)

    async def send_message(self, **fields: Any) -> list[TelegramMethod[Any]]:
        """Send a Message with arbitrary content fields (``location=Location(...)`` etc.)."""
        return await self._act(self.message_update(**fields))

    def message_update(self, *, edited: bool = False, **fields: Any) -> Update:
        """The Update of a message from this user, not sent yet (see :meth:`act_batch`)."""
        message = Message(
            message_id=self.session.next_message_id(),
            date=_now(),
            chat=self.chat,
            from_user=self.tg_user,
            edit_date=int(_now().timestamp()) if edited else None,
            **fields,
        )
        if edited:
            return Update(update_id=self.harness.next_update_id(), edited_message=message)
        return Update(update_id=self.harness.next_update_id(), message=message)

    def text_update(self, text: str) -> Update:
        entities = None
        if text.startswith("/") and len(text) > 1 and not text[1].isspace():
            length = len(text.split(maxsplit=1)[0])
            entities = [MessageEntity(type="bot_command", offset=0, length=length)]
        return self.message_update(text=text, entities=entities)

    async def act_batch(self, updates: list[Update]) -> list[TelegramMethod[Any]]:
        """Deliver several updates in one polling batch (a tap and a typed line at once)."""
        self._cursor = len(self.session.calls)
        await self.harness.feed_raw(
            [u.model_dump(mode="json", by_alias=True, exclude_none=True) for u in updates]
        )
        return self.calls()

    async def click(
        self, button: str, *, message_id: int | None = None, stale: bool = False
    ) -> list[TelegramMethod[Any]]:
        return await self._act(self.click_update(button, message_id=message_id, stale=stale))

    def click_update(
        self, button: str, *, message_id: int | None = None, stale: bool = False
    ) -> Update:
        """Press an inline button, found by exact text or payload.

        By default the button is looked up in the latest bot message to this user that has (or
        had) an inline keyboard; ``message_id`` picks another message. Pressing a keyboard the
        bot already removed fails unless ``stale=True``, which simulates a tap the client sent
        before the removal arrived (a double tap).
        """
        state = self._keyboard_message(message_id)
        markup = state.last_markup if stale else state.markup
        if markup is None:
            raise AssertionError(
                f"The keyboard of message {state.message_id} ({_short(state.text)}) was removed; "
                "pass stale=True to simulate a late double tap"
            )
        views = [ButtonView(b.text, b.callback_data) for row in markup.inline_keyboard for b in row]
        found = next((v for v in views if v.text == button), None) or next(
            (v for v in views if v.payload == button), None
        )
        if found is None:
            listing = "\n".join(f"  {v.text!r} -> {v.payload!r}" for v in views)
            raise AssertionError(
                f"No button {button!r} under message {state.message_id} "
                f"({_short(state.text)}). Available:\n{listing}"
            )
        shown = Message(
            message_id=state.message_id,
            date=state.date,
            chat=self.chat,
            from_user=BOT_USER,
            text=state.text,
            reply_markup=markup,
        )
        query_id = self.harness.next_callback_id()
        self.session.callback_chats[query_id] = self.chat_id  # type: ignore[assignment]
        callback = CallbackQuery(
            id=query_id,
            from_user=self.tg_user,
            chat_instance=f"ci-{self.chat_id}",
            message=shown,
            data=found.payload,
        )
        return Update(update_id=self.harness.next_update_id(), callback_query=callback)

    async def _act(self, update: Update) -> list[TelegramMethod[Any]]:
        self._cursor = len(self.session.calls)
        await self.harness.feed(update)
        return self.calls()

    # ---- inspection

    def _mine(self, call: TelegramMethod[Any]) -> bool:
        if isinstance(call, AnswerCallbackQuery):
            return self.session.callback_chats.get(call.callback_query_id) == self.chat_id
        return _chat_id_of(call) == self.chat_id

    def calls(self) -> list[TelegramMethod[Any]]:
        """Bot API calls addressed to this user since the start of their last action."""
        return [c for c in self.session.calls[self._cursor :] if self._mine(c)]

    def history(self) -> list[TelegramMethod[Any]]:
        """All Bot API calls ever addressed to this user."""
        return [c for c in self.session.calls if self._mine(c)]

    def texts(self) -> list[str]:
        """Texts sent (or edited in) to this user since the start of their last action."""
        return [c.text for c in self.calls() if isinstance(c, _TEXT_METHODS)]

    def last_text(self) -> str:
        """The latest text sent or edited in to this user, over the whole history."""
        texts = [c.text for c in self.history() if isinstance(c, _TEXT_METHODS)]
        if not texts:
            raise AssertionError("The bot has not sent this user any text")
        return texts[-1]

    def expect(self, *fragments: str) -> str:
        """Assert that one text since the last action contains all ``fragments``; return it."""
        texts = self.texts()
        for text in texts:
            if all(fragment in text for fragment in fragments):
                return text
        shown = "\n---\n".join(texts) or "(nothing)"
        raise AssertionError(f"No reply contains {fragments!r}. The bot sent:\n{shown}")

    def expect_silence(self) -> None:
        sent = [type(c).__name__ for c in self.calls() if not isinstance(c, AnswerCallbackQuery)]
        if sent:
            raise AssertionError(f"Expected no reply, got {sent}: {self.texts()}")

    def _keyboard_message(self, message_id: int | None = None) -> BotMessage:
        if message_id is not None:
            state = self.session.messages.get(message_id)
            if state is None or state.chat_id != self.chat_id:
                raise AssertionError(f"No bot message {message_id} in this chat")
            return state
        candidates = [
            m
            for m in self.session.messages.values()
            if m.chat_id == self.chat_id and m.last_markup is not None
        ]
        if not candidates:
            raise AssertionError("The bot has not sent this user any inline keyboard")
        return max(candidates, key=lambda m: m.message_id)

    def keyboard(self) -> list[list[ButtonView]]:
        """Rows of the keyboard under the latest keyboard message ([] if it was removed)."""
        try:
            state = self._keyboard_message()
        except AssertionError:
            return []
        if state.markup is None:
            return []
        return [
            [ButtonView(b.text, b.callback_data) for b in row]
            for row in state.markup.inline_keyboard
        ]

    def buttons(self) -> list[str]:
        """Texts of the buttons a user can press now under the latest keyboard message."""
        return [b.text for row in self.keyboard() for b in row]

    def payloads(self) -> list[str | None]:
        return [b.payload for row in self.keyboard() for b in row]

    def sent_documents(self) -> list[SentDocument]:
        """Documents sent to this user since the start of their last action."""
        return [
            d
            for d in self.session.documents
            if d.chat_id == self.chat_id and d.call_index >= self._cursor
        ]

    def all_documents(self) -> list[SentDocument]:
        return [d for d in self.session.documents if d.chat_id == self.chat_id]


def _short(text: str | None, limit: int = 60) -> str:
    if not text:
        return "no text"
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[: limit - 1] + "…")


def flatten_texts(calls: Iterable[TelegramMethod[Any]]) -> list[str]:
    """Texts of SendMessage/EditMessageText calls in ``calls`` (e.g. an action's return value)."""
    return [c.text for c in calls if isinstance(c, _TEXT_METHODS)]
