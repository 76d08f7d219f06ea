"""The crash test's world, shared by bench/crash.py and tests/test_crash_small.py.

Several real `python -m bot run` workers in webhook mode share one PostgreSQL database. A
local fake Bot API server (tests/fake_bot_api.py) takes their sends; a round-robin "load
balancer" here POSTs every update to a worker's /telegram with the secret and, like Telegram,
tries again (the next worker) until one answers 200. Simulated directors register with
their school's invite code and walk ``shnor_school``, each sending its next action only
after the bot's reply arrived. A killer SIGKILLs a random worker at random moments and
restarts it. At the end the backlog drains and :func:`check` compares the database with
what the fake server and the balancer recorded.

Each worker has its own BOT_TOKEN of the same fake bot: the run lock (bot/runlock.py) allows
one process per token and database even in webhook mode (bot/runner.py takes it always).

What is checked, and how, is in tests/crash_checks.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import socket
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.app import Services, create_services
from bot.config import load_settings
from bot.telegram import SECRET_HEADER
from forms.schema import Question, QuestionKind
from storage.admin import import_schools, issue_invites, open_campaign
from storage.database import create_engine
from storage.models import (
    Delivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    School,
    utcnow,
)
from storage.school_import import SchoolRow
from tests import runtime
from tests.crash_checks import Figures, check, is_reminder
from tests.fake_bot_api import FakeBotApi, Sent
from tests.runtime import free_port

SECRET = "crash-test-webhook-secret"
ZONE = "Europe/Moscow"
NOTE = "Работа запланирована на следующий учебный год, приказ готовится."
SAVED = "✅ Сохранено"
NOTE_SAVED = "✅ Записка сохранена"
FIRST_USER = 7_000_000


# --------------------------------------------------------------------------- database


@contextlib.asynccontextmanager
async def fresh_database(admin_url: str):
    """A throw-away database next to ``admin_url``, dropped at the end."""
    name = f"crash_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def open_services(url: str, data_dir: Path, migrate: bool = True) -> Services:
    os.environ["DATA_DIR"] = str(data_dir)
    for name in ("DATABASE_URL", "BOT_TOKEN", "ADMINS"):
        os.environ.pop(name, None)
    return await create_services(load_settings(env_file=None), database_url=url, migrate=migrate)


async def seed(url: str, data_dir: Path, n: int) -> tuple[list[str], dict[str, Question]]:
    """Migrate, import ``n`` schools, open a campaign due today, issue invites."""
    services = await open_services(url, data_dir)
    try:
        today = services.conversation.today()
        rows = [
            SchoolRow(i + 2, f"Район {i % 20 + 1}", f"МБОУ СОШ № {i + 1}", f"C{i + 1}", True,
                      i % 3 == 0, i % 2 == 0, None)
            for i in range(n)
        ]  # fmt: skip
        async with services.sessions() as session:
            await import_schools(session, "Область краш-теста", rows, ZONE)
            form = services.forms.latest("shnor_school")
            campaign, _ = await open_campaign(
                session, form, today, today - timedelta(days=7), "Мониторинг"
            )
            # opened a week ago: this morning's reminder moment (REMINDER_TIME, the minute
            # the run starts) is after the campaign's creation, so it is planned
            campaign.created_at = utcnow() - timedelta(days=7)
            invites = await issue_invites(session)
            names = {s.name: s.code for s in await session.scalars(select(School))}
            await session.commit()
        codes = {names[row.school]: row.code for row in invites if row.school}
        questions = {q.text: q for _s, _g, q in form.iter_questions()}
        return [codes[f"C{i + 1}"] for i in range(n)], questions
    finally:
        await services.close()


# --------------------------------------------------------------------------- workers


@dataclass
class Worker:
    index: int
    env: dict[str, str]
    port: int
    log_path: Path
    process: asyncio.subprocess.Process | None = None
    starts: int = 0
    listening: bool = False  # the balancer sends only to a worker that listens
    _probe: asyncio.Task | None = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def _wait_listening(self) -> None:
        while self.alive:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                    self.listening = True
                    return
            await asyncio.sleep(0.1)

    async def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = await runtime.spawn(
                self.env, "run", stderr=log, stdout=asyncio.subprocess.DEVNULL
            )
        self._probe = asyncio.create_task(self._wait_listening())

    async def kill(self) -> None:
        self.listening = False
        if self.alive:
            assert self.process is not None
            self.process.kill()
            await self.process.wait()

    async def stop(self) -> int | None:
        self.listening = False
        if not self.alive:
            return None
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 40)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        return self.process.returncode


def worker_env(
    index: int, url: str, api: FakeBotApi, api_url: str, folder: Path, reminder_time: str
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(folder),
        # one font cache for every start (matplotlib builds it in ~20 s otherwise)
        "MPLCONFIGDIR": str(Path(os.environ.get("TMPDIR", "/tmp")) / "crash-mplconfig"),
        "DATA_DIR": str(folder / f"worker{index}"),
        "DATABASE_URL": url,
        "BOT_TOKEN": f"{api.token}-W{index}",
        "TELEGRAM_API_URL": api_url,
        "WEBHOOK_BASE_URL": "https://bot.example.test",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "WORKERS": "2",  # several webhook workers share the bot on PostgreSQL
        "REMINDER_OFFSETS": "0",
        "REMINDER_TIME": reminder_time,
        "REMINDER_QUIET_START": "00:00",
        "REMINDER_QUIET_END": "00:00",
        # a dead worker's claimed reminders are recovered after this (default 10 min)
        "REMINDER_CLAIM_TIMEOUT": "20",
    }


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    api: FakeBotApi
    workers: list[Worker]
    http: aiohttp.ClientSession
    reply_timeout: float
    accepted: set[int] = field(default_factory=set)  # update_ids answered 200
    refused: int = 0  # tries that got no 200 (a dead or starting worker)
    kills: list[tuple[float, int]] = field(default_factory=list)  # (monotonic, worker)
    directors: int = 0
    registered: int = 0
    all_registered: asyncio.Event = field(default_factory=asyncio.Event)
    _next: int = 0

    async def deliver(self, update: dict[str, Any]) -> None:
        """POST to the workers round-robin until one answers 200, as Telegram retries; a
        method in the answer is run once the answer has arrived whole, as Telegram does."""
        deadline = time.monotonic() + self.reply_timeout
        while True:
            for _ in range(len(self.workers)):
                worker = self.workers[self._next % len(self.workers)]
                self._next += 1
                if not (worker.alive and worker.listening):
                    continue
                try:
                    status = await self.api.post_update(
                        self.http,
                        f"http://127.0.0.1:{worker.port}/telegram",
                        update,
                        {SECRET_HEADER: SECRET},
                        sender=f"answer-W{worker.index}",
                    )
                    if status == 200:
                        self.accepted.add(int(update["update_id"]))
                        return
                except (aiohttp.ClientError, TimeoutError, OSError):
                    pass
                self.refused += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"no worker accepted update {update['update_id']}")
            await asyncio.sleep(0.2)


@dataclass
class Director:
    world: World
    user_id: int
    code: str
    questions: dict[str, Question]
    steps: int
    acked: list[tuple[str, Any]] = field(default_factory=list)  # (question id, value)
    actions: int = 0
    yes_next: bool = True
    unanswered_at: int | None = None  # messages seen when the last reply never came
    error: str | None = None
    _last_replies: list[Sent] = field(default_factory=list)

    def _chat(self) -> list[Sent]:
        return self.world.api.by_chat.get(self.user_id, [])

    async def act(self, update: dict[str, Any]) -> list[Sent] | None:
        """Send one action and wait for the bot's reply (reminders do not count)."""
        api = self.world.api
        mark = len(self._chat())
        await self.world.deliver(update)
        self.actions += 1
        seen = mark
        while True:
            if not await api.wait_chat(self.user_id, seen, self.world.reply_timeout):
                self.unanswered_at = mark
                return None
            seen = len(self._chat())
            if self._replies(mark):
                await asyncio.sleep(0.05)  # the rest of a multi-message reply
                self._last_replies = self._replies(mark)
                return self._last_replies

    def _replies(self, mark: int) -> list[Sent]:
        """Messages since ``mark`` that answer the director: not reminders, and not a
        repeat of the previous action's reply (a reply delivered again after a kill, counted
        as a duplicate by :func:`check`, must not be taken for the answer to this action)."""
        chat = self._chat()
        before = {s.text for s in self._last_replies}
        fresh = []
        for sent in chat[mark:]:
            if not is_reminder(sent) and sent.text not in before:
                fresh.append(sent)
            before.add(sent.text)
        return fresh

    def current_question(self) -> Question | None:
        for sent in reversed(self._last_replies):
            if is_reminder(sent):
                continue
            found = [q for t, q in self.questions.items() if t in sent.text]
            return max(found, key=lambda q: len(q.text)) if found else None
        return None

    async def answer(self, question: Question, update: dict[str, Any], value: Any) -> bool:
        replies = await self.act(update)
        if replies is None:
            return False
        if any(SAVED in s.text for s in replies):
            self.acked.append((question.id, value))
        return True

    async def step(self) -> bool:
        api = self.world.api
        question = self.current_question()
        if question is None:
            return False  # the review (or something unexpected): this walk is over
        if question.kind == QuestionKind.YES_NO:
            yes = self.yes_next and not question.document_when_yes
            self.yes_next = not self.yes_next
            update = api.click_update(self.user_id, "Да" if yes else "Нет")
            if not await self.answer(question, update, yes):
                return False
            if not yes and question.note_when_no:
                replies = await self.act(api.text_update(self.user_id, NOTE))
                return replies is not None
            return True
        if question.kind == QuestionKind.INTEGER:
            value = 20 if question.id == "teachers_total" else 5
            return await self.answer(question, api.text_update(self.user_id, str(value)), value)
        return await self.act(api.text_update(self.user_id, "Текст ответа")) is not None

    async def walk(self) -> None:
        api = self.world.api
        try:
            registered = await self.act(api.text_update(self.user_id, f"/start {self.code}"))
            self.world.registered += 1
            if self.world.registered == self.world.directors:
                self.world.all_registered.set()
            if registered is None:
                return
            if await self.act(api.click_update(self.user_id, "▶ Начать заполнение")) is None:
                return
            while self.actions < self.steps and await self.step():
                pass
        except Exception as exc:  # a broken walk is reported, not raised
            self.error = f"{type(exc).__name__}: {exc}"[:300]


