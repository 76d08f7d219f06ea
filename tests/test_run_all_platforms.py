"""`run_bot` serves Telegram, VK and MAX at once through the one durable intake: a director
registers by each platform's deep link and answers, and a restart neither loses nor repeats
anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from bot.app import create_services
from bot.config import Settings, load_settings
from bot.runner import run_bot
from storage.models import Account, Answer, InboxEvent, OutboxMessage
from tests.conftest import seed_region
from tests.fake_bot_api import FakeBotApi
from tests.fake_max_api import TOKEN as MAX_TOKEN
from tests.fake_max_api import FakeMaxApi, bot_started, user_message, user_obj
from tests.fake_vk_api import GROUP_ID, FakeVkApi
from tests.fake_vk_api import TOKEN as VK_TOKEN

TG_USER = 7100001
VK_USER = 7200002
MAX_USER = 7300003


@dataclass
class Fakes:
    tg: FakeBotApi
    vk: FakeVkApi
    max: FakeMaxApi
    codes: dict[str, str]


@pytest.fixture
async def fakes(settings, tmp_path, monkeypatch) -> AsyncIterator[Fakes]:
    tg, vk, max_api = FakeBotApi(), FakeVkApi(), FakeMaxApi()
    tg_url = await tg.start()
    vk_url = await vk.start()
    await max_api.start()
    variables = {
        "BOT_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg_url,
        "VK_TOKEN": VK_TOKEN,
        "VK_GROUP_ID": str(GROUP_ID),
        "VK_API_URL": vk_url,
        "MAX_TOKEN": MAX_TOKEN,
        "MAX_API_URL": max_api.base_url,
    }
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    services = await create_services(load_settings(env_file=None))
    try:
        region = await seed_region(services)
    finally:
        await services.close()
    try:
        yield Fakes(tg, vk, max_api, region.codes)
    finally:
        await tg.stop()
        await vk.stop()
        await max_api.close()


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[asyncio.Task]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)


async def until(check: Callable[[], bool], task: asyncio.Task, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if task.done():
            task.result()  # a crash of the runner fails the test with its own error
            raise AssertionError("the bot stopped")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("no reply in time")
        await asyncio.sleep(0.05)


def tg_texts(api: FakeBotApi) -> list[str]:
    return [s.text for s in api.sent if s.chat_id == TG_USER and s.text]


def vk_texts(api: FakeVkApi) -> list[str]:
    return [m.text for m in api.to_peer(VK_USER)]


def max_texts(api: FakeMaxApi) -> list[str]:
    return [m.text or "" for user, kind, m in api.log if user == MAX_USER and kind == "sent"]


def vk_message(text: str, **extra) -> dict:
    return {
        "message": {
            "id": 0,
            "date": 1700000000,
            "peer_id": VK_USER,
            "from_id": VK_USER,
            "text": text,
            "attachments": [],
            "conversation_message_id": 1,
            "out": 0,
            **extra,
        },
        "client_info": {"button_actions": ["text", "callback"], "inline_keyboard": True},
    }


async def counts(settings: Settings) -> dict[str, int]:
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            result = {}
            for name, model in (
                ("accounts", Account),
                ("answers", Answer),
                ("inbox", InboxEvent),
                ("outbox", OutboxMessage),
            ):
                result[name] = int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
            platforms = await session.scalars(select(Account.platform))
            result["platforms"] = sorted(set(platforms))  # type: ignore[assignment]
            return result
    finally:
        await services.close()


async def test_one_process_serves_telegram_vk_and_max(fakes: Fakes) -> None:
    settings = load_settings(env_file=None)
    tg_code, vk_code, max_code = fakes.codes["S1"], fakes.codes["S2"], fakes.codes["U1"]
    async with running(settings) as task:
        # VK's first long poll starts at the newest event (the stored ts after that).
        await until(lambda: bool(fakes.vk.lp_requests), task)
        fakes.tg.send_text(TG_USER, f"/start {tg_code}")
        fakes.vk.push("message_new", vk_message("Начать", ref=vk_code, ref_source="invite"))
        fakes.max.push(bot_started(user_obj(MAX_USER), max_code))
        await until(lambda: bool(tg_texts(fakes.tg)), task)
        await until(lambda: bool(vk_texts(fakes.vk)), task)
        await until(lambda: bool(max_texts(fakes.max)), task)
        for texts in (tg_texts(fakes.tg), vk_texts(fakes.vk), max_texts(fakes.max)):
            assert any("МБОУ" in text for text in texts), texts
        before = await counts(settings)
    assert before["platforms"] == ["max", "tg", "vk"]
    assert before["accounts"] == 3

    # A restart: nothing already handled is handled again, and the bot goes on serving.
    async with running(settings) as task:
        fakes.max.push(user_message(user_obj(MAX_USER), "/resume"))
        sent = len(max_texts(fakes.max))
        await until(lambda: len(max_texts(fakes.max)) > sent, task)
    after = await counts(settings)
    assert after["accounts"] == 3
    assert after["inbox"] == before["inbox"] + 1
