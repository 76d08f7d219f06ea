"""Benchmark: N directors walk ``shnor_school`` at once through the real intake path.

    python bench/load.py                   # 100 directors, SQLite, a few minutes on 2 cores
    python bench/load.py --n 500 --steps 20
    python bench/load.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/test

Every update is a real Telegram ``Update`` (JSON) from ``tests/tg_harness.py``: accepted into
the inbox, worked off by the production :class:`bot.processor.Processor` running in the
background (``run``), parsed by the Telegram channel, handled by ``Conversation.handle_in``,
its replies recorded in the outbox and sent through aiogram to a recording Bot API session
(no network). Each director waits for the bot's reply before the next action, like a person.
The directors register with their school's code, press «Начать», then answer: numbers for the
teacher counts, «Да» + a PDF + «Готово» and «Нет» + an explanatory note, alternately.

In the same run a bare aiogram Dispatcher (one handler that replies through the same kind of
recording session, no database) is fed as many updates by as many concurrent users: the ceiling.

With ``--db`` a throw-away database is created next to the given one and dropped at the end.

Figures: updates/s; handler time per update (the processor's work on one event: attempt
mark, parse, core, outbox, done-mark and commit — excluding the wait in the queue; in a
group commit its own savepoint plus its share of the batch's claim and commit, see
:class:`TimedProcessor`) p50/p95/p99/max; the batches (events per transaction); the reply
latency a director sees; SQL statements per update (an engine event listener); errors =
failed inbox rows + apologies sent + error log records.

The last line is ``ratio=<ours/bare> p99_ms=<handler p99> sql_per_update=<N> errors=<N>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import contextvars
import logging
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiogram import Dispatcher
from aiogram.methods import EditMessageText, SendMessage
from aiogram.types import CallbackQuery, Document, Message, Update
from sqlalchemy import event as sa_event
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from bot.app import Services, create_services
from bot.config import load_settings
from bot.processor import ERROR_TEXT, Processor
from bot.telegram import TelegramFileFetcher, create_bot
from forms.schema import QuestionKind
from storage.admin import import_schools, issue_invites, open_campaign
from storage.database import create_engine
from storage.models import InboxEvent, InboxStatus, School
from storage.school_import import SchoolRow
from tests.tg_harness import TEST_TOKEN, RecordingSession, TgHarness, TgUser

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
NOTE = "Работа запланирована на следующий учебный год, приказ готовится."
REPLY_TIMEOUT_S = 120.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"p50={pct(ms, 0.5):.1f} p95={pct(ms, 0.95):.1f} p99={pct(ms, 0.99):.1f} "
        f"max={max(ms, default=0):.1f} ms"
    )


# --------------------------------------------------------------------------- bare ceiling


async def bare_ceiling(n: int, steps: int) -> tuple[float, list[float]]:
    """A bare aiogram Dispatcher: one handler replying through a recording session."""
    bot = create_bot(TEST_TOKEN, session=RecordingSession())
    dp = Dispatcher()

    @dp.message()
    async def on_message(message: Message) -> None:
        await message.answer(f"ok {message.text}")

    @dp.callback_query()
    async def on_callback(callback: CallbackQuery) -> None:
        await callback.answer()

    harness = TgHarness(bot, core=None)
    latencies: list[float] = []

    async def user(user_id: int) -> None:
        tg = harness.user(user_id, "Анна")
        for step in range(steps):
            update: Update = tg.text_update(str(step))
            started = time.perf_counter()
            await dp.feed_update(bot, update)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(user(100_000 + i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await bot.session.close()
    return n * steps / elapsed, latencies


# --------------------------------------------------------------------------- our path


class ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        if len(self.first) < 5:
            self.first.append(record.getMessage()[:200])


SENDING: contextvars.ContextVar[list[float]] = contextvars.ContextVar("sending")
WAITED: contextvars.ContextVar[list[float]] = contextvars.ContextVar("waited")


class TimedProcessor(Processor):
    """The production processor; records each event's share of the processing and signals
    a chat's director once its replies are sent.

    An event's handler time is its own work (its savepoint: parse, core) plus an equal share
    of its batch's common work (the claim, the outbox rows and done-marks, the commit), not
    the time it waited for the other events of its batch, for the writer (SQLite: one at a
    time) nor the sending; an event that went
    alone (a file, a retry) counts its whole transaction, as before group commit."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handler_times: list[float] = []
        self.batch_sizes: list[int] = []
        self.batch_walls: list[float] = []  # claim to the last commit, without queueing
        self.flushed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._own: dict[int, float] = {}
        self._claim_share: dict[int, float] = {}  # event id -> its share of the claim

    async def _process(self, event: InboxEvent, parsed: Any = None) -> Any:
        started = time.perf_counter()
        rows = await super()._process(event, parsed)
        claim = self._claim_share.pop(event.id, 0.0)
        self.handler_times.append(time.perf_counter() - started + claim)
        return rows

    async def _serve_batch(self, chats: Any, unsent: Any) -> None:
        WAITED.set([])  # this batch's task (and the tasks it starts)
        await super()._serve_batch(chats, unsent)

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[None]:
        started = time.perf_counter()
        async with super()._write():
            waited = WAITED.get(None)
            if waited is not None:
                waited.append(time.perf_counter() - started)
            yield

    async def _claim_events(self, held: Any, unsent: Any, marks: Any) -> Any:
        started, waited = time.perf_counter(), sum(WAITED.get())
        events = await super()._claim_events(held, unsent, marks)
        work = time.perf_counter() - started - (sum(WAITED.get()) - waited)
        for event in events:
            self._claim_share[event.id] = work / len(events)
        return events

    async def _run_one(self, connection: Any, item: Any, **kwargs: Any) -> None:
        started = time.perf_counter()
        await super()._run_one(connection, item, **kwargs)
        self._own[item.event.id] = time.perf_counter() - started

    async def _after_commit(self, chunk: Any, replies: Any, marks: Any) -> None:
        started = time.perf_counter()
        await super()._after_commit(chunk, replies, marks)
        SENDING.get().append(time.perf_counter() - started)

    async def _run_batch(self, connection: Any, items: Any, marks: Any) -> None:
        if not items:
            return await super()._run_batch(connection, items, marks)
        SENDING.set([])  # this batch's task only
        started, waited = time.perf_counter(), sum(WAITED.get())
        await super()._run_batch(connection, items, marks)
        wall = time.perf_counter() - started - sum(SENDING.get())
        wall -= sum(WAITED.get()) - waited  # the wait for the writer is queueing
        own = [self._own.pop(item.event.id, 0.0) for item in items]
        claim = sum(self._claim_share.pop(item.event.id, 0.0) for item in items)
        share = (claim + max(0.0, wall - sum(own))) / len(items)
        self.handler_times.extend(t + share for t in own)
        self.batch_sizes.append(len(items))
        self.batch_walls.append(claim + wall)

    async def _send_rows(self, chat: Any, replies: Any, marks: Any) -> None:
        await super()._send_rows(chat, replies, marks)
        self.flushed[str(chat[1])].set()


