"""«Мои сроки» (/deadlines): upcoming roadmap items, marking them done, completion.

Entry points (the conversation delegates to them):

* :func:`command` — ``/deadlines`` lists the person's items (overdue first, then the
  next ones) and the roadmap completion; ``/deadlines done 2`` starts marking item 2;
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
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import callbacks as cb
from handlers.texts import human_date
from handlers.types import Button, EventKind
from storage import roadmaps_db as rdb
from storage.files import ACCEPTED_LIST, UnsupportedFileType, extension_of
from storage.models import Municipality, Region, Roadmap, RoadmapItem, Role, School

if TYPE_CHECKING:
    from handlers.core_context import CoreContext
    from handlers.walk_state import Turn

log = logging.getLogger(__name__)

ACTION = "r"  # r|d|<item id>|<yyyymmdd>: mark this occurrence done
MODE = "roadmap_evidence"
HORIZON_DAYS = 45  # upcoming items shown
MAX_LINES = 10
MAX_BUTTONS = 6
MIN_REFERENCE = 5
PENDING_FOR = timedelta(minutes=30)  # a document sent later is not taken as the evidence
CANCEL_WORDS = ("отмена", "отменить", "стоп", "cancel")

TITLE = "📅 Мои сроки — {scope}"
NO_ROADMAPS = "Для вас пока нет дорожных карт со сроками. Список команд: /help"
NOTHING_DUE = "Ближайших сроков нет: все пункты на {days} дней вперёд выполнены или без срока."
ROADMAP_HEAD = "«{title}»"
LINE_OVERDUE = "⚠️ п. {number} — срок был {due}: {action}"
LINE_UPCOMING = "• п. {number} — {when}: {action}"
LINE_EVIDENCE = "   Подтверждение: {evidence}"
MORE = "…и ещё {count}."
PROGRESS = "Исполнение: {percent}% ({done} из {total})."
PROGRESS_LATE = " Просрочено: {late}."
MILESTONE = " Ориентир: {text} к {date}"
MARK_HINT = (
    "Чтобы отметить пункт выполненным, нажмите кнопку под списком или напишите, например: "
    "/deadlines done {number}"
)
BTN_DONE = "✅ п. {number}"
SCHOOLS_HEAD = "Школы:"
MUNICIPALITIES_HEAD = "Муниципалитеты:"
PLACE_LINE = "• {name} — {percent}%{late}"
PLACE_LATE = ", просрочено {late}"
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
BLOCKED = "🔕 Не получают напоминания (заблокировали бота): {names}"
ADMIN_HEAD = "Напоминания: {counts}."
ADMIN_PROBLEM = "• {status}: {key} (чат {chat}){error}"
ADMIN_NONE = "Пропущенных и недоставленных напоминаний нет."
STATUS_NAMES = {
    "pending": "ждут",
    "claimed": "отправляются",
    "sent": "отправлено",
    "missed": "пропущено",
    "failed": "ошибка",
    "unreachable": "заблокировали бота",
    "cancelled": "не понадобилось",
}


@dataclass
class Entry:
    roadmap: Roadmap
    item: RoadmapItem
    due_on: date
    dated: bool

    @property
    def number(self) -> str:
        return self.item.number.rstrip(".")


# --- helpers -------------------------------------------------------------------------------


async def zone_of(session: AsyncSession, place: rdb.Place, default: ZoneInfo) -> ZoneInfo:
    if place.municipality_id is not None:
        municipality = await session.get(Municipality, place.municipality_id)
        if municipality is not None and municipality.timezone:
            return ZoneInfo(municipality.timezone)
    if place.region_id is not None:
        region = await session.get(Region, place.region_id)
        if region is not None and region.timezone:
            return ZoneInfo(region.timezone)
    return default


def short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def when(due_on: date, today: date) -> str:
    days = (due_on - today).days
    if days == 0:
        return "сегодня"
    if days == 1:
        return "завтра"
    return f"до {human_date(due_on)}"


async def _context(conv: CoreContext, turn: Turn) -> tuple[rdb.Place, date, list[Roadmap]]:
    place = await rdb.place_of(turn.session, turn.person)
    zone = await zone_of(turn.session, place, conv.config.timezone)
    today = conv.clock().astimezone(zone).date()
    return place, today, await rdb.roadmaps_for(turn.session, place)


async def open_entries(
    session: AsyncSession, place: rdb.Place, roadmaps: list[Roadmap]
) -> tuple[list[Entry], set[tuple[int, str, date]], list[RoadmapItem]]:
    """Occurrences of the person's own items not reported yet, by date."""
    role, key = place.executor_role, place.own_key
    items = await rdb.items_of(session, [r.id for r in roadmaps])
    if role is None or key is None:
        return [], set(), items
    by_id = {r.id: r for r in roadmaps}
    done = await rdb.done_set(session, [i.id for i in items], [key])
    entries = []
    for item in items:
        roadmap = by_id[item.roadmap_id]
        if not rdb.is_mine(item, roadmap, place):
            continue
        for due_on in rdb.item_occurrences(item, roadmap):
            if (item.id, key, due_on) not in done:
                entries.append(Entry(roadmap, item, due_on, bool(item.due_dates)))
    entries.sort(key=lambda e: (e.due_on, e.roadmap.id, e.item.position))
    return entries, done, items


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


