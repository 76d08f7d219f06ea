"""A fake MAX Bot API on 127.0.0.1 whose requests and answers follow schema.yaml
(max-messenger/api-schema): ``Authorization`` header, ``GET /updates`` with ``marker``
commitment, ``POST /messages`` validated against ``NewMessageBody`` and MAX's keyboard limits,
``POST /answers``, ``POST /uploads`` → upload → ``attachment.not.ready`` until processed,
``GET /me``, ``/subscriptions``, and file downloads.

Users act through :meth:`FakeMaxApi.push` with updates built by :func:`user_message`,
:func:`bot_started` and friends; the bot's messages are kept as :class:`BotMessage`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "max-test-token"
_JSON = web.RequestKey("json", object)
BOT = {"user_id": 42, "first_name": "Тестовый бот", "username": "test_bot", "is_bot": True}
_mids = itertools.count(1)


def next_mid() -> str:
    return f"mid.{next(_mids):016x}"


def now_ms() -> int:
    return int(time.time() * 1000)


def dialog_of(user_id: int) -> int:
    """The dialog's chat id: deliberately not the user id, so mixing them up shows."""
    return 500_000 + user_id


def user_obj(user_id: int, first_name: str = "Анна", last_name: str | None = None) -> dict:
    return {
        "user_id": user_id,
        "first_name": first_name,
        "last_name": last_name,
        "username": None,
        "is_bot": False,
        "last_activity_time": now_ms(),
    }


def user_message(
    user: dict,
    text: str | None = None,
    attachments: list[dict] | None = None,
    *,
    chat_type: str = "dialog",
    chat_id: int | None = None,
    mid: str | None = None,
    update_type: str = "message_created",
) -> dict:
    """A ``MessageCreatedUpdate`` (or ``MessageEditedUpdate``) from ``user``."""
    return {
        "update_type": update_type,
        "timestamp": now_ms(),
        "message": {
            "sender": user,
            "recipient": {
                "chat_id": chat_id if chat_id is not None else dialog_of(user["user_id"]),
                "chat_type": chat_type,
                "user_id": BOT["user_id"] if chat_type == "dialog" else None,
            },
            "timestamp": now_ms(),
            "body": {
                "mid": mid or next_mid(),
                "seq": next(_mids),
                "text": text,
                "attachments": attachments,
            },
        },
        "user_locale": "ru",
    }


def bot_started(user: dict, payload: str | None) -> dict:
    return {
        "update_type": "bot_started",
        "timestamp": now_ms(),
        "chat_id": dialog_of(user["user_id"]),
        "user": user,
        "payload": payload,
        "user_locale": "ru",
    }


def bot_stopped(user: dict) -> dict:
    return {
        "update_type": "bot_stopped",
        "timestamp": now_ms(),
        "chat_id": dialog_of(user["user_id"]),
        "user": user,
        "user_locale": "ru",
    }


def callback(user: dict, payload: str, message: dict | None, callback_id: str) -> dict:
    return {
        "update_type": "message_callback",
        "timestamp": now_ms(),
        "callback": {
            "timestamp": now_ms(),
            "callback_id": callback_id,
            "payload": payload,
            "user": user,
        },
        "message": message,
        "user_locale": "ru",
    }


@dataclass
class BotMessage:
    """A message the bot sent, as the server keeps it."""

    mid: str
    user_id: int
    text: str | None
    keyboard: list[list[dict]] | None  # what the user sees now
    last_keyboard: list[list[dict]] | None  # the last non-empty one (for late presses)
    file: tuple[str, bytes] | None = None  # filename, content
    timestamp: int = field(default_factory=now_ms)

    def as_message(self) -> dict:
        attachments = []
        if self.keyboard:
            attachments.append({"type": "inline_keyboard", "payload": {"buttons": self.keyboard}})
        return {
            "sender": BOT,
            "recipient": {
                "chat_id": dialog_of(self.user_id),
                "chat_type": "dialog",
                "user_id": self.user_id,
            },
            "timestamp": self.timestamp,
            "body": {"mid": self.mid, "seq": 1, "text": self.text, "attachments": attachments},
        }


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float