class IndexedSession(RecordingSession):
    """The harness's recording Bot API, also keeping the texts sent to each chat (the
    directors look at their own chat in O(1), not through every call of the run)."""

    def __init__(self) -> None:
        super().__init__()
        self.texts_by_chat: dict[int, list[str]] = defaultdict(list)

    async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
        result = await super().make_request(bot, method, timeout)
        if isinstance(method, SendMessage | EditMessageText) and method.text:
            self.texts_by_chat[int(method.chat_id or 0)].append(method.text)
        return result


@dataclass
class Director:
    harness: TgHarness
    processor: TimedProcessor
    user: TgUser
    code: str
    questions: dict[str, Any]
    latencies: list[float]
    updates: int = 0
    yes_next: bool = True
    done: bool = False
    texts_seen: int = field(default=0)

    def _bot_texts(self) -> list[str]:
        return self.harness.session.texts_by_chat[int(self.user.chat_id or 0)]

    async def act(self, update: Update) -> None:
        chat = str(self.user.chat_id)
        signal = self.processor.flushed[chat]
        before = len(self._bot_texts())
        raw = update.model_dump(mode="json", by_alias=True, exclude_none=True)
        started = time.perf_counter()
        await self.processor.accept(list(self.harness.channel.raw_events([raw])))
        deadline = started + REPLY_TIMEOUT_S
        while len(self._bot_texts()) <= before:
            signal.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no reply to chat {chat}")
            try:
                await asyncio.wait_for(signal.wait(), remaining)
            except TimeoutError:
                raise TimeoutError(f"no reply to chat {chat}") from None
        self.latencies.append(time.perf_counter() - started)
        self.updates += 1

    def current_question(self) -> Any | None:
        last = self._bot_texts()[-1]
        found = [q for t, q in self.questions.items() if t in last]
        return max(found, key=lambda q: len(q.text)) if found else None

    async def step(self) -> None:
        question = self.current_question()
        if question is None:
            self.done = True  # the review (or something unexpected): this walk is over
            return
        if question.kind == QuestionKind.YES_NO:
            yes = self.yes_next
            self.yes_next = not yes
            await self.act(self.user.click_update("Да" if yes else "Нет"))
            if yes and question.document_when_yes:
                file_id = self.harness.new_file_id("doc")
                self.harness.session.files[file_id] = PDF
                document = Document(
                    file_id=file_id,
                    file_unique_id=f"u-{file_id}",
                    file_name=f"{question.id}.pdf",
                    mime_type="application/pdf",
                    file_size=len(PDF),
                )
                await self.act(self.user.message_update(document=document))
                await self.act(self.user.click_update("✅ Готово"))
            elif not yes and question.note_when_no:
                await self.act(self.user.text_update(NOTE))
        elif question.kind == QuestionKind.INTEGER:
            await self.act(self.user.text_update("20" if question.id == "teachers_total" else "5"))
        else:
            await self.act(self.user.text_update("Текст ответа"))

    async def walk(self, steps: int) -> None:
        await self.act(self.user.text_update(f"/start {self.code}"))
        await self.act(self.user.click_update("▶ Начать заполнение"))
        while self.updates < steps and not self.done:
            await self.step()


