"""Run an export: async loading on the event loop, everything else off it.

Chunks of rows travel from :func:`exports.data.iter_targets` to a worker thread
(``asyncio.to_thread``) through a small bounded queue; the thread computes the indicators,
writes the ZIP and builds the rows, which a writer process serialises for big exports
(:mod:`exports.xlsx`). The loop only ever waits on the database, and memory holds a few chunks
at most. The CLI, the chat and the benchmark all come through :func:`run_export`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import async_sessionmaker

from exports.archive import DocumentArchive
from exports.changelog import ChangeChunk, iter_changes
from exports.data import (
    DEFAULT_CHUNK,
    ExportHeader,
    ExportScope,
    TargetRow,
    iter_targets,
    load_header,
)
from exports.roadmap import RoadmapChunk, iter_roadmap_schools
from exports.workbook import ExportProgress, WorkbookSummary, build_workbook
from forms.schema import Form
from handlers.registry import FormRegistry
from storage.files import FileStore

QUEUE_CHUNKS = 3
_DONE = object()


class ExportAborted(Exception):
    """The loading side failed; the thread stops writing."""


@dataclass
class ExportResult:
    header: ExportHeader
    workbook: Path
    archive: Path | None
    summary: WorkbookSummary = field(default_factory=WorkbookSummary)


def form_lookup(forms: FormRegistry):
    def lookup(form_id: str, version: int) -> Form:
        return forms.engine(form_id, version).form

    return lookup


def _drain(chunks: queue.Queue) -> Iterator[Sequence[TargetRow] | RoadmapChunk | ChangeChunk]:
    while True:
        item = chunks.get()
        if item is _DONE:
            return
        if isinstance(item, BaseException):
            raise ExportAborted("loading the export data failed") from item
        yield item


async def _put(chunks: queue.Queue, item: object, worker: asyncio.Future) -> bool:
    """Hand an item to the thread without blocking the loop; False when the thread is gone."""
    delay = 0.001
    while not worker.done():
        try:
            chunks.put_nowait(item)
            return True
        except queue.Full:
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
    return False


async def run_export(
    sessions: async_sessionmaker,
    forms: FormRegistry,
    scope: ExportScope,
    workbook: Path,
    *,
    timezone: ZoneInfo,
    files: FileStore | None = None,
    documents: Path | None = None,
    progress: ExportProgress | None = None,
    header: ExportHeader | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    writer_process: bool | None = None,
    today: date | None = None,
) -> ExportResult:
    """Write ``workbook`` (and the documents ZIP when ``documents`` is given).

    ``today``: the date the roadmap sheet judges deadlines by (default: today in ``timezone``).
    """
    if header is None:
        async with sessions() as session:
            header = await load_header(session, scope)
    progress = progress or ExportProgress()
    progress.total = header.total_targets
    if documents is not None and files is None:
        raise ValueError("a documents archive needs the FileStore")
    archive = DocumentArchive(documents, files) if documents is not None else None
    chunks: queue.Queue = queue.Queue(maxsize=QUEUE_CHUNKS)
    lookup = form_lookup(forms)

    def build() -> WorkbookSummary:
        try:
            return build_workbook(
                workbook,
                header,
                lookup,
                _drain(chunks),
                timezone=timezone,
                archive=archive,
                progress=progress,
                writer_process=writer_process,
                today=today,
            )
        finally:
            if archive is not None:
                archive.close()

    worker = asyncio.ensure_future(asyncio.to_thread(build))
    try:
        async for chunk in iter_targets(sessions, header, chunk_size):
            if not await _put(chunks, chunk, worker):
                break
        else:
            async for roadmap_chunk in iter_roadmap_schools(
                sessions, header.roadmaps, header.scope.municipality_id, chunk_size
            ):
                if not await _put(chunks, roadmap_chunk, worker):
                    break
            else:
                campaign_ids = [c.id for c in header.campaigns]
                async for changes in iter_changes(
                    sessions, campaign_ids, header.scope.municipality_id, chunk_size
                ):
                    if not await _put(chunks, changes, worker):
                        break
        await _put(chunks, _DONE, worker)
    except BaseException as exc:
        progress.cancelled.set()
        await _put(chunks, exc, worker)
        with contextlib.suppress(BaseException):
            await asyncio.shield(worker)
        _remove(workbook, documents)
        raise
    try:
        summary = await worker
    except BaseException:
        _remove(workbook, documents)
        raise
    return ExportResult(header, workbook, documents, summary)


def _remove(*paths: Path | None) -> None:
    for path in paths:
        if path is not None:
            path.unlink(missing_ok=True)
