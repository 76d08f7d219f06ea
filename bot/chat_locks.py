"""Which worker serves a chat: on PostgreSQL a session-level advisory lock per chat, taken for
a whole batch on its one connection (the batch's transaction runs on it too); a chat held by
another worker is skipped. SQLite has one process: every chat is its own."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage import inbox


@dataclass(slots=True)
class Held:
    connection: AsyncConnection  # the batch's transaction runs on it (and holds its locks)
    chats: list[inbox.ChatKey]  # the batch's chats held (on PostgreSQL: locked) by us
    mine: set[inbox.ChatKey]  # the batch's chats in ``_active`` for us (not yet let go)


_KEYS = bindparam("keys", type_=ARRAY(BigInteger))
_TRY_LOCKS = text(
    "SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k WHERE pg_try_advisory_lock(k)"
).bindparams(_KEYS)
_UNLOCKS = text(
    "SELECT pg_advisory_unlock(k) FROM unnest(CAST(:keys AS bigint[])) AS k"
).bindparams(_KEYS)


def _lock_key(chat: inbox.ChatKey) -> int:
    digest = hashlib.sha256(f"chat:{chat[0]}:{chat[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.asynccontextmanager
async def claim(engine: AsyncEngine, chats: Sequence[inbox.ChatKey]) -> AsyncIterator[Held]:
    """One connection for the batch; on PostgreSQL the chats it could lock (all at once)."""
    if engine.dialect.name != "postgresql":
        async with engine.connect() as connection:
            yield Held(connection, list(chats), set(chats))
        return
    keys = {_lock_key(chat): chat for chat in chats}
    async with engine.connect() as connection:
        try:
            got = await connection.execute(_TRY_LOCKS, {"keys": list(keys)})
            held = {int(k) for (k,) in got.all()}
            await connection.commit()
            yield Held(connection, [c for k, c in keys.items() if k in held], set(chats))
        finally:
            with contextlib.suppress(Exception):
                if connection.in_transaction():
                    await connection.rollback()
                await connection.execute(select(func.pg_advisory_unlock_all()))
                await connection.commit()


async def release(held: Held, chats: Sequence[inbox.ChatKey]) -> None:
    if chats and held.connection.dialect.name == "postgresql":
        keys = [_lock_key(c) for c in chats]
        await held.connection.execute(_UNLOCKS, {"keys": keys})
        await held.connection.commit()