async def seed(services: Services, n: int) -> list[str]:
    today = services.conversation.today()
    rows = [
        SchoolRow(
            i + 2,
            f"Район {i % 20 + 1}",
            f"МБОУ СОШ № {i + 1}",
            f"B{i + 1}",
            True,
            i % 3 == 0,
            i % 2 == 0,
            None,
        )
        for i in range(n)
    ]
    async with services.sessions() as session:
        await import_schools(session, "Нагрузочная область", rows, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        await open_campaign(session, form, today + timedelta(days=14), today, "Мониторинг")
        invites = await issue_invites(session)
        names = {s.name: s.code for s in await session.scalars(select(School))}
        await session.commit()
    codes = {names[row.school]: row.code for row in invites if row.school}
    return [codes[f"B{i + 1}"] for i in range(n)]


async def ours(url: str, data_dir: Path, n: int, steps: int, concurrency: int | None) -> dict:
    os.environ["DATA_DIR"] = str(data_dir)
    for name in ("DATABASE_URL", "BOT_TOKEN", "ADMINS"):
        os.environ.pop(name, None)
    settings = load_settings(env_file=None)
    services = await create_services(settings, database_url=url)
    errors = ErrorCounter()
    logging.getLogger().addHandler(errors)
    try:
        codes = await seed(services, n)
        harness = TgHarness(create_bot(TEST_TOKEN, session=IndexedSession()), services.conversation)
        services.conversation.register_fetcher("tg", TelegramFileFetcher(harness.bot))
        kwargs = {"retry_delay": 0.05, "idle_interval": 0.2}
        if concurrency:
            kwargs["concurrency"] = concurrency
        processor = TimedProcessor(
            services.sessions, {"tg": harness.channel}, services.conversation, **kwargs
        )
        harness.processor = processor
        engine = services.forms.engine(
            "shnor_school", services.forms.latest("shnor_school").version
        )
        questions = {q.text: q for _s, _g, q in engine.form.iter_questions()}
        latencies: list[float] = []
        directors = [
            Director(
                harness, processor, harness.user(10_000 + i, "Анна"), code, questions, latencies
            )
            for i, code in enumerate(codes)
        ]
        statements = 0

        def count(*_args: Any) -> None:
            nonlocal statements
            statements += 1

        sa_event.listen(services.engine.sync_engine, "before_cursor_execute", count)
        runner = asyncio.create_task(processor.run())
        started = time.perf_counter()
        results = await asyncio.gather(*(d.walk(steps) for d in directors), return_exceptions=True)
        elapsed = time.perf_counter() - started
        await processor.stop()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        sa_event.remove(services.engine.sync_engine, "before_cursor_execute", count)
        timeouts = sum(1 for r in results if isinstance(r, BaseException))
        for r in results:
            if isinstance(r, BaseException):
                errors.first.append(repr(r)[:200])
                break
        updates = sum(d.updates for d in directors)
        apologies = sum(
            1 for c in harness.session.calls if isinstance(c, SendMessage) and c.text == ERROR_TEXT
        )
        async with services.sessions() as session:
            failed = await session.scalar(
                select(func.count())
                .select_from(InboxEvent)
                .where(InboxEvent.status == InboxStatus.FAILED)
            )
        return {
            "updates": updates,
            "per_s": updates / elapsed,
            "elapsed": elapsed,
            "handler": processor.handler_times,
            "batches": processor.batch_sizes,
            "walls": processor.batch_walls,
            "latency": latencies,
            "sql": statements / max(1, len(processor.handler_times)),
            "errors": int(failed or 0) + apologies + errors.count + timeouts,
            "detail": f"failed={failed} apologies={apologies} error_logs={errors.count} "
            f"timeouts={timeouts}",
            "first": errors.first,
        }
    finally:
        logging.getLogger().removeHandler(errors)
        await services.close()


async def throwaway_postgres(url: str) -> tuple[str, Any]:
    base = make_url(url)
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))

    async def drop() -> None:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