@dataclass
class _Failure:
    method: str
    path: str
    status: int
    code: str
    message: str
    headers: dict[str, str]
    skip: int = 0


def _port(site: web.TCPSite) -> int:
    return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def _error(status: int, code: str, message: str, headers: dict | None = None) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status, headers=headers)


class FakeMaxApi:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        ssl_context: ssl.SSLContext | None = None,
        not_ready_attempts: int = 1,
    ) -> None:
        self.clock = clock
        self.ssl_context = ssl_context
        self.not_ready_attempts = not_ready_attempts
        self.requests: list[Request] = []
        self.updates: list[tuple[int, dict]] = []
        self.committed = 0  # every update below this sequence number is committed
        self._seq = itertools.count(1)
        self._new = asyncio.Event()
        self.messages: dict[str, BotMessage] = {}  # bot messages by mid, in order sent
        self.log: list[tuple[int, str, BotMessage]] = []  # (user, "sent"/"edited", message)
        self.user_messages: dict[str, dict] = {}
        self.files: dict[str, bytes] = {}
        self.uploads: dict[str, tuple[str, bytes]] = {}  # token -> (filename, content)
        self._not_ready: dict[str, int] = {}
        self.answers: list[tuple[str, dict]] = []
        self.callbacks: dict[str, str] = {}  # callback_id -> mid of the pressed message
        self.blocked: set[int] = set()
        self.subscriptions: list[dict] = []
        self._failures: list[_Failure] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""
        self.cdn_url = ""
        self.token = TOKEN  # a test may rotate it: the old one answers 401 from then on

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeMaxApi:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/me", self._me)
        app.router.add_patch("/me/commands", self._commands)
        app.router.add_get("/updates", self._get_updates)
        app.router.add_post("/messages", self._send)
        app.router.add_put("/messages", self._edit)
        app.router.add_get("/messages/{mid}", self._get_message)
        app.router.add_post("/answers", self._answer)
        app.router.add_post("/uploads", self._uploads)
        app.router.add_post("/upload/{n}", self._upload)
        app.router.add_get("/files/{name}", self._file)
        app.router.add_get("/subscriptions", self._subscriptions)
        app.router.add_post("/subscriptions", self._subscribe)
        app.router.add_delete("/subscriptions", self._unsubscribe)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # long polls end at once
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        scheme = "https" if self.ssl_context else "http"
        self.base_url = f"{scheme}://127.0.0.1:{_port(site)}"
        # Upload and file URLs point at another origin, as MAX's do (its CDN).
        cdn = web.TCPSite(self._runner, "127.0.0.1", 0)
        await cdn.start()
        self.cdn_url = f"http://127.0.0.1:{_port(cdn)}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # ------------------------------------------------------------------ scripting

    def push(self, update: dict) -> None:
        """A user did something: the update waits in the queue until committed."""
        message = update.get("message")
        if update.get("update_type") == "message_created" and message:
            self.user_messages[message["body"]["mid"]] = message
        self.updates.append((next(self._seq), update))
        self._new.set()

    def serve_file(self, name: str, content: bytes) -> str:
        self.files[name] = content
        return f"{self.cdn_url}/files/{name}"

    def fail_next(
        self,
        method: str,
        path: str,
        status: int,
        code: str,
        message: str = "",
        headers: dict[str, str] | None = None,
        *,
        skip: int = 0,
    ) -> None:
        """The next matching request (after ``skip`` others) fails with this error."""
        self._failures.append(_Failure(method, path, status, code, message, headers or {}, skip))

    def requests_to(self, method: str, path: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path == path]

    def pending(self) -> list[dict]:
        return [u for seq, u in self.updates if seq >= self.committed]

    # ------------------------------------------------------------------ handlers

    @web.middleware
    async def _middleware(self, request: web.Request, handler):
        try:
            body = await request.json() if request.content_type == "application/json" else None
        except ValueError:
            return _error(400, "proto.payload", "malformed JSON")
        self.requests.append(
            Request(request.method, request.path, dict(request.query), body, self.clock())
        )
        request[_JSON] = body
        for failure in self._failures:
            if failure.method == request.method and failure.path == request.path:
                if failure.skip:
                    failure.skip -= 1
                    break
                self._failures.remove(failure)
                return _error(failure.status, failure.code, failure.message, failure.headers)
        open_paths = ("/upload/", "/files/")
        if not request.path.startswith(open_paths):
            given = request.headers.get("Authorization")
            if given != self.token or "access_token" in request.query:
                return _error(401, "verify.token", "Invalid access_token")
        elif "Authorization" in request.headers:
            return _error(400, "leak", "the bot token must not be sent to upload/file hosts")
        return await handler(request)

    async def _me(self, request: web.Request) -> web.Response:
        return web.json_response({**BOT, "description": None, "avatar_url": None})

    async def _commands(self, request: web.Request) -> web.Response:
        commands = (request[_JSON] or {}).get("commands") or []
        for command in commands:
            if not 1 <= len(command.get("name", "")) <= 64:
                return _error(400, "proto.payload", "bad command name")
        return web.json_response({"commands": commands})

    async def _get_updates(self, request: web.Request) -> web.Response:
        query = request.query
        if "marker" in query:
            self.committed = max(self.committed, int(query["marker"]))
        limit = int(query.get("limit", 100))
        timeout = int(query.get("timeout", 30))
        if not 1 <= limit <= 1000 or not 0 <= timeout <= 90:
            return _error(400, "proto.payload", "limit 1..1000, timeout 0..90")
        if not self.pending() and timeout:
            self._new.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait(), timeout)
        batch = [(seq, u) for seq, u in self.updates if seq >= self.committed][:limit]
        marker = batch[-1][0] + 1 if batch else self.committed
        return web.json_response({"updates": [u for _, u in batch], "marker": marker})

    def _check_body(self, body: Any) -> str | None:
        """Why MAX would refuse this ``NewMessageBody`` (None if it is fine)."""
        if not isinstance(body, dict):
            return "body must be NewMessageBody"
        text = body.get("text")
        attachments = body.get("attachments") or []
        if text is not None and len(text) > 4000:
            return "text: maxLength 4000"
        if not (text or attachments):
            return "text or attachments required"
        for attachment in attachments:
            if attachment.get("type") == "inline_keyboard":
                rows = attachment["payload"]["buttons"]
                if not 1 <= len(rows) <= 30:
                    return "keyboard: 1..30 rows"
                for row in rows:
                    if not 1 <= len(row) <= 7:
                        return "keyboard: 1..7 buttons a row"
                    for button in row:
                        if button.get("type") != "callback":
                            return "only callback buttons expected"
                        if not 1 <= len(button.get("text", "")) <= 128:
                            return "button text: 1..128"
                        if not 1 <= len(button.get("payload", "")) <= 1024:
                            return "button payload: maxLength 1024"
            elif attachment.get("type") == "file":
                if len(attachments) != 1:
                    return "a file must be the only attachment"
                if attachment["payload"].get("token") not in self.uploads:
                    return "unknown attachment token"
            else:
                return f"unexpected attachment {attachment.get('type')}"
        return None

    def _keyboard(self, body: dict) -> list[list[dict]] | None:
        for attachment in body.get("attachments") or []:
            if attachment.get("type") == "inline_keyboard":
                return attachment["payload"]["buttons"]
        return None

    async def _send(self, request: web.Request) -> web.Response:
        query = request.query
        if ("user_id" in query) == ("chat_id" in query):
            return _error(400, "proto.payload", "pass user_id or chat_id")
        if "chat_id" in query:
            return _error(403, "chat.denied", "the bot is in no such chat")
        user_id = int(query["user_id"])
        body = request[_JSON]
        problem = self._check_body(body)
        if problem:
            return _error(400, "proto.payload", problem)
        if user_id in self.blocked:
            return _error(403, "chat.denied", "error.dialog.suspended")
        file = None
        for attachment in body.get("attachments") or []:
            if attachment.get("type") == "file":
                token = attachment["payload"]["token"]
                if self._not_ready.get(token, 0) > 0:
                    self._not_ready[token] -= 1
                    return _error(
                        400,
                        "attachment.not.ready",
                        "Key: errors.process.attachment.file.not.processed",
                    )
                file = self.uploads[token]
        keyboard = self._keyboard(body)
        message = BotMessage(next_mid(), user_id, body.get("text"), keyboard, keyboard, file)
        self.messages[message.mid] = message
        self.log.append((user_id, "sent", message))
        return web.json_response({"message": message.as_message()})

    async def _edit(self, request: web.Request) -> web.Response:
        message = self.messages.get(request.query.get("message_id", ""))
        if message is None:
            return _error(404, "not.found", "message not found")
        body = request[_JSON]
        problem = self._check_body(body)
        if problem:
            return _error(400, "proto.payload", problem)
        message.text = body.get("text", message.text)
        if body.get("attachments") is not None:
            message.keyboard = self._keyboard(body)
            message.last_keyboard = message.keyboard or message.last_keyboard
        self.log.append((message.user_id, "edited", message))
        return web.json_response({"success": True})

    async def _get_message(self, request: web.Request) -> web.Response:
        mid = request.match_info["mid"]
        found = self.user_messages.get(mid) or (
            self.messages[mid].as_message() if mid in self.messages else None
        )
        if found is None:
            return _error(404, "not.found", "message not found")
        return web.json_response(found)

    async def _answer(self, request: web.Request) -> web.Response:
        callback_id = request.query.get("callback_id", "")
        if not callback_id.strip():
            return _error(400, "proto.payload", "callback_id required")
        body = request[_JSON] or {}
        if not (body.get("message") or body.get("notification")):
            return _error(400, "proto.payload", "message or notification required")
        self.answers.append((callback_id, body))
        mid = self.callbacks.get(callback_id)
        if body.get("message") and mid in self.messages:
            message = self.messages[mid]
            if body["message"].get("attachments") is not None:
                message.keyboard = self._keyboard(body["message"])
            message.text = body["message"].get("text", message.text)
        return web.json_response({"success": True})

    async def _uploads(self, request: web.Request) -> web.Response:
        kind = request.query.get("type")
        if kind not in ("image", "video", "audio", "file"):
            return _error(400, "proto.payload", "type: image, video, audio or file")
        number = len(self.uploads) + len(self.requests)
        return web.json_response({"url": f"{self.cdn_url}/upload/{number}"})

    async def _upload(self, request: web.Request) -> web.Response:
        reader = await request.multipart()
        part = await reader.next()
        if part is None or part.name != "data":  # type: ignore[union-attr]
            return _error(400, "proto.payload", "multipart field 'data' expected")
        content = await part.read()  # type: ignore[union-attr]
        token = f"tok{request.match_info['n']}"
        self.uploads[token] = (part.filename or "file", bytes(content))  # type: ignore[union-attr]
        self._not_ready[token] = self.not_ready_attempts
        return web.json_response({"token": token})

    async def _file(self, request: web.Request) -> web.Response:
        content = self.files.get(request.match_info["name"])
        if content is None:
            return _error(404, "not.found", "file not found")
        return web.Response(body=content, content_type="application/octet-stream")

    async def _subscriptions(self, request: web.Request) -> web.Response:
        return web.json_response({"subscriptions": self.subscriptions})

    async def _subscribe(self, request: web.Request) -> web.Response:
        body = request[_JSON] or {}
        url, secret = body.get("url", ""), body.get("secret")
        if not url.startswith("https://"):
            return web.json_response({"success": False, "message": "url must be https"})
        if secret is not None and not 5 <= len(secret) <= 256:
            return web.json_response({"success": False, "message": "secret: 5..256"})
        self.subscriptions.append({"url": url, "time": now_ms(), "update_types": None})
        return web.json_response({"success": True})

    async def _unsubscribe(self, request: web.Request) -> web.Response:
        url = request.query.get("url")
        self.subscriptions = [s for s in self.subscriptions if s["url"] != url]
        return web.json_response({"success": True})
