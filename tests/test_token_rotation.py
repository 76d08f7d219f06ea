"""Token rotation (issue 11 §5): BotFather /revoke gives the same bot a new token; the admin
puts it into BOT_TOKEN and restarts. Every update is processed once, replies recorded under
the old token are sent with the new one, and the old token is written nowhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from bot.app import create_services
from bot.config import load_settings
from bot.telegram import SECRET_HEADER
from handlers.types import OutText, TokenRejected
from storage import notices
from storage.models import (
    Account,
    Delivery,
    DeliveryStatus,
    InboxEvent,
    OutboxMessage,
    OutboxStatus,
)
from tests import runtime
from tests.conftest import seed_region
from tests.fake_bot_api import FakeBotApi
from tests.fake_max_api import TOKEN as MAX_TOKEN
from tests.fake_max_api import FakeMaxApi, bot_started, user_message, user_obj
from tests.fake_vk_api import GROUP_ID, FakeVkApi
from tests.fake_vk_api import TOKEN as VK_TOKEN
from tests.reminder_helpers import TG, FixedClock, World, build_world, utc, world_database
from tests.runtime import running
from tests.test_intake_runtime import (
    USER,
    Env,
    _listening,
    count,
    free_port,
    make_env,
    registered_replies,
    spawn,
    until,
)
from tests.test_link_reminders import reminders
from tests.test_run_all_platforms import MAX_USER, VK_USER, vk_message

OLD = "4242:FAKE-TOKEN"
NEW = "4242:NEW-TOKEN-B"


@pytest.fixture
async def env(settings, tmp_path, monkeypatch) -> AsyncIterator[Env]:
    async with make_env(tmp_path, monkeypatch) as made:
        assert made.api.token == OLD
        yield made


def help_replies(api: FakeBotApi) -> list[str]:
    return [s.token for s in api.sent if s.chat_id == USER and "/help — эта справка" in s.text]


async def sending_now(api: FakeBotApi) -> None:
    """Wait until a sendMessage is in flight (held by ``send_delay``)."""
    before = api.calls.count("sendmessage")
    await until(lambda: api.calls.count("sendmessage") > before, 60)


async def outbox_statuses(env: Env) -> list[str]:
    return await outbox_statuses_of(env.settings())


async def outbox_statuses_of(settings) -> list[str]:
    services = await create_services(settings, migrate=False)
    try:
        async with services.sessions() as session:
            return [str(s) for s in await session.scalars(select(OutboxMessage.status))]
    finally:
        await services.close()


def assert_old_token_nowhere(env: Env, *texts: str) -> None:
    old = OLD.partition(":")[2].encode()
    for text in texts:
        assert old.decode() not in text
    for path in Path(env.env["DATA_DIR"]).rglob("*"):
        if path.is_file():
            assert old not in path.read_bytes(), path


async def register(env: Env) -> None:
    env.api.send_text(USER, f"/start {env.codes['S1']}")
    await env.api.reply(USER, "зарегистрированы", timeout=60)


async def stop(process: asyncio.subprocess.Process) -> str:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    return err.decode()


# --------------------------------------------------------------------------- polling


async def test_polling_sigterm_revoke_restart_processes_every_update_once(env: Env):
    api = env.api
    old = await spawn(env, "run")
    try:
        await register(env)
        api.send_delay = 1.0
        api.send_text(USER, "/help")
        await sending_now(api)
        old.send_signal(signal.SIGTERM)  # a reply on its way, more updates arriving
        api.send_text(USER, "/help")
        api.send_text(USER, "/help")
        old_err = await stop(old)
    finally:
        if old.returncode is None:
            old.kill()
    assert old.returncode == 0, old_err
    api.send_delay = 0
    api.revoke(NEW)
    api.send_text(USER, "/help")  # sent while no bot runs: waits at Telegram
    new = await spawn(env, "run", BOT_TOKEN=NEW)
    new_err = ""
    try:
        # generous: a cold start under a full test run on 2 cores takes a while
        await until(lambda: len(help_replies(api)) >= 4, 150)
        api.send_text(USER, "/help")
        await until(lambda: len(help_replies(api)) >= 5, 150)  # after any resent one
    except AssertionError:
        new_err = await stop(new)
        raise AssertionError(f"{help_replies(api)}\n{old_err[-3000:]}\n{new_err[-3000:]}") from None
    finally:
        new_err = new_err or await stop(new)
    assert new.returncode == 0, new_err
    # once each: the reply in flight at SIGTERM went out with the old token and its sent
    # mark was committed (tests/test_graceful_stop.py), so it is not sent again
    assert help_replies(api)[1:] == [NEW] * 4
    assert len(registered_replies(api)) == 1
    assert await count(env.settings(), InboxEvent) == 6  # every update stored once
    assert await count(env.settings(), Account) == 1
    assert_old_token_nowhere(env, old_err, new_err)
    assert "database is locked" not in old_err


async def test_revoked_while_running_exits_in_russian_and_the_new_token_sends_the_reply(
    env: Env,
):
    api = env.api
    old = await spawn(env, "run")
    try:
        await register(env)
        api.send_delay = 1.0
        api.send_text(USER, "/help")
        await sending_now(api)
        api.revoke(NEW)  # the reply in flight and the next getUpdates answer 401
        old_err = await stop_by_itself(old)
    finally:
        if old.returncode is None:
            old.kill()
    assert old.returncode == 2, old_err
    assert "Telegram не принял BOT_TOKEN" in old_err
    assert "Traceback" not in old_err
    assert help_replies(api) == []
    assert "failed" not in await outbox_statuses(env)  # left for the next process
    api.send_delay = 0
    api.send_text(USER, "/help")
    new = await spawn(env, "run", BOT_TOKEN=NEW)
    try:
        await until(lambda: len(help_replies(api)) == 2, 60)
    finally:
        new_err = await stop(new)
    assert help_replies(api) == [NEW, NEW]
    assert set(await outbox_statuses(env)) == {str(OutboxStatus.SENT)}
    assert await count(env.settings(), InboxEvent) == 3
    assert_old_token_nowhere(env, old_err, new_err)


async def stop_by_itself(process: asyncio.subprocess.Process) -> str:
    _out, err = await asyncio.wait_for(process.communicate(), 60)
    return err.decode()


async def test_old_and_new_token_of_one_bot_never_run_at_once(env: Env):
    """Same bot id, another token: the lock is the bot's, not the token's."""
    env.api.also_valid.add(NEW)  # e.g. the old process drains while the new one starts
    async with running(env.settings()):
        await register(env)
        process = await spawn(env, "run", BOT_TOKEN=NEW)
        err = await stop_by_itself(process)
    assert process.returncode == 2, err
    assert "уже запущен" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- webhook


async def test_webhook_rotation_sets_the_new_secret_and_refuses_the_old(env: Env, monkeypatch):
    api = env.api
    port = free_port()
    monkeypatch.setenv("WEBHOOK_BASE_URL", "https://bot.example.test")
    monkeypatch.setenv("WEBHOOK_LISTEN", f"127.0.0.1:{port}")
    # this story is about Bot API sends in flight: no replies in the webhook answers
    monkeypatch.setenv("WEBHOOK_ANSWER_WAIT_S", "0")
    url = f"http://127.0.0.1:{port}/telegram"
    ids = iter(range(900, 1000))

    def update(text: str) -> dict:
        length = len(text.split()[0])
        return {
            "update_id": next(ids),
            "message": {
                "message_id": next(ids),
                "date": 1_800_000_000,
                "chat": {"id": USER, "type": "private"},
                "from": {"id": USER, "is_bot": False, "first_name": "Ольга"},
                "text": text,
                "entities": [{"type": "bot_command", "offset": 0, "length": length}],
            },
        }

    async with aiohttp.ClientSession() as http:

        async def post(body: dict, secret: str | None) -> int:
            headers = {SECRET_HEADER: secret} if secret else {}
            async with http.post(url, json=body, headers=headers) as answer:
                return answer.status

        async with running(env.settings()):
            await until(lambda: api.webhook_secret is not None)
            await until(lambda: _listening(port))
            old_secret = api.webhook_secret
            assert await post(update(f"/start {env.codes['S1']}"), old_secret) == 200
            await api.reply(USER, "зарегистрированы")
            api.send_delay = 1.0
            assert await post(update("/help"), old_secret) == 200
            await sending_now(api)
            api.revoke(NEW)  # the reply in flight is refused: it stays in the outbox
            await asyncio.sleep(1.5)
        assert help_replies(api) == []
        api.send_delay = 0
        api.webhook_secret = None
        monkeypatch.setenv("BOT_TOKEN", NEW)
        async with running(env.settings()):
            await until(lambda: api.webhook_secret is not None)
            await until(lambda: _listening(port))
            assert api.webhook_secret != old_secret
            await until(lambda: len(help_replies(api)) == 1)  # the old reply, with NEW
            before = await count(env.settings(), InboxEvent)
            assert await post(update("/help"), old_secret) == 403
            assert await count(env.settings(), InboxEvent) == before
            assert await post(update("/help"), api.webhook_secret) == 200
            await until(lambda: len(help_replies(api)) == 2)
    assert help_replies(api) == [NEW, NEW]
    assert set(await outbox_statuses(env)) == {str(OutboxStatus.SENT)}
    assert_old_token_nowhere(env)


# --------------------------------------------------------------------------- notices


@pytest.fixture(params=["sqlite", "postgres"])
async def world(request, tmp_path: Path):
    made_sessions, engine, drop = await world_database(request.param, tmp_path)
    yield await build_world(made_sessions, engine)
    await drop()


async def test_a_notice_refused_for_the_revoked_token_is_sent_by_the_new_process(world: World):
    now = utc(2026, 3, 2, 9, 0)
    async with world.sessions() as session:
        message = OutText("Анкета возвращена на доработку.")
        await notices.notify(session, world.people["d1"], message, key="returned:1:1", now=now)
        await session.commit()
    old, old_messengers = reminders(world, FixedClock(now))
    old_messengers[TG].fail["d1"] = TokenRejected("Unauthorized")
    await old.tick()
    async with world.sessions() as session:
        rows = list(await session.scalars(select(Delivery)))
    assert [(r.status, r.attempts) for r in rows] == [(DeliveryStatus.PENDING, 0)]
    new, new_messengers = reminders(world, FixedClock(now))
    await new.tick()
    assert new_messengers[TG].texts("d1") == ["Анкета возвращена на доработку."]
    async with world.sessions() as session:
        rows = list(await session.scalars(select(Delivery)))
    assert [r.status for r in rows] == [DeliveryStatus.SENT]


# --------------------------------------------------------------------------- VK


class VkWorld:
    """A fake VK API, the bot's VK settings in the environment and a seeded region."""

    def __init__(self, vk: FakeVkApi, codes: dict[str, str], data_dir: Path) -> None:
        self.vk, self.codes, self.data_dir = vk, codes, data_dir

    def texts(self, fragment: str) -> list[str]:
        return [m.text for m in self.vk.to_peer(VK_USER) if fragment in m.text]


