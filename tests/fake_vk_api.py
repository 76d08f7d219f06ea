"""A fake VK API on 127.0.0.1 (aiohttp): method endpoints, the Bots Long Poll server, the
upload server and file downloads, with VK's request and response shapes.

* ``POST /method/<name>`` takes form fields plus ``access_token`` and ``v`` in the query and
  answers ``{"response": …}`` or ``{"error": {"error_code", "error_msg", "request_params"}}``.
* ``GET /lp?act=a_check&key&ts&wait`` answers ``{"ts", "updates"}`` or ``{"failed": n}``;
  ``ts`` is the index of the next event in :attr:`FakeVkApi.events`.
* ``POST /upload`` takes a multipart ``file`` and answers ``{"file": "<token>"}`` for
  ``docs.save``; ``GET /files/<name>`` serves what the test put in :attr:`files`.

``messages.send`` keeps VK's ``random_id`` rule: a second send with the same id to the same
peer is not shown again and returns the first message's id. Every method call is recorded
with the fake clock's time (``clock``), so a test can check the request rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "vk-test-token"
GROUP_ID = 777


@dataclass
class Call:
    method: str
    params: dict[str, str]
    at: float


@dataclass
class SentMessage:
    id: int
    peer_id: int
    text: str
    keyboard: dict[str, Any] | None
    attachment: str | None
    random_id: int

    def buttons(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.keyboard:
            return []
        return [
            (b["action"]["label"], b["action"]["payload"])
            for row in self.keyboard["buttons"]
            for b in row
        ]


@dataclass
class FakeVkApi:
    token: str = TOKEN
    group_id: int = GROUP_ID
    clock: Callable[[], float] = lambda: 0.0
    calls: list[Call] = field(default_factory=list)
    messages: list[SentMessage] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)  # /files/<name> downloads
    uploads: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # token -> name, bytes
    docs: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # "doc-777_1" -> file
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # users.get
    blocked: set[int] = field(default_factory=set)  # peers that answer 901
    errors: dict[str, list[int]] = field(default_factory=dict)  # method -> codes to answer next
    lp_failed: list[int] = field(default_factory=list)  # next long-poll answers: failed=n
    lp_key: str = "key-1"
    lp_requests: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    def __post_init__(self) -> None:
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(1)
        self._new_event = asyncio.Event()
        self._runner: web.AppRunner | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/method/{name}", self._method)
        app.router.add_get("/lp", self._long_poll)
        app.router.add_post("/upload", self._upload)
        app.router.add_get("/files/{name}", self._file)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)  # long polls end at once
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what a test does ----------------------------------------------------------------------

    def push(self, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        event = {
            "group_id": self.group_id,
            "type": event_type,
            "event_id": f"ev{next(self._event_ids):06d}",
            "v": "5.199",
            "object": obj,
        }
        self.events.append(event)
        self._new_event.set()
        return event

    def fail_next(self, method: str, *codes: int) -> None:
        self.errors.setdefault(method, []).extend(codes)

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def to_peer(self, peer_id: int) -> list[SentMessage]:
        return [m for m in self.messages if m.peer_id == peer_id]

    # --- handlers ----------------------------------------------------------------------------

    async def _method(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        params = {k: str(v) for k, v in (await request.post()).items()}
        self.calls.append(Call(name, params, self.clock()))
        if request.query.get("access_token") != self.token:
            return self._error(5, "User authorization failed: invalid access_token (4).", params)
        queued = self.errors.get(name)
        if queued:
            return self._error(queued.pop(0), f"fake error in {name}", params)
        handler = getattr(self, "_m_" + name.replace(".", "_"), None)
        if handler is None:
            return self._error(3, "Unknown method passed.", params)
        result = handler(params)
        if isinstance(result, web.Response):
            return result
        return web.json_response({"response": result})

    @staticmethod
    def _error(code: int, message: str, params: dict[str, str]) -> web.Response:
        request_params = [{"key": k, "value": v} for k, v in params.items()]
        body = {"error_code": code, "error_msg": message, "request_params": request_params}
        return web.json_response({"error": body})

    def _m_groups_getById(self, params: dict[str, str]) -> Any:
        return {
            "groups": [{"id": self.group_id, "name": "Мониторинг", "screen_name": "monitoring"}],
            "profiles": [],
        }

    def _m_messages_getConversations(self, params: dict[str, str]) -> Any:
        return {"count": 0, "items": []}

    def _m_groups_setLongPollSettings(self, params: dict[str, str]) -> Any:
        return 1

    def _m_groups_getLongPollServer(self, params: dict[str, str]) -> Any:
        return {"key": self.lp_key, "server": f"{self.base_url}/lp", "ts": str(len(self.events))}

    def _m_messages_send(self, params: dict[str, str]) -> Any:
        peer = int(params["peer_id"])
        if peer in self.blocked:
            return self._error(901, "Can't send messages for users without permission", params)
        rid = int(params.get("random_id") or 0)
        for message in self.messages:
            if rid and message.peer_id == peer and message.random_id == rid:
                return message.id
        keyboard = json.loads(params["keyboard"]) if params.get("keyboard") else None
        if not params.get("message") and not params.get("attachment"):
            return self._error(
                100,
                "One of the parameters specified was missing or invalid: "
                "message is empty or invalid",
                params,
            )
        if len(params.get("message", "")) > 4096:
            return self._error(914, "Message is too long", params)
        if keyboard is not None:
            error = _keyboard_error(keyboard)
            if error:
                return self._error(911, f"Keyboard format is invalid: {error}", params)
        message = SentMessage(
            next(self._ids),
            peer,
            params.get("message", ""),
            keyboard,
            params.get("attachment"),
            rid,
        )
        self.messages.append(message)
        return message.id

    def _m_users_get(self, params: dict[str, str]) -> Any:
        user_id = int(params["user_ids"])
        first, last = self.names.get(user_id, ("Пользователь", str(user_id)))
        return [{"id": user_id, "first_name": first, "last_name": last}]

    def _find(self, params: dict[str, str]) -> SentMessage | None:
        """By ``message_id`` or ``conversation_message_id`` (the same number here)."""
        wanted = int(params.get("message_id") or params.get("conversation_message_id") or 0)
        for message in self.messages:
            if message.id == wanted and message.peer_id == int(params["peer_id"]):
                return message
        return None

    def _m_messages_getByConversationMessageId(self, params: dict[str, str]) -> Any:
        found = self._find({**params, "message_id": params["conversation_message_ids"]})
        if found is None:
            return {"count": 0, "items": []}
        item = {
            "id": found.id,
            "conversation_message_id": found.id,
            "peer_id": found.peer_id,
            "text": found.text,
        }
        if found.keyboard:
            item["keyboard"] = found.keyboard
        return {"count": 1, "items": [item]}

    def _m_messages_edit(self, params: dict[str, str]) -> Any:
        message = self._find(params)
        if message is None:
            return self._error(100, "message_id is invalid", params)
        if not params.get("message") and not params.get("attachment"):
            return self._error(100, "message is empty", params)
        message.text = params["message"]
        message.keyboard = json.loads(params["keyboard"]) if params.get("keyboard") else None
        return 1

    def _m_messages_sendMessageEventAnswer(self, params: dict[str, str]) -> Any:
        return 1

    def _m_docs_getMessagesUploadServer(self, params: dict[str, str]) -> Any:
        return {"upload_url": f"{self.base_url}/upload?peer={params.get('peer_id')}"}

    def _m_docs_save(self, params: dict[str, str]) -> Any:
        token = params.get("file", "")
        if token not in self.uploads:
            return self._error(100, "file is invalid", params)
        name, data = self.uploads.pop(token)
        doc_id = len(self.docs) + 1
        self.docs[f"doc-{self.group_id}_{doc_id}"] = (params.get("title") or name, data)
        return {
            "type": "doc",
            "doc": {
                "id": doc_id,
                "owner_id": -self.group_id,
                "title": params.get("title") or name,
                "size": len(data),
                "url": f"{self.base_url}/files/saved-{doc_id}",
            },
        }

    async def _long_poll(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.lp_requests.append(query)
        if self.lp_failed:
            failed = self.lp_failed.pop(0)
            body: dict[str, Any] = {"failed": failed}
            if failed == 1:
                body["ts"] = str(len(self.events))
            return web.json_response(body)
        if query.get("key") != self.lp_key:
            return web.json_response({"failed": 2})
        ts = int(query.get("ts") or 0)
        if ts >= len(self.events):
            self._new_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_event.wait(), float(query.get("wait") or 0))
        return web.json_response({"ts": str(len(self.events)), "updates": self.events[ts:]})

    async def _upload(self, request: web.Request) -> web.Response:
        form = await request.post()
        file = form.get("file")
        if not isinstance(file, web.FileField):
            return web.json_response({"error": "no file"})
        token = f"upload-{len(self.uploads) + len(self.docs) + 1}"
        self.uploads[token] = (file.filename, file.file.read())
        return web.json_response({"file": token})

    async def _file(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404, text="not found")
        return web.Response(body=data, content_type="application/octet-stream")


def _keyboard_error(keyboard: dict[str, Any]) -> str | None:
    """VK's inline keyboard limits, checked the way VK rejects a keyboard (error 911)."""
    rows = keyboard.get("buttons") or []
    if keyboard.get("inline"):
        if len(rows) > 6:
            return "too many rows"
        if sum(len(row) for row in rows) > 10:
            return "too many buttons"
    for row in rows:
        if len(row) > 5:
            return "too many buttons in a row"
        for button in row:
            action = button.get("action") or {}
            if len(action.get("label", "")) > 40:
                return "label too long"
            if len(json.dumps(action.get("payload"))) > 255:
                return "payload too long"
    return None
