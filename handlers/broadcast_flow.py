"""/broadcast: a coordinator or an admin sends one message to an audience of their scope.

Steps: choose the audience (buttons) → type the text (this flow's mode) → preview with
the number of recipients → «Отправить» queues one delivery per person (storage.notices,
kind broadcast), which the reminder tick sends through the rate-limited sender. The chosen
audience and the text wait in ``state.data["bc"]``; every step re-checks the scope, so a
forged button reaches nobody outside it. The report names whoever blocked the bot.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from math import ceil

from handlers import callbacks as cb
from handlers import notice_texts as t
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.render import shorten
from handlers.texts import PLATFORM_NAMES
from handlers.types import Button, OutText
from handlers.walk_state import Mode, Turn
from storage import broadcasts as bq
from storage import notices
from storage.broadcasts import Audience
from storage.models import Broadcast, Campaign, DeliveryKind, Municipality, Person, Role
from storage.scope import Scope

ACTION = "bc"
MODE = "bc_text"  # typing the text, then looking at the preview
MAX_LENGTH = 3000
PAGE = 8
MAX_UNREACHABLE_LINES = 30

# bc|<step>|…
PICK = "a"  # a|<kind>: an audience kind
MUNICIPALITY_PAGE = "mp"  # mp|<page>
MUNICIPALITY = "m"  # m|<municipality>
CAMPAIGN = "n"  # n|<campaign>: directors who have not sent it
SEND = "ok"
CANCEL = "x"
REPORT = "r"  # r|<broadcast>

KINDS = {
    "d": Audience.DIRECTORS,
    "m": Audience.MUNICIPALITY,
    "c": Audience.COORDINATORS,
    "n": Audience.NOT_SUBMITTED,
}
KIND_BUTTONS = (
    ("d", t.BTN_ALL_DIRECTORS),
    ("m", t.BTN_ONE_MUNICIPALITY),
    ("c", t.BTN_COORDINATORS),
    ("n", t.BTN_NOT_SUBMITTED),
)


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _local(moment: datetime, zone: tzinfo) -> str:
    return as_utc(moment).astimezone(zone).strftime("%d.%m %H:%M")


class BroadcastFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(
            commands={"broadcast": self.command},
            actions={ACTION: self.button},
            text_modes={MODE: self.text},
            file_modes={MODE: self.file},
        )

    # --- entry ---------------------------------------------------------------------------

    async def command(self, turn: Turn, _args: str) -> None:
        scope = Scope.of(turn.person)
        if not scope.is_coordinator:
            turn.say(t.BC_ONLY_COORDINATORS)
            return
        self._reset(turn)
        buttons = [
            [Button(label, cb.encode(ACTION, PICK, code))]
            for code, label in KIND_BUTTONS
            if bq.may_choose(scope, KINDS[code])
        ]
        turn.say(t.BC_CHOOSE, buttons)
        await self._recent(turn)

    async def _recent(self, turn: Turn) -> None:
        rows = await bq.recent(turn.session, turn.person.id)
        if not rows:
            return
        zone = self.core.config.timezone
        lines = [
            t.BC_RECENT_LINE.format(
                id=b.id,
                when=_local(b.confirmed_at or b.created_at, zone),
                recipients=b.recipients,
                text=shorten(b.text, 40),
            )
            for b in rows
        ]
        buttons = [
            [Button(t.BTN_REPORT.format(id=b.id), cb.encode(ACTION, REPORT, b.id))] for b in rows
        ]
        turn.say("\n".join([t.BC_RECENT, *lines]), buttons)

    # --- buttons -------------------------------------------------------------------------

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        scope = Scope.of(turn.person)
        if not scope.is_coordinator:
            turn.say(t.BC_ONLY_COORDINATORS)
            return
        step = payload.str_arg(0)
        if step == PICK:
            await self._pick(turn, scope, payload.str_arg(1))
        elif step == MUNICIPALITY_PAGE:
            await self._municipalities(turn, scope, payload.int_arg(1))
        elif step == MUNICIPALITY:
            municipality_id = payload.int_arg(1)
            audience = {"kind": Audience.MUNICIPALITY, "municipality_id": municipality_id}
            await self._ask_text(turn, scope, audience)
        elif step == CAMPAIGN:
            audience = {"kind": Audience.NOT_SUBMITTED, "campaign_id": payload.int_arg(1)}
            await self._ask_text(turn, scope, audience)
        elif step == SEND:
            await self._send(turn, scope)
        elif step == CANCEL:
            self._reset(turn)
            turn.say(t.BC_CANCELLED)
        elif step == REPORT:
            await self._report(turn, scope, payload.int_arg(1))
        else:
            turn.say(t.BC_FORBIDDEN)

    async def _pick(self, turn: Turn, scope: Scope, code: str | None) -> None:
        kind = KINDS.get(code or "")
        if kind is None or not bq.may_choose(scope, kind):
            turn.say(t.BC_FORBIDDEN)
        elif kind == Audience.MUNICIPALITY:
            await self._municipalities(turn, scope, 0)
        elif kind == Audience.NOT_SUBMITTED:
            campaigns = await bq.open_campaigns(turn.session, scope, self.core.today())
            if not campaigns:
                turn.say(t.BC_NO_CAMPAIGNS)
                return
            buttons = [
                [Button(shorten(f"№{c.id} {c.title}", 60), cb.encode(ACTION, CAMPAIGN, c.id))]
                for c in campaigns
            ]
            turn.say(t.BC_CHOOSE_CAMPAIGN, buttons)
        else:
            await self._ask_text(turn, scope, {"kind": kind})

    async def _municipalities(self, turn: Turn, scope: Scope, page: int | None) -> None:
        if not bq.may_choose(scope, Audience.MUNICIPALITY):
            turn.say(t.BC_FORBIDDEN)
            return
        found = await bq.municipalities(turn.session, scope)
        if not found:
            turn.say(t.BC_NO_MUNICIPALITIES)
            return
        pages = ceil(len(found) / PAGE)
        page = min(page or 0, pages - 1)
        shown = found[page * PAGE : (page + 1) * PAGE]
        buttons = [
            [Button(shorten(m.name, 60), cb.encode(ACTION, MUNICIPALITY, m.id))] for m in shown
        ]
        nav = []
        if page > 0:
            nav.append(Button(t.BTN_PREV, cb.encode(ACTION, MUNICIPALITY_PAGE, page - 1)))
        if page < pages - 1:
            nav.append(Button(t.BTN_NEXT, cb.encode(ACTION, MUNICIPALITY_PAGE, page + 1)))
        if nav:
            buttons.append(nav)
        turn.say(t.BC_CHOOSE_MUNICIPALITY.format(page=page + 1, pages=pages), buttons)

    # --- the text and the preview --------------------------------------------------------

    async def _ask_text(self, turn: Turn, scope: Scope, audience: dict) -> None:
        people = await bq.recipients(turn.session, scope, audience, self.core.today())
        if people is None:
            self._reset(turn)
            turn.say(t.BC_FORBIDDEN)
            return
        if not people:
            self._reset(turn)
            turn.say(t.BC_NOBODY)
            return
        turn.state.mode = MODE
        turn.state.data = {**(turn.state.data or {}), "bc": {"audience": audience}}
        turn.say(
            t.BC_ASK_TEXT.format(
                audience=await self._audience_name(turn, audience),
                count=len(people),
                limit=MAX_LENGTH,
            ),
            [[Button(t.BTN_CANCEL, cb.encode(ACTION, CANCEL))]],
        )

    async def text(self, turn: Turn, text: str) -> None:
        draft = self._draft(turn)
        scope = Scope.of(turn.person)
        if draft is None or not scope.is_coordinator:
            self._reset(turn)
            turn.say(t.BC_NOTHING_TO_SEND if scope.is_coordinator else t.BC_ONLY_COORDINATORS)
            return
        body = text.strip()
        cancel = [[Button(t.BTN_CANCEL, cb.encode(ACTION, CANCEL))]]
        if not body:
            turn.say(t.BC_EMPTY, cancel)
            return
        if len(body) > MAX_LENGTH:
            turn.say(t.BC_TOO_LONG.format(length=len(body), limit=MAX_LENGTH), cancel)
            return
        people = await bq.recipients(turn.session, scope, draft["audience"], self.core.today())
        if not people:
            self._reset(turn)
            turn.say(t.BC_FORBIDDEN if people is None else t.BC_NOBODY)
            return
        turn.state.data = {**turn.state.data, "bc": {**draft, "text": body}}
        turn.say(t.BC_PREVIEW_INTRO)
        turn.out.append(await self._message(turn, body))
        turn.say(
            t.BC_PREVIEW.format(
                audience=await self._audience_name(turn, draft["audience"]), count=len(people)
            ),
            [
                [
                    Button(t.BTN_SEND, cb.encode(ACTION, SEND)),
                    Button(t.BTN_CANCEL, cb.encode(ACTION, CANCEL)),
                ]
            ],
        )

    async def file(self, turn: Turn) -> None:
        turn.say(t.BC_FILE, [[Button(t.BTN_CANCEL, cb.encode(ACTION, CANCEL))]])

    # --- sending -------------------------------------------------------------------------

    async def _send(self, turn: Turn, scope: Scope) -> None:
        draft = self._draft(turn)
        if draft is None or not draft.get("text"):
            turn.say(t.BC_NOTHING_TO_SEND)
            return
        audience, body = draft["audience"], draft["text"]
        people = await bq.recipients(turn.session, scope, audience, self.core.today())
        self._reset(turn)
        if not people:
            turn.say(t.BC_FORBIDDEN if people is None else t.BC_NOBODY)
            return
        now = as_utc(self.core.clock())
        broadcast = Broadcast(
            person_id=turn.person.id, audience=audience, text=body, created_at=now, confirmed_at=now
        )
        turn.session.add(broadcast)
        await turn.session.flush()
        broadcast.recipients = await notices.notify_all(
            turn.session,
            people,
            await self._message(turn, body),
            key=f"broadcast:{broadcast.id}",
            now=now,
            kind=DeliveryKind.BROADCAST,
            broadcast_id=broadcast.id,
        )
        turn.say(
            t.BC_QUEUED.format(id=broadcast.id, count=broadcast.recipients),
            [
                [
                    Button(
                        t.BTN_REPORT.format(id=broadcast.id),
                        cb.encode(ACTION, REPORT, broadcast.id),
                    )
                ]
            ],
        )

    # --- the report ----------------------------------------------------------------------

    async def _report(self, turn: Turn, scope: Scope, broadcast_id: int | None) -> None:
        broadcast = await turn.session.get(Broadcast, broadcast_id) if broadcast_id else None
        if (
            broadcast is None
            or broadcast.confirmed_at is None
            or (broadcast.person_id != turn.person.id and not scope.is_admin)
        ):
            turn.say(t.BC_NOT_FOUND)
            return
        report = await bq.report(turn.session, broadcast.id)
        lines = [
            t.BC_REPORT.format(
                id=broadcast.id,
                when=_local(broadcast.confirmed_at, self.core.config.timezone),
                recipients=broadcast.recipients,
                delivered=report.delivered,
                waiting=report.waiting,
                unreachable=len(report.unreachable),
                failed=report.failed,
            )
        ]
        if report.unreachable:
            lines.append("")
            lines.append(t.BC_UNREACHABLE_TITLE)
            for person in report.unreachable[:MAX_UNREACHABLE_LINES]:
                lines.append(
                    t.BC_UNREACHABLE_LINE.format(
                        name=person.name,
                        place=person.place,
                        platform=PLATFORM_NAMES.get(person.platform, person.platform),
                    )
                )
            rest = len(report.unreachable) - MAX_UNREACHABLE_LINES
            if rest > 0:
                lines.append(t.BC_UNREACHABLE_MORE.format(count=rest))
        turn.say("\n".join(lines))

    # --- helpers -------------------------------------------------------------------------

    def _draft(self, turn: Turn) -> dict | None:
        draft = (turn.state.data or {}).get("bc")
        if turn.state.mode != MODE or not isinstance(draft, dict):
            return None
        return draft if isinstance(draft.get("audience"), dict) else None

    def _reset(self, turn: Turn) -> None:
        if turn.state.mode == MODE:
            turn.state.mode = Mode.IDLE
        if "bc" in (turn.state.data or {}):
            turn.state.data = {k: v for k, v in turn.state.data.items() if k != "bc"}

    async def _audience_name(self, turn: Turn, audience: dict) -> str:
        kind = audience["kind"]
        template = t.AUDIENCE_NAMES[kind]
        if kind == Audience.MUNICIPALITY:
            municipality = await turn.session.get(Municipality, audience["municipality_id"])
            return template.format(municipality=municipality.name if municipality else "")
        if kind == Audience.NOT_SUBMITTED:
            campaign = await turn.session.get(Campaign, audience["campaign_id"])
            return template.format(campaign=campaign.title if campaign else "")
        return template

    async def _message(self, turn: Turn, body: str) -> OutText:
        return OutText(t.BC_HEADER.format(sender=await sender_label(turn)) + "\n\n" + body)


async def sender_label(turn: Turn) -> str:
    person: Person = turn.person
    if person.role == Role.MUNICIPAL and person.municipality_id:
        municipality = await turn.session.get(Municipality, person.municipality_id)
        role = t.SENDER_MUNICIPAL.format(municipality=municipality.name if municipality else "")
    elif person.role == Role.REGIONAL:
        role = t.SENDER_REGIONAL
    else:
        role = t.SENDER_ADMIN
    return f"{person.full_name}, {role}" if person.full_name else role
