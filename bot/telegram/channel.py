"""The Telegram channel (see :mod:`bot.channel`): our own ``getUpdates`` loop, webhooks,
parsing of stored updates, and delivery.

* Polling asks for raw JSON (not aiogram's ``Update`` list), so one update the library
  cannot parse is stored as it came, marked failed by the processor and logged, while the
  rest of the batch is served. The offset moves on only after ``sink`` stored the batch.
* Only private chats are served; groups, channel posts and service updates mean nothing.
* A pressed keyboard is answered and removed in ``parse``. If Telegram says the markup is
  already gone ("message is not modified") and it was not this very press that removed it,
  the press is a double tap and is dropped.
* An edited message is answered with :data:`EDITED_TEXT`: edits are not taken into account.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
from aiogram import Bot
from aiogram.enums import ChatType
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import SendMessage, TelegramMethod
from aiogram.types import Update

from bot.channel import ChannelSetupError, Parsed, RawEvent, Sink, WebhookAnswer
from bot.handover import Handover
from bot.retry import Backoff
from bot.telegram.render import (
    UNSUPPORTED_TEXT,
    SharedRate,
    TelegramFileFetcher,
    TelegramMessenger,
    _call,
    _is_not_modified,
    _TextPart,
    _user_ref,
    message_to_incoming,
    render,
    set_commands,
)
from handlers.types import EventKind, Incoming, Outgoing, OutText, Platform
from handlers.wire import decode
from scheduler.ratelimit import TokenRate

log = logging.getLogger(__name__)

EDITED_TEXT = (
    "Исправления отправленных сообщений я не учитываю. "
    "Пожалуйста, отправьте ответ ещё раз новым сообщением."
)
BAD_TOKEN_TEXT = (
    "Telegram не принял BOT_TOKEN. Проверьте токен у @BotFather, исправьте BOT_TOKEN "
    "в .env и запустите бота снова."
)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
POLL_TIMEOUT = 25
_PRESSES_REMEMBERED = 1000

# Errors after which the API is worth asking again: the network, Telegram's side, a timeout.
TRANSIENT = (
    TelegramNetworkError,
    TelegramServerError,
    TelegramRetryAfter,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)


class GetRawUpdates(TelegramMethod[list[dict[str, Any]]]):
    """``getUpdates`` whose result stays plain JSON: each update is parsed on its own later."""

    __returning__ = list[dict[str, Any]]
    __api_method__ = "getUpdates"

    offset: int | None = None
    limit: int | None = None
    timeout: int | None = None
    allowed_updates: list[str] | None = None


def _chat_of(update: Mapping[str, Any]) -> str | None:
    for field in ("message", "edited_message"):
        message = update.get(field)
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            chat_id = message["chat"].get("id")
            return str(chat_id) if chat_id is not None else None
    query = update.get("callback_query")
    if isinstance(query, dict):
        message = query.get("message")
        if isinstance(message, dict) and isinstance(message.get("chat"), dict):
            return str(message["chat"].get("id"))
        sender = query.get("from")
        if isinstance(sender, dict) and sender.get("id") is not None:
            return str(sender["id"])
    return None


def webhook_secret_for(token: str, configured: str | None = None) -> str:
    """The ``secret_token`` Telegram sends back: the configured one, else derived from the
    token (so a webhook is never left without a secret)."""
    if configured:
        return configured
    return hmac.new(token.encode(), b"webhook-secret", hashlib.sha256).hexdigest()


class TelegramChannel:
    platform = Platform.TELEGRAM
    webhook_path = "/telegram"

    def __init__(
        self,
        bot: Bot,
        *,
        webhook_secret: str | None = None,
        poll_timeout: int = POLL_TIMEOUT,
        backoff: Backoff | None = None,
    ) -> None:
        self.bot = bot
        self.fetcher = TelegramFileFetcher(bot)
        self.messenger = TelegramMessenger(bot)
        self.webhook_secret = webhook_secret
        self.poll_timeout = poll_timeout
        self.backoff = backoff or Backoff()
        # message -> the callback query that removed its keyboard (a re-parse is not a tap)
        self._presses: OrderedDict[tuple[int, int], str] = OrderedDict()
        # replies carried in the webhook's answer (set by the runner in webhook mode)
        self.handover: Handover | None = None

    # --- setup ------------------------------------------------------------------------------

    async def start(self, *, webhook_url: str | None = None) -> None:
        """Check the token, then set commands and the webhook (or remove it for polling).
        An unreachable API is waited for with backoff; a rejected token is final."""
        delays = self.backoff.delays()
        while True:
            try:
                await self.bot.get_me()
                if webhook_url:
                    await self.bot.set_webhook(
                        webhook_url,
                        secret_token=self.webhook_secret,
                        allowed_updates=ALLOWED_UPDATES,
                        drop_pending_updates=False,
                    )
                else:
                    await self.bot.delete_webhook(drop_pending_updates=False)
                await set_commands(self.bot)
                return
            except TelegramUnauthorizedError:
                raise ChannelSetupError(BAD_TOKEN_TEXT) from None
            except TRANSIENT as exc:
                delay = next(delays)
                log.warning(
                    "Telegram API недоступен (%s). Жду %.0f с и пробую снова…",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)

    async def close(self) -> None:
        await self.bot.session.close()

    # --- intake -------------------------------------------------------------------------------

    def raw_events(self, body: Any) -> Iterable[RawEvent]:
        updates = body if isinstance(body, list) else [body]
        for update in updates:
            if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
                log.warning("Telegram: пропускаю обновление без update_id: %.200r", update)
                continue
            yield RawEvent(self.platform, str(update["update_id"]), _chat_of(update), update)

    async def poll(self, sink: Sink) -> None:
        offset: int | None = None
        delays = self.backoff.delays()
        while True:
            try:
                updates = await self.bot(
                    GetRawUpdates(
                        offset=offset, timeout=self.poll_timeout, allowed_updates=ALLOWED_UPDATES
                    ),
                    request_timeout=self.poll_timeout + 10,
                )
            except TelegramUnauthorizedError:
                raise ChannelSetupError(BAD_TOKEN_TEXT) from None
            except TelegramConflictError:
                delay = next(delays)
                log.warning(
                    "Telegram: этот токен опрашивает другой процесс (409). Жду %.0f с…", delay
                )
                await asyncio.sleep(delay)
                continue
            except TRANSIENT as exc:
                delay = next(delays)
                log.warning(
                    "Telegram API недоступен (%s). Жду %.0f с и пробую снова…",
                    type(exc).__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            except ClientDecodeError:
                # Not even a list of updates: nothing to store; the server is asked again.
                delay = next(delays)
                log.exception("Telegram: ответ getUpdates не читается. Жду %.0f с…", delay)
                await asyncio.sleep(delay)
                continue
            delays = self.backoff.delays()
            if not updates:
                continue
            try:
                await sink(list(self.raw_events(updates)))
            except Exception:
                # Not stored, so not confirmed: the same updates come again with the next poll.
                delay = next(delays)
                log.exception("Telegram: не удалось сохранить обновления. Жду %.0f с…", delay)
                await asyncio.sleep(delay)
                continue
            ids = [u["update_id"] for u in updates if isinstance(u.get("update_id"), int)]
            if ids:
                offset = max(ids) + 1  # confirmed with the next getUpdates

    async def webhook(self, headers: Mapping[str, str], body: bytes, sink: Sink) -> WebhookAnswer:
        given = headers.get(SECRET_HEADER) or ""
        if not self.webhook_secret or not hmac.compare_digest(
            given.encode(), self.webhook_secret.encode()
        ):
            return 403, "forbidden"
        try:
            data = json.loads(body)
        except ValueError:
            return 400, "bad json"
        events = list(self.raw_events(data))
        new = await sink(events)
        if self.handover is None or len(events) != 1 or events[0].chat_id is None:
            return 200, "ok"
        event = events[0]
        assert event.chat_id is not None
        answer = await self.handover.answer_for(
            str(event.platform),
            event.key,
            event.chat_id,
            fresh=new is None or new > 0,
            build=lambda chat_id, rows: self.webhook_answer(chat_id, [decode(r) for r in rows]),
        )
        return 200, answer or "ok"

    def webhook_answer(self, chat_id: str, messages: Sequence[Outgoing]) -> dict[str, str] | None:
        """An event's replies as one method for the webhook's answer: texts with buttons
        only under the last are joined into one message, if that fits one ``sendMessage``
        (a file needs an upload; a long text several calls, and the later ones could
        overtake the answer)."""
        if not messages or not all(isinstance(m, OutText) for m in messages):
            return None
        texts = [m for m in messages if isinstance(m, OutText)]
        if any(m.buttons for m in texts[:-1]):
            return None
        joined = OutText("\n\n".join(m.text for m in texts), texts[-1].buttons)
        parts = render(joined)
        if len(parts) != 1 or not isinstance(parts[0], _TextPart):
            return None
        part = parts[0]
        method = SendMessage(chat_id=int(chat_id), text=part.text, reply_markup=part.markup)
        fields = {"method": method.__api_method__}
        for key, value in method.model_dump(warnings=False).items():  # as aiogram's webhook
            prepared = self.bot.session.prepare_value(value, bot=self.bot, files={})
            if prepared:
                fields[key] = str(prepared)
        return fields

    # --- understanding -------------------------------------------------------------------------

    async def parse(self, event: RawEvent) -> Parsed:
        update = Update.model_validate(event.payload, context={"bot": self.bot})
        if update.message is not None:
            message = update.message
            if message.chat.type != ChatType.PRIVATE or message.from_user is None:
                return Parsed()
            incoming = message_to_incoming(message)
            return Parsed(incoming=incoming) if incoming else Parsed(reply=UNSUPPORTED_TEXT)
        if update.edited_message is not None:
            edited = update.edited_message
            if edited.chat.type != ChatType.PRIVATE or edited.from_user is None:
                return Parsed()
            return Parsed(reply=EDITED_TEXT)
        if update.callback_query is not None:
            return await self._press(update)
        return Parsed()

    async def _press(self, update: Update) -> Parsed:
        callback = update.callback_query
        assert callback is not None
        # Stop the client's spinner first. Fails for queries older than ~15 minutes (after
        # downtime): that must not block the press itself.
        try:
            await self.bot.answer_callback_query(callback.id)
        except TelegramBadRequest as e:
            log.debug("answer_callback_query failed: %s", e)
        message = callback.message
        if message is None or callback.data is None or message.chat.type != ChatType.PRIVATE:
            return Parsed()
        chat_id = message.chat.id
        press = (chat_id, message.message_id)
        try:
            await _call(
                lambda: self.bot.edit_message_reply_markup(
                    chat_id=chat_id, message_id=message.message_id, reply_markup=None
                )
            )
            self._remember(press, callback.id)
        except TelegramBadRequest as e:
            if _is_not_modified(e) and self._presses.get(press) != callback.id:
                log.info("Повторное нажатие в чате %s (сообщение %s) пропущено", *press)
                return Parsed()
            log.debug("Could not remove keyboard: %s", e)  # too old / deleted: go on
        return Parsed(
            incoming=Incoming(
                user=_user_ref(chat_id, callback.from_user),
                kind=EventKind.BUTTON,
                payload=callback.data,
                message_id=str(message.message_id),
            )
        )

    def _remember(self, press: tuple[int, int], callback_id: str) -> None:
        self._presses[press] = callback_id
        while len(self._presses) > _PRESSES_REMEMBERED:
            self._presses.popitem(last=False)

    # --- delivery -------------------------------------------------------------------------------

    def share_rate(self, rate: TokenRate) -> None:
        """Take every send and edit of this bot from ``rate`` (the token's shared budget)."""
        self.bot.session.middleware(SharedRate(rate))

    def check(self, message: Outgoing) -> None:
        """Raise ValueError for what Telegram would refuse (the processor calls it before
        committing, so a bad reply gives the apology instead of half a reply)."""
        render(message)

    async def send(
        self, chat_id: str, message: Outgoing, *, dedup: str | None = None
    ) -> str | None:
        return await self.messenger.send(chat_id, message)

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        await self.messenger.edit(chat_id, message_id, message)
