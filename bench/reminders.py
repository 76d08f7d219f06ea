"""Benchmark: a wave of reminders through the real tick, sender and aiogram Bot.

    python bench/reminders.py              # 3,000 recipients, a few minutes
    python bench/reminders.py --n 40000    # the full wave (~30 minutes at 25/s)

What it does:

1. builds a SQLite database (or ``--db postgresql+asyncpg://…``, in a throw-away schema) with
   N schools, one director each, and a questionnaire due in 3 days for all of them; every
   10th school also has two more questionnaires (three messages to one chat: the per-chat
   limit is exercised), every 500th director has blocked the bot (403), and the fake server
   answers one request with 429 retry_after=1;
2. serves a fake Bot API (aiohttp on 127.0.0.1) that records when each message arrives;
3. runs the reminder tick in a child process (the real ``Reminders`` + ``Sender`` +
   ``TelegramMessenger`` on an aiogram ``Bot`` pointed at the fake server), SIGKILLs it
   halfway, restarts it, and lets it finish;
4. prints the achieved overall rate, the highest per-chat rate, duplicates (the same
   message to the same chat twice) and what the database says about every delivery.

The last line is ``rate_per_s=<N> max_per_chat_per_s=<N> duplicates=<N>``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from aiohttp import web  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

PLATFORM = "tg"
TOKENS = ("1001:run-one", "1002:run-two")
CHAT_BASE = 10_000_000


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- fake Bot API


@dataclass
class FakeBotApi:
    blocked: set[str]
    flood_at: int | None
    received: list[tuple[str, str, str, float]] = field(default_factory=list)  # ok sends
    refused: Counter = field(default_factory=Counter)
    requests: int = 0
    message_id: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        token = request.match_info["token"]
        method = request.match_info["method"].lower()
        form = await request.post()
        self.requests += 1
        if method != "sendmessage":
            return web.json_response({"ok": True, "result": True})
        chat = str(form.get("chat_id"))
        if self.flood_at is not None and self.requests == self.flood_at:
            self.refused["429"] += 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                },
                status=429,
            )
        if chat in self.blocked:
            self.refused["403"] += 1
            return web.json_response(
                {
                    "ok": False,
                    "error_code": 403,
                    "description": "Forbidden: bot was blocked by the user",
                },
                status=403,
            )
        self.message_id += 1
        body = str(form.get("text"))
        self.received.append((token, chat, body, arrived))
        return web.json_response(
            {
                "ok": True,
                "result": {
                    "message_id": self.message_id,
                    "date": int(time.time()),
                    "chat": {"id": int(chat), "type": "private"},
                    "text": body,
                },
            }
        )

    async def start(self) -> tuple[web.AppRunner, int]:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return runner, port


# --------------------------------------------------------------------------- database


def make_engine(url: str, schema: str | None):
    from sqlalchemy.ext.asyncio import create_async_engine

    from storage.database import create_engine

    if schema:
        return create_async_engine(
            url, connect_args={"server_settings": {"search_path": schema}}, pool_size=20
        )
    return create_engine(url)


def day_zone() -> tuple[str, str]:
    """A fixed-offset zone where it is about noon now, and a send time a minute ago."""
    utc_now = datetime.now(UTC)
    offset = 12 - utc_now.hour
    if offset > 14:
        offset -= 24
    if offset < -12:
        offset += 24
    zone = f"Etc/GMT{-offset:+d}" if offset else "Etc/GMT"
    local = (utc_now - timedelta(minutes=1)).astimezone(ZoneInfo(zone))
    return zone, f"{local:%H:%M}"


async def prepare(args: argparse.Namespace, zone: str) -> tuple[int, set[str]]:
    """Schema, people and campaigns; returns (messages expected to arrive, blocked chats)."""
    from storage.database import create_sessionmaker, upgrade
    from storage.models import (
        Account,
        Base,
        Campaign,
        CampaignTarget,
        Municipality,
        Person,
        Region,
        School,
    )

    if args.schema:
        engine = make_engine(args.db, None)
        async with engine.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{args.schema}"'))
        await engine.dispose()
        engine = make_engine(args.db, args.schema)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    else:
        await upgrade(args.db)
        engine = make_engine(args.db, None)
    sessions = create_sessionmaker(engine)
    today = datetime.now(ZoneInfo(zone)).date()
    created = datetime.now(UTC) - timedelta(days=30)
    blocked: set[str] = set()
    expected = 0
    async with sessions() as session:
        region = Region(name="Бенчмарк", timezone=zone)
        session.add(region)
        await session.flush()
        campaigns = [
            Campaign(
                form_id="shnor_school",
                form_version=1,
                title=f"Мониторинг {letter}",
                opens_on=today - timedelta(days=10),
                deadline=today + timedelta(days=3),
                created_at=created,
            )
            for letter in ("А", "Б", "В")
        ]
        session.add_all(campaigns)
        await session.flush()
        municipality = None
        for i in range(args.n):
            if i % 100 == 0:
                municipality = Municipality(region_id=region.id, name=f"Район {i // 100 + 1}")
                session.add(municipality)
                await session.flush()
            school = School(municipality_id=municipality.id, name=f"Школа {i + 1}", is_shnor=True)
            session.add(school)
            await session.flush()
            person = Person(
                role="director",
                school_id=school.id,
                municipality_id=municipality.id,
                created_at=created,
            )
            session.add(person)
            await session.flush()
            chat = str(CHAT_BASE + i)
            session.add(
                Account(
                    person_id=person.id,
                    platform=PLATFORM,
                    platform_user_id=chat,
                    chat_id=chat,
                    created_at=created,
                )
            )
            chosen = campaigns if i % args.multi_every == 0 else campaigns[:1]
            for campaign in chosen:
                session.add(
                    CampaignTarget(
                        campaign_id=campaign.id,
                        respondent_key=f"school:{school.id}",
                        school_id=school.id,
                        municipality_id=municipality.id,
                    )
                )
            if args.blocked_every and i % args.blocked_every == args.blocked_every - 1:
                blocked.add(chat)
            else:
                expected += len(chosen)
            if i % 1000 == 999:
                await session.commit()
        await session.commit()
    await engine.dispose()
    return expected, blocked


async def db_report(args: argparse.Namespace) -> dict[str, int]:
    from storage.models import Delivery

    engine = make_engine(args.db, args.schema)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                select(Delivery.status, func.count()).group_by(Delivery.status)
            )
            return {status: count for status, count in rows}
    finally:
        await engine.dispose()


async def drop_schema(args: argparse.Namespace) -> None:
    if not args.schema:
        return
    engine = make_engine(args.db, None)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA "{args.schema}" CASCADE'))
    await engine.dispose()


# --------------------------------------------------------------------------- the worker


async def worker(args: argparse.Namespace) -> None:
    """One bot process: tick until nothing is pending or claimed."""
    from bot.config import ReminderSettings
    from bot.telegram import TelegramMessenger, create_bot
    from forms.loader import load_bundled
    from handlers.registry import FormRegistry
    from scheduler.reminders import Reminders
    from scheduler.sender import Sender
    from storage.database import create_sessionmaker
    from storage.models import Delivery, DeliveryStatus

    engine = make_engine(args.db, args.schema)
    sessions = create_sessionmaker(engine)
    settings = ReminderSettings(
        _env_file=None,  # type: ignore[call-arg]
        send_time=args.send_time,
        grace_minutes=180,
        rate_per_s=args.rate,
        per_chat_per_s=args.per_chat,
        claim_timeout_seconds=args.claim_timeout,
        concurrency=args.concurrency,
    )
    bot = create_bot(args.token, args.api)
    sender = Sender(
        {PLATFORM: TelegramMessenger(bot)},
        rate_per_s=settings.rate_per_s,
        per_chat_per_s=settings.per_chat_per_s,
        max_retries=settings.max_retries,
        sessions=sessions,
    )
    reminders = Reminders(
        sessions,
        sender,
        settings,
        forms=FormRegistry(load_bundled()),
        default_zone=args.zone,
        claimer=f"bench-{args.token.split(':')[0]}-{os.getpid()}",
    )
    try:
        while True:
            started = time.monotonic()
            stats = await reminders.tick()
            log(f"worker {os.getpid()}: tick in {time.monotonic() - started:.1f} s: {stats}")
            async with sessions() as session:
                left = await session.scalar(
                    select(func.count()).where(
                        Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.CLAIMED])
                    )
                )
            if not left:
                break
            await asyncio.sleep(0.5)
    finally:
        await bot.session.close()
        await engine.dispose()


# --------------------------------------------------------------------------- the parent


def spawn(args: argparse.Namespace, token: str, port: int) -> subprocess.Popen:
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        "--db",
        args.db,
        "--token",
        token,
        "--api",
        f"http://127.0.0.1:{port}",
        "--zone",
        args.zone,
        "--send-time",
        args.send_time,
        "--rate",
        str(args.rate),
        "--per-chat",
        str(args.per_chat),
        "--claim-timeout",
        str(args.claim_timeout),
        "--concurrency",
        str(args.concurrency),
    ]
    if args.schema:
        command += ["--schema", args.schema]
    return subprocess.Popen(command, cwd=ROOT)


async def wait_for(proc: subprocess.Popen, until=None, poll: float = 0.05) -> bool:
    """Wait for the process to end (True) or ``until()`` to hold (False)."""
    while proc.poll() is None:
        if until is not None and until():
            return False
        await asyncio.sleep(poll)
    return True


def measure(received: list[tuple[str, str, str, float]]) -> dict:
    by_run: dict[str, list[float]] = defaultdict(list)
    by_chat: dict[str, list[float]] = defaultdict(list)
    for token, chat, _body, at in received:
        by_run[token].append(at)
        by_chat[chat].append(at)
    runs = {}
    busy = 0.0
    for token, times in by_run.items():
        span = max(times) - min(times) if len(times) > 1 else 0.0
        busy += span
        runs[token] = {
            "messages": len(times),
            "seconds": round(span, 2),
            "rate": round((len(times) - 1) / span, 2) if span else None,
        }
    counted = sum(max(len(t) - 1, 0) for t in by_run.values())
    overall = counted / busy if busy else 0.0
    max_chat_rate = 0.0
    min_gap = None
    multi = 0
    for times in by_chat.values():
        if len(times) < 2:
            continue
        multi += 1
        times.sort()
        gap = min(b - a for a, b in itertools.pairwise(times))
        min_gap = gap if min_gap is None else min(min_gap, gap)
        max_chat_rate = max(max_chat_rate, 1 / gap if gap > 0 else float("inf"))
    # the most messages that arrived within any one second
    every = sorted(at for *_, at in received)
    window_max = 0
    j = 0
    for i, at in enumerate(every):
        while every[j] <= at - 1.0:  # the window (at - 1 s, at]
            j += 1
        window_max = max(window_max, i - j + 1)
    duplicates = sum(n - 1 for n in Counter((c, b) for _, c, b, _ in received).values() if n > 1)
    return {
        "runs": runs,
        "overall_rate": overall,
        "max_per_chat_per_s": max_chat_rate,
        "min_chat_gap_s": min_gap,
        "chats_with_several": multi,
        "max_in_any_second": window_max,
        "duplicates": duplicates,
    }


async def parent(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="bench-reminders-"))
    if args.db is None:
        args.db = f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}"
    elif args.db.startswith("postgresql"):
        args.schema = f"bench_{uuid.uuid4().hex[:8]}"
    args.zone, args.send_time = day_zone()
    log(f"preparing {args.n} recipients in {args.db} (zone {args.zone})")
    started = time.monotonic()
    expected, blocked = await prepare(args, args.zone)
    log(f"prepared in {time.monotonic() - started:.1f} s; {expected} messages expected")
    api = FakeBotApi(blocked=blocked, flood_at=args.flood_at)
    runner, port = await api.start()
    try:
        first = spawn(args, TOKENS[0], port)
        kill_after = int(expected * args.kill_at)
        finished = await wait_for(first, until=lambda: len(api.received) >= kill_after)
        killed_at = len(api.received)
        if not finished:
            first.send_signal(signal.SIGKILL)
            first.wait()
            log(f"killed the sender after {killed_at} messages")
        await asyncio.sleep(args.claim_timeout + 1)  # its claims become stale
        second = spawn(args, TOKENS[1], port)
        await wait_for(second)
        await asyncio.sleep(0.2)
    finally:
        await runner.cleanup()
    report = await db_report(args)
    await drop_schema(args)
    result = measure(api.received)
    delivered_chats = {(c, b) for _, c, b, _ in api.received}
    summary = {
        "recipients": args.n,
        "expected_messages": expected,
        "delivered_unique": len(delivered_chats),
        "killed_after": killed_at,
        "refused": dict(api.refused),
        "deliveries_by_status": report,
        **{k: v for k, v in result.items()},
        "configured_rate": args.rate,
        "configured_per_chat": args.per_chat,
    }
    print(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    print(
        f"rate_per_s={result['overall_rate']:.2f} "
        f"max_per_chat_per_s={result['max_per_chat_per_s']:.3f} "
        f"duplicates={result['duplicates']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=3000, help="recipients (directors)")
    parser.add_argument("--db", default=None, help="database URL (default: a temp SQLite)")
    parser.add_argument("--rate", type=float, default=25.0)
    parser.add_argument("--per-chat", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--kill-at", type=float, default=0.5, help="share sent before SIGKILL")
    parser.add_argument("--multi-every", type=int, default=10)
    parser.add_argument("--blocked-every", type=int, default=500)
    parser.add_argument("--flood-at", type=int, default=200, help="request answered with 429")
    parser.add_argument("--claim-timeout", type=float, default=3.0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--token", default=TOKENS[0], help=argparse.SUPPRESS)
    parser.add_argument("--api", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--zone", default="Europe/Moscow", help=argparse.SUPPRESS)
    parser.add_argument("--send-time", default="09:00", help=argparse.SUPPRESS)
    parser.add_argument("--schema", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.flood_at is not None and args.flood_at <= 0:
        args.flood_at = None
    if args.worker:
        asyncio.run(worker(args))
    else:
        asyncio.run(parent(args))


if __name__ == "__main__":
    main()
