"""Benchmark: N directors walk ``shnor_school`` against 1, 2, 4 ``python -m bot run`` workers.

    python bench/load_workers.py                       # 200 directors, workers 1,2,4
    python bench/load_workers.py --n 50 --workers 2 --steps 8
    python bench/load_workers.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/test

For each worker count W: a fresh PostgreSQL database (dropped at the end) is migrated and
seeded in this process (bench/load.py's world: schools, an open campaign, invite codes);
then W real bot processes start in webhook mode (WORKERS=W, a shared webhook secret,
REDIS_URL=redis://127.0.0.1:6379/14 for the shared send rate, SEND_RATE_PER_S=10000 so the
rate limit is not what is measured) against one local fake Telegram Bot API server
(tests/fake_bot_api.py) that records what the bot sends. Like a load balancer, the bench
POSTs each director's next update to ``/telegram`` of the next worker, round-robin, once the
reply to the previous one has arrived at the fake server.

Figures per W: updates/s; reply latency (POST to the first reply at the fake server)
p50/p95/p99/max; errors = apologies + HTTP errors + timeouts + failed inbox rows; the inbox
backlog once the walks are over (must drain to 0 pending); chats processed out of order
(per chat, the outbox rows in created order must follow the inbox order); and what the CPU
went to (utime+stime from /proc: the workers, this database's PostgreSQL backends, the
bench, and the whole machine's busy share, since the cores are shared).

Last line: ``workers=1,2,4 updates_per_s=<a>,<b>,<c> p99_ms=<..> errors=<..>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.load import NOTE, PDF, pct, seed, summary, throwaway_postgres  # noqa: E402
from bot.app import create_services  # noqa: E402
from bot.config import load_settings  # noqa: E402
from bot.processor import ERROR_TEXT  # noqa: E402
from bot.telegram.channel import SECRET_HEADER  # noqa: E402
from forms.schema import QuestionKind  # noqa: E402
from storage.database import create_engine, create_sessionmaker  # noqa: E402
from storage.models import InboxEvent, InboxStatus, OutboxMessage  # noqa: E402
from tests.fake_bot_api import BOT_ID, FakeBotApi, Sent  # noqa: E402
from tests.runtime import free_port  # noqa: E402

SECRET = "bench-webhook-secret"
REDIS_URL = "redis://127.0.0.1:6379/14"
REPLY_TIMEOUT_S = 60.0
IDLE_S = 3.0
SETTLE_S = 1.5  # a reply of several messages: how long to wait for the question after the first
DEFAULT_DB = (
    os.environ.get("TEST_POSTGRES_URL") or "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- the fake server


class IndexedBotApi(FakeBotApi):
    """The fake Bot API, keeping each chat's messages (and a wake-up per chat); edits count."""

    def __init__(self) -> None:
        super().__init__()
        self.by_chat: dict[int, list[Sent]] = defaultdict(list)
        self.arrived: dict[int, list[float]] = defaultdict(list)
        self.signals: dict[int, asyncio.Event] = defaultdict(asyncio.Event)

    def _record(self, method: str, data: dict, text: str) -> dict:
        result = super()._record(method, data, text)
        sent = self.sent[-1]
        self.arrived[sent.chat_id].append(time.perf_counter())
        self.signals[sent.chat_id].set()
        return result

    async def _m_editmessagetext(self, data: dict) -> dict:
        return self._record("editMessageText", data, str(data.get("text", "")))


# --------------------------------------------------------------------------- the directors


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    updates: int = 0
    http_errors: int = 0
    broken_walks: int = 0  # a walk that stopped on anything else (the bench's own bugs too)
    timeouts: int = 0
    first_errors: list[str] = field(default_factory=list)


