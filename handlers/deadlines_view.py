"""«Мои сроки» (/deadlines), the list: upcoming roadmap items of the person (overdue first,
then the next ones), the roadmap completion in their scope, and for admins the reminder report.

Marking an item done is in :mod:`handlers.deadlines_chat`, which shows this list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import callbacks as cb
from handlers.texts import human_date
from handlers.types import Button
from storage import roadmaps_db as rdb
from storage.models import Municipality, Region, Roadmap, RoadmapItem, Role, School

if TYPE_CHECKING:
    from handlers.core_context import CoreContext
    from handlers.walk_state import Turn

ACTION = "r"  # r|d|<item id>|<yyyymmdd>: the «✅ п. N» buttons (handlers/deadlines_chat.py)
HORIZON_DAYS = 45  # upcoming items shown
MAX_LINES = 10
MAX_BUTTONS = 6

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


async def context(conv: CoreContext, turn: Turn) -> tuple[rdb.Place, date, list[Roadmap]]:
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


async def show(conv: CoreContext, turn: Turn) -> None:
    session = turn.session
    place, today, roadmaps = await context(conv, turn)
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


def progress_text(progress: rdb.Progress, roadmap: Roadmap, today: date) -> str:
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
            lines.append(progress_text(own, roadmap, today))
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
