"""«Выгрузка в Excel» (/export) in the chat.

Admins and regional coordinators export everything, a municipal coordinator their own
municipality; directors get a polite refusal. With several campaigns the bot asks which one
(or all); when the campaigns have documents it asks whether to add the documents archive.

The export itself is a job (:mod:`storage.export_jobs`): the button queues a row, and
whichever worker process claims it (this one at once when it has a free slot, any other one
on its next poll) sends a progress message, keeps editing it, and finally sends the xlsx (and
the ZIP, when asked and when it fits the platform's upload limit — otherwise it says how to
get it with the CLI). A worker that dies mid-export stops refreshing its claim; another one
runs the job again (at least once: a crash between sending the file and marking the job done
sends it again; a worker whose claim was taken over sends nothing). The chat, and everybody
else's chats, go on meanwhile: the database is read in small chunks on the event loop and the
workbook is built in a worker thread (and, for big exports, serialised by a writer process).
Without a :class:`Messenger` for the platform (the console) the export runs inline and the
files come with the reply.

Buttons: ``x|c|<campaign id or *>`` picks the campaign, ``x|t|…`` exports the table only,
``x|d|…`` the table and the documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import uuid
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event as sa_event

from exports.data import CampaignInfo, ExportNotAllowed, ExportScope, campaigns_in_scope, scope_for
from exports.data import load_header as _load_header
from exports.service import run_export
from exports.workbook import ExportProgress
from handlers import callbacks as cb
from handlers.render import shorten
from handlers.texts import mb
from handlers.types import Button, Messenger, OutFile, Outgoing, OutText
from storage import export_jobs
from storage.export_jobs import ExportJob
from storage.models import Municipality

if TYPE_CHECKING:
    from handlers.core_context import CoreContext
    from handlers.walk_state import Turn

log = logging.getLogger(__name__)

ACTION = "x"
ALL = "*"
CHOOSE, TABLE, DOCUMENTS = "c", "t", "d"
MAX_CAMPAIGN_BUTTONS = 8
MAX_PARALLEL_EXPORTS = 2
DEFAULT_UPLOAD_LIMIT = 50 * 1024 * 1024
UPLOAD_LIMITS = {"tg": 50 * 1024 * 1024}  # what a bot may send; VK and others: the default

NOT_FOR_DIRECTORS = (
    "Выгрузка в Excel доступна координаторам и администраторам. "
    "Ответы вашей школы можно посмотреть командой /review."
)
NO_CAMPAIGNS = "Пока нечего выгружать: анкетирований ещё не было. Список команд: /help"
CHOOSE_CAMPAIGN = "Какую анкету выгрузить в Excel?"
BTN_ALL = "Все анкеты"
CHOOSE_KIND = "Выгрузить только таблицу или вместе с документами (архив ZIP, около {size})?"
BTN_TABLE = "📊 Только таблица"
BTN_DOCUMENTS = "📊 Таблица и 📎 документы"
BUSY = "Выгрузка уже готовится. Подождите, пожалуйста: пришлю файл, как только он будет готов."
STARTED = "⏳ Готовлю выгрузку «{title}»…"
QUEUED = "⏳ Выгрузка «{title}» в очереди: сейчас готовятся другие. Начну через минуту-другую."
PROGRESS = "⏳ Готовлю выгрузку «{title}»… Обработано {done} из {total}."
READY = (
    "✅ Выгрузка «{title}» готова: анкет {responses} из {targets}, в расчёте показателей {counted}."
)
CAPTION = "Выгрузка «{title}» на {day}"
CAPTION_ZIP = "Документы к выгрузке «{title}»: {count} файлов"
MISSING_FILES = "Не нашлось на диске файлов: {count} — они отмечены в листах «Ответы — …»."
TOO_BIG = (
    "Архив документов слишком большой для отправки в чат ({size}, можно до {limit}). "
    "Попросите администратора выгрузить его командой:\n{command}"
)
XLSX_TOO_BIG = (
    "Файл получился слишком большим для отправки в чат ({size}, можно до {limit}). "
    "Попросите администратора выгрузить его командой:\n{command}"
)
FAILED = (
    "Не удалось подготовить выгрузку. Попробуйте ещё раз чуть позже; "
    "если ошибка повторится, сообщите администратору."
)
STALE = "Эта кнопка устарела. Чтобы сделать выгрузку, отправьте /export"

PROGRESS_EVERY = 2.0  # seconds between progress edits
HEARTBEAT_EVERY = 30.0  # seconds between refreshes of a running job's claim
POLL_EVERY = 2.0  # seconds between looks for jobs queued by other workers


@dataclass(frozen=True)
class _Request:
    platform: str
    user_id: str
    chat_id: str
    scope: ExportScope
    title: str
    documents: bool
    cli: str  # the same export on the command line


def _payload(kind: str, campaign: str) -> str:
    return cb.encode(ACTION, kind, campaign)


def _title(campaigns: list[CampaignInfo]) -> str:
    return campaigns[0].title if len(campaigns) == 1 else "все анкеты"


def _to_json(request: _Request) -> dict[str, Any]:
    data = asdict(request)
    scope = data["scope"]
    scope["campaign_ids"] = list(scope["campaign_ids"]) if scope["campaign_ids"] else None
    return data


def _from_json(data: dict[str, Any]) -> _Request:
    scope = dict(data["scope"])
    ids = scope.get("campaign_ids")
    scope["campaign_ids"] = tuple(int(i) for i in ids) if ids else None
    return _Request(**{**data, "scope": ExportScope(**scope)})


def _now() -> datetime:
    return datetime.now(UTC)  # the wall clock: claims of other processes are judged by it


class ExportChat:
    """The /export command and its buttons; owns the background export tasks."""

    def __init__(self, conversation: CoreContext) -> None:
        self.conversation = conversation
        self.progress_every = PROGRESS_EVERY
        self.heartbeat_every = HEARTBEAT_EVERY
        self.stale_after = export_jobs.STALE_AFTER
        self.slots = MAX_PARALLEL_EXPORTS
        self.worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._tasks: set[asyncio.Task] = set()
        self._kicked = False

    # --- entry points -----------------------------------------------------------------------

    async def command(self, turn: Turn, args: str = "") -> None:
        scope = self._scope(turn)
        if scope is None:
            return
        campaigns = await campaigns_in_scope(turn.session, scope)
        if not campaigns:
            turn.say(NO_CAMPAIGNS)
            return
        wanted = args.strip().lstrip("№#")
        if wanted.isdigit() and any(c.id == int(wanted) for c in campaigns):
            await self._choose_kind(turn, scope, wanted)
            return
        if len(campaigns) == 1:
            await self._choose_kind(turn, scope, str(campaigns[0].id))
            return
        buttons = [
            [Button(shorten(f"№{c.id} {c.title}", 60), _payload(CHOOSE, str(c.id)))]
            for c in campaigns[:MAX_CAMPAIGN_BUTTONS]
        ]
        buttons.append([Button(BTN_ALL, _payload(CHOOSE, ALL))])
        turn.say(CHOOSE_CAMPAIGN, buttons)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        scope = self._scope(turn)
        if scope is None:
            return
        kind, campaign = payload.str_arg(0), payload.str_arg(1) or ""
        ids = await self._campaign_ids(turn, scope, campaign)
        if ids is None or kind not in (CHOOSE, TABLE, DOCUMENTS):
            turn.say(STALE)
            return
        if kind == CHOOSE:
            await self._choose_kind(turn, scope, campaign)
            return
        await self._start(turn, replace(scope, campaign_ids=ids), kind == DOCUMENTS)

    async def wait(self) -> None:
        """Until the background exports are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def run(self, stop: asyncio.Event) -> None:
        """Look for jobs queued by other workers (or left by a dead one) until ``stop``."""
        while not stop.is_set():
            self.kick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), POLL_EVERY)

    def kick(self) -> None:
        """Claim queued jobs in this process while it has a free export slot."""
        platforms = list(self.conversation.messengers)
        if not platforms or self.slots <= 0:
            return
        self._kicked = True
        if sum(not task.done() for task in self._tasks) >= self.slots:
            return  # a running drainer takes the job when its export is done
        task = asyncio.create_task(self._drain(platforms), name="export jobs")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- steps ------------------------------------------------------------------------------

    def _scope(self, turn: Turn) -> ExportScope | None:
        try:
            return scope_for(turn.person)
        except ExportNotAllowed:
            turn.say(NOT_FOR_DIRECTORS)
            return None

    async def _campaign_ids(
        self, turn: Turn, scope: ExportScope, campaign: str
    ) -> tuple[int, ...] | None:
        """The campaigns a button names, if the person may export them."""
        allowed = await campaigns_in_scope(turn.session, scope)
        if campaign == ALL:
            return tuple(sorted(c.id for c in allowed)) or None
        if campaign.isdigit() and any(c.id == int(campaign) for c in allowed):
            return (int(campaign),)
        return None

    async def _choose_kind(self, turn: Turn, scope: ExportScope, campaign: str) -> None:
        ids = await self._campaign_ids(turn, scope, campaign)
        if ids is None:
            turn.say(STALE)
            return
        header = await _load_header(turn.session, replace(scope, campaign_ids=ids))
        if header.document_bytes == 0:
            await self._start(turn, header.scope, documents=False)
            return
        turn.say(
            CHOOSE_KIND.format(size=mb(header.document_bytes)),
            [
                [Button(BTN_TABLE, _payload(TABLE, campaign))],
                [Button(BTN_DOCUMENTS, _payload(DOCUMENTS, campaign))],
            ],
        )

    async def _start(self, turn: Turn, scope: ExportScope, documents: bool) -> None:
        user = turn.event.user
        messenger = self.conversation.messengers.get(str(user.platform))
        now = _now()
        if messenger is not None and await export_jobs.unfinished(
            turn.session, str(user.platform), user.user_id, self.stale_after, now
        ):
            turn.say(BUSY)
            return
        header = await _load_header(turn.session, scope)
        request = _Request(
            platform=str(user.platform),
            user_id=user.user_id,
            chat_id=user.chat_id,
            scope=scope,
            title=_title(header.campaigns),
            documents=documents,
            cli=await self._cli(turn, scope),
        )
        if messenger is None:  # the console: run inline, the files come with the reply
            ready, replies = await self._export(request, None, self._folder(keep=True))
            turn.say(ready)
            turn.out.extend(replies)
            return
        # Queued in the turn's own transaction (a second writer would wait for the turn's
        # lock on SQLite); this process looks for it when the turn's session commits. In a
        # batch that is the event's savepoint, before the batch commits: a look then may find
        # nothing, and the job is claimed on the next poll (POLL_EVERY) by any worker.
        await export_jobs.enqueue(
            turn.session,
            platform=request.platform,
            user_id=request.user_id,
            chat_id=request.chat_id,
            request=_to_json(request),
            now=now,
        )
        sa_event.listen(turn.session.sync_session, "after_commit", lambda _: self.kick(), once=True)
        if sum(not task.done() for task in self._tasks) >= self.slots:
            turn.say(QUEUED.format(title=request.title))

    async def _cli(self, turn: Turn, scope: ExportScope) -> str:
        parts = ["python3 scripts/dev.py export --out выгрузка.xlsx"]
        if scope.campaign_ids and len(scope.campaign_ids) == 1:
            parts.append(f"--campaign {scope.campaign_ids[0]}")
        if scope.municipality_id is not None:
            municipality = await turn.session.get(Municipality, scope.municipality_id)
            if municipality is not None:
                parts.append(f'--municipality "{municipality.name}"')
        parts.append("--documents документы.zip")
        return " ".join(parts)

    # --- the export -------------------------------------------------------------------------

    async def _drain(self, platforms: list[str]) -> None:
        while True:
            self._kicked = False
            try:
                job = await export_jobs.claim(
                    self.conversation.sessions, self.worker, platforms, _now(), self.stale_after
                )
            except Exception:
                log.exception("could not claim an export job")
                return
            if job is None:
                if self._kicked:  # queued while we looked: look again
                    continue
                return
            await self._run_job(job)

    async def _run_job(self, job: ExportJob) -> None:
        messenger = self.conversation.messengers[job.platform]
        try:
            request = _from_json(job.request)
        except (KeyError, TypeError, ValueError) as exc:
            log.error("export job %s is unreadable: %r", job.id, exc)
            await self._finish(job.id, f"unreadable: {exc!r}")
            return
        if job.attempts > export_jobs.MAX_ATTEMPTS:  # its workers died every time
            with contextlib.suppress(Exception):
                await messenger.send(job.chat_id, OutText(FAILED))
            await self._finish(job.id, "abandoned by its workers")
            return
        await self._background(job.id, request, messenger)

    async def _finish(self, job_id: int, error: str | None = None) -> None:
        try:
            await export_jobs.finish(
                self.conversation.sessions, job_id, self.worker, _now(), error=error
            )
        except Exception:
            log.exception("could not finish export job %s", job_id)

    async def _background(self, job_id: int, request: _Request, messenger: Messenger) -> None:
        chat = request.chat_id
        progress = ExportProgress()
        message_id: str | None = None
        folder: Path | None = None
        error: str | None = None
        try:
            message_id = await messenger.send(chat, OutText(STARTED.format(title=request.title)))
            ticker = asyncio.create_task(
                self._tick(job_id, request, messenger, message_id, progress)
            )
            try:
                folder = self._folder(keep=False)
                ready, replies = await self._export(request, progress, folder)
            finally:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            sessions = self.conversation.sessions
            if not await export_jobs.heartbeat(sessions, job_id, self.worker, _now()):
                log.warning("export job %s was taken over by another worker", job_id)
                return  # that worker sends the files
            await self._say(messenger, chat, message_id, ready)
            for reply in replies:
                await messenger.send(chat, reply)
        except Exception as exc:
            log.exception("export for %s:%s failed", request.platform, request.user_id)
            error = repr(exc)[:500]
            with contextlib.suppress(Exception):
                await self._say(messenger, chat, message_id, FAILED)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
        await self._finish(job_id, error)

    def _folder(self, keep: bool) -> Path:
        """Where the files are made: a temp folder, or DATA_DIR/exports when the reply needs
        them after the turn (the console shows their paths)."""
        root = self.conversation.files.root
        base = root.parent / "exports" if keep else root / "tmp"
        base.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="export-", dir=base))

    async def _tick(
        self,
        job_id: int,
        request: _Request,
        messenger: Messenger,
        message_id: str | None,
        progress: ExportProgress,
    ) -> None:
        shown = -1
        loop = asyncio.get_running_loop()
        beat = loop.time()
        while True:
            await asyncio.sleep(self.progress_every)
            if loop.time() - beat >= self.heartbeat_every:
                beat = loop.time()
                with contextlib.suppress(Exception):  # a missed beat is retried next time
                    await export_jobs.heartbeat(
                        self.conversation.sessions, job_id, self.worker, _now()
                    )
            if message_id is None:
                continue
            if progress.done == shown or not progress.total:
                continue
            shown = progress.done
            text = PROGRESS.format(title=request.title, done=shown, total=progress.total)
            try:
                await messenger.edit(request.chat_id, message_id, OutText(text))
            except Exception as exc:  # progress is a courtesy: never fail the export for it
                log.debug("progress edit failed: %r", exc)

    async def _say(
        self, messenger: Messenger, chat: str, message_id: str | None, text: str
    ) -> None:
        if message_id is not None:
            try:
                await messenger.edit(chat, message_id, OutText(text))
                return
            except Exception as exc:
                log.debug("could not edit the progress message: %r", exc)
        await messenger.send(chat, OutText(text))

    async def _export(
        self, request: _Request, progress: ExportProgress | None, folder: Path
    ) -> tuple[str, list[Outgoing]]:
        """Run the export into ``folder``: the status line and the messages to send."""
        conversation = self.conversation
        today = conversation.today()
        async with conversation.sessions() as session:
            header = await _load_header(session, request.scope)
        limit = UPLOAD_LIMITS.get(request.platform, DEFAULT_UPLOAD_LIMIT)
        archive_fits = request.documents and header.document_bytes <= limit
        workbook = folder / f"Выгрузка_{today:%Y-%m-%d}.xlsx"
        documents = folder / f"Документы_{today:%Y-%m-%d}.zip" if archive_fits else None
        result = await run_export(
            conversation.sessions,
            conversation.forms,
            request.scope,
            workbook,
            timezone=conversation.config.timezone,
            files=conversation.files,
            documents=documents,
            progress=progress,
            header=header,
        )
        summary = result.summary
        ready = READY.format(
            title=request.title,
            responses=summary.responses,
            targets=summary.targets,
            counted=summary.counted,
        )
        out: list[Outgoing] = []
        size = workbook.stat().st_size
        if size > limit:
            out.append(
                OutText(XLSX_TOO_BIG.format(size=mb(size), limit=mb(limit), command=request.cli))
            )
        else:
            caption = CAPTION.format(title=request.title, day=f"{today:%d.%m.%Y}")
            out.append(OutFile(workbook, workbook.name, caption))
        if request.documents:
            size = documents.stat().st_size if documents is not None else header.document_bytes
            if documents is None or size > limit:
                out.append(
                    OutText(TOO_BIG.format(size=mb(size), limit=mb(limit), command=request.cli))
                )
            else:
                caption = CAPTION_ZIP.format(title=request.title, count=summary.archived)
                out.append(OutFile(documents, documents.name, caption))
        if summary.missing_documents:
            out.append(OutText(MISSING_FILES.format(count=len(summary.missing_documents))))
        return ready, out
