"""Drive the real VK channel against :mod:`tests.fake_vk_api` like a VK user would.

One long-poll batch goes through the production path: ``sink`` stores it in the inbox, the
processor runs ``parse`` → the core → the outbox → ``channel.send``. Nothing swallows
exceptions: the channel uses vkbottle's ``API`` and uploader only, not its dispatcher (whose
default error handler logs and swallows), so a failing assert or a crash fails the test::

    h = await VkHarness.start(services.conversation)
    user = h.user(1001)
    await user.send("/start ABC123")
    user.expect("зарегистрированы")
    await user.click("▶ Начать заполнение")
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.channel import RawEvent
from bot.processor import Processor
from bot.vk import VkChannel
from handlers.conversation import Conversation
from tests import walk
from tests.fake_vk_api import FakeVkApi, SentMessage

CALLBACK_SECRET = "cb-secret"
CONFIRMATION_CODE = "a1b2c3d4"


@dataclass
class VkHarness:
    api: FakeVkApi
    channel: VkChannel
    core: Conversation | None
    handled: list[RawEvent] = field(default_factory=list)
    processor: Processor | None = None

    @classmethod
    async def start(cls, core: Conversation | None, **channel_kwargs: Any) -> VkHarness:
        api = FakeVkApi(clock=channel_kwargs.get("clock") or (lambda: 0.0))
        await api.start()
        channel = make_channel(api, **channel_kwargs)
        await channel.start()
        if core is not None:
            core.register_fetcher("vk", channel.fetcher)
        return cls(api, channel, core)

    async def stop(self) -> None:
        await self.channel.close()
        await self.api.stop()

    def user(self, user_id: int) -> VkUser:
        return VkUser(self, user_id)

    async def step(self) -> int:
        return await self.channel.poll_once(self.sink)

    async def sink(self, batch: list[RawEvent]) -> None:
        """The durable intake, as in production: stored in the inbox, then processed."""
        self.handled.extend(batch)
        if self.core is None:
            return
        if self.processor is None:
            self.processor = Processor(
                self.core.sessions, {"vk": self.channel}, self.core, retry_delay=0
            )
        await self.processor.accept(batch)
        await self.processor.drain()


def make_channel(api: FakeVkApi, **kwargs: Any) -> VkChannel:
    kwargs.setdefault("long_poll_wait", 0)
    kwargs.setdefault("callback_secret", CALLBACK_SECRET)
    kwargs.setdefault("confirmation_code", CONFIRMATION_CODE)
    return VkChannel(api.token, api.group_id, api_url=api.base_url, **kwargs)


_files = itertools.count(1)


@dataclass
class VkUser:
    harness: VkHarness
    user_id: int
    mark: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    @property
    def api(self) -> FakeVkApi:
        return self.harness.api

    def _message(self, text: str = "", attachments: list | None = None, **extra) -> dict:
        return {
            "message": {
                "id": 0,
                "date": 1700000000,
                "peer_id": self.user_id,
                "from_id": self.user_id,
                "text": text,
                "attachments": attachments or [],
                "conversation_message_id": next(self._ids),
                "out": 0,
                **extra,
            },
            "client_info": {
                "button_actions": ["text", "callback", "open_link"],
                "keyboard": True,
                "inline_keyboard": True,
                "lang_id": 0,
            },
        }

    async def _act(self, event_type: str, obj: dict) -> list[SentMessage]:
        self.mark = len(self.api.messages)
        self.api.push(event_type, obj)
        await self.harness.step()
        return self.replies()

    async def send(self, text: str, *, ref: str | None = None) -> list[SentMessage]:
        extra = {"ref": ref, "ref_source": "invite"} if ref else {}
        return await self._act("message_new", self._message(text, **extra))

    def doc_attachment(
        self, data: bytes, name: str, *, size: int | None = None, doc_type: int = 1
    ) -> dict:
        key = f"u{self.user_id}-{next(_files)}"
        self.api.files[key] = data
        ext = name.rsplit(".", 1)[-1] if "." in name else ""
        return {
            "type": "doc",
            "doc": {
                "id": next(_files),
                "owner_id": self.user_id,
                "title": name,
                "size": len(data) if size is None else size,
                "ext": ext,
                "type": doc_type,
                "url": f"{self.api.base_url}/files/{key}?hash=abc&dl=1",
                "access_key": "k",
            },
        }

    async def send_document(
        self, data: bytes, name: str, mime: str | None = None, *, size: int | None = None
    ) -> list[SentMessage]:
        del mime  # VK tells the extension, not the MIME type
        return await self._act(
            "message_new", self._message("", [self.doc_attachment(data, name, size=size)])
        )

    async def send_documents(self, files: list[tuple[bytes, str]]) -> list[SentMessage]:
        attachments = [self.doc_attachment(data, name) for data, name in files]
        return await self._act("message_new", self._message("", attachments))

    async def send_photo(self) -> list[SentMessage]:
        key = f"u{self.user_id}-{next(_files)}"
        self.api.files[key] = b"\xff\xd8\xff\xe0fakejpeg"
        url = f"{self.api.base_url}/files/{key}"
        photo = {
            "id": 5,
            "owner_id": self.user_id,
            "sizes": [
                {"type": "s", "url": url + "?s", "width": 75, "height": 50},
                {"type": "x", "url": url, "width": 604, "height": 403},
            ],
        }
        return await self._act(
            "message_new", self._message("", [{"type": "photo", "photo": photo}])
        )

    async def send_sticker(self) -> list[SentMessage]:
        sticker = {"type": "sticker", "sticker": {"product_id": 1, "sticker_id": 9}}
        return await self._act("message_new", self._message("", [sticker]))

    async def edit(self, text: str) -> list[SentMessage]:
        message = self._message(text)["message"]
        return await self._act("message_edit", {**message, "update_time": 1700000100})

    async def press(self, payload: Any, message_id: int | None = None) -> list[SentMessage]:
        """A callback button press with any payload (a forged one, too)."""
        return await self._act(
            "message_event",
            {
                "user_id": self.user_id,
                "peer_id": self.user_id,
                "event_id": f"cb{len(self.api.events):05d}",
                "payload": payload,
                "conversation_message_id": message_id or 1,
            },
        )

    async def click(self, label: str) -> list[SentMessage]:
        for message in reversed(self.replies()):
            for text, payload in message.buttons():
                if text == label:
                    return await self.press(payload, message.id)
        raise AssertionError(f"no button {label!r} in {self.buttons()}")

    # --- inspection ------------------------------------------------------------------------

    def replies(self) -> list[SentMessage]:
        return [m for m in self.api.messages[self.mark :] if m.peer_id == self.user_id]

    def text(self) -> str:
        return "\n".join(m.text for m in self.replies())

    def expect(self, *fragments: str) -> str:
        text = self.text()
        for fragment in fragments:
            assert fragment in text, f"{fragment!r} not in reply:\n{text}"
        return text

    def buttons(self) -> list[str]:
        return [label for m in self.replies() for label, _ in m.buttons()]


async def walk_to_review(services, user, *, yes: bool = True, limit: int = 80) -> int:
    """Answer every question until the review screen (tests.walk, on vk)."""
    return await walk.walk_to_review(
        services, user, yes=yes, limit=limit, platform="vk", attach=user.send_document
    )
