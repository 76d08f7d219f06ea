"""The work behind ``python -m bot import-schools FILE``: a streamed import with a progress bar."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncSession

from storage.school_import import SchoolStream
from storage.school_upsert import (
    ImportSummary,
    RegionChoiceError,
    resolve_region,
    upsert_schools,
)


async def import_file(
    session: AsyncSession, file: Path, region: str | None, timezone: str
) -> str | tuple[str, SchoolStream, ImportSummary]:
    """Stream ``file`` into the database in one transaction: committed when the stream has
    no issues, rolled back otherwise. An error message (no region to choose), or the
    region's name, the stream (its ``issues``, ``examples_skipped``) and the summary."""
    try:
        target = await resolve_region(session, region, timezone)
    except RegionChoiceError as exc:
        return str(exc)
    region_name = target.name
    with import_progress() as advance:
        stream = SchoolStream(file, on_progress=advance)
        summary = await upsert_schools(session, target, stream, stream.issues)
    if stream.issues:
        await session.rollback()
    else:
        await session.commit()
    return region_name, stream, summary


@contextmanager
def import_progress(
    total: int | None = None, stream: TextIO | None = None
) -> Iterator[Callable[[int, int | None], None]]:
    """A progress bar on the terminal (stderr), nothing when it is not a terminal.
    Yields ``advance(done, total=None)``."""
    out = sys.stderr if stream is None else stream
    if not out.isatty():
        yield lambda done, total=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(
        TextColumn("Чтение строк"),
        BarColumn(),
        MofNCompleteColumn(),
        console=Console(file=out),
    )
    task = progress.add_task("import", total=total)

    def advance(done: int, new_total: int | None = None) -> None:
        if new_total is not None:
            progress.update(task, total=max(new_total, done))
        progress.update(task, completed=done)

    with progress:
        yield advance
