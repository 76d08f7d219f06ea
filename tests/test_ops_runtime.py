"""`python -m bot run` in webhook mode on Telegram, VK and MAX at once, with LOG_FORMAT=json:
requests without the secret (or with a wrong one) are refused on every path, /metrics is
Prometheus text with the queues and the events processed, and no token or secret appears in
the JSON log lines."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from bot.app import create_services
from bot.config import load_settings
from bot.telegram import SECRET_HEADER
from handlers.types import OutText
from storage import notices
from storage.models import InboxEvent
from tests import runtime
from tests.conftest import seed_region
from tests.fake_bot_api import FakeBotApi
from tests.fake_max_api import TOKEN as MAX_TOKEN
from tests.fake_max_api import FakeMaxApi, bot_started, user_obj
from tests.fake_vk_api import GROUP_ID, FakeVkApi
from tests.fake_vk_api import TOKEN as VK_TOKEN
from tests.pg import settings_on_both_databases
from tests.runtime import free_port

TG_USER, VK_USER, MAX_USER = 8100001, 8200002, 8300003
TG_SECRET, VK_SECRET, MAX_SECRET = "tg-Hook_secret9", "vk-callback-Secret7", "max_Hook-secret5"
MAX_HEADER = "X-Max-Bot-Api-Secret"

settings = settings_on_both_databases()


@dataclass
class Stack:
    tg: FakeBotApi
    vk: FakeVkApi
    max: FakeMaxApi
    codes: dict[str, str]
    env: dict[str, str]
    url: str

    def secrets(self) -> list[str]:
        return [self.tg.token, self.tg.token.partition(":")[2], VK_TOKEN, MAX_TOKEN]


@pytest.fixture
async def stack(settings, tmp_path, monkeypatch) -> AsyncIterator[Stack]:
    tg, vk, max_api = FakeBotApi(), FakeVkApi(), FakeMaxApi()
    tg_url, vk_url = await tg.start(), await vk.start()
    await max_api.start()
    port = free_port()
    variables = {
        "DATA_DIR": str(tmp_path / "data"),
        "BOT_TOKEN": tg.token,
        "TELEGRAM_API_URL": tg_url,
        "VK_TOKEN": VK_TOKEN,
        "VK_GROUP_ID": str(GROUP_ID),
        "VK_API_URL": vk_url,
        "VK_CALLBACK_SECRET": VK_SECRET,
        "VK_CONFIRMATION_CODE": "c0nfirm",
        "MAX_TOKEN": MAX_TOKEN,
        "MAX_API_URL": max_api.base_url,
        "MAX_WEBHOOK_SECRET": MAX_SECRET,
        "TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "WEBHOOK_BASE_URL": "https://bot.example.test",
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
    }
    if os.environ.get("DATABASE_URL"):
        variables["DATABASE_URL"] = os.environ["DATABASE_URL"]
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    services = await create_services(load_settings(env_file=None))
    try:
        region = await seed_region(services)
    finally:
        await services.close()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path), **variables}
    try:
        yield Stack(tg, vk, max_api, region.codes, env, f"http://127.0.0.1:{port}")
    finally:
        await tg.stop()
        await vk.stop()
        await max_api.close()


async def until(check, process, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if process.returncode is not None:
            raise AssertionError(f"the bot exited with {process.returncode}")
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.1)


def tg_update(update_id: int, text: str) -> dict:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_800_000_000,
            "chat": {"id": TG_USER, "type": "private"},
            "from": {"id": TG_USER, "is_bot": False, "first_name": "Ольга"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


def vk_update(text: str, ref: str, secret: str | None) -> dict:
    message = {
        "id": 0,
        "date": 1700000000,
        "peer_id": VK_USER,
        "from_id": VK_USER,
        "text": text,
        "attachments": [],
        "conversation_message_id": 1,
        "out": 0,
        "ref": ref,
    }
    update = {
        "type": "message_new",
        "event_id": f"ev-{text}-{secret}",
        "group_id": GROUP_ID,
        "object": {"message": message, "client_info": {"inline_keyboard": True}},
    }
    if secret is not None:
        update["secret"] = secret
    return update


async def inbox_count() -> int:
    services = await create_services(load_settings(env_file=None), migrate=False)
    try:
        async with services.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(InboxEvent)) or 0)
    finally:
        await services.close()


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


async def test_webhooks_secrets_metrics_and_json_logs(stack: Stack, tmp_path: Path) -> None:
    log_path = tmp_path / "bot.log"
    with log_path.open("wb") as log_file:
        process = await runtime.spawn(
            {**stack.env, "LOG_FORMAT": "json", "LOG_LEVEL": "DEBUG"}, "run", stderr=log_file
        )
    try:
        async with aiohttp.ClientSession() as http:

            async def up() -> bool:
                try:
                    async with http.get(f"{stack.url}/health") as answer:
                        return answer.status == 200
                except aiohttp.ClientError:
                    return False

            await until(up, process)
            start_tg = tg_update(501, f"/start {stack.codes['S1']}")
            start_max = bot_started(user_obj(MAX_USER), stack.codes["U1"])
            refused = [
                ("/telegram", start_tg, {}),
                ("/telegram", start_tg, {SECRET_HEADER: "guess"}),
                ("/vk", vk_update("Начать", stack.codes["S2"], None), {}),
                ("/vk", vk_update("Начать", stack.codes["S2"], "guess"), {}),
                ("/max", start_max, {}),
                ("/max", start_max, {MAX_HEADER: "guess"}),
            ]
            for path, body, headers in refused:
                async with http.post(f"{stack.url}{path}", json=body, headers=headers) as answer:
                    assert answer.status in (401, 403), (path, headers, answer.status)
            assert await inbox_count() == 0  # nothing refused was stored

            accepted = [
                ("/telegram", start_tg, {SECRET_HEADER: TG_SECRET}),
                ("/vk", vk_update("Начать", stack.codes["S2"], VK_SECRET), {}),
                ("/max", start_max, {MAX_HEADER: MAX_SECRET}),
            ]
            for path, body, headers in accepted:
                if path == "/telegram":  # its reply may ride in the answer (bot/handover.py)
                    status = await stack.tg.post_update(http, f"{stack.url}{path}", body, headers)
                    assert status == 200
                    continue
                async with http.post(f"{stack.url}{path}", json=body, headers=headers) as answer:
                    assert answer.status == 200, (path, await answer.text())
            await stack.tg.reply(TG_USER, "зарегистрированы", timeout=60)

            async def all_answered() -> bool:
                sent_max = [m for user, kind, m in stack.max.log if user == MAX_USER]
                return bool(stack.vk.to_peer(VK_USER)) and bool(sent_max)

            await until(all_answered, process)
            async with http.get(f"{stack.url}/metrics") as answer:
                assert answer.status == 200
                assert answer.headers["Content-Type"].startswith("text/plain")
                scraped = samples(await answer.text())
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(process.wait(), 60)
    assert process.returncode == 0

    for platform in ("tg", "vk", "max"):
        label = (("platform", platform),)
        assert scraped[("shnor_events_processed_total", label)] == 1
        assert scraped[("shnor_inbox_pending", label)] == 0
        assert ("shnor_outbox_pending", label) in scraped
    assert scraped[("shnor_send_failed", (("queue", "outbox"),))] == 0
    assert scraped[("shnor_reminder_lag_seconds", ())] == 0

    text = log_path.read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "message"} <= set(e) for e in lines)
    assert any("Бот запущен" in e["message"] for e in lines)
    assert any(e["level"] == "WARNING" and "секрета" in e["message"] for e in lines)
    for secret in [*stack.secrets(), TG_SECRET, VK_SECRET, MAX_SECRET]:
        assert secret not in text, secret


def test_json_line_carries_extra_fields_and_masks_them() -> None:
    from bot.logsafe import JsonFormatter, install

    install(["Zq9-extra-secret-value"])
    record = logging.makeLogRecord(
        {
            "name": "bot.processor",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "Чат %s: сбой",
            "args": ("42",),
            "platform": "vk",
            "chat": "42",
            "event_id": 7,
            "url": "https://h/Zq9-extra-secret-value/x",
        }
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "Чат 42: сбой" and entry["level"] == "WARNING"
    assert (entry["logger"], entry["platform"], entry["chat"], entry["event_id"]) == (
        "bot.processor",
        "vk",
        "42",
        7,
    )
    assert entry["url"] == "https://h/***/x"
    assert entry["ts"].endswith("+00:00")


def test_unknown_log_format_is_refused_with_a_russian_hint(tmp_path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LOG_FORMAT": "xml"}
    done = subprocess.run(
        [sys.executable, "-m", "bot", "reminders", "status"],
        cwd=runtime.ROOT,
        env={**env, "DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "LOG_FORMAT" in done.stderr and "text или json" in done.stderr
    assert not (tmp_path / "data").exists()


async def scrape(app) -> tuple[int, str]:
    from bot.webhook import WebhookServer

    server = WebhookServer(app, "127.0.0.1", 0)
    port = await server.start()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/metrics") as answer,
        ):
            return answer.status, await answer.text()
    finally:
        await server.stop()


async def never(_events) -> None:
    raise AssertionError("nothing is posted here")


async def test_metrics_show_a_late_reminder_and_failed_sends(settings) -> None:
    from bot.webhook import create_app
    from storage.models import Account, OutboxMessage, Person, Role

    services = await create_services(settings)
    try:
        due = datetime.now(UTC) - timedelta(minutes=10)
        async with services.sessions() as session:
            person = Person(role=Role.DIRECTOR, full_name="Ольга")
            session.add(person)
            await session.flush()
            account = Account(person_id=person.id, platform="tg", platform_user_id="9", chat_id="9")
            session.add(account)
            await session.flush()
            assert await notices.notify(
                session, person.id, OutText("Срок завтра"), key="late-1", now=due
            )
            session.add(OutboxMessage(platform="vk", chat_id="5", message={}, status="failed"))
            await session.commit()
        status, text = await scrape(create_app([], never, services.sessions))
    finally:
        await services.close()
    assert status == 200
    scraped = samples(text)
    lag = scraped[("shnor_reminder_lag_seconds", ())]
    assert 590 <= lag <= 900, lag
    assert scraped[("shnor_send_failed", (("queue", "outbox"),))] == 1
    assert scraped[("shnor_send_failed", (("queue", "deliveries"),))] == 0
    assert not any(name == "shnor_inbox_pending" for name, _ in scraped)  # no channel, no queue


async def test_metrics_without_the_database_answer_503(settings) -> None:
    from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

    from bot.webhook import create_app

    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    try:
        status, text = await scrape(create_app([], never, async_sessionmaker(engine)))
    finally:
        await engine.dispose()
    assert status == 503 and "database error" in text