@dataclass
class Director:
    api: IndexedBotApi
    http: aiohttp.ClientSession
    ports: Any  # itertools.cycle of the workers' ports: the load balancer
    chat: int
    code: str
    questions: dict[str, Any]
    stats: Stats
    yes_next: bool = True
    done: bool = False
    updates: int = 0

    def _user(self) -> dict[str, Any]:
        return {"id": self.chat, "is_bot": False, "first_name": "Анна", "language_code": "ru"}

    def _message(self, **content: Any) -> dict[str, Any]:
        return {
            "message_id": self.api.next_id(),
            "date": int(time.time()),
            "chat": {"id": self.chat, "type": "private", "first_name": "Анна"},
            "from": self._user(),
            **content,
        }

    def text(self, text: str) -> dict[str, Any]:
        content: dict[str, Any] = {"text": text}
        if text.startswith("/"):
            content["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split()[0])}
            ]
        return {"update_id": self.api.next_id(), "message": self._message(**content)}

    def document(self) -> dict[str, Any]:
        file_id = f"file-{self.api.next_id()}"
        self.api.files[file_id] = PDF
        document = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": "order.pdf",
            "mime_type": "application/pdf",
            "file_size": len(PDF),
        }
        return {"update_id": self.api.next_id(), "message": self._message(document=document)}

    def click(self, label: str) -> dict[str, Any]:
        for sent in reversed(self.api.by_chat[self.chat]):
            for text, payload in sent.buttons:
                if text == label:
                    message = self._message(text=sent.text)
                    message["message_id"] = sent.message_id
                    message["from"] = {"id": BOT_ID, "is_bot": True, "first_name": "Бот"}
                    query = {
                        "id": str(self.api.next_id()),
                        "from": self._user(),
                        "chat_instance": "ci",
                        "message": message,
                        "data": payload,
                    }
                    return {"update_id": self.api.next_id(), "callback_query": query}
        raise LookupError(f"no button {label!r} in chat {self.chat}")

    async def act(self, update: dict[str, Any]) -> None:
        mine = self.api.by_chat[self.chat]
        signal = self.api.signals[self.chat]
        before = len(mine)
        port = next(self.ports)
        started = time.perf_counter()
        # a reply riding in the webhook answer (bot/handover.py) is run as Telegram would
        status = await self.api.post_update(
            self.http, f"http://127.0.0.1:{port}/telegram", update, {SECRET_HEADER: SECRET}
        )
        if status != 200:
            self.stats.http_errors += 1
            raise RuntimeError(f"HTTP {status} from the worker on port {port}")
        deadline = started + REPLY_TIMEOUT_S
        while len(mine) <= before:
            signal.clear()
            left = deadline - time.perf_counter()
            if left <= 0:
                self.stats.timeouts += 1
                raise TimeoutError(f"no reply to chat {self.chat}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), left)
        self.stats.latencies.append(self.api.arrived[self.chat][before] - started)
        self.stats.updates += 1
        self.updates += 1

    def _question(self) -> Any | None:
        last = self.api.by_chat[self.chat][-1].text
        found = [q for t, q in self.questions.items() if t in last]
        return max(found, key=lambda q: len(q.text)) if found else None

    async def current_question(self) -> Any | None:
        """The question in the last message; a reply may come as an acknowledgement first."""
        deadline = time.perf_counter() + SETTLE_S
        signal = self.api.signals[self.chat]
        while (question := self._question()) is None:
            left = deadline - time.perf_counter()
            if left <= 0:
                return None
            signal.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), left)
        return question

    async def step(self) -> None:
        question = await self.current_question()
        if question is None:
            self.done = True  # the review (or something unexpected): this walk is over
            return
        if question.kind == QuestionKind.YES_NO:
            yes = self.yes_next
            self.yes_next = not yes
            await self.act(self.click("Да" if yes else "Нет"))
            if yes and question.document_when_yes:
                await self.act(self.document())
                await self.act(self.click("✅ Готово"))
            elif not yes and question.note_when_no:
                await self.act(self.text(NOTE))
        elif question.kind == QuestionKind.INTEGER:
            await self.act(self.text("20" if question.id == "teachers_total" else "5"))
        else:
            await self.act(self.text("Текст ответа"))

    async def walk(self, steps: int) -> None:
        try:
            await self.act(self.text(f"/start {self.code}"))
            await self.act(self.click("▶ Начать заполнение"))
            while self.updates < steps and not self.done:
                await self.step()
        except Exception as exc:  # counted (HTTP error, timeout, …); the others walk on
            self.stats.broken_walks += 1
            if len(self.stats.first_errors) < 3:
                self.stats.first_errors.append(repr(exc)[:200])


# --------------------------------------------------------------------------- CPU accounting


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def backends_of(database: str) -> dict[int, float]:
    """CPU seconds of the PostgreSQL backends serving ``database`` (by their process title)."""
    found: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            found[int(entry.name)] = cpu_seconds(int(entry.name))
    return found


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# --------------------------------------------------------------------------- one run


def worker_env(url: str, data_dir: Path, api_url: str, port: int, workers: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(ROOT),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DATA_DIR": str(data_dir),
        "DATABASE_URL": url,
        "BOT_TOKEN": FakeBotApi.token,
        "TELEGRAM_API_URL": api_url,
        "WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        "WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "TELEGRAM_WEBHOOK_SECRET": SECRET,
        "WORKERS": str(workers),
        "REDIS_URL": REDIS_URL,
        "SEND_RATE_PER_S": "10000",
        "LEADER_RETRY_SECONDS": "1",
        "LOG_LEVEL": "WARNING",
    }


