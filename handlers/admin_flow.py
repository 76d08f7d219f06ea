"""Admin commands in chat: /people lists who is registered where (paged by municipality);
a person's card removes the person (with a confirmation), switches an account off or
re-issues a code. Admins only: anybody else, pressing a forged ``ad|…`` button too, gets a
refusal and nothing is written.

Buttons: ``ad|l|<page>`` municipalities, ``ad|m|<municipality or 0>|<page>`` people,
``ad|p|<person>`` card, ``ad|r|…``/``ad|R|<person>`` remove (ask, confirm),
``ad|a|…``/``ad|A|<account>`` deactivate (ask, confirm), ``ad|c|<person>`` new code,
``ad|n|<municipality>`` a code for a new municipal coordinator («Добавить»; directors and
regional coordinators: ``people add`` on the command line).
"""

from __future__ import annotations

from datetime import datetime

from handlers import admin_texts as t
from handlers import callbacks as cb
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.render import shorten
from handlers.types import Button
from handlers.walk_state import Turn
from storage import people_admin as pa
from storage.models import Account, Municipality, Role
from storage.scope import Scope

ACTION = "ad"
LIST, MUNICIPALITY, PERSON = "l", "m", "p"
ASK_REMOVE, REMOVE, ASK_OFF, OFF, REISSUE = "r", "R", "a", "A", "c"
ADD = "n"  # a code for a new municipal coordinator of the municipality
REGION_LEVEL = 0  # the «municipality» of regional coordinators and admins
MUNICIPALITIES_PER_PAGE = 20
PEOPLE_PER_PAGE = 10


def _button(text: str, *args: object) -> Button:
    return Button(shorten(text, 60), cb.encode(ACTION, *args))


