"""The real runner (`run_bot`, `python -m bot run`) against the local fake Bot API server:
polling restarts, webhooks, SIGTERM and SIGKILL, a second poller, a wrong token, an
unreachable API, and no token in logs or the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.app import create_services
from bot.config import Settings, load_settings
from bot.telegram import SECRET_HEADER
from storage.models import Account, Attachment, InboxEvent
from tests import runtime
from tests.conftest import seed_region
from tests.fake_bot_api import FakeBotApi
from tests.pg import requires_postgres, temporary_database
from tests.runtime import free_port, running
from tests.walk import PDF

USER = 5550001


@dataclass
class Env:
    api: FakeBotApi
    base_url: str
    codes: dict[str, str]
    env: dict[str, str]

    def settings(self) -> Settings:
        return load_settings(env_file=None)


@pytest.fixture
async def env(settings, tmp_path, monkeypatch) -> AsyncIterator[Env]:
    async with make_env(tmp_path, monkeypatch) as made:
        yield made


@pytest.fixture
async def pg_env(settings, tmp_path, monkeypatch) -> AsyncIterator[Env]:
    async with temporary_database() as url, make_env(tmp_path, monkeypatch, url) as made:
        yield made


@contextlib.asynccontextmanager
async def make_env(tmp_path, monkeypatch, database_url: str | None = None) -> AsyncIterator[Env]:
    api = FakeBotApi()
    base_url = await api.start()
    variables = {
        "DATA_DIR": str(tmp_path / "data"),
        "BOT_TOKEN": api.token,
        "TELEGRAM_API_URL": base_url,
    }
    if database_url:
        variables["DATABASE_URL"] = database_url
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    services = await create_services(load_settings(env_file=None))
    try:
        region = await seed_region(services)
    finally:
        await services.close()
    process_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        **variables,
    }
    try:
        yield Env(api, base_url, region.codes, process_env)
    finally:
        await api.stop()


async def count(settings: Settings, model) -> int:
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        await services.close()


async def spawn(env: Env, *args: str, **extra: str) -> asyncio.subprocess.Process:
    return await runtime.spawn({**env.env, **extra}, *args)


async def until(predicate, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def registered_replies(api: FakeBotApi) -> list[str]:
    return [s.text for s in api.sent if s.chat_id == USER and "зарегистрированы" in s.text]


async def walk_to_first_document(env: Env) -> None:
    api = env.api
    api.send_text(USER, f"/start {env.codes['S1']}")
    await api.reply(USER, "зарегистрированы", timeout=60)
    api.click(USER, "▶ Начать заполнение")
    await api.reply(USER, "вопрос 1 из")
    for _ in range(8):
        api.send_text(USER, "10")
        await api.reply(USER, "✅ Сохранено")
    api.click(USER, "Да")
    await api.reply(USER, "Прикрепите подтверждающий документ")


# --------------------------------------------------------------------------- polling


async def test_polling_restarted_with_unconfirmed_updates(env: Env):
    settings = env.settings()
    async with running(settings):
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await env.api.reply(USER, "зарегистрированы")
    env.api.redeliver_all()  # the confirming getUpdates never reached Telegram
    async with running(settings):
        env.api.send_text(USER, "/help")
        await env.api.reply(USER, "/resume")
    assert len(registered_replies(env.api)) == 1
    assert await count(settings, Account) == 1
    assert await count(settings, InboxEvent) == 2


async def test_update_the_library_cannot_read_does_not_stop_the_others(env: Env):
    """Item 22: an update without ``date`` (an older server's shape) is stored and failed."""
    settings = env.settings()
    async with running(settings):
        broken = {"update_id": env.api.next_id(), "message": {"message_id": 1, "chat": {"id": 7}}}
        env.api.push_raw(broken)
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await env.api.reply(USER, "зарегистрированы")
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            events = list(await session.scalars(select(InboxEvent).order_by(InboxEvent.id)))
    finally:
        await services.close()
    assert [(e.status, e.error_type) for e in events] == [
        ("failed", "ValidationError"),
        ("done", None),
    ]


async def test_unreachable_api_is_waited_for(env: Env, caplog):
    """Items 15/26: at start and during polling the bot waits and says so in Russian."""
    caplog.set_level(logging.WARNING)
    env.api.down = True
    settings = env.settings()
    async with running(settings) as task:
        await until(lambda: "Telegram API недоступен" in caplog.text)
        assert "Жду" in caplog.text and not task.done()
        env.api.down = False
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await env.api.reply(USER, "зарегистрированы")
        caplog.clear()
        env.api.down = True
        await until(lambda: "Telegram API недоступен" in caplog.text)
        env.api.down = False
        env.api.send_text(USER, "/help")
        await env.api.reply(USER, "/resume")


async def test_wrong_token_is_one_russian_line_and_exit_code(env: Env):
    process = await spawn(env, "run", BOT_TOKEN="4242:WRONG-TOKEN")
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    text = err.decode()
    assert process.returncode == 2
    assert "Telegram не принял BOT_TOKEN" in text
    assert "Traceback" not in text and "WRONG-TOKEN" not in text


@requires_postgres
async def test_second_poller_on_postgres_is_refused_and_restart_resumes(pg_env: Env):
    env = pg_env
    settings = env.settings()
    async with running(settings):
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await env.api.reply(USER, "зарегистрированы")
        process = await spawn(env, "run")
        _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "уже запущен" in err.decode() and "PostgreSQL" in err.decode()
    env.api.redeliver_all()
    async with running(settings):
        env.api.send_text(USER, "/help")
        await env.api.reply(USER, "/resume")
    assert len(registered_replies(env.api)) == 1


async def test_second_poller_is_refused(env: Env):
    settings = env.settings()
    async with running(settings):
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await env.api.reply(USER, "зарегистрированы")
        process = await spawn(env, "run")
        _out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "уже запущен" in err.decode()
    assert "Traceback" not in err.decode()


# --------------------------------------------------------------------------- signals


async def test_sigterm_during_replies_delivers_them(env: Env):
    """Item 23: SIGTERM while a reply is on its way: it arrives, then the bot exits 0."""
    process = await spawn(env, "run")
    try:
        await until(lambda: "getupdates" in env.api.calls, 60)
        env.api.send_delay = 1.5
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await until(lambda: "sendmessage" in env.api.calls)
        process.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
    assert process.returncode == 0, err.decode()
    assert len(registered_replies(env.api)) == 1


async def test_sigkill_while_sending_loses_nothing_and_repeats_nothing(env: Env):
    process = await spawn(env, "run")
    try:
        await until(lambda: "getupdates" in env.api.calls, 60)
        env.api.send_delay = 60  # the reply is committed and on its way…
        env.api.send_text(USER, f"/start {env.codes['S1']}")
        await until(lambda: "sendmessage" in env.api.calls)
        process.kill()  # …when the process dies
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    assert registered_replies(env.api) == []
    env.api.send_delay = 0
    again = await spawn(env, "run")
    try:
        await env.api.reply(USER, "зарегистрированы", timeout=60)
        env.api.send_text(USER, "/help")
        await env.api.reply(USER, "/resume")
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.communicate(), 60)
    assert len(registered_replies(env.api)) == 1
    assert await count(env.settings(), Account) == 1