# --------------------------------------------------------------------------- the run


async def killer(
    world: World, kills: int, interval: float, rng: random.Random, registered: asyncio.Event
) -> int:
    """Kills start once every director is registered, so the restarted workers' reminder
    ticks find recipients (registration itself runs under kills in the 500 run's retries)."""
    await registered.wait()
    made = 0
    while made < kills:
        await asyncio.sleep(rng.uniform(0.3, 1.7) * interval)
        serving = [w for w in world.workers if w.alive and w.listening]
        if not serving:
            continue
        victim = rng.choice(serving)
        world.kills.append((time.monotonic(), victim.index))
        await victim.kill()
        made += 1
        await asyncio.sleep(rng.uniform(0.1, 1.0))
        await victim.start()
    return made


async def drain(url: str, data_dir: Path, timeout: float) -> None:
    """Wait until no inbox event, reply or due reminder is pending (or ``timeout``)."""
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                pending = await connection.scalar(
                    select(func.count())
                    .select_from(InboxEvent)
                    .where(InboxEvent.status == InboxStatus.PENDING)
                )
                unsent = await connection.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.status == OutboxStatus.PENDING)
                )
                reminders = await connection.scalar(
                    select(func.count())
                    .select_from(Delivery)
                    .where(Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.CLAIMED]))
                )
            if not pending and not unsent and not reminders:
                return
            await asyncio.sleep(0.5)
    finally:
        await engine.dispose()