def _pages(count: int, size: int) -> int:
    return max(1, -(-count // size))


class AdminFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(commands={"people": self.command}, actions={ACTION: self.button})

    # --- entry points -------------------------------------------------------------------------

    async def command(self, turn: Turn, args: str) -> None:
        if not Scope.of(turn.person).is_admin:
            turn.say(t.ADMIN_ONLY)
            return
        await self._municipalities(turn, 0)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        if not Scope.of(turn.person).is_admin:
            turn.say(t.ADMIN_ONLY)
            return
        kind, number = payload.str_arg(0), payload.int_arg(1)
        if number is None:
            turn.say(t.STALE)
        elif kind == LIST:
            await self._municipalities(turn, number)
        elif kind == MUNICIPALITY:
            await self._people(turn, number, payload.int_arg(2) or 0)
        elif kind == PERSON:
            await self._card(turn, number)
        elif kind in (ASK_REMOVE, REMOVE):
            await self._remove(turn, number, confirmed=kind == REMOVE)
        elif kind in (ASK_OFF, OFF):
            await self._deactivate(turn, number, confirmed=kind == OFF)
        elif kind == REISSUE:
            await self._reissue(turn, number)
        elif kind == ADD:
            await self._add(turn, number)
        else:
            turn.say(t.STALE)

    # --- lists --------------------------------------------------------------------------------

    async def _municipalities(self, turn: Turn, page: int) -> None:
        counts = await pa.municipality_counts(turn.session)
        total = sum(count for _, _, count in counts)
        if not total:
            turn.say(t.NOBODY)
            return
        pages = _pages(len(counts), MUNICIPALITIES_PER_PAGE)
        page = min(page, pages - 1)
        start = page * MUNICIPALITIES_PER_PAGE
        buttons = [
            [
                _button(
                    t.MUNICIPALITY_BUTTON.format(name=name or t.REGION_LEVEL, count=count),
                    MUNICIPALITY,
                    mid or REGION_LEVEL,
                    0,
                )
            ]
            for mid, name, count in counts[start : start + MUNICIPALITIES_PER_PAGE]
        ]
        buttons.append(self._nav(page, pages, lambda p: (LIST, p)))
        turn.say(t.MUNICIPALITIES.format(total=total), [row for row in buttons if row])

    async def _people(self, turn: Turn, municipality_id: int, page: int) -> None:
        if municipality_id == REGION_LEVEL:
            people = await pa.list_people(turn.session, region_level=True, include_removed=False)
            place = t.REGION_LEVEL
        else:
            municipality = await turn.session.get(Municipality, municipality_id)
            if municipality is None:
                turn.say(t.STALE)
                return
            people = await pa.list_people(turn.session, municipality_id, include_removed=False)
            place = municipality.name
        back = [_button(t.BTN_MUNICIPALITIES, LIST, 0)]
        if municipality_id != REGION_LEVEL:
            back.insert(0, _button(t.BTN_ADD, ADD, municipality_id))
        if not people:
            turn.say(t.PEOPLE_EMPTY.format(place=place), [back])
            return
        pages = _pages(len(people), PEOPLE_PER_PAGE)
        page = min(page, pages - 1)
        start = page * PEOPLE_PER_PAGE
        shown = people[start : start + PEOPLE_PER_PAGE]
        lines = [t.PEOPLE_TITLE.format(place=place, count=len(people), page=page + 1, pages=pages)]
        buttons: list[list[Button]] = []
        for n, row in enumerate(shown, start=start + 1):
            platforms = ", ".join(a.platform_name for a in row.accounts) or t.NO_ACCOUNTS
            lines.append(
                t.PERSON_LINE.format(
                    n=n,
                    name=row.name,
                    role=row.role_name,
                    where=row.place,
                    platforms=platforms,
                    active=self._moment(row.last_active),
                )
            )
            buttons.append([_button(f"{n}. {row.name}", PERSON, row.id)])
        nav = self._nav(page, pages, lambda p: (MUNICIPALITY, municipality_id, p))
        turn.say("\n".join(lines), [*buttons, *([nav] if nav else []), back])

    @staticmethod
    def _nav(page: int, pages: int, args) -> list[Button]:
        row = []
        if page > 0:
            row.append(_button(t.BTN_PREV, *args(page - 1)))
        if page + 1 < pages:
            row.append(_button(t.BTN_NEXT, *args(page + 1)))
        return row

    def _moment(self, moment: datetime | None) -> str:
        if moment is None:
            return t.NEVER
        return f"{moment.astimezone(self.core.config.timezone):%d.%m.%Y %H:%M}"

    # --- a person -----------------------------------------------------------------------------

    async def _card(self, turn: Turn, person_id: int, prefix: str = "") -> None:
        row = await pa.person_row(turn.session, person_id)
        if row is None:
            turn.say(t.STALE)
            return
        accounts = ", ".join(
            t.ACCOUNT.format(
                platform=a.platform_name,
                id=a.id,
                state=t.ACCOUNT_OFF
                if a.deactivated
                else t.ACCOUNT_ACTIVE.format(active=self._moment(a.last_active_at)),
            )
            for a in row.accounts
        )
        text = t.CARD.format(
            id=row.id,
            name=row.name,
            role=row.role_name,
            where=", ".join(p for p in (row.school, row.municipality or row.region) if p)
            or row.place,
            accounts=accounts or t.NO_ACCOUNTS,
        )
        back = [_button(t.BTN_BACK, MUNICIPALITY, row.municipality_id or REGION_LEVEL, 0)]
        if row.removed:
            turn.say("\n\n".join(p for p in (prefix, text + t.CARD_REMOVED) if p), [back])
            return
        buttons: list[list[Button]] = []
        if row.role in pa.INVITE_ROLES:
            buttons.append([_button(t.BTN_REISSUE, REISSUE, row.id)])
        buttons.extend(
            [_button(t.BTN_DEACTIVATE.format(platform=a.platform_name, id=a.id), ASK_OFF, a.id)]
            for a in row.accounts
            if not a.deactivated
        )
        if row.id != turn.person.id:
            buttons.append([_button(t.BTN_REMOVE, ASK_REMOVE, row.id)])
        buttons.append(back)
        turn.say("\n\n".join(p for p in (prefix, text) if p), buttons)

    async def _remove(self, turn: Turn, person_id: int, confirmed: bool) -> None:
        row = await pa.person_row(turn.session, person_id)
        if row is None:
            turn.say(t.STALE)
            return
        if not confirmed:
            turn.say(
                t.ASK_REMOVE.format(name=row.name, role=row.role_name, where=row.place),
                [
                    [
                        _button(t.BTN_CONFIRM_REMOVE, REMOVE, row.id),
                        _button(t.BTN_CANCEL, PERSON, row.id),
                    ]
                ],
            )
            return
        try:
            await pa.remove_person(turn.session, row.id, self.core.clock(), by=turn.person.id)
        except pa.PeopleError as exc:
            turn.say(str(exc))
            return
        turn.say(t.REMOVED.format(name=row.name))
        await self._people(turn, row.municipality_id or REGION_LEVEL, 0)

    async def _deactivate(self, turn: Turn, account_id: int, confirmed: bool) -> None:
        account = await turn.session.get(Account, account_id)
        row = await pa.person_row(turn.session, account.person_id) if account else None
        if account is None or row is None:
            turn.say(t.STALE)
            return
        platform = pa.PLATFORM_NAMES.get(account.platform, account.platform)
        if not confirmed:
            turn.say(
                t.ASK_DEACTIVATE.format(platform=platform, id=account.id, name=row.name),
                [
                    [
                        _button(t.BTN_CONFIRM_DEACTIVATE, OFF, account.id),
                        _button(t.BTN_CANCEL, PERSON, row.id),
                    ]
                ],
            )
            return
        try:
            await pa.deactivate_account(
                turn.session, account.id, self.core.clock(), by=turn.person.id
            )
        except pa.PeopleError as exc:
            turn.say(str(exc))
            return
        await turn.session.flush()
        await self._card(
            turn, row.id, prefix=t.DEACTIVATED.format(platform=platform, id=account.id)
        )

    async def _reissue(self, turn: Turn, person_id: int) -> None:
        if await pa.person_row(turn.session, person_id) is None:
            turn.say(t.STALE)
            return
        try:
            invite, done = await pa.reissue_for_person(turn.session, person_id, by=turn.person.id)
        except pa.PeopleError as exc:
            turn.say(str(exc))
            return
        turn.say(t.NEW_CODE.format(done=done, code=invite.code))

    async def _add(self, turn: Turn, municipality_id: int) -> None:
        municipality = await turn.session.get(Municipality, municipality_id)
        if municipality is None:
            turn.say(t.STALE)
            return
        invite, where = await pa.add_person(
            turn.session, Role.MUNICIPAL, municipality=municipality.name, by=turn.person.id
        )
        turn.say(t.NEW_INVITE.format(where=where, code=invite.code))
