"""One conformance suite, run on Telegram, VK and MAX: the same stories go through each
platform's real channel (aiogram, vkbottle's API, our MAX client) and the durable intake,
against a recording Bot API session and local fake VK and MAX servers on 127.0.0.1.
Platform-specific cases (keyboard limits, uploads, error codes) stay in each platform's own
test modules."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import func, select

from handlers import callbacks as cb
from handlers import texts
from storage.models import Account, Answer, AttachmentStatus, AuditLog, ResponseStatus
from tests.max_harness import MaxHarness
from tests.pg import settings_on_both_databases
from tests.vk_harness import VkHarness
from tests.walk import PDF, attachments, harness_for, position, press_payload, response_of
from tests.walk import walk_to_review as walk

settings = settings_on_both_databases()


@dataclass
class Chat:
    """One director on one platform, driven the same way everywhere."""

    platform: str
    user: Any
    register: Callable[[str], Awaitable[Any]]  # by the platform's deep link
    attach: Callable[[bytes, str], Awaitable[Any]]
    forge: Callable[[str], Awaitable[Any]]  # press a button with any callback payload
    block: Callable[[], None]  # the user blocks the bot: the platform refuses to deliver

    @property
    def user_id(self) -> str:
        return str(self.user.user_id)

    async def send(self, text: str) -> None:
        await self.user.send(text)

    async def click(self, label: str) -> None:
        await self.user.click(label)

    def expect(self, *fragments: str) -> str:
        return self.user.expect(*fragments)


@pytest.fixture(params=["tg", "vk", "max"])
async def chat(request, services) -> AsyncIterator[Chat]:
    platform = request.param
    if platform == "tg":
        harness = harness_for(services)
        user = harness.user(1001, "Анна")
        yield Chat(
            platform,
            user,
            register=lambda code: user.send(f"/start {code}"),
            attach=lambda data, name: user.send_document(data, name, "application/pdf"),
            forge=lambda payload: press_payload(harness, user, payload),
            block=lambda: harness.session.fail_next(
                SendMessage, "Forbidden: bot was blocked by the user", 403
            ),
        )
        await harness.close()
    elif platform == "vk":
        harness = await VkHarness.start(services.conversation)
        user = harness.user(1001)
        try:
            yield Chat(
                platform,
                user,
                register=lambda code: user.send("Начать", ref=code),
                attach=user.send_document,
                forge=lambda payload: user.press({"c": payload}),
                block=lambda: harness.api.blocked.add(1001),
            )
        finally:
            await harness.stop()
    else:
        async with MaxHarness.open(services.conversation) as harness:
            services.conversation.register_fetcher("max", harness.channel.fetcher)
            user = harness.user(1001, "Анна")
            yield Chat(
                platform,
                user,
                register=user.start,
                attach=user.send_file,
                forge=user.press,
                block=lambda: harness.server.blocked.add(1001),
            )


async def count(services, model) -> int:
    async with services.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def started(chat: Chat, region) -> None:
    await chat.register(region.codes["S1"])
    chat.expect("зарегистрированы")
    await chat.click("▶ Начать заполнение")


async def test_deep_link_walk_with_documents_and_submit(chat: Chat, services, region):
    await started(chat, region)
    answered = await walk(services, chat.user, platform=chat.platform, attach=chat.attach)
    assert answered == 17  # S1 is in the risk zone: 14 questions + 3 risks
    chat.expect("Заполнено: 17 из 17", "📎 pd_events.pdf")
    await chat.click(texts.BTN_SUBMIT)
    await chat.click(texts.BTN_CONFIRM)
    chat.expect("Спасибо! Анкета", "отправлена")
    response = await response_of(services, region.school_ids["S1"])
    assert response is not None and response.status == ResponseStatus.SUBMITTED
    files = await attachments(services)
    assert len(files) == 9 and all(f.status == AttachmentStatus.STORED for f in files)
    for stored in files:
        assert services.files.absolute(stored.storage_path).read_bytes() == PDF


@pytest.mark.parametrize("wrong", ["-1", "12.5", "двенадцать", "99999999"])
async def test_a_wrong_count_is_explained_and_nothing_is_written(
    chat: Chat, services, region, wrong
):
    await started(chat, region)
    await chat.send(wrong)
    chat.expect("числ")
    assert await count(services, Answer) == 0
    _mode, slot = await position(services, chat.platform, chat.user_id)
    assert slot is not None and slot.question_id == "teachers_total"


async def test_back_and_edit_from_the_review(chat: Chat, services, region):
    await started(chat, region)
    await chat.send("20")
    await chat.send("5")
    await chat.click(texts.BTN_BACK)
    _mode, slot = await position(services, chat.platform, chat.user_id)
    assert slot is not None and slot.question_id == "diag_subject"
    await chat.send("/review")
    chat.expect("Педагогов всего: 20")


async def test_a_forged_button_cannot_touch_another_schools_response(chat: Chat, services, region):
    other = harness_for(services).user(2002, "Борис")
    await other.send(f"/start {region.codes['S2']}")
    await other.click("▶ Начать заполнение")
    await other.send("20")
    victim = await response_of(services, region.school_ids["S2"])
    await started(chat, region)
    audit = await count(services, AuditLog)
    for payload in (
        cb.encode(cb.Action.ANSWER, victim.id, "teachers_total", 0, "1"),
        cb.encode(cb.Action.CONFIRM, victim.id),
    ):
        await chat.forge(payload)
        chat.expect("недоступна")
    assert await count(services, AuditLog) == audit
    async with services.sessions() as session:
        value = await session.scalar(
            select(Answer.value).where(
                Answer.response_id == victim.id, Answer.question_id == "teachers_total"
            )
        )
    assert value == 20


async def test_a_user_who_blocked_the_bot_is_marked_unreachable(chat: Chat, services, region):
    await started(chat, region)
    chat.block()
    await chat.send("20")
    assert await count(services, Answer) == 1  # the answer itself is kept
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(
                Account.platform == chat.platform, Account.platform_user_id == chat.user_id
            )
        )
    assert account.unreachable_since is not None
