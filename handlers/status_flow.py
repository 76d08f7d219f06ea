"""`/status`: how far the schools in a coordinator's scope are with a campaign.

The summary (counts, per municipality for regional coordinators and admins, a PNG chart),
then drill-down: a municipality's schools, one school's response with «Проверить анкету»
(``cr|<response>|0``), and the «да» answers still without an accepted document.

Buttons (every press checks the scope again; the flow only reads):

* ``st|c|<campaign>`` — the summary of a campaign (with the chart);
* ``st|p|<campaign>|<page>`` — another page of the municipalities of the summary;
* ``st|m|<municipality>|<campaign>|<page>`` — a municipality's schools;
* ``st|s|<school>|<campaign>`` — one school;
* ``st|g|<campaign>|<page>`` — «да» answers without an accepted document.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from exports.status_chart import StatusRow, render_status_chart
from handlers import callbacks as cb
from handlers import status_texts as t
from handlers.flow import Routes
from handlers.render import shorten
from handlers.types import Button, OutFile
from storage import status_queries as q
from storage.models import Campaign, Municipality, ResponseStatus, Role, School
from storage.repo import as_utc
from storage.scope import Scope

if TYPE_CHECKING:
    from handlers.core_context import CoreContext
    from handlers.walk_state import Turn

ACTION = "st"
CHOOSE, PAGE, MUNICIPALITY, SCHOOL, MISSING = "c", "p", "m", "s", "g"
MAX_CAMPAIGN_BUTTONS = 8
MUNICIPALITIES_PER_PAGE = 10
SCHOOLS_PER_PAGE = 10
MISSING_SCHOOLS_PER_PAGE = 5
MAX_TEXT = 3500  # characters per message, well under every platform's limit
CHART_KEEP_SECONDS = 24 * 3600  # older charts are removed when a new one is drawn
_NUMBER = re.compile(r"[0-9]{1,18}")


def _pages(total: int, per_page: int) -> int:
    return max(1, -(-total // per_page))


def _fit(lines: list[str]) -> str:
    """Join lines, cutting the text at MAX_TEXT on a line boundary."""
    text = "\n".join(lines)
    if len(text) <= MAX_TEXT:
        return text
    return text[: MAX_TEXT - 1].rsplit("\n", 1)[0] + "\n…"


def _nav(page: int, pages: int, action: str, *args: object) -> list[Button]:
    row = []
    if page > 0:
        row.append(Button(t.BTN_PREV, cb.encode(ACTION, action, *args, page - 1)))
    if page + 1 < pages:
        row.append(Button(t.BTN_NEXT, cb.encode(ACTION, action, *args, page + 1)))
    return row


class StatusFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(commands={"status": self.command}, actions={ACTION: self.button})

    # --- entry points -----------------------------------------------------------------------

    async def command(self, turn: Turn, args: str = "") -> None:
        scope = self._scope(turn)
        if scope is None:
            return
        wanted = args.strip().lstrip("№#")
        chosen = None
        if _NUMBER.fullmatch(wanted):  # «/status 3»: that campaign, open or closed, if in scope
            chosen = await q.campaign_in_scope(turn.session, scope, int(wanted))
        campaigns = [] if chosen is not None else await q.open_campaigns(turn.session, scope)
        if chosen is None and len(campaigns) == 1:
            chosen = campaigns[0]
        if chosen is not None:
            await self._summary(turn, scope, chosen)
            return
        if not campaigns:
            turn.say(t.NO_CAMPAIGNS)
            return
        buttons = [
            [
                Button(
                    shorten(
                        t.CAMPAIGN_BUTTON.format(
                            number=c.id, deadline=f"{c.deadline:%d.%m.%Y}", title=c.title
                        ),
                        60,
                    ),
                    cb.encode(ACTION, CHOOSE, c.id),
                )
            ]
            for c in campaigns[:MAX_CAMPAIGN_BUTTONS]
        ]
        turn.say(t.CHOOSE_CAMPAIGN, buttons)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        scope = self._scope(turn)
        if scope is not None and not await self._press(turn, scope, payload):
            turn.say(t.STALE)

    async def _press(self, turn: Turn, scope: Scope, payload: cb.Payload) -> bool:
        """Show the screen a button names, if everything it names is in the scope."""
        kind, session = payload.str_arg(0), turn.session
        if kind in (CHOOSE, PAGE, MISSING):
            campaign = await q.campaign_in_scope(session, scope, payload.int_arg(1))
            page = payload.int_arg(2) if kind != CHOOSE else 0
            if campaign is None or page is None:
                return False
            if kind == CHOOSE:
                await self._summary(turn, scope, campaign)
                return True
            if kind == PAGE:
                return await self._municipalities(turn, scope, campaign, page)
            return await self._missing(turn, scope, campaign, page)
        if kind == MUNICIPALITY:
            campaign = await q.campaign_in_scope(session, scope, payload.int_arg(2))
            municipality = await self._municipality(turn, scope, payload.int_arg(1))
            page = payload.int_arg(3)
            if campaign is None or municipality is None or page is None:
                return False
            return await self._schools(turn, scope, campaign, municipality, page)
        if kind == SCHOOL:
            campaign = await q.campaign_in_scope(session, scope, payload.int_arg(2))
            school_id = payload.int_arg(1)
            if campaign is None or not await scope.sees_school(session, school_id):
                return False
            return await self._school(turn, scope, campaign, school_id)
        return False

    # --- screens ----------------------------------------------------------------------------

    def _scope(self, turn: Turn) -> Scope | None:
        scope = Scope.of(turn.person)
        if not scope.is_coordinator:
            turn.say(t.NOT_FOR_DIRECTORS)
            return None
        return scope

    async def _municipality(
        self, turn: Turn, scope: Scope, municipality_id: int | None
    ) -> Municipality | None:
        if municipality_id is None:
            return None
        return await turn.session.scalar(
            select(Municipality).where(
                Municipality.id == municipality_id, scope.municipality_clause()
            )
        )

    async def _summary(self, turn: Turn, scope: Scope, campaign: Campaign) -> None:
        rows = await q.by_municipality(turn.session, scope, campaign.id)
        counts = q.total(rows)
        lines = [_title(campaign)]
        municipal = scope.role == Role.MUNICIPAL
        if municipal and rows:
            lines.append(t.SCOPE_MUNICIPALITY.format(municipality=rows[0].name, total=counts.total))
        else:
            lines.append(t.SCOPE_REGION.format(total=counts.total))
        lines += [_totals(counts), "", t.RULE]
        buttons: list[list[Button]] = []
        if not municipal:  # a municipal coordinator's list of schools follows, with its buttons
            lines.append("")
            lines += self._municipality_lines(rows, 0)
            buttons = self._municipality_buttons(campaign, rows, 0)
            buttons.append([Button(t.BTN_MISSING, cb.encode(ACTION, MISSING, campaign.id, 0))])
        turn.say(_fit(lines), buttons)
        turn.out.append(await self._chart(campaign, rows))
        if municipal and rows:
            municipality = await turn.session.get(Municipality, rows[0].municipality_id)
            await self._schools(turn, scope, campaign, municipality, 0)

    def _municipality_lines(self, rows: list[q.MunicipalityCounts], page: int) -> list[str]:
        start = page * MUNICIPALITIES_PER_PAGE
        lines = [t.MUNICIPALITIES]
        for index, row in enumerate(rows[start : start + MUNICIPALITIES_PER_PAGE], start + 1):
            c = row.counts
            lines.append(
                t.MUNICIPALITY_LINE.format(
                    index=index,
                    name=shorten(row.name, 80),
                    not_started=c.not_started,
                    in_progress=c.in_progress,
                    submitted=c.submitted,
                    returned=c.returned,
                    accepted=c.accepted,
                )
            )
        pages = _pages(len(rows), MUNICIPALITIES_PER_PAGE)
        if pages > 1:
            lines.append(t.PAGE.format(page=page + 1, pages=pages))
        lines.append(t.MUNICIPALITY_HINT)
        return lines

    def _municipality_buttons(
        self, campaign: Campaign, rows: list[q.MunicipalityCounts], page: int
    ) -> list[list[Button]]:
        start = page * MUNICIPALITIES_PER_PAGE
        buttons = [
            [
                Button(
                    f"{index}. {shorten(row.name, 50)}",
                    cb.encode(ACTION, MUNICIPALITY, row.municipality_id, campaign.id, 0),
                )
            ]
            for index, row in enumerate(rows[start : start + MUNICIPALITIES_PER_PAGE], start + 1)
        ]
        pages = _pages(len(rows), MUNICIPALITIES_PER_PAGE)
        nav = _nav(page, pages, PAGE, campaign.id)
        if nav:
            buttons.append(nav)
        return buttons

    async def _municipalities(
        self, turn: Turn, scope: Scope, campaign: Campaign, page: int
    ) -> bool:
        rows = await q.by_municipality(turn.session, scope, campaign.id)
        if page >= _pages(len(rows), MUNICIPALITIES_PER_PAGE):
            return False
        buttons = self._municipality_buttons(campaign, rows, page)
        buttons.append([Button(t.BTN_MISSING, cb.encode(ACTION, MISSING, campaign.id, 0))])
        turn.say(_fit([_title(campaign), *self._municipality_lines(rows, page)]), buttons)
        return True

    async def _chart(self, campaign: Campaign, rows: list[q.MunicipalityCounts]) -> OutFile:
        bars = [
            StatusRow(
                r.name,
                not_started=r.counts.not_started,
                in_progress=r.counts.in_progress,
                submitted=r.counts.submitted,
                returned=r.counts.returned,
                accepted=r.counts.accepted,
            )
            for r in rows
        ]
        title = t.CHART_TITLE.format(number=campaign.id)
        folder = self.core.files.root / "tmp" / "charts"
        path = folder / f"status-{campaign.id}-{uuid.uuid4().hex}.png"
        await asyncio.to_thread(_draw, bars, title, path)
        day = f"{self.core.today():%d.%m.%Y}"
        return OutFile(
            path, f"status-{campaign.id}.png", t.CHART_CAPTION.format(number=campaign.id, day=day)
        )

    async def _schools(
        self, turn: Turn, scope: Scope, campaign: Campaign, municipality: Municipality, page: int
    ) -> bool:
        session = turn.session
        counts = await q.by_municipality(session, scope, campaign.id, municipality.id)
        total = q.total(counts).total
        pages = _pages(total, SCHOOLS_PER_PAGE)
        if page >= pages:
            return False
        rows = await q.schools(
            session,
            scope,
            campaign.id,
            municipality_id=municipality.id,
            offset=page * SCHOOLS_PER_PAGE,
            limit=SCHOOLS_PER_PAGE,
        )
        rows = await q.with_progress(session, rows, self._engine_of(campaign))
        lines = [
            t.SCHOOLS_TITLE.format(
                municipality=shorten(municipality.name, 80), number=campaign.id, total=total
            )
        ]
        if not rows:
            lines.append(t.NO_SCHOOLS)
        start = page * SCHOOLS_PER_PAGE
        buttons: list[list[Button]] = []
        for index, row in enumerate(rows, start + 1):
            name = shorten(row.name, 120)
            lines.append(t.SCHOOL_LINE.format(index=index, name=name, state=_state(row)))
            buttons.append(
                [
                    Button(
                        f"{index}. {shorten(row.name, 50)}",
                        cb.encode(ACTION, SCHOOL, row.school_id, campaign.id),
                    )
                ]
            )
        if pages > 1:
            lines.append(t.PAGE.format(page=page + 1, pages=pages))
        if rows:
            lines.append(t.SCHOOLS_HINT)
        nav = _nav(page, pages, MUNICIPALITY, municipality.id, campaign.id)
        if nav:
            buttons.append(nav)
        if scope.role == Role.MUNICIPAL:  # their summary is this list: no way back needed
            buttons.append([Button(t.BTN_MISSING, cb.encode(ACTION, MISSING, campaign.id, 0))])
        else:
            buttons.append([Button(t.BTN_BACK_TO_SUMMARY, cb.encode(ACTION, CHOOSE, campaign.id))])
        turn.say(_fit(lines), buttons)
        return True

    async def _school(self, turn: Turn, scope: Scope, campaign: Campaign, school_id: int) -> bool:
        session = turn.session
        rows = await q.schools(session, scope, campaign.id, school_id=school_id, limit=1)
        if not rows:
            return False  # the campaign is not for this school
        (row,) = await q.with_progress(session, rows, self._engine_of(campaign))
        school = await session.get(School, school_id)
        municipality = await session.get(Municipality, school.municipality_id)
        lines = [
            t.SCHOOL_TITLE.format(
                school=shorten(school.name, 200),
                municipality=shorten(municipality.name, 100),
                number=campaign.id,
                title=shorten(campaign.title, 120),
            ),
            t.SCHOOL_STATE.format(state=_state_name(row)),
        ]
        if row.progress is not None:
            lines.append(t.SCHOOL_PROGRESS.format(done=row.progress[0], total=row.progress[1]))
        if row.response_id is None or row.state == q.NOT_STARTED:
            lines.append(t.SCHOOL_NOT_STARTED)
        if row.submitted_at is not None and row.status != ResponseStatus.DRAFT:
            when = as_utc(row.submitted_at).astimezone(self.core.config.timezone)
            lines.append(t.SCHOOL_SUBMITTED.format(when=f"{when:%d.%m.%Y %H:%M}"))
        buttons: list[list[Button]] = []
        if row.response_id is not None and row.status != ResponseStatus.DRAFT:
            review = cb.encode(cb.Action.COORD_REVIEW, row.response_id, 0)
            buttons.append([Button(t.BTN_REVIEW, review)])
        back = cb.encode(ACTION, MUNICIPALITY, school.municipality_id, campaign.id, 0)
        buttons.append([Button(t.BTN_BACK_TO_SCHOOLS, back)])
        turn.say(_fit(lines), buttons)
        return True

    async def _missing(self, turn: Turn, scope: Scope, campaign: Campaign, page: int) -> bool:
        engine = self.core.forms.engine(campaign.form_id, campaign.form_version)
        questions = q.document_questions(engine)
        found = await q.missing_documents(
            turn.session,
            scope,
            campaign.id,
            questions,
            offset=page * MISSING_SCHOOLS_PER_PAGE,
            limit=MISSING_SCHOOLS_PER_PAGE,
        )
        pages = _pages(found.schools, MISSING_SCHOOLS_PER_PAGE)
        if page >= pages:
            return False
        lines = [t.MISSING_TITLE.format(number=campaign.id)]
        if not found.items:
            lines.append(t.MISSING_NONE)
        else:
            lines += [t.MISSING_TOTALS.format(answers=found.answers, schools=found.schools), ""]
            school = None
            for item in found.items:
                if item.school_id != school:
                    school = item.school_id
                    lines.append(
                        t.MISSING_SCHOOL.format(
                            school=shorten(item.school, 100),
                            municipality=shorten(item.municipality, 60),
                        )
                    )
                lines.append(
                    t.MISSING_LINE.format(
                        question=_question_label(engine, item), reason=t.REASONS[item.reason]
                    )
                )
            lines += ["", t.MISSING_RULE]
            if pages > 1:
                lines.append(t.PAGE.format(page=page + 1, pages=pages))
        buttons: list[list[Button]] = []
        nav = _nav(page, pages, MISSING, campaign.id)
        if nav:
            buttons.append(nav)
        buttons.append([Button(t.BTN_BACK_TO_SUMMARY, cb.encode(ACTION, CHOOSE, campaign.id))])
        turn.say(_fit(lines), buttons)
        return True

    def _engine_of(self, campaign: Campaign):
        forms = self.core.forms
        return lambda version: forms.engine(campaign.form_id, version or campaign.form_version)


# --- helpers --------------------------------------------------------------------------------


def _title(campaign: Campaign) -> str:
    return t.TITLE.format(
        number=campaign.id,
        title=shorten(campaign.title, 120),
        deadline=f"{campaign.deadline:%d.%m.%Y}",
    )


def _totals(counts: q.Counts) -> str:
    return t.TOTALS.format(
        not_started=counts.not_started,
        in_progress=counts.in_progress,
        submitted=counts.submitted,
        returned=counts.returned,
        accepted=counts.accepted,
    )


def _state_name(row: q.SchoolRow) -> str:
    if row.status == ResponseStatus.RESUBMITTED:
        return t.STATUS_RESUBMITTED
    return t.STATE_NAMES[row.state]


def _state(row: q.SchoolRow) -> str:
    name = _state_name(row)
    if row.state == q.IN_PROGRESS and row.progress is not None:
        done, total = row.progress
        return f"{name}, {t.PROGRESS.format(done=done, total=total)}"
    return name


def _question_label(engine, item: q.MissingDocument) -> str:
    try:
        question = engine.question(item.question_id)
        section = engine.section_of(item.question_id).id
    except KeyError:
        return item.question_id
    label = shorten(question.short or question.text, 70)
    row = f", запись {item.row + 1}" if engine.group_of(item.question_id) else ""
    return f"{section} «{label}»{row}"


def _draw(rows: list[StatusRow], title: str, path: Path) -> None:
    """In a worker thread: render the PNG, write it, and remove charts older than a day."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = render_status_chart(rows, title)
    path.write_bytes(data)
    cutoff = time.time() - CHART_KEEP_SECONDS
    for old in path.parent.glob("status-*.png"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # another worker removed it meanwhile
