"""Admin campaign commands in chat, as `campaign close / extend / reopen` on the command line
(storage/admin.py does the work): /campaigns lists every campaign with how many sent the
questionnaire; an open campaign has buttons to close it (asked first), to move its deadline
(the admin types ДД.ММ.ГГГГ) and to return one school's sent response (the admin types the
school's «Код ОО»). Admins only: anybody else, pressing a forged ``cm|…`` button too, gets a
refusal and nothing is written.

Buttons: ``cm|l`` the list, ``cm|c|<campaign>``/``cm|C|<campaign>`` close (ask, confirm),
``cm|d|<campaign>`` ask for a deadline, ``cm|o|<campaign>`` ask for a school code,
``cm|x`` cancel.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import func, select

from handlers import callbacks as cb
from handlers import campaign_admin_texts as t
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.render import shorten
from handlers.types import Button
from handlers.walk_state import Mode, Turn
from storage.admin import CampaignError, close_campaign, extend_campaign, reopen_response
from storage.models import SENT_STATUSES, Campaign, CampaignTarget, Response
from storage.scope import Scope

ACTION = "cm"
LIST, ASK_CLOSE, CLOSE, ASK_DEADLINE, ASK_SCHOOL, CANCEL = "l", "c", "C", "d", "o", "x"
MODE_DEADLINE = "cm_deadline"  # typing the new deadline
MODE_SCHOOL = "cm_school"  # typing the code of the school whose response is reopened
KEY = "cm_campaign"
LINES_SHOWN = 20
WITH_BUTTONS = 5  # the newest open campaigns get buttons
DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")


def _button(text: str, *args: object) -> Button:
    return Button(shorten(text, 60), cb.encode(ACTION, *args))


def _day(value: date) -> str:
    return f"{value:%d.%m.%Y}"


def parse_day(text: str) -> date | None:
    found = DATE.fullmatch(text.strip())
    if found is None:
        return None
    day, month, year = (int(part) for part in found.groups())
    try:
        return date(year, month, day)
    except ValueError:
        return None


class CampaignAdminFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(
            commands={"campaigns": self.command},
            actions={ACTION: self.button},
            text_modes={MODE_DEADLINE: self.deadline, MODE_SCHOOL: self.school},
        )

    # --- entry points -------------------------------------------------------------------------

    async def command(self, turn: Turn, args: str) -> None:
        if not Scope.of(turn.person).is_admin:
            turn.say(t.ADMIN_ONLY)
            return
        self._leave(turn)
        await self._list(turn)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        if not Scope.of(turn.person).is_admin:
            turn.say(t.ADMIN_ONLY)
            return
        kind = payload.str_arg(0)
        if kind in (LIST, CANCEL):
            cancelled = turn.state.mode in (MODE_DEADLINE, MODE_SCHOOL)
            self._leave(turn)
            await self._list(turn, t.CANCELLED if kind == CANCEL and cancelled else "")
            return
        campaign = await self._campaign(turn, payload.int_arg(1))
        if campaign is None:
            return
        self._leave(turn)
        if kind in (ASK_DEADLINE, ASK_SCHOOL) and campaign.closed_at is not None:
            turn.say(t.IS_CLOSED.format(id=campaign.id, title=campaign.title), self._to_list())
        elif kind == ASK_CLOSE:
            turn.say(
                t.ASK_CLOSE.format(id=campaign.id, title=campaign.title),
                [[_button(t.BTN_CONFIRM_CLOSE, CLOSE, campaign.id), _button(t.BTN_CANCEL, LIST)]],
            )
        elif kind == CLOSE:
            await self._close(turn, campaign)
        elif kind == ASK_DEADLINE:
            self._enter(turn, MODE_DEADLINE, campaign)
            text = t.ASK_DEADLINE.format(
                id=campaign.id,
                title=campaign.title,
                deadline=_day(campaign.deadline),
                example=self._example(),
            )
            turn.say(text, self._cancel())
        elif kind == ASK_SCHOOL:
            self._enter(turn, MODE_SCHOOL, campaign)
            turn.say(t.ASK_SCHOOL.format(id=campaign.id, title=campaign.title), self._cancel())
        else:
            turn.say(t.STALE)

    # --- typed answers ------------------------------------------------------------------------

    async def deadline(self, turn: Turn, text: str) -> None:
        campaign = await self._typed_for(turn)
        if campaign is None:
            return
        today = self.core.today()
        due = parse_day(text)
        if due is None:
            shown = shorten(" ".join(text.split()), 40)
            turn.say(t.BAD_DATE.format(text=shown, example=self._example()), self._cancel())
            return
        if due < today:
            turn.say(t.PAST_DATE.format(date=_day(due), today=_day(today)), self._cancel())
            return
        try:
            campaign, old = await extend_campaign(
                turn.session, campaign.id, due, today, by=turn.person.id
            )
        except CampaignError as exc:
            turn.say(str(exc), self._cancel())
            return
        self._leave(turn)
        turn.say(
            t.EXTENDED.format(
                id=campaign.id, title=campaign.title, old=_day(old), new=_day(campaign.deadline)
            ),
            self._to_list(),
        )

    async def school(self, turn: Turn, text: str) -> None:
        campaign = await self._typed_for(turn)
        if campaign is None:
            return
        try:
            campaign, school, _response = await reopen_response(
                turn.session, campaign.id, text, by=turn.person.id
            )
        except CampaignError as exc:
            turn.say(f"{exc}\n{t.TRY_AGAIN}", self._cancel())
            return
        self._leave(turn)
        turn.say(
            t.REOPENED.format(school=school.name, id=campaign.id, title=campaign.title),
            self._to_list(),
        )

    # --- the list -----------------------------------------------------------------------------

    async def _list(self, turn: Turn, prefix: str = "") -> None:
        session = turn.session
        campaigns = list(await session.scalars(select(Campaign).order_by(Campaign.id.desc())))
        if not campaigns:
            turn.say(f"{prefix}\n\n{t.NONE}" if prefix else t.NONE)
            return
        targets = dict(
            (
                await session.execute(
                    select(CampaignTarget.campaign_id, func.count()).group_by(
                        CampaignTarget.campaign_id
                    )
                )
            ).all()
        )
        sent = dict(
            (
                await session.execute(
                    select(Response.campaign_id, func.count())
                    .where(Response.status.in_(SENT_STATUSES))
                    .group_by(Response.campaign_id)
                )
            ).all()
        )
        lines = [t.LIST.format(count=len(campaigns))]
        for campaign in campaigns[:LINES_SHOWN]:
            lines.append(
                t.LINE.format(
                    id=campaign.id,
                    title=shorten(campaign.title, 80),
                    opens=_day(campaign.opens_on),
                    deadline=_day(campaign.deadline),
                    state=t.CLOSED if campaign.closed_at else t.OPEN,
                    sent=sent.get(campaign.id, 0),
                    targets=targets.get(campaign.id, 0),
                )
            )
        if len(campaigns) > LINES_SHOWN:
            lines.append(t.MORE.format(count=len(campaigns) - LINES_SHOWN))
        buttons: list[list[Button]] = []
        for campaign in [c for c in campaigns if c.closed_at is None][:WITH_BUTTONS]:
            buttons.append(
                [
                    _button(t.BTN_CLOSE.format(id=campaign.id), ASK_CLOSE, campaign.id),
                    _button(t.BTN_EXTEND.format(id=campaign.id), ASK_DEADLINE, campaign.id),
                ]
            )
            buttons.append([_button(t.BTN_REOPEN.format(id=campaign.id), ASK_SCHOOL, campaign.id)])
        if buttons:
            lines.append(t.HINT)
        text = "\n".join(lines)
        turn.say(f"{prefix}\n\n{text}" if prefix else text, buttons)

    async def _close(self, turn: Turn, campaign: Campaign) -> None:
        try:
            campaign = await close_campaign(turn.session, campaign.id, by=turn.person.id)
        except CampaignError as exc:
            turn.say(str(exc), self._to_list())
            return
        turn.say(t.CLOSED_DONE.format(id=campaign.id, title=campaign.title), self._to_list())

    # --- helpers ------------------------------------------------------------------------------

    async def _campaign(self, turn: Turn, campaign_id: int | None) -> Campaign | None:
        campaign = await turn.session.get(Campaign, campaign_id) if campaign_id else None
        if campaign is None:
            turn.say(t.STALE)
        return campaign

    async def _typed_for(self, turn: Turn) -> Campaign | None:
        if not Scope.of(turn.person).is_admin:
            self._leave(turn)
            turn.say(t.ADMIN_ONLY)
            return None
        raw = (turn.state.data or {}).get(KEY)
        campaign = await self._campaign(turn, raw if isinstance(raw, int) else None)
        if campaign is None:
            self._leave(turn)
        return campaign

    @staticmethod
    def _enter(turn: Turn, mode: str, campaign: Campaign) -> None:
        turn.state.mode = mode
        turn.state.data = {**(turn.state.data or {}), KEY: campaign.id}

    @staticmethod
    def _leave(turn: Turn) -> None:
        if turn.state.mode in (MODE_DEADLINE, MODE_SCHOOL):
            turn.state.mode = Mode.IDLE
        data = turn.state.data or {}
        if KEY in data:
            turn.state.data = {k: v for k, v in data.items() if k != KEY}

    def _example(self) -> str:
        return _day(self.core.today() + timedelta(days=14))

    @staticmethod
    def _cancel() -> list[list[Button]]:
        return [[_button(t.BTN_CANCEL, CANCEL)]]

    @staticmethod
    def _to_list() -> list[list[Button]]:
        return [[_button(t.BTN_LIST, LIST)]]
