"""Drive the real core through the real ``MaxChannel`` against :mod:`tests.fake_max_api`.

The production path: ``GET /updates`` batch → the inbox (then the marker is confirmed) →
the processor: ``parse`` → the core → the outbox → ``channel.send``::

    async with MaxHarness.open(services.conversation) as h:
        user = h.user(1001, "Анна")
        await user.start("ABC123")          # the deep link https://max.ru/<bot>?start=ABC123
        user.expect("зарегистрированы")
        await user.click("▶ Начать заполнение")
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from bot.max import MaxApi, MaxChannel, TokenBucket
from bot.processor import Processor
from handlers.core import ConversationCore
from tests import fake_max_api as fake
from tests import walk


async def _no_sleep(seconds: float) -> None:
    return None


def make_channel(api_url: str, **kwargs: Any) -> MaxChannel:
    bucket = TokenBucket(rate=1000, burst=1000, sleep=_no_sleep)
    api = MaxApi(fake.TOKEN, api_url, bucket=bucket, ca_file=kwargs.pop("ca_file", None))
    kwargs.setdefault("sleep", _no_sleep)
    return MaxChannel(api, **kwargs)


@dataclass
class MaxHarness:
    server: fake.FakeMaxApi
    channel: MaxChannel
    core: ConversationCore
    processor: Processor | None = None
    _callbacks: itertools.count = field(default_factory=lambda: itertools.count(1))

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, core: ConversationCore, **server: Any) -> AsyncIterator[MaxHarness]:
        api = await fake.FakeMaxApi(**server).start()
        channel = make_channel(api.base_url)
        try:
            await channel.start()
            yield cls(api, channel, core)
        finally:
            await channel.close()
            await api.close()

    def user(self, user_id: int, first_name: str = "Анна") -> MaxUser:
        return MaxUser(self, fake.user_obj(user_id, first_name))

    def next_callback_id(self) -> str:
        return f"cb{next(self._callbacks):08d}"

    async def pump(self) -> None:
        """Take every waiting update, as polling would: the batch goes into the inbox (the
        marker is confirmed after that), then the processor handles it as in production."""
        if self.processor is None:
            sessions = self.core.sessions  # type: ignore[attr-defined]
            self.processor = Processor(sessions, {"max": self.channel}, self.core, retry_delay=0)
        while await self.channel.poll_once(self.processor.accept, timeout=0):
            await self.processor.drain()


@dataclass
class ButtonView:
    text: str
    payload: str


@dataclass
class MaxUser:
    harness: MaxHarness
    user: dict
    _cursor: int = 0

    @property
    def user_id(self) -> int:
        return self.user["user_id"]

    @property
    def server(self) -> fake.FakeMaxApi:
        return self.harness.server

    async def act(self, update: dict) -> None:
        self._cursor = len(self.server.log)
        self.server.push(update)
        await self.harness.pump()

    async def start(self, payload: str | None = None) -> None:
        """Open https://max.ru/<bot>?start=<payload> (or press «Начать»)."""
        await self.act(fake.bot_started(self.user, payload))

    async def send(self, text: str) -> None:
        await self.act(fake.user_message(self.user, text))

    async def send_file(self, content: bytes, filename: str, text: str | None = None) -> str:
        mid = fake.next_mid()
        url = self.server.serve_file(f"{mid}-{len(self.server.files)}", content)
        attachment = {
            "type": "file",
            "payload": {"url": url, "token": f"ft-{mid}"},
            "filename": filename,
            "size": len(content),
        }
        await self.act(fake.user_message(self.user, text, [attachment], mid=mid))
        return mid

    async def send_image(self, content: bytes = b"\xff\xd8\xff\xe0jpeg") -> None:
        url = self.server.serve_file(f"img-{len(self.server.files)}", content)
        attachment = {"type": "image", "payload": {"photo_id": 7, "url": url, "token": "pt"}}
        await self.act(fake.user_message(self.user, None, [attachment]))

    async def send_sticker(self) -> None:
        sticker = {
            "type": "sticker",
            "payload": {"url": "https://example.invalid/s.webp", "code": "s1"},
            "width": 256,
            "height": 256,
        }
        await self.act(fake.user_message(self.user, None, [sticker]))

    async def edit(self, mid: str, text: str) -> None:
        await self.act(fake.user_message(self.user, text, mid=mid, update_type="message_edited"))

    async def stop(self) -> None:
        await self.act(fake.bot_stopped(self.user))

    def keyboard_message(self, *, stale: bool = False) -> fake.BotMessage:
        mine = [
            m
            for m in self.server.messages.values()
            if m.user_id == self.user_id and (m.last_keyboard if stale else m.keyboard)
        ]
        if not mine:
            raise AssertionError("the bot has shown this user no keyboard")
        return mine[-1]

    async def click(
        self, text: str, *, stale: bool = False, message: fake.BotMessage | None = None
    ) -> None:
        """Press a button of the latest message that shows a keyboard, or of ``message``;
        ``stale``: of a keyboard already removed (a tap sent before the removal arrived)."""
        message = message or self.keyboard_message(stale=stale)
        rows = message.last_keyboard if stale else message.keyboard
        views = [ButtonView(b["text"], b["payload"]) for row in rows or [] for b in row]
        found = next((v for v in views if v.text == text), None)
        if found is None:
            raise AssertionError(f"no button {text!r}; there are {[v.text for v in views]}")
        await self.press(found.payload, message)

    async def press(self, payload: str, message: fake.BotMessage | None = None) -> str:
        """Send a ``message_callback`` with any payload (a forged one, too)."""
        callback_id = self.harness.next_callback_id()
        if message is not None:
            self.server.callbacks[callback_id] = message.mid
        shown = message.as_message() if message is not None else None
        await self.act(fake.callback(self.user, payload, shown, callback_id))
        return callback_id

    # ------------------------------------------------------------------ inspection

    def texts(self) -> list[str]:
        """Texts sent or edited in to this user since the start of their last action."""
        return [
            m.text or ""
            for user_id, _kind, m in self.server.log[self._cursor :]
            if user_id == self.user_id and m.text
        ]

    def expect(self, *fragments: str) -> str:
        for text in self.texts():
            if all(fragment in text for fragment in fragments):
                return text
        shown = "\n---\n".join(self.texts()) or "(nothing)"
        raise AssertionError(f"No reply contains {fragments!r}. The bot sent:\n{shown}")

    def buttons(self) -> list[str]:
        try:
            message = self.keyboard_message()
        except AssertionError:
            return []
        return [b["text"] for row in message.keyboard or [] for b in row]


async def walk_to_review(services, user, *, yes: bool = True, limit: int = 80) -> int:
    """Answer every question until the review screen (tests.walk, on max)."""
    return await walk.walk_to_review(
        services, user, yes=yes, limit=limit, platform="max", attach=user.send_file
    )