async def _wait_listening(workers: list[Worker], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for worker in workers:
        while not worker.listening:
            if not worker.alive or time.monotonic() > deadline:
                raise RuntimeError(
                    f"worker {worker.index} did not start; see {worker.log_path}:\n"
                    + worker.log_path.read_text(errors="replace")[-2000:]
                )
            await asyncio.sleep(0.2)


async def run_crash(
    admin_url: str,
    *,
    n: int = 500,
    kills: int = 20,
    workers: int = 2,
    seed_value: int = 1,
    kill_interval: float = 5.0,
    steps: int = 40,
    reply_timeout: float = 90.0,
    drain_timeout: float = 90.0,
    reminder_in: float = 120.0,
    folder: Path | None = None,
) -> Figures:
    assert workers >= 2, "the crash test needs two or more workers"
    rng = random.Random(seed_value)
    own_folder = folder is None and not os.environ.get("CRASH_KEEP")
    folder = folder or Path(os.environ.get("TMPDIR", "/tmp")) / f"crash-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True, exist_ok=True)
    figures = Figures(directors=n, workers=workers)
    api = FakeBotApi()
    api.also_tokens = {f"{api.token}-W{i}" for i in range(workers)}
    api_url = await api.start()
    try:
        async with fresh_database(admin_url) as url:
            codes, questions = await seed(url, folder / "seed", n)
            moment = datetime.now(ZoneInfo(ZONE)) + timedelta(seconds=reminder_in)
            reminder_time = moment.strftime("%H:%M")
            pool = [
                Worker(i, worker_env(i, url, api, api_url, folder, reminder_time),
                       free_port(), folder / f"worker{i}.log")
                for i in range(workers)
            ]  # fmt: skip
            for worker in pool:
                worker.env["WEBHOOK_LISTEN"] = f"127.0.0.1:{worker.port}"
                await worker.start()
            timeout = aiohttp.ClientTimeout(total=30)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                world = World(api, pool, http, reply_timeout, directors=n)
                try:
                    await _wait_listening(pool, 90)
                    directors = [
                        Director(world, FIRST_USER + i, code, questions, steps)
                        for i, code in enumerate(codes)
                    ]
                    started = time.monotonic()
                    killing = asyncio.create_task(
                        killer(world, kills, kill_interval, rng, world.all_registered)
                    )
                    await asyncio.gather(*(d.walk() for d in directors))
                    figures.kills = await killing
                    figures.elapsed = time.monotonic() - started
                    for worker in pool:
                        if not worker.alive:
                            await worker.start()
                    await drain(url, folder, drain_timeout)
                finally:
                    for worker in pool:
                        await worker.stop()
                figures.refused = world.refused
                await check(url, world, directors, figures)
    finally:
        await api.stop()
        if own_folder:
            shutil.rmtree(folder, ignore_errors=True)
    return figures