async def show(conv: CoreContext, turn: Turn) -> None:
    session = turn.session
    place, today, roadmaps = await _context(conv, turn)
    if place.role == Role.ADMIN:
        await _admin(turn)
        return
    if not roadmaps:
        turn.say(NO_ROADMAPS)
        return
    entries, done, items = await open_entries(session, place, roadmaps)
    horizon = date.fromordinal(today.toordinal() + HORIZON_DAYS)
    shown = [e for e in entries if e.dated and (e.due_on <= horizon or _started(e, today))]
    lines = [TITLE.format(scope=await _scope(session, place)), ""]
    buttons: list[list[Button]] = []
    if place.executor_role is not None:
        if not shown:
            lines.append(NOTHING_DUE.format(days=HORIZON_DAYS))
        for entry in shown[:MAX_LINES]:
            template = LINE_OVERDUE if entry.due_on < today else LINE_UPCOMING
            lines.append(
                template.format(
                    number=entry.number,
                    due=human_date(entry.due_on),
                    when=when(entry.due_on, today),
                    action=short(entry.item.action),
                )
            )
            if entry.item.evidence:
                lines.append(LINE_EVIDENCE.format(evidence=short(entry.item.evidence, 100)))
            if len(buttons) < MAX_BUTTONS:
                buttons.append(
                    [
                        Button(
                            BTN_DONE.format(number=entry.number),
                            cb.encode(ACTION, "d", entry.item.id, f"{entry.due_on:%Y%m%d}"),
                        )
                    ]
                )
        if len(shown) > MAX_LINES:
            lines.append(MORE.format(count=len(shown) - MAX_LINES))
        lines.append("")
    for roadmap in roadmaps:
        lines.extend(await _progress_lines(session, place, roadmap, items, done, today))
    if place.role in (Role.MUNICIPAL, Role.REGIONAL):
        from scheduler.reminders import unreachable_below

        blocked = await unreachable_below(
            session, place.role, place.municipality_id, place.region_id
        )
        if blocked:
            lines.append(BLOCKED.format(names=", ".join(blocked[:30])))
    if shown:
        lines.append("")
        lines.append(MARK_HINT.format(number=shown[0].number))
    turn.say(_tidy(lines), buttons)


def _started(entry: Entry, today: date) -> bool:
    """An item whose execution period has begun (a range like 01.02–15.05) is current."""
    deadline = rdb.deadline_of(entry.item)
    return bool(
        deadline and deadline.kind == "range" and deadline.start and deadline.start <= today
    )