async def test_sigkill_while_processing_loses_nothing_and_repeats_nothing(env: Env):
    """Killed after the document's update was stored, while the core was downloading it."""
    process = await spawn(env, "run")
    try:
        await walk_to_first_document(env)
        env.api.file_delay = 60
        env.api.send_document(USER, PDF, "план.pdf", "application/pdf")
        await until(lambda: "file" in env.api.calls)
        process.kill()
        await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
    assert await count(env.settings(), Attachment) == 0
    env.api.file_delay = 0
    again = await spawn(env, "run")
    try:
        await env.api.reply(USER, "план.pdf", "сохранён", timeout=60)
        env.api.send_text(USER, "/help")
        await env.api.reply(USER, "/resume")
    finally:
        again.send_signal(signal.SIGTERM)
        await asyncio.wait_for(again.communicate(), 60)
    assert await count(env.settings(), Attachment) == 1
    saved = [s for s in env.api.sent if s.chat_id == USER and "план.pdf" in s.text]
    assert len(saved) == 1


# --------------------------------------------------------------------------- webhooks


async def test_webhook_checks_the_secret_and_reports_health(env: Env, monkeypatch):
    port = free_port()
    monkeypatch.setenv("WEBHOOK_BASE_URL", "https://bot.example.test")
    monkeypatch.setenv("WEBHOOK_LISTEN", f"127.0.0.1:{port}")
    monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", "s3cret-Token_1")
    settings = env.settings()
    url = f"http://127.0.0.1:{port}"
    update = {
        "update_id": 77,
        "message": {
            "message_id": 1,
            "date": 1_800_000_000,
            "chat": {"id": USER, "type": "private"},
            "from": {"id": USER, "is_bot": False, "first_name": "Ольга"},
            "text": f"/start {env.codes['S1']}",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }
    async with running(settings), aiohttp.ClientSession() as http:
        await until(lambda: "setwebhook" in env.api.calls)
        await until(lambda: _listening(port))
        async with http.post(f"{url}/telegram", json=update) as answer:
            assert answer.status == 403
        wrong = {SECRET_HEADER: "guess"}
        async with http.post(f"{url}/telegram", json=update, headers=wrong) as answer:
            assert answer.status == 403
        assert await count(settings, InboxEvent) == 0
        right = {SECRET_HEADER: "s3cret-Token_1"}
        # Telegram runs the method in the answer (bot/handover.py): the reply rides in it
        assert await env.api.post_update(http, f"{url}/telegram", update, right) == 200
        assert await count(settings, InboxEvent) == 1  # stored before the 200
        await env.api.reply(USER, "зарегистрированы")
        async with http.get(f"{url}/health") as answer:
            assert answer.status == 200
            report = await answer.json()
    assert report["database"] == "ok"
    assert report["inbox"]["pending"] == 0
    assert set(report["last_event"]) == {"tg"}
    assert "getupdates" not in env.api.calls


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


# --------------------------------------------------------------------------- secrets


async def test_token_never_reaches_logs_or_the_database(env: Env, caplog, tmp_path):
    """Item 21: a failed download, a logged URL and an exception text; grep logs and DB."""
    caplog.set_level(logging.INFO)
    log_file = tmp_path / "bot.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger().addHandler(handler)
    token = env.api.token
    secret = token.partition(":")[2]
    settings = env.settings()
    try:
        async with running(settings):
            api = env.api
            await walk_to_first_document(env)
            api.send_document(USER, PDF, "план.pdf", "application/pdf", stored=False)
            await api.reply(USER, "план.pdf")
            logging.getLogger("aiohttp.client").error(
                "GET %s/file/bot%s/x failed", env.base_url, token
            )
            try:
                raise RuntimeError(f"cannot reach {env.base_url}/bot{token}/getMe")
            except RuntimeError:
                logging.getLogger("bot.test").exception("request failed")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            errors = list(await session.scalars(select(Attachment.last_error)))
    finally:
        await services.close()
    assert errors and all(e and secret not in e for e in errors), errors
    assert "request failed" in caplog.text
    assert "/bot***/getMe" in caplog.text and "/bot***/getMe" in log_file.read_text()
    assert secret not in caplog.text
    assert secret not in log_file.read_text(encoding="utf-8")
    database = Path(settings.storage.data_dir)
    for path in database.glob("bot.sqlite3*"):
        assert secret.encode() not in path.read_bytes(), path


async def test_poll_confirms_a_batch_only_after_it_was_stored(env: Env):
    from bot.retry import Backoff
    from bot.telegram import TelegramChannel, create_bot

    bot = create_bot(env.api.token, env.base_url)
    channel = TelegramChannel(bot, poll_timeout=1, backoff=Backoff(first=0.05, cap=0.1))
    stored: list[str] = []
    calls = 0

    confirmed_at_call: list[int] = []

    async def sink(events) -> None:
        nonlocal calls
        calls += 1
        confirmed_at_call.append(env.api.confirmed_up_to)
        if calls == 1:
            raise RuntimeError("database is down")
        stored.extend(e.key for e in events)

    env.api.send_text(USER, "первое")
    env.api.send_text(USER, "второе")
    first, second = (u["update_id"] for u in env.api.history)
    polling = asyncio.create_task(channel.poll(sink))
    try:
        await until(lambda: len(stored) == 2)
        # the failed batch was not confirmed: it came again, whole
        assert calls == 2 and all(c <= first for c in confirmed_at_call)
        await until(lambda: env.api.confirmed_up_to == second + 1)
    finally:
        polling.cancel()
        await asyncio.gather(polling, return_exceptions=True)
        await channel.close()
    assert stored == [str(first), str(second)]