@contextlib.asynccontextmanager
async def vk_world(tmp_path: Path, monkeypatch) -> AsyncIterator[VkWorld]:
    vk = FakeVkApi()
    variables = {
        "DATA_DIR": str(tmp_path / "data"),
        "VK_TOKEN": VK_TOKEN,
        "VK_GROUP_ID": str(GROUP_ID),
        "VK_API_URL": await vk.start(),
    }
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    try:
        services = await create_services(load_settings(env_file=None))
        try:
            codes = (await seed_region(services)).codes
        finally:
            await services.close()
        yield VkWorld(vk, codes, Path(variables["DATA_DIR"]))
    finally:
        await vk.stop()


async def test_vk_token_replaced_between_runs_loses_no_event(settings, tmp_path, monkeypatch):
    """A new community key (the old one deleted): the saved long-poll ``ts`` is the group's,
    so the events that came while no bot ran are processed once, with the new key."""
    async with vk_world(tmp_path, monkeypatch) as world:
        vk, codes, texts = world.vk, world.codes, world.texts
        async with running(load_settings(env_file=None)):
            await until(lambda: bool(vk.lp_requests))  # the first poll starts at the newest
            vk.push("message_new", vk_message(f"/start {codes['S1']}"))
            await until(lambda: texts("МБОУ"))
        vk.token = "vk-new-token"  # the old key answers error 5 from now on
        vk.push("message_new", vk_message("/help"))
        monkeypatch.setenv("VK_TOKEN", "vk-new-token")
        new_settings = load_settings(env_file=None)
        async with running(new_settings):
            await until(lambda: texts("/resume"))
            vk.push("message_new", vk_message("/help"))
            await until(lambda: len(texts("/resume")) == 2)
        assert len(texts("МБОУ")) == 1
        assert await count(new_settings, InboxEvent) == 3
        for path in world.data_dir.rglob("*"):
            if path.is_file():
                assert VK_TOKEN.encode() not in path.read_bytes(), path


