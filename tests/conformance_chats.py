"""Users on Telegram, VK and MAX driven the same way, several per platform, for the
conformance stories: what the bot sends them (its replies and what it sends unprompted, such
as notices from the reminder tick) is read back from the recording Bot API session or the
fake VK and MAX servers."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bot.app import Services
from bot.telegram import TelegramMessenger
from tests.max_harness import MaxHarness
from tests.vk_harness import VkHarness
from tests.walk import harness_for, press_payload


@dataclass
class ChatUser:
    """One user of one platform. ``watch()`` starts a new view of what the bot sends, for
    messages that answer no action of the user (notices); every action starts one too."""

    platform: str
    user: Any  # the platform harness's own user
    harness: Any

    async def register(self, code: str) -> None:
        if self.platform == "tg":
            await self.user.send(f"/start {code}")
        elif self.platform == "vk":
            await self.user.send("Начать", ref=code)
        else:
            await self.user.start(code)

    async def attach(self, data: bytes, name: str) -> None:
        if self.platform == "tg":
            await self.user.send_document(data, name, "application/pdf")
        elif self.platform == "vk":
            await self.user.send_document(data, name)
        else:
            await self.user.send_file(data, name)

    async def forge(self, payload: str) -> None:
        """Press a button with any callback payload."""
        if self.platform == "tg":
            await press_payload(self.harness, self.user, payload)
        elif self.platform == "vk":
            await self.user.press({"c": payload})
        else:
            await self.user.press(payload)

    async def send(self, text: str) -> None:
        await self.user.send(text)

    async def click(self, label: str) -> None:
        await self.user.click(label)

    def expect(self, *fragments: str) -> str:
        return self.user.expect(*fragments)

    def buttons(self) -> list[str]:
        return self.user.buttons()

    def watch(self) -> None:
        if self.platform == "tg":
            self.user._cursor = len(self.harness.session.calls)
        elif self.platform == "vk":
            self.user.mark = len(self.harness.api.messages)
        else:
            self.user._cursor = len(self.harness.server.log)

    def files(self) -> list[tuple[str, bytes]]:
        """(file name, content) of the files the bot sent this user in the current view."""
        if self.platform == "tg":
            return [(d.filename, d.content) for d in self.user.sent_documents()]
        if self.platform == "vk":
            docs = self.harness.api.docs
            return [
                docs[key]
                for message in self.user.replies()
                if message.attachment
                for key in message.attachment.split(",")
            ]
        return [
            message.file
            for user_id, _kind, message in self.harness.server.log[self.user._cursor :]
            if user_id == self.user.user_id and message.file is not None
        ]


@dataclass
class Platform:
    name: str
    harness: Any
    messenger: Any  # what the Sender sends through: the platform's real channel

    def user(self, user_id: int, first_name: str) -> ChatUser:
        if self.name == "vk":
            return ChatUser(self.name, self.harness.user(user_id), self.harness)
        return ChatUser(self.name, self.harness.user(user_id, first_name), self.harness)


@contextlib.asynccontextmanager
async def open_platform(name: str, services: Services) -> AsyncIterator[Platform]:
    if name == "tg":
        harness = harness_for(services)
        try:
            yield Platform(name, harness, TelegramMessenger(harness.bot))
        finally:
            await harness.close()
    elif name == "vk":
        harness = await VkHarness.start(services.conversation)
        try:
            yield Platform(name, harness, harness.channel)
        finally:
            await harness.stop()
    else:
        async with MaxHarness.open(services.conversation) as harness:
            services.conversation.register_fetcher("max", harness.channel.fetcher)
            yield Platform(name, harness, harness.channel)