async def run(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = Path(tempfile.mkdtemp(prefix="bench-load-"))
    drop = None
    try:
        if args.db:
            url, drop = await throwaway_postgres(args.db)
            label = "PostgreSQL"
        else:
            url = f"sqlite+aiosqlite:///{folder / 'bot.sqlite3'}"
            label = "SQLite"
        bare_per_s, bare_lat = await bare_ceiling(args.n, args.steps)
        print(f"bare aiogram, {args.n} users: {bare_per_s:.0f} updates/s, {summary(bare_lat)}")
        result = await ours(url, folder / "data", args.n, args.steps, args.concurrency)
        print(
            f"ours, {args.n} at once, {label}: {result['updates']} updates in "
            f"{result['elapsed']:.1f} s = {result['per_s']:.0f} updates/s"
        )
        print(f"  handler: {summary(result['handler'])}")
        sizes = result["batches"]
        if sizes:
            print(
                f"  batches: {len(sizes)}, events per batch mean {sum(sizes) / len(sizes):.1f} "
                f"max {max(sizes)}; claim to commit {summary(result['walls'])}"
            )
        print(f"  reply latency: {summary(result['latency'])}")
        print(
            f"  sql per update: {result['sql']:.1f}; errors: {result['errors']} "
            f"({result['detail']})"
        )
        for line in result["first"]:
            print(f"  first error: {line}")
        handler_ms = [v * 1000 for v in result["handler"]]
        print(
            f"ratio={result['per_s'] / bare_per_s:.3f} p99_ms={pct(handler_ms, 0.99):.1f} "
            f"sql_per_update={result['sql']:.1f} errors={result['errors']}"
        )
    finally:
        if drop is not None:
            await drop()
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="directors at once (default 100)")
    parser.add_argument("--steps", type=int, default=12, help="updates per director (at least)")
    parser.add_argument("--db", default=None, help="postgresql+asyncpg://… (default: SQLite)")
    parser.add_argument("--concurrency", type=int, default=None, help="processor chats at once")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