async def test_vk_reply_refused_for_the_deleted_key_is_sent_with_the_new_one(
    settings, tmp_path, monkeypatch
):
    async with vk_world(tmp_path, monkeypatch) as world:
        vk, codes, texts = world.vk, world.codes, world.texts
        async with running(load_settings(env_file=None)):
            await until(lambda: bool(vk.lp_requests))
            vk.push("message_new", vk_message(f"/start {codes['S1']}"))
            await until(lambda: texts("МБОУ"))
            vk.token = "vk-new-token"  # the key is deleted while the bot runs
            sends = len(vk.calls_of("messages.send"))
            vk.push("message_new", vk_message("/help"))
            await until(lambda: len(vk.calls_of("messages.send")) > sends)
        statuses = await outbox_statuses_of(load_settings(env_file=None))
        assert "failed" not in statuses and "pending" in statuses
        monkeypatch.setenv("VK_TOKEN", "vk-new-token")
        async with running(load_settings(env_file=None)):
            await until(lambda: texts("/resume"))
        assert set(await outbox_statuses_of(load_settings(env_file=None))) == {"sent"}


# --------------------------------------------------------------------------- MAX


async def test_max_token_revoked_while_running_the_reply_waits_for_the_new_one(
    settings, tmp_path, monkeypatch
):
    fake = await FakeMaxApi().start()
    process_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "DATA_DIR": str(tmp_path / "data"),
        "MAX_TOKEN": MAX_TOKEN,
        "MAX_API_URL": fake.base_url,
    }
    monkeypatch.delenv("BOT_TOKEN", raising=False)
    for name, value in process_env.items():
        monkeypatch.setenv(name, value)
    user = user_obj(MAX_USER)

    def texts(fragment: str) -> list[str]:
        sent = [m.text or "" for u, _kind, m in fake.log if u == MAX_USER]
        return [text for text in sent if fragment in text]

    try:
        services = await create_services(load_settings(env_file=None))
        try:
            codes = (await seed_region(services)).codes
        finally:
            await services.close()
        old = await runtime.spawn(process_env, "run")
        try:
            fake.push(bot_started(user, codes["U1"]))
            await until(lambda: texts("МБОУ"), 60)
            polls = len(fake.requests_to("GET", "/updates"))
            await until(lambda: len(fake.requests_to("GET", "/updates")) > polls)
            fake.token = "max-new-token"  # revoked while a long poll is open:
            fake.push(user_message(user, "/help"))  # it still brings this, the reply gets 401
            old_err = await stop_by_itself(old)
        finally:
            if old.returncode is None:
                old.kill()
        assert old.returncode == 2, old_err
        assert "Traceback" not in old_err and MAX_TOKEN not in old_err
        statuses = await outbox_statuses_of(load_settings(env_file=None))
        assert "failed" not in statuses and "pending" in statuses
        new = await runtime.spawn({**process_env, "MAX_TOKEN": "max-new-token"}, "run")
        try:
            await until(lambda: texts("/resume"), 60)
        finally:
            await stop(new)
        assert len(texts("/resume")) == 1
        assert set(await outbox_statuses_of(load_settings(env_file=None))) == {"sent"}
    finally:
        await fake.close()
