"""Benchmark: the durable intake's throughput (inbox insert, processor, outbox, send).

    python bench/intake.py                     # 2,000 events over 200 chats, SQLite
    python bench/intake.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/test

Events are accepted in polling-sized batches of 100 (one transaction each), then the real
:class:`bot.processor.Processor` works them off with a core that answers each with one
message, through a channel whose ``send`` only records (the platform is not measured). The
events of up to ``--batch`` chats share the attempt mark, the effects + outbox + done-mark
transaction (a savepoint each) and the sent marks (group commit; ``--batch 1``: one chat each).
It checks that every event was answered once and in order per chat.

The last line is ``accept_per_s=<N> events_per_s=<N> duplicates=<N> out_of_order=<N>``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bot.channel import Parsed, RawEvent
from bot.processor import Processor
from handlers.types import EventKind, Incoming, Outgoing, OutText, Platform, UserRef
from storage.database import create_engine, create_sessionmaker
from storage.models import InboxEvent, OutboxMessage


class Core:
    async def handle_in(self, _session: Any, event: Incoming) -> list[Outgoing]:
        return [OutText(f"ok {event.text}")]  # in the processor's transaction: group commit


class Channel:
    platform = Platform.TELEGRAM

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}

    async def parse(self, event: RawEvent) -> Parsed:
        chat = event.chat_id or ""
        user = UserRef(Platform.TELEGRAM, chat, chat)
        return Parsed(Incoming(user, EventKind.TEXT, text=event.payload["text"]))

    async def send(self, chat_id: str, message: Outgoing, *, dedup: str | None = None) -> str:
        assert isinstance(message, OutText)
        self.sent.setdefault(chat_id, []).append(message.text)
        return dedup or ""


async def run(args: argparse.Namespace) -> None:
    schema = None
    if args.db:
        url = args.db
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        await engine.dispose()
        engine = create_engine(url).execution_options(schema_translate_map={None: schema})
    else:
        folder = Path(tempfile.mkdtemp(prefix="bench-intake-"))
        engine = create_engine(f"sqlite+aiosqlite:///{folder / 'intake.sqlite3'}")
    async with engine.begin() as connection:
        await connection.run_sync(
            InboxEvent.metadata.create_all, tables=[InboxEvent.__table__, OutboxMessage.__table__]
        )
    sessions = create_sessionmaker(engine)
    channel = Channel()
    processor = Processor(
        sessions, {"tg": channel}, Core(), concurrency=args.concurrency, batch_size=args.batch
    )
    events = [
        RawEvent(Platform.TELEGRAM, str(n), str(n % args.chats), {"text": str(n)})
        for n in range(args.n)
    ]
    started = time.perf_counter()
    for start in range(0, len(events), 100):
        await processor.accept(events[start : start + 100])
    accepted = time.perf_counter() - started
    await processor.accept(events[:100])  # a redelivered batch: ignored
    started = time.perf_counter()
    await processor.drain()
    processed = time.perf_counter() - started
    duplicates = sum(len(v) for v in channel.sent.values()) - args.n
    out_of_order = 0
    for chat, texts in channel.sent.items():
        numbers = [int(t.split()[1]) for t in texts]
        out_of_order += int(numbers != sorted(numbers))
        assert all(int(t.split()[1]) % args.chats == int(chat) for t in texts)
    if schema:
        async with engine.begin() as connection:
            await connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    await engine.dispose()
    print(f"events={args.n} chats={args.chats} accept_s={accepted:.2f} process_s={processed:.2f}")
    print(
        f"accept_per_s={args.n / accepted:.0f} events_per_s={args.n / processed:.0f} "
        f"duplicates={duplicates} out_of_order={out_of_order}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch", type=int, default=32, help="chats per transaction")
    parser.add_argument("--db", default=None, help="postgresql+asyncpg://… (default: SQLite)")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
