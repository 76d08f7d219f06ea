"""`run_bot` serves Telegram, VK and MAX at once through the one durable intake: a director
registers by each platform's deep link and answers, and a restart neither loses nor repeats
anything."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.app import create_services
from bot.config import Settings, load_settings
from storage.models import Account, Answer, InboxEvent, OutboxMessage, Response, School
from tests import runtime
from tests.conftest import seed_region
from tests.fake_bot_api import FakeBotApi
from tests.fake_max_api import TOKEN as MAX_TOKEN
from tests.fake_max_api import FakeMaxApi, bot_started, user_message, user_obj
from tests.fake_vk_api import GROUP_ID, FakeVkApi
from tests.fake_vk_api import TOKEN as VK_TOKEN
from tests.runtime import running

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


ANSWERS = ["20", "1", "2", "3", "4", "5", "6", "7"]  # questions 1-8: teacher counts
QUESTIONS = [
    "teachers_total",
    "diag_subject",
    "diag_methodological",
    "diag_psychological",
    "support_provided",
    "network_associations",
    "regional_asset",
    "iom",
]


async def spawn_bot(log: Path) -> asyncio.subprocess.Process:
    # The bot's log goes to a file: an unread pipe could fill up and stall it.
    with log.open("ab") as stderr:
        return await runtime.spawn(os.environ, "run", stderr=stderr)


async def wait_for(check: Callable[[], bool], process, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if process.returncode is not None:
            raise AssertionError(f"the bot exited with {process.returncode}; see its log")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


def saved(texts: list[str]) -> int:
    return sum("Сохранено" in text for text in texts)


async def answers_by_school(settings: Settings) -> dict[str, dict[str, object]]:
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            rows = await session.execute(
                select(School.code, Answer.question_id, Answer.value)
                .join(Response, Response.id == Answer.response_id)
                .join(School, School.id == Response.school_id)
            )
            found: dict[str, dict[str, object]] = {}
            for code, question, value in rows:
                found.setdefault(code, {})[question] = value
            states = await session.execute(
                select(InboxEvent.platform, InboxEvent.status, func.count()).group_by(
                    InboxEvent.platform, InboxEvent.status
                )
            )
            found["inbox"] = {f"{p}:{s}": n for p, s, n in states}
            return found
    finally:
        await services.close()


async def test_sigkill_while_directors_answer_on_every_platform(fakes: Fakes, tmp_path) -> None:
    """Killed while three directors (Telegram, VK, MAX) answer: after a restart every answer
    is stored exactly once, on its own question; nothing is lost and nothing done twice."""
    settings = load_settings(env_file=None)
    log = tmp_path / "bot.log"
    max_user = user_obj(MAX_USER)
    first = await spawn_bot(log)
    try:
        await wait_for(lambda: bool(fakes.vk.lp_requests), first)
        fakes.tg.send_text(TG_USER, f"/start {fakes.codes['S1']}")
        fakes.vk.push("message_new", vk_message("Начать", ref=fakes.codes["S2"]))
        fakes.max.push(bot_started(max_user, fakes.codes["U1"]))
        await wait_for(
            lambda: all((tg_texts(fakes.tg), vk_texts(fakes.vk), max_texts(fakes.max))), first
        )
        for text in ["/resume", *ANSWERS]:
            fakes.tg.send_text(TG_USER, text)
            fakes.vk.push("message_new", vk_message(text))
            fakes.max.push(user_message(max_user, text))
        await wait_for(lambda: saved(tg_texts(fakes.tg)) + saved(max_texts(fakes.max)) >= 2, first)
        first.kill()
        await first.wait()
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()
    partial = await answers_by_school(settings)
    assert sum(len(v) for k, v in partial.items() if k != "inbox") < 3 * len(ANSWERS)

    again = await spawn_bot(log)
    try:
        await wait_for(
            lambda: (
                min(
                    saved(tg_texts(fakes.tg)),
                    saved(vk_texts(fakes.vk)),
                    saved(max_texts(fakes.max)),
                )
                >= len(ANSWERS)
            ),
            again,
        )
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.wait(), 60)
    stored = await answers_by_school(settings)
    expected = dict(zip(QUESTIONS, (int(a) for a in ANSWERS), strict=True))
    for code in ("S1", "S2", "U1"):
        assert stored[code] == expected, code
    events = 2 + len(ANSWERS)  # /start (or its deep link), /resume, the answers
    assert stored["inbox"] == {f"{p}:done": events for p in ("tg", "vk", "max")}
    # Replies are delivered at least once: a reply the platform took in the instant before
    # the kill, not yet marked sent, goes again (a lost «✅ Сохранено» would make a director
    # type the answer again, onto the next question). VK drops the repeat by random_id.
    assert saved(vk_texts(fakes.vk)) == len(ANSWERS)
    for texts in (tg_texts(fakes.tg), max_texts(fakes.max)):
        assert len(ANSWERS) <= saved(texts) <= len(ANSWERS) + 1, texts
