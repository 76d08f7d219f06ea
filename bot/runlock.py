"""One bot process per token: a second poller on the same token and database refuses to start.

SQLite (one process by design): an exclusive ``fcntl.flock`` on a file in DATA_DIR, held
while the bot runs and released by the kernel if the process dies. PostgreSQL: a
session-level advisory lock held on a dedicated connection. The lock is per bot (a hash of
the Telegram bot id, the VK group id; MAX: one bot per database), never per token: a rotated
token names the same bot, so the old process and the new one cannot both serve it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

ALREADY_RUNNING_TEXT = (
    "Этот бот уже запущен с этой же базой данных ({what}), возможно, ещё со старым токеном. "
    "Два процесса мешали бы друг другу. Остановите другой процесс или дождитесь его "
    "завершения и запустите снова."
)


class AlreadyRunning(Exception):
    pass


def identity(platform: str, bot: str) -> str:
    """A stable name for the bot's lock (and its shared send rate)."""
    return f"{platform}-{hashlib.sha256(bot.encode()).hexdigest()[:16]}"


class RunLock:
    def __init__(self, engine: AsyncEngine, data_dir: Path, names: list[str]) -> None:
        self.engine = engine
        self.data_dir = data_dir
        self.names = sorted(set(names))
        self._files: list[IO[bytes]] = []
        self._connection: AsyncConnection | None = None
        self._keys: list[int] = []

    async def acquire(self) -> None:
        try:
            if self.engine.dialect.name == "postgresql":
                await self._acquire_advisory()
            else:
                self._acquire_files()
        except BaseException:
            await self.release()
            raise

    def _acquire_files(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for name in self.names:
            path = self.data_dir / f".bot-{name}.lock"
            handle = open(path, "a+b")  # noqa: SIM115 - held open while the bot runs
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                raise AlreadyRunning(ALREADY_RUNNING_TEXT.format(what=path)) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()}\n".encode())
            handle.flush()
            self._files.append(handle)

    async def _acquire_advisory(self) -> None:
        self._connection = await self.engine.connect()
        for name in self.names:
            key = int.from_bytes(
                hashlib.sha256(f"run:{name}".encode()).digest()[:8], "big", signed=True
            )
            locked = await self._connection.scalar(select(func.pg_try_advisory_lock(key)))
            await self._connection.commit()
            if not locked:
                raise AlreadyRunning(ALREADY_RUNNING_TEXT.format(what=f"PostgreSQL, {name}"))
            self._keys.append(key)

    async def release(self) -> None:
        for handle in self._files:
            with contextlib.suppress(OSError):
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()
        self._files.clear()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                for key in self._keys:
                    await self._connection.scalar(select(func.pg_advisory_unlock(key)))
                await self._connection.commit()
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None
            self._keys.clear()
