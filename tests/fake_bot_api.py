"""A tiny Bot API server on 127.0.0.1 for end-to-end tests of `python -m bot run`.

It speaks just enough of the HTTP protocol for long polling, as Telegram does: getUpdates
hands out every update not yet confirmed (an update is confirmed by a later getUpdates with
a higher ``offset``), send* calls are recorded, files are served from memory under
/file/bot<token>/. A wrong token answers 401. Knobs for faults: ``down`` (every call 502),
``send_delay`` (sendMessage waits), ``push_raw`` (an update of any shape), ``revoke``
(BotFather's /revoke: a new token for the same bot; the old one answers 401 from then on,
even to a sendMessage already waiting out ``send_delay``).

For webhook runs with several bot processes (bench/crash.py): ``also_tokens`` are accepted
as the same bot, ``text_update``/``click_update`` build updates without queueing them for
getUpdates, and ``by_chat``/``wait_chat`` look at one chat's messages without a scan.
:meth:`FakeBotApi.post_update` POSTs an update to a webhook as Telegram does: a method in the
HTTP answer (bot/handover.py) is run only once the whole answer has arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

BOT_ID = 4242


@dataclass
class Sent:
    method: str
    chat_id: int
    text: str
    buttons: list[tuple[str, str]]
    message_id: int
    token: str = ""  # which of the bot's tokens sent it
    at: float = 0.0  # FakeBotApi.clock() (time.monotonic) of the delivery


@dataclass
class FakeBotApi:
    token: str = "4242:FAKE-TOKEN"
    unconfirmed: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    confirmed_up_to: int = 0  # every update_id below this was confirmed by an offset
    down: bool = False
    send_delay: float = 0.0
    file_delay: float = 0.0  # file downloads wait this long first
    polls: int = 0
    sent: list[Sent] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    _new_message: asyncio.Event = field(default_factory=asyncio.Event)
    _new_update: asyncio.Event = field(default_factory=asyncio.Event)
    _mark: int = 0  # replies are looked for after the user's last action
    also_tokens: set[str] = field(default_factory=set)  # more tokens of the same bot
    by_chat: dict[int, list[Sent]] = field(default_factory=dict)
    _chat_events: dict[int, asyncio.Event] = field(default_factory=dict)
    _token_now: str = ""
    revoked: list[str] = field(default_factory=list)  # tokens that answer 401 now
    also_valid: set[str] = field(default_factory=set)  # a second token for the same bot
    webhook_secret: str | None = None  # the secret_token of the last setWebhook
    clock: Callable[[], float] = time.monotonic  # stamps Sent.at (tests on virtual time)
    flood: list[int] = field(default_factory=list)  # next sendMessage calls: 429 retry_after

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/file/bot{token}/{path:.*}", self._file)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # long polls end at once
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        await self._runner.cleanup()

    # --- the user side --------------------------------------------------------------------------

    def _user(self, user_id: int) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": "Ольга", "language_code": "ru"}

    def _message(self, user_id: int, **content: Any) -> dict[str, Any]:
        return {
            "message_id": next(self._ids),
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "Ольга"},
            "from": self._user(user_id),
            **content,
        }

    def send_text(self, user_id: int, text: str) -> None:
        self._mark = len(self.sent)
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            length = len(text.split()[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        self.push_raw({"update_id": next(self._ids), "message": self._message(user_id, **content)})

    def send_document(
        self, user_id: int, content: bytes, name: str, mime: str, *, stored: bool = True
    ) -> None:
        """``stored=False``: the file is announced but its download answers 404."""
        self._mark = len(self.sent)
        file_id = f"file-{next(self._ids)}"
        if stored:
            self.files[file_id] = content
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": name,
            "mime_type": mime,
            "file_size": len(content),
        }
        self.push_raw(
            {"update_id": next(self._ids), "message": self._message(user_id, document=document)}
        )

    def click(self, user_id: int, text: str) -> None:
        for sent in reversed(self.sent):
            if sent.chat_id == user_id and sent.buttons:
                for label, payload in sent.buttons:
                    if label == text:
                        self._mark = len(self.sent)
                        message = self._message(user_id, text=sent.text)
                        message["message_id"] = sent.message_id
                        message["from"] = {"id": BOT_ID, "is_bot": True, "first_name": "Бот"}
                        self.push_raw(
                            {
                                "update_id": next(self._ids),
                                "callback_query": {
                                    "id": str(next(self._ids)),
                                    "from": self._user(user_id),
                                    "chat_instance": "ci",
                                    "message": message,
                                    "data": payload,
                                },
                            }
                        )
                        return
                raise AssertionError(f"no button {text!r}; last keyboard: {sent.buttons}")
        raise AssertionError("no keyboard was sent")

    def push_raw(self, update: dict[str, Any]) -> None:
        self.history.append(update)
        self.unconfirmed.append(update)
        self._new_update.set()

    def redeliver_all(self) -> None:
        """As if the getUpdates that confirmed them never reached the server."""
        self.unconfirmed = list(self.history)
        self.confirmed_up_to = 0
        self._new_update.set()

    def revoke(self, new_token: str) -> None:
        """BotFather /revoke: the same bot (same id), a new token; the old one is dead."""
        self.revoked.append(self.token)
        self.token = new_token

    def next_id(self) -> int:
        return next(self._ids)

    def text_update(self, user_id: int, text: str) -> dict[str, Any]:
        """A message update, recorded in ``history`` but not queued for getUpdates."""
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            length = len(text.split()[0])
            content["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        update = {"update_id": next(self._ids), "message": self._message(user_id, **content)}
        self.history.append(update)
        return update

    def click_update(self, user_id: int, label: str) -> dict[str, Any]:
        """A press on the newest button ``label`` in the user's chat (not queued)."""
        for sent in reversed(self.by_chat.get(user_id, [])):
            for text, payload in sent.buttons:
                if text == label:
                    message = self._message(user_id, text=sent.text)
                    message["message_id"] = sent.message_id
                    message["from"] = {"id": BOT_ID, "is_bot": True, "first_name": "Бот"}
                    update = {
                        "update_id": next(self._ids),
                        "callback_query": {
                            "id": str(next(self._ids)),
                            "from": self._user(user_id),
                            "chat_instance": "ci",
                            "message": message,
                            "data": payload,
                        },
                    }
                    self.history.append(update)
                    return update
        raise AssertionError(f"no button {label!r} in chat {user_id}")

    async def wait_chat(self, user_id: int, seen: int, timeout: float) -> bool:
        """Wait until the chat has more than ``seen`` messages; False on timeout."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.by_chat.get(user_id, [])) <= seen:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            signal = self._chat_events.setdefault(user_id, asyncio.Event())
            signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), left)
        return True

    async def reply(self, user_id: int, *fragments: str, timeout: float = 15) -> Sent:
        """Wait until a message to the user contains every fragment."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            mine = [s for s in self.sent[self._mark :] if s.chat_id == user_id]
            for sent in mine:
                if all(fragment in sent.text for fragment in fragments):
                    return sent
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                texts = "\n---\n".join(s.text for s in mine[-5:])
                raise AssertionError(f"no reply with {fragments}; last messages:\n{texts}")
            self._new_message.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_message.wait(), min(left, 0.5))

    # --- webhooks -------------------------------------------------------------------------------

    async def post_update(
        self,
        http: aiohttp.ClientSession,
        url: str,
        update: dict[str, Any],
        headers: dict[str, str] | None = None,
        sender: str = "webhook answer",
    ) -> int:
        """POST ``update`` to a webhook; a method in a 200 answer is run as Telegram would
        (``sender`` is the ``token`` its message is stamped with). Returns the status; a
        broken connection raises, and then nothing was run."""
        fields: dict[str, str] = {}
        async with http.post(url, json=update, headers=headers or {}) as answer:
            if answer.status == 200 and answer.content_type == "multipart/form-data":
                reader = aiohttp.MultipartReader.from_response(answer)
                while (part := await reader.next()) is not None:
                    assert isinstance(part, aiohttp.BodyPartReader)
                    fields[str(part.name)] = await part.text()
            else:
                await answer.read()
            status = answer.status
        if fields:
            self.run_answer(fields, sender)
        return status

    def run_answer(self, fields: dict[str, str], sender: str = "webhook answer") -> None:
        method = fields.pop("method").lower()
        self.calls.append(method)
        self._token_now = sender
        if method == "sendmessage":
            self._record("sendMessage", fields, fields.get("text", ""))

    # --- the bot side ---------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        data = dict(await request.post())
        self.calls.append(method)
        if self.down:
            return web.json_response(
                {"ok": False, "error_code": 502, "description": "Bad Gateway"}, status=502
            )
        if not self._valid(request.match_info["token"]):
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if method == "sendmessage" and self.send_delay:
            await asyncio.sleep(self.send_delay)
            if request.transport is None or request.transport.is_closing():
                raise ConnectionResetError("the bot went away")  # never delivered
            if not self._valid(request.match_info["token"]):  # revoked meanwhile
                return web.json_response(
                    {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
                )
        if method == "sendmessage" and self.flood:
            retry = self.flood.pop(0)
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": f"Too Many Requests: retry after {retry}",
                    "parameters": {"retry_after": retry},
                },
                status=429,
            )
        handler = getattr(self, f"_m_{method}", None)
        self._token_now = request.match_info["token"]  # read by _record before any await
        result = await handler(data) if handler else True
        return web.json_response({"ok": True, "result": result})

    def _valid(self, token: str) -> bool:
        if token in self.revoked:
            return False
        return token == self.token or token in self.also_valid or token in self.also_tokens

    async def _file(self, request: web.Request) -> web.Response:
        self.calls.append("file")
        if self.file_delay:
            await asyncio.sleep(self.file_delay)
        file_id = request.match_info["path"].rsplit("/", 1)[-1]
        if file_id not in self.files:
            raise web.HTTPNotFound()
        return web.Response(body=self.files[file_id])

    async def _m_getme(self, data) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Бот", "username": "shnor_test_bot"}

    async def _m_setwebhook(self, data) -> bool:
        self.webhook_secret = str(data.get("secret_token") or "") or None
        return True

    async def _m_getupdates(self, data) -> list:
        self.polls += 1
        offset = int(data.get("offset") or 0)
        if offset:
            self.confirmed_up_to = max(self.confirmed_up_to, offset)
            self.unconfirmed = [u for u in self.unconfirmed if u.get("update_id", 0) >= offset]
        if not self.unconfirmed:
            self._new_update.clear()
            timeout = float(data.get("timeout") or 0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), min(timeout, 0.5) or 0.01)
        return list(self.unconfirmed[: int(data.get("limit") or 100)])

    def _record(self, method: str, data: dict, text: str) -> dict:
        markup = json.loads(data["reply_markup"]) if data.get("reply_markup") else None
        buttons = [
            (b["text"], b.get("callback_data", ""))
            for row in (markup or {}).get("inline_keyboard", [])
            for b in row
        ]
        message_id = next(self._ids)
        chat_id = int(data["chat_id"])
        sent = Sent(method, chat_id, text, buttons, message_id, self._token_now, self.clock())
        self.sent.append(sent)
        self.by_chat.setdefault(chat_id, []).append(sent)
        self._new_message.set()
        if chat_id in self._chat_events:
            self._chat_events[chat_id].set()
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Бот"},
            "text": text,
        }

    async def _m_sendmessage(self, data) -> dict:
        return self._record("sendMessage", data, str(data.get("text", "")))

    async def _m_senddocument(self, data) -> dict:
        return self._record("sendDocument", data, str(data.get("caption", "")))

    async def _m_getfile(self, data) -> dict:
        file_id = str(data["file_id"])
        return {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_size": len(self.files.get(file_id, b"")),
            "file_path": f"documents/{file_id}",
        }