async def wait_serving(http: aiohttp.ClientSession, port: int, process: Any) -> None:
    """Until the worker's webhook answers (403 without the secret)."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"the worker on port {port} exited ({process.returncode})")
        with contextlib.suppress(aiohttp.ClientError, OSError):
            async with http.post(f"http://127.0.0.1:{port}/telegram", json={}) as response:
                if response.status == 403:
                    return
        await asyncio.sleep(0.3)
    raise RuntimeError(f"the worker on port {port} did not start")


async def seed_world(url: str, data_dir: Path, n: int) -> tuple[list[str], dict[str, Any]]:
    os.environ["DATA_DIR"] = str(data_dir)
    for name in ("DATABASE_URL", "BOT_TOKEN", "ADMINS", "WEBHOOK_BASE_URL", "WORKERS"):
        os.environ.pop(name, None)
    services = await create_services(load_settings(env_file=None), database_url=url)
    try:
        codes = await seed(services, n)
        form = services.forms.latest("shnor_school")
        engine = services.forms.engine("shnor_school", form.version)
        questions = {q.text: q for _s, _g, q in engine.form.iter_questions()}
        return codes, questions
    finally:
        await services.close()


async def inbox_state(url: str) -> dict[str, Any]:
    """Pending/failed inbox rows and the chats whose replies do not follow the inbox order."""
    engine = create_engine(url)
    try:
        async with create_sessionmaker(engine)() as session:
            counts = dict(
                (
                    await session.execute(
                        select(InboxEvent.status, func.count()).group_by(InboxEvent.status)
                    )
                ).all()
            )
            inbox = (
                await session.execute(
                    select(InboxEvent.chat_id, InboxEvent.id, InboxEvent.processed_at).order_by(
                        InboxEvent.id
                    )
                )
            ).all()
            outbox = (
                await session.execute(
                    select(OutboxMessage.chat_id, OutboxMessage.inbox_id).order_by(
                        OutboxMessage.created_at, OutboxMessage.id
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    disorder: set[str] = set()
    last_done: dict[str, Any] = {}
    for chat, _id, processed in inbox:  # processed in the order they arrived
        if processed is None:
            continue
        if chat in last_done and processed < last_done[chat]:
            disorder.add(str(chat))
        last_done[chat] = processed
    last_inbox: dict[str, int] = {}
    for chat, inbox_id in outbox:  # the replies were created in the inbox order
        if inbox_id is None:
            continue
        if inbox_id < last_inbox.get(chat, 0):
            disorder.add(str(chat))
        last_inbox[chat] = inbox_id
    return {
        "pending": int(counts.get(InboxStatus.PENDING, 0)),
        "failed": int(counts.get(InboxStatus.FAILED, 0)),
        "total": sum(int(v) for v in counts.values()),
        "out_of_order": len(disorder),
        "chats": len({c for c, _i, _p in inbox}),
        # finish_many stamps one processed_at per group commit: events per transaction
        "batches": len({p for _c, _i, p in inbox if p is not None}),
    }


async def one_run(db: str, workers: int, n: int, steps: int) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix=f"bench-workers{workers}-"))
    url, drop = await throwaway_postgres(db)
    database = make_url(url).database or ""
    api = IndexedBotApi()
    api_url = await api.start()
    processes: list[Any] = []
    logs: list[Any] = []
    try:
        codes, questions = await seed_world(url, folder / "data", n)
        ports = [free_port() for _ in range(workers)]
        timeout = aiohttp.ClientTimeout(total=REPLY_TIMEOUT_S)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:
            for port in ports:  # one after the other: migrations done, still no races
                env = worker_env(url, folder / "data", api_url, port, workers)
                log = open(folder / f"worker{port}.log", "wb")  # noqa: SIM115 (closed below)
                logs.append(log)
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "bot",
                    "run",
                    cwd=ROOT,
                    env=env,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=log,
                )
                processes.append(process)
                try:
                    await wait_serving(http, port, process)
                except RuntimeError as exc:
                    tail = (folder / f"worker{port}.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{exc}; its log ends:\n{tail}") from None
            stats = Stats()
            balancer = itertools.cycle(ports)
            directors = [
                Director(api, http, balancer, 20_000 + i, code, questions, stats)
                for i, code in enumerate(codes)
            ]
            idle_from = {p.pid: cpu_seconds(p.pid) for p in processes}
            await asyncio.sleep(IDLE_S)  # what W idle workers cost by themselves
            idle = sum(cpu_seconds(p.pid) - idle_from[p.pid] for p in processes) / IDLE_S
            cpu_before = {p.pid: cpu_seconds(p.pid) for p in processes}
            pg_before = backends_of(database)
            bench_before = cpu_seconds(os.getpid())
            busy_before = machine_busy()
            started = time.perf_counter()
            await asyncio.gather(*(d.walk(steps) for d in directors))
            elapsed = time.perf_counter() - started
            worker_cpu = sum(cpu_seconds(p.pid) - cpu_before[p.pid] for p in processes)
            pg_after = backends_of(database)
            pg_cpu = sum(t - pg_before.get(pid, 0.0) for pid, t in pg_after.items())
            bench_cpu = cpu_seconds(os.getpid()) - bench_before
            busy_after = machine_busy()
            drain_deadline = time.monotonic() + 30
            while (state := await inbox_state(url))[
                "pending"
            ] and time.monotonic() < drain_deadline:
                await asyncio.sleep(0.5)
        apologies = sum(1 for s in api.sent if s.text == ERROR_TEXT)
        busy = (busy_after[0] - busy_before[0]) / max(1, busy_after[1] - busy_before[1])
        other = stats.broken_walks - stats.http_errors - stats.timeouts  # walks stopped else
        errors = apologies + stats.http_errors + stats.timeouts + other + state["failed"]
        return {
            "workers": workers,
            "updates": stats.updates,
            "elapsed": elapsed,
            "per_s": stats.updates / elapsed,
            "latency": stats.latencies,
            "errors": errors,
            "detail": f"apologies={apologies} http={stats.http_errors} "
            f"timeouts={stats.timeouts} broken_walks={other} failed={state['failed']}",
            "state": state,
            "cores": {
                "workers": worker_cpu / elapsed,
                "idle": idle,
                "ms_per_update": 1000 * worker_cpu / max(1, stats.updates),
                "backends": len(pg_after),
                "postgres": pg_cpu / elapsed,
                "bench": bench_cpu / elapsed,
                "machine": busy * (os.cpu_count() or 1),
            },
            "first": stats.first_errors,
        }
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        for log in logs:
            log.close()
        await api.stop()
        await drop()
        shutil.rmtree(folder, ignore_errors=True)


def print_run(result: dict[str, Any], n: int) -> None:
    state, cores = result["state"], result["cores"]
    print(
        f"workers={result['workers']}, {n} directors: {result['updates']} updates in "
        f"{result['elapsed']:.1f} s = {result['per_s']:.0f} updates/s"
    )
    print(f"  reply latency: {summary(result['latency'])}")
    print(f"  errors: {result['errors']} ({result['detail']})")
    print(
        f"  inbox: {state['total']} events from {state['chats']} chats, backlog at the end "
        f"{state['pending']} pending; chats out of order: {state['out_of_order']}; "
        f"events per commit {state['total'] / max(1, state['batches']):.1f}"
    )
    print(
        f"  cores busy: workers {cores['workers']:.2f} (idle before the walk "
        f"{cores['idle']:.2f}; {cores['ms_per_update']:.1f} ms CPU per update), PostgreSQL "
        f"{cores['postgres']:.2f} ({cores['backends']} backends of this database), bench "
        f"{cores['bench']:.2f}; whole machine {cores['machine']:.2f} of {os.cpu_count()}"
    )
    for line in result["first"]:
        print(f"  first error: {line}")


async def run(args: argparse.Namespace) -> None:
    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    results = []
    for workers in counts:
        result = await one_run(args.db, workers, args.n, args.steps)
        print_run(result, args.n)
        results.append(result)
    p99 = [pct([v * 1000 for v in r["latency"]], 0.99) for r in results]
    print(
        f"workers={','.join(str(r['workers']) for r in results)} "
        f"updates_per_s={','.join(str(round(r['per_s'])) for r in results)} "
        f"p99_ms={','.join(f'{v:.0f}' for v in p99)} "
        f"errors={','.join(str(r['errors']) for r in results)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="directors at once (default 200)")
    parser.add_argument("--steps", type=int, default=12, help="updates per director (at least)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts (default 1,2,4)")
    parser.add_argument("--db", default=DEFAULT_DB, help="postgresql+asyncpg://… to create next to")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