def _tidy(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        if line == "" and (not out or out[-1] == ""):
            continue
        out.append(line)
    return "\n".join(out).strip()


async def _scope(session: AsyncSession, place: rdb.Place) -> str:
    if place.school_id is not None:
        school = await session.get(School, place.school_id)
        return school.name if school else "школа"
    if place.role == Role.MUNICIPAL and place.municipality_id is not None:
        municipality = await session.get(Municipality, place.municipality_id)
        return municipality.name if municipality else "муниципалитет"
    if place.region_id is not None:
        region = await session.get(Region, place.region_id)
        return region.name if region else "регион"
    return "все школы"


def _progress_text(progress: rdb.Progress, roadmap: Roadmap, today: date) -> str:
    text = PROGRESS.format(percent=progress.percent, done=progress.done, total=progress.total)
    if progress.overdue:
        text += PROGRESS_LATE.format(late=progress.overdue)
    stone = rdb.next_milestone(roadmap, today)
    if stone is not None:
        text += MILESTONE.format(
            text=stone.get("text", "").rstrip("."),
            date=human_date(date.fromisoformat(stone["date"])),
        )
    return text


async def _progress_lines(
    session: AsyncSession,
    place: rdb.Place,
    roadmap: Roadmap,
    items: list[RoadmapItem],
    done: set,
    today: date,
) -> list[str]:
    lines = [ROADMAP_HEAD.format(title=short(roadmap.title, 100))]
    role, key = place.executor_role, place.own_key
    if role is not None and key is not None:
        own = rdb.progress_for(items, roadmap, place, done, today)
        if own.total:
            lines.append(_progress_text(own, roadmap, today))
    if place.role == Role.MUNICIPAL and place.municipality_id is not None:
        names = {
            s.id: s.name
            for s in await rdb.schools_in_scope(session, roadmap)
            if s.municipality_id == place.municipality_id
        }
        progress = await rdb.school_progress(session, roadmap, today)
        mine = [(names[sid], p) for sid, p in progress.items() if sid in names]
        if mine:
            lines.append(SCHOOLS_HEAD)
            lines.extend(_place_lines(mine))
    elif place.role == Role.REGIONAL:
        municipalities = {m.id: m.name for m in await rdb.municipalities_in_scope(session, roadmap)}
        progress = await rdb.municipality_progress(session, roadmap, today)
        rows = []
        for mid, (own, schools) in progress.items():
            combined = rdb.Progress(
                own.done + schools.done,
                own.total + schools.total,
                own.due + schools.due,
                own.due_done + schools.due_done,
            )
            rows.append((municipalities.get(mid, str(mid)), combined))
        if rows:
            lines.append(MUNICIPALITIES_HEAD)
            lines.extend(_place_lines(rows))
    lines.append("")
    return lines if len(lines) > 2 else []


def _place_lines(rows: list[tuple[str, rdb.Progress]]) -> list[str]:
    rows.sort(key=lambda r: (r[1].percent, r[0]))
    out = []
    for name, p in rows[:30]:
        late = PLACE_LATE.format(late=p.overdue) if p.overdue else ""
        out.append(PLACE_LINE.format(name=short(name, 60), percent=p.percent, late=late))
    if len(rows) > 30:
        out.append(MORE.format(count=len(rows) - 30))
    return out


async def _admin(turn: Turn) -> None:
    from scheduler.reminders import delivery_report

    report = await delivery_report(turn.session)
    counts = ", ".join(
        f"{STATUS_NAMES.get(status, status)} {count}"
        for status, count in sorted(report.counts.items())
    )
    lines = [ADMIN_HEAD.format(counts=counts or "нет")]
    if not report.problems:
        lines.append(ADMIN_NONE)
    for delivery, chat in report.problems:
        error = f" — {short(delivery.error, 80)}" if delivery.error else ""
        lines.append(
            ADMIN_PROBLEM.format(
                status=STATUS_NAMES.get(delivery.status, delivery.status),
                key=delivery.key,
                chat=chat,
                error=error,
            )
        )
    turn.say("\n".join(lines))


# --- marking done --------------------------------------------------------------------------


async def _mark_by_number(conv: CoreContext, turn: Turn, number: str, reference: str) -> None:
    place, _today, roadmaps = await _context(conv, turn)
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
    place, _today, roadmaps = await _context(conv, turn)
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
    place, today, roadmaps = await _context(conv, turn)
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
        DONE.format(number=number, what=what, progress=_progress_text(progress, roadmap, today))
    )
