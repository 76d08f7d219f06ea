"""The VK channel (community messages): :class:`bot.channel.Channel` over vkbottle's ``API``.

vkbottle's own polling saves ``ts`` before its handlers run and skips old events, which
would lose an event the intake had not stored yet; so :meth:`VkChannel.poll` talks to the
Bots Long Poll server itself and moves ``ts`` on only after ``sink`` returned (and keeps it
in ``ts_path``, so a restart asks for what came after the last stored batch).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import hmac
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp
from vkbottle import DocMessagesUploader, VKAPIError

from bot.channel import ChannelSetupError, Parsed, RawEvent, Sink
from bot.text_parts import UNSUPPORTED_TEXT
from bot.vk import events as ev
from bot.vk.api import Clock, RateLimiter, Sleep, VkApi
from bot.vk.render import FilePart, Part, TextPart, random_id, render
from handlers.types import (
    Incoming,
    Outgoing,
    OutText,
    Platform,
    RecipientBlocked,
    RetryLater,
    TokenRejected,
)
from scheduler.ratelimit import TokenRate

log = logging.getLogger(__name__)

EDIT_IGNORED_TEXT = (
    "Исправленные сообщения не учитываются. Отправьте исправленный ответ новым сообщением."
)
SETUP_BAD_TOKEN = (
    "ВКонтакте не принял VK_TOKEN. Создайте ключ доступа сообщества (Управление → Работа с API)"
    " с правами на сообщения, документы и управление и укажите его в VK_TOKEN."
)
SETUP_WRONG_GROUP = (
    "VK_TOKEN выдан сообществу {actual}, а VK_GROUP_ID = {expected}. Укажите ID сообщества, "
    "которому принадлежит ключ."
)
SETUP_BOT_FEATURES_OFF = (
    "В сообществе выключены возможности ботов. Включите их: Управление → Сообщения → "
    "Настройки для бота → Возможности ботов: Включены, затем перезапустите бота."
)
SETUP_NO_SECRET = (
    "Для Callback API задайте VK_CALLBACK_SECRET и VK_CONFIRMATION_CODE (Управление → "
    "Работа с API → Callback API), иначе запросы ВКонтакте нельзя проверить."
)
SETUP_UNREACHABLE = (
    "Не удалось связаться с VK API ({url}): {error}. Проверьте VK_API_URL и доступ к сети."
)
SETUP_FAILED = (
    "ВКонтакте отказал при настройке ({error}). Проверьте VK_TOKEN и VK_GROUP_ID и что в "
    "сообществе включён Long Poll API (Управление → Работа с API)."
)

BLOCKED_CODES = (900, 901, 902)  # blacklisted us / no permission to write / privacy settings
BAD_TOKEN_CODES = (5, 27)
BOT_FEATURES_OFF = 912
NO_RIGHTS_CODES = (7, 15, 27)  # no permission / access denied / not with this key
LONG_POLL_WAIT = 25
LONG_POLL_GRACE = 15  # seconds past ``wait`` before a silent long-poll request is given up
POLL_RETRY_DELAY = 3.0
NAME_CACHE_SIZE = 10_000
# What a courtesy call (a name, the spinner, the old keyboard) may fail with without failing
# the event: VK's refusal, its back-off, or the network.
BEST_EFFORT_ERRORS = (VKAPIError, RetryLater, aiohttp.ClientError, TimeoutError)
EVENT_TYPES = ("message_new", "message_event", "message_edit", "message_allow", "message_deny")


class VkFileFetcher:
    """Downloads a file by the URL VK gave in the attachment (our ``file_id``).

    Into a hidden temp file next to ``dest``, renamed on success: a partial download never
    looks complete. Raises on an HTTP error or a broken transfer.
    """

    def __init__(self, api: VkApi) -> None:
        self.api = api

    async def fetch(self, file_id: str, dest: Path) -> None:
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            async with self.api.http_client.request(file_id, method="GET") as response:
                response.raise_for_status()
                with tmp.open("wb") as out:
                    async for chunk in response.content.iter_chunked(64 * 1024):
                        out.write(chunk)
            os.replace(tmp, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


class VkChannel:
    platform = Platform.VK
    webhook_path = "/vk"

    def __init__(
        self,
        token: str,
        group_id: int,
        *,
        api_url: str | None = None,
        callback_secret: str | None = None,
        confirmation_code: str | None = None,
        ts_path: Path | None = None,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        long_poll_wait: int = LONG_POLL_WAIT,
    ) -> None:
        limiter = RateLimiter(clock=clock or time.monotonic, sleep=sleep)
        self.api = VkApi(token, api_url=api_url, limiter=limiter, sleep=sleep)
        self.group_id = group_id
        self.callback_secret = callback_secret or None
        self.confirmation_code = confirmation_code or None
        self.ts_path = ts_path
        self.sleep = sleep
        self.long_poll_wait = long_poll_wait
        self.fetcher = VkFileFetcher(self.api)
        self._server: dict[str, Any] | None = None
        self._names: collections.OrderedDict[int, str | None] = collections.OrderedDict()
        self._ts: str | None = self._load_ts()

    # --- setup -----------------------------------------------------------------------------

    async def start(self, *, webhook_url: str | None = None) -> None:
        """Check the token belongs to the community and bot features are on."""
        if webhook_url is not None and not (self.callback_secret and self.confirmation_code):
            raise ChannelSetupError(SETUP_NO_SECRET)
        try:
            found = await self.api.request("groups.getById", {"group_id": self.group_id})
            groups = found["response"]
            groups = groups.get("groups", []) if isinstance(groups, dict) else groups
            actual = int(groups[0]["id"]) if groups else None
            if actual != self.group_id:
                raise ChannelSetupError(
                    SETUP_WRONG_GROUP.format(actual=actual, expected=self.group_id)
                )
            # A messages method answers 912 while «Возможности ботов» are off.
            await self.api.request("messages.getConversations", {"count": 1})
            if webhook_url is None:
                await self._enable_long_poll()
                await self._long_poll_server()
        except VKAPIError as error:
            if error.code in BAD_TOKEN_CODES:
                raise ChannelSetupError(SETUP_BAD_TOKEN) from None
            if error.code == BOT_FEATURES_OFF:
                raise ChannelSetupError(SETUP_BOT_FEATURES_OFF) from None
            raise ChannelSetupError(SETUP_FAILED.format(error=f"{error.code}: {error}")) from None
        except (aiohttp.ClientError, OSError, RetryLater) as error:
            raise ChannelSetupError(
                SETUP_UNREACHABLE.format(url=self.api.API_URL, error=error or type(error).__name__)
            ) from None

    async def _enable_long_poll(self) -> None:
        """Switch Bots Long Poll on with the events we handle; a key without the «manage»
        right cannot, and then the operator sets it up by hand (as the log says)."""
        try:
            await self.api.request(
                "groups.setLongPollSettings",
                {
                    "group_id": self.group_id,
                    "enabled": 1,
                    "api_version": self.api.API_VERSION,
                    **{event: 1 for event in EVENT_TYPES},
                },
            )
        except VKAPIError as error:
            if error.code not in NO_RIGHTS_CODES:
                raise
            log.warning(
                "VK: cannot switch Long Poll API on (%s); enable it with the events %s in "
                "Управление → Работа с API → Long Poll API",
                error,
                ", ".join(EVENT_TYPES),
            )

    async def close(self) -> None:
        await self.api.close()

    # --- intake ----------------------------------------------------------------------------

    def raw_events(self, body: Any) -> Iterable[RawEvent]:
        """A long-poll answer (``{"ts", "updates"}``) or one Callback API body."""
        if isinstance(body, dict) and "updates" in body:
            return ev.raw_events(body.get("updates") or [])
        return ev.raw_events([body] if isinstance(body, dict) else [])

    async def webhook(self, headers: Mapping[str, str], body: bytes, sink: Sink) -> tuple[int, str]:
        try:
            update = json.loads(body)
        except ValueError:
            return 400, "bad request"
        if not isinstance(update, dict):
            return 400, "bad request"
        if str(update.get("group_id")) != str(self.group_id):
            return 403, "forbidden"
        secret = update.get("secret")
        if update.get("type") == "confirmation":
            if not self.confirmation_code or (secret is not None and not self._secret_ok(secret)):
                return 403, "forbidden"
            return 200, self.confirmation_code
        if not self._secret_ok(secret):
            return 403, "forbidden"
        await sink(list(self.raw_events(update)))
        return 200, "ok"

    def _secret_ok(self, secret: object) -> bool:
        if not self.callback_secret or not isinstance(secret, str):
            return False
        return hmac.compare_digest(secret.encode(), self.callback_secret.encode())

    async def poll(self, sink: Sink) -> None:
        while True:
            try:
                await self.poll_once(sink)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("VK long poll failed; retrying in %s s", POLL_RETRY_DELAY)
                await self.sleep(POLL_RETRY_DELAY)

    async def poll_once(self, sink: Sink) -> int:
        """One long-poll request; returns how many events went to ``sink``.

        ``ts`` moves on only after ``sink`` returned. ``failed``: 1 — history lost, go on
        from the new ``ts``; 2 — the key expired, get a new one and keep ``ts``; 3 — the
        information is lost, get a new key and ``ts``.
        """
        server = self._server or await self._long_poll_server()
        answer = await self.api.http_client.request_json(
            server["server"],
            method="GET",
            params={
                "act": "a_check",
                "key": server["key"],
                "ts": self._ts,
                "wait": self.long_poll_wait,
            },
            timeout=aiohttp.ClientTimeout(total=self.long_poll_wait + LONG_POLL_GRACE),
        )
        failed = answer.get("failed")
        if failed == 1:
            log.warning("VK long poll history lost from ts=%s; going on", self._ts)
            self._confirm(str(answer["ts"]))
            return 0
        if failed in (2, 3):
            self._server = None
            await self._long_poll_server(keep_ts=failed == 2)
            return 0
        if failed is not None:
            raise ConnectionError(f"VK long poll failed: {answer!r}")
        batch = list(self.raw_events(answer))
        if batch:
            await sink(batch)
        self._confirm(str(answer["ts"]))
        return len(batch)

    async def _long_poll_server(self, *, keep_ts: bool = True) -> dict[str, Any]:
        found = await self.api.request("groups.getLongPollServer", {"group_id": self.group_id})
        server = found["response"]
        self._server = server
        if self._ts is None or not keep_ts:
            self._confirm(str(server["ts"]))
        return server

    def _load_ts(self) -> str | None:
        if self.ts_path is None:
            return None
        with contextlib.suppress(FileNotFoundError):
            return self.ts_path.read_text().strip() or None
        return None

    def _confirm(self, ts: str) -> None:
        self._ts = ts
        if self.ts_path is not None:
            self.ts_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.ts_path.with_name(f".{self.ts_path.name}.part")
            tmp.write_text(ts)
            os.replace(tmp, self.ts_path)

    @property
    def ts(self) -> str | None:
        return self._ts

    async def parse(self, event: RawEvent) -> Parsed:
        update = event.payload
        kind = update.get("type")
        peer = ev.peer_of(update)
        if not ev.is_private(peer):
            return Parsed()
        if kind == "message_new":
            message = update.get("object", {}).get("message") or {}
            if int(message.get("from_id") or 0) <= 0:
                return Parsed()
            incoming = ev.message_to_incoming(update)
            if incoming is None:
                return Parsed(reply=UNSUPPORTED_TEXT)
            return Parsed(incoming=await self._named(incoming))
        if kind == "message_event":
            obj = update.get("object") or {}
            await self._answer_press(obj)
            await self._remove_keyboard(obj)
            return Parsed(incoming=await self._named(ev.button_to_incoming(update)))
        if kind == "message_edit":
            obj = update.get("object") or {}
            if obj.get("out") or int(obj.get("from_id") or 0) <= 0:
                return Parsed()
            return Parsed(reply=EDIT_IGNORED_TEXT)
        if kind == "message_deny":  # the user forbade messages from the community
            return Parsed(unreachable=True)
        return Parsed()

    async def _named(self, incoming: Incoming) -> Incoming:
        """VK messages carry no sender name: ask ``users.get`` once per user and process."""
        user_id = int(incoming.user.user_id)
        if user_id not in self._names:
            try:
                found = await self.api.request("users.get", {"user_ids": user_id})
                person = (found["response"] or [{}])[0]
                name = " ".join(
                    part for part in (person.get("first_name"), person.get("last_name")) if part
                )
            except BEST_EFFORT_ERRORS as error:
                log.debug("users.get %s failed: %s", user_id, error)
                return incoming
            self._names[user_id] = name or None
            while len(self._names) > NAME_CACHE_SIZE:
                self._names.popitem(last=False)
        name = self._names[user_id]
        return dataclasses.replace(
            incoming, user=dataclasses.replace(incoming.user, display_name=name)
        )

    async def _remove_keyboard(self, obj: dict[str, Any]) -> None:
        """Take the keyboard off the pressed message, as Telegram does, so an old question's
        buttons cannot be pressed later. Best effort: a message too old to edit keeps it (the
        core still refuses a stale answer). The press itself always goes on — after a crash
        this runs again and must not turn the press into a duplicate."""
        peer, cmid = obj.get("peer_id"), obj.get("conversation_message_id")
        if peer is None or cmid is None:
            return
        try:
            found = await self.api.request(
                "messages.getByConversationMessageId",
                {"peer_id": peer, "conversation_message_ids": cmid},
            )
            items = found["response"].get("items") or []
            if not items or not items[0].get("keyboard") or not items[0].get("text"):
                return
            await self.api.request(
                "messages.edit",
                {
                    "peer_id": peer,
                    "conversation_message_id": cmid,
                    "message": items[0]["text"],
                    "keep_forward_messages": 1,
                    "dont_parse_links": 1,
                },
            )
        except BEST_EFFORT_ERRORS as error:
            log.debug("could not remove the keyboard of %s/%s: %s", peer, cmid, error)

    async def _answer_press(self, obj: dict[str, Any]) -> None:
        """Stop the button's spinner. Harmless twice: a late or repeated answer only fails."""
        try:
            await self.api.request(
                "messages.sendMessageEventAnswer",
                {
                    "event_id": obj.get("event_id"),
                    "user_id": obj.get("user_id"),
                    "peer_id": obj.get("peer_id"),
                },
            )
        except BEST_EFFORT_ERRORS as error:
            log.debug("sendMessageEventAnswer failed: %s", error)

    # --- sending ---------------------------------------------------------------------------

    def share_rate(self, rate: TokenRate) -> None:
        """Take every API request of this community token from ``rate`` (shared budget)."""
        self.api.rate = rate

    async def send(
        self, chat_id: str, message: Outgoing, *, dedup: str | None = None
    ) -> str | None:
        parts = render(message)
        last: str | None = None
        for index, part in enumerate(parts):
            last = await self._send_part(int(chat_id), part, random_id(dedup, index))
        return last

    async def _send_part(self, peer: int, part: Part, rid: int) -> str:
        params: dict[str, Any] = {"peer_id": peer, "random_id": rid, "dont_parse_links": 1}
        try:
            if isinstance(part, TextPart):
                params["message"] = part.text
                if part.keyboard:
                    params["keyboard"] = part.keyboard
            else:
                params["attachment"] = await self._upload(peer, part)
                if part.caption:
                    params["message"] = part.caption
            sent = await self.api.request("messages.send", params)
        except VKAPIError as error:
            if error.code in BLOCKED_CODES:
                raise RecipientBlocked(f"VK {error.code}: {error}") from error
            if error.code in BAD_TOKEN_CODES:  # the key was deleted: the next process sends it
                raise TokenRejected(f"VK {error.code}") from error
            raise
        return str(sent["response"])

    async def _upload(self, peer: int, part: FilePart) -> str:
        uploader = DocMessagesUploader(self.api)
        return await uploader.upload(part.path.read_bytes(), peer_id=peer, title=part.filename)

    async def edit(self, chat_id: str, message_id: str, message: OutText) -> None:
        """Edit a message in place. Only its first text chunk and keyboard page fit one
        message; the rest is dropped with a warning."""
        parts = [p for p in render(message) if isinstance(p, TextPart)]
        if len(parts) > 1:
            log.warning("Edited VK message %s truncated to its first part", message_id)
        params: dict[str, Any] = {
            "peer_id": int(chat_id),
            "message_id": int(message_id),
            "message": parts[0].text,
            "dont_parse_links": 1,
        }
        if parts[0].keyboard:
            params["keyboard"] = parts[0].keyboard
        await self.api.request("messages.edit", params)
