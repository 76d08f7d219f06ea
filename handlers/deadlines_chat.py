"""«Мои сроки» (/deadlines): upcoming roadmap items, marking them done, completion.

Entry points (the conversation delegates to them):

* :func:`command` — ``/deadlines`` lists the person's items and the roadmap completion
  (:mod:`handlers.deadlines_view`); ``/deadlines done 2`` starts marking item 2;
  ``/deadlines done 2 Приказ № 12 от 01.02.2023`` marks it at once with that reference;
* :func:`button` — the «✅ п. 2» buttons under the list (payload ``r|d|<item>|<yyyymmdd>``);
* :func:`file` / :func:`text` — while :data:`MODE` is set, the evidence document (a file)
  or its reference (a text) for the item being marked; «отмена» cancels.

Directors report for their school, municipal coordinators for their municipality, regional
coordinators for their region — each the items whose executors include their role.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from handlers import callbacks as cb
from handlers import deadlines_view as view
from handlers.deadlines_view import Entry, context, open_entries, progress_text, short, show
from handlers.types import EventKind
from storage import roadmaps_db as rdb
from storage.files import ACCEPTED_LIST, UnsupportedFileType, extension_of
from storage.models import RoadmapItem

if TYPE_CHECKING:
    from handlers.core_context import CoreContext
    from handlers.walk_state import Turn

log = logging.getLogger(__name__)

ACTION = view.ACTION  # r|d|<item id>|<yyyymmdd>: mark this occurrence done
MODE = "roadmap_evidence"
MIN_REFERENCE = 5
PENDING_FOR = timedelta(minutes=30)  # a document sent later is not taken as the evidence
CANCEL_WORDS = ("отмена", "отменить", "стоп", "cancel")

ASK_EVIDENCE = (
    "Отмечаем п. {number}: {action}\n"
    "Пришлите подтверждающий документ{what} файлом ({accepted}) "
    "или напишите его реквизиты одним сообщением, например: Приказ № 12 от 01.02.2023.\n"
    "Передумали — напишите «отмена»."
)
NOT_FOUND = "Пункт «{number}» не найден среди ваших. Список: /deadlines"
AMBIGUOUS = (
    "Пункт «{number}» есть в нескольких дорожных картах: нажмите кнопку под списком /deadlines"
)
NOT_YOURS = "Этот пункт не относится к вам. Список ваших сроков: /deadlines"
ALREADY = "П. {number} уже отмечен выполненным {when}."
ALL_DONE = "Все сроки п. {number} уже отмечены. Список: /deadlines"
DONE = "✅ П. {number} отмечен выполненным{what}.\n{progress}"
DONE_FILE = ", документ «{name}» сохранён"
DONE_NOTE = ", подтверждение: «{note}»"
CANCELLED = "Хорошо, отметка отменена. Список сроков: /deadlines"
REFERENCE_TOO_SHORT = (
    "Напишите реквизиты документа подробнее (например: Приказ № 12 от 01.02.2023) "
    "или пришлите файл. Отмена — «отмена»."
)
FILE_FAILED = "Не удалось получить файл «{name}». Пришлите его ещё раз, пожалуйста."
FILE_TOO_BIG = "Файл «{name}» слишком большой. Пришлите файл поменьше или напишите реквизиты."
FILE_BAD = "Файлы такого типа («{name}») не принимаются. Пришлите {accepted}."
PHOTO = "Пришлите документ файлом (📎 → «Файл»), а не сжатой фотографией."


# --- /deadlines ----------------------------------------------------------------------------


async def command(conv: CoreContext, turn: Turn, args: str) -> None:
    words = args.split(maxsplit=2)
    if words and words[0].lower() in ("done", "готово", "выполнено", "отметить"):
        number = words[1] if len(words) > 1 else ""
        reference = words[2] if len(words) > 2 else ""
        await _mark_by_number(conv, turn, number.rstrip("."), reference)
        return
    if turn.state.mode == MODE:
        _leave(turn)
    await show(conv, turn)


# --- marking done --------------------------------------------------------------------------


async def _mark_by_number(conv: CoreContext, turn: Turn, number: str, reference: str) -> None:
    place, _today, roadmaps = await context(conv, turn)
    entries, _done, items = await open_entries(turn.session, place, roadmaps)
    if not number:
        await show(conv, turn)
        return
    matching = [e for e in entries if e.number == number]
    if not matching:
        by_id = {r.id: r for r in roadmaps}
        mine = [
            i
            for i in items
            if i.number.rstrip(".") == number
            and i.roadmap_id in by_id
            and rdb.is_mine(i, by_id[i.roadmap_id], place)
        ]
        turn.say((ALL_DONE if mine else NOT_FOUND).format(number=number))
        return
    if len({e.roadmap.id for e in matching}) > 1:
        turn.say(AMBIGUOUS.format(number=number))
        return
    await _begin(conv, turn, matching[0], reference)


async def button(conv: CoreContext, turn: Turn, payload: cb.Payload) -> None:
    """A «✅ п. N» button under the list."""
    item_id = payload.int_arg(1)
    raw_due = payload.str_arg(2) or ""
    place, _today, roadmaps = await context(conv, turn)
    item = await turn.session.get(RoadmapItem, item_id) if item_id else None
    roadmap = next((r for r in roadmaps if item and r.id == item.roadmap_id), None)
    role = place.executor_role
    if item is None or roadmap is None or role is None or not rdb.is_mine(item, roadmap, place):
        turn.say(NOT_YOURS)
        return
    try:
        due_on = date(int(raw_due[:4]), int(raw_due[4:6]), int(raw_due[6:8]))
    except ValueError:
        turn.say(NOT_YOURS)
        return
    if due_on not in rdb.item_occurrences(item, roadmap):
        turn.say(NOT_YOURS)
        return
    await _begin(conv, turn, Entry(roadmap, item, due_on, bool(item.due_dates)), "")


async def _begin(conv: CoreContext, turn: Turn, entry: Entry, reference: str) -> None:
    place = await rdb.place_of(turn.session, turn.person)
    key = place.own_key
    assert key is not None
    found = await rdb.completion_of(turn.session, entry.item.id, key, entry.due_on)
    if found is not None:
        turn.say(ALREADY.format(number=entry.number, when=_when_done(conv, found.done_at)))
        return
    if len(reference.strip()) >= MIN_REFERENCE:
        await _complete(conv, turn, entry.item.id, entry.due_on, note=reference.strip())
        return
    if turn.state.mode != MODE:
        turn.state.data = {
            "roadmap": {"prev_mode": turn.state.mode, "prev_data": dict(turn.state.data or {})}
        }
    data = dict(turn.state.data or {})
    data["roadmap"] = {
        **data.get("roadmap", {}),
        "item": entry.item.id,
        "due": entry.due_on.isoformat(),
        "at": conv.clock().isoformat(),
    }
    turn.state.data = data
    turn.state.mode = MODE
    what = f" («{short(entry.item.evidence, 100)}»)" if entry.item.evidence else ""
    turn.say(
        ASK_EVIDENCE.format(
            number=entry.number, action=short(entry.item.action), what=what, accepted=ACCEPTED_LIST
        )
    )


def _when_done(conv: CoreContext, moment) -> str:
    from scheduler.reminders import as_utc

    return as_utc(moment).astimezone(conv.config.timezone).strftime("%d.%m.%Y")


def _pending(conv: CoreContext, turn: Turn) -> tuple[int, date] | None:
    """The occurrence being marked, unless the request is older than PENDING_FOR."""
    data = (turn.state.data or {}).get("roadmap") or {}
    if "item" not in data:
        return None
    try:
        asked = datetime.fromisoformat(data["at"])
    except (KeyError, TypeError, ValueError):
        return None
    if conv.clock() - asked > PENDING_FOR:
        return None
    return int(data["item"]), date.fromisoformat(data["due"])


def _leave(turn: Turn) -> None:
    data = (turn.state.data or {}).get("roadmap") or {}
    turn.state.mode = data.get("prev_mode") or "idle"
    if turn.state.mode == MODE:
        turn.state.mode = "idle"
    turn.state.data = data.get("prev_data") or {}


async def text(conv: CoreContext, turn: Turn, message: str) -> None:
    """A text while waiting for the evidence: its reference, or «отмена»."""
    pending = _pending(conv, turn)
    if pending is None:  # asked long ago: this text is for the usual conversation
        _leave(turn)
        await type(conv)._text(conv, turn, message)
        return
    message = message.strip()
    if message.lower().rstrip(".!") in CANCEL_WORDS:
        _leave(turn)
        turn.say(CANCELLED)
        return
    if len(message) < MIN_REFERENCE:
        turn.say(REFERENCE_TOO_SHORT)
        return
    item_id, due_on = pending
    _leave(turn)
    await _complete(conv, turn, item_id, due_on, note=message[:2000])


async def file(conv: CoreContext, turn: Turn) -> None:
    """The evidence document for the item being marked."""
    pending = _pending(conv, turn)
    document = turn.event.document
    if pending is None:
        _leave(turn)
        await type(conv)._file(conv, turn)
        return
    if turn.event.kind == EventKind.PHOTO or document is None:
        turn.say(PHOTO)
        return
    name = short(document.file_name or "документ", 200)
    limit = conv.config.download_limit(str(turn.event.user.platform))
    if document.size is not None and document.size > limit:
        turn.say(FILE_TOO_BIG.format(name=name))
        return
    from storage.files import ACCEPTED_TYPES

    if extension_of(name) not in ACCEPTED_TYPES:
        turn.say(FILE_BAD.format(name=name, accepted=ACCEPTED_LIST))
        return
    fetcher = conv.fetchers.get(str(turn.event.user.platform))
    temp = conv.files.temp_path()
    try:
        if fetcher is None:
            raise RuntimeError("no file fetcher for this platform")
        await asyncio.wait_for(fetcher.fetch(document.file_id, temp), conv.config.download_timeout)
        if temp.stat().st_size > limit:
            temp.unlink(missing_ok=True)
            turn.say(FILE_TOO_BIG.format(name=name))
            return
        stored = await asyncio.to_thread(conv.files.put, temp, name)
    except UnsupportedFileType:
        temp.unlink(missing_ok=True)
        turn.say(FILE_BAD.format(name=name, accepted=ACCEPTED_LIST))
        return
    except Exception as exc:
        temp.unlink(missing_ok=True)
        log.warning("evidence download %s failed: %r", document.file_id, exc)
        turn.say(FILE_FAILED.format(name=name))
        return
    item_id, due_on = pending
    _leave(turn)
    await _complete(
        conv,
        turn,
        item_id,
        due_on,
        evidence=stored,
        evidence_name=name,
        file_id=document.file_id,
    )


async def _complete(
    conv: CoreContext,
    turn: Turn,
    item_id: int,
    due_on: date,
    *,
    note: str | None = None,
    evidence=None,
    evidence_name: str | None = None,
    file_id: str | None = None,
) -> None:
    session = turn.session
    place, today, roadmaps = await context(conv, turn)
    item = await session.get(RoadmapItem, item_id)
    roadmap = next((r for r in roadmaps if item and r.id == item.roadmap_id), None)
    key, role = place.own_key, place.executor_role
    if item is None or roadmap is None or key is None or role is None:
        turn.say(NOT_YOURS)
        return
    if not rdb.is_mine(item, roadmap, place):
        turn.say(NOT_YOURS)
        return
    number = item.number.rstrip(".")
    try:
        await rdb.mark_done(
            session,
            item,
            key,
            due_on,
            turn.person.id,
            note=note,
            evidence=evidence,
            evidence_name=evidence_name,
            platform=str(turn.event.user.platform),
            file_id=file_id,
            at=conv.clock(),
        )
    except rdb.AlreadyDone as exc:
        turn.say(ALREADY.format(number=number, when=_when_done(conv, exc.completion.done_at)))
        return
    items = await rdb.items_of(session, [roadmap.id])
    done = await rdb.done_set(session, [i.id for i in items], [key])
    progress = rdb.progress_for(items, roadmap, place, done, today)
    what = ""
    if evidence_name:
        what = DONE_FILE.format(name=evidence_name)
    elif note:
        what = DONE_NOTE.format(note=short(note, 80))
    turn.say(
        DONE.format(number=number, what=what, progress=progress_text(progress, roadmap, today))
    )
