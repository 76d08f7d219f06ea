"""One scheduler leader among the bot processes sharing a PostgreSQL database.

Why a leader and not a task queue: the background work is four APScheduler interval jobs
that already read their work from the database, so the smallest existing mechanism that
makes them run once is PostgreSQL's own session-level advisory lock. The leader holds
``pg_try_advisory_lock`` on a dedicated connection for as long as it leads; followers try
again every ``retry_s`` seconds. When the leader dies, PostgreSQL ends its session and
releases the lock, and a follower takes over within ``retry_s``. The leader checks its
connection every ``retry_s`` too and stops its jobs as soon as the connection is gone (it
can no longer prove it holds the lock).

The jobs stay safe when two processes overlap for a moment (a leader cut off from the
database keeps running its current job until its check fails): reminder and notice
deliveries are claimed atomically (unique keys, ``claimed_by``), so the lock is about not
doing the work twice and about jobs that are not idempotent (digests, pruning), not about
correctness of the deliveries. SQLite has one process (``bot.runlock``): it always leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

DEFAULT_RETRY_S = 5.0


def lock_key(name: str) -> int:
    """A signed 64-bit advisory lock key; advisory locks are per database already."""
    digest = hashlib.sha256(f"leader:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class Leader:
    """``await leader.run(stop)``: calls ``on_elected`` when this process starts leading and
    ``on_deposed`` when it stops (its connection died, or at shutdown)."""

    def __init__(
        self,
        engine: AsyncEngine,
        name: str = "scheduler",
        *,
        retry_s: float = DEFAULT_RETRY_S,
        on_elected: Callable[[], object] = lambda: None,
        on_deposed: Callable[[], object] = lambda: None,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.retry_s = retry_s
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.leading = False
        self._connection: AsyncConnection | None = None

    @property
    def shared(self) -> bool:
        """Whether other processes may share the database (only PostgreSQL)."""
        return self.engine.dialect.name == "postgresql"

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.retry_s)
        finally:
            await self.close()

    async def step(self) -> bool:
        """One election attempt (a follower) or health check (the leader); the outcome."""
        if not self.shared:
            self._elect()
            return True
        try:
            if self.leading:
                await asyncio.wait_for(self._check(), self.retry_s)
            else:
                if await asyncio.wait_for(self._try_lock(), self.retry_s):
                    self._elect()
        except Exception as exc:  # the database or the connection is gone: not leading
            log.warning("scheduler leadership (%s): %r", self.name, exc)
            self._depose()
            await self._drop_connection()
        return self.leading

    async def _try_lock(self) -> bool:
        if self._connection is None:
            self._connection = await self.engine.connect()
        locked = bool(await self._connection.scalar(select(func.pg_try_advisory_lock(self.key))))
        await self._connection.commit()  # the lock is session-level: it outlives the transaction
        return locked

    async def _check(self) -> None:
        """A session-level lock lives as long as the session: a live connection still holds it."""
        assert self._connection is not None
        await self._connection.scalar(select(1))
        await self._connection.commit()

    def _elect(self) -> None:
        if not self.leading:
            self.leading = True
            log.info("Этот процесс выполняет фоновые задания (%s)", self.name)
            self.on_elected()

    def _depose(self) -> None:
        if self.leading:
            self.leading = False
            log.warning("Этот процесс больше не выполняет фоновые задания (%s)", self.name)
            self.on_deposed()

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):
                await connection.invalidate()
            with contextlib.suppress(Exception):
                await connection.close()

    async def close(self) -> None:
        """Stop leading and give the lock back at once (a clean shutdown hands over fast)."""
        self._depose()
        connection, self._connection = self._connection, None
        if connection is None:
            return
        with contextlib.suppress(Exception):
            await connection.scalar(select(func.pg_advisory_unlock(self.key)))
            await connection.commit()
        with contextlib.suppress(Exception):
            await connection.close()


def run_when_leading(
    scheduler: BaseScheduler,
    engine: AsyncEngine,
    *,
    retry_s: float = DEFAULT_RETRY_S,
    name: str = "scheduler",
) -> Leader:
    """Start ``scheduler`` paused: it runs its jobs only while this process leads.

    Run the returned leader (``leader.run(stop)``) and close it before shutting the
    scheduler down."""
    scheduler.start(paused=True)

    def resume() -> None:
        if scheduler.running:
            scheduler.resume()

    def pause() -> None:
        if scheduler.running:
            scheduler.pause()

    return Leader(engine, name, retry_s=retry_s, on_elected=resume, on_deposed=pause)
