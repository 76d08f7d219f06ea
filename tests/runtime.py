"""The real runner, in this process or as `python -m bot run`, for the runtime tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.runner import run_bot

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A local TCP port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[asyncio.Task]:
    """`run_bot` as a task, stopped as SIGTERM would stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(settings, stop=stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), 30)


async def spawn(
    env: Mapping[str, str],
    *args: str,
    stderr: Any = asyncio.subprocess.PIPE,
    stdout: Any = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """`python -m bot ARGS` in the project folder with exactly ``env``."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=dict(env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
    )
