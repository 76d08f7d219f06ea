"""/notify: a coordinator chooses how to hear of submissions in their scope — each time,
in the daily digest at 09:00 local time (scheduler/digests.py), or not at all."""

from __future__ import annotations

from handlers import callbacks as cb
from handlers import notice_texts as t
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.submission_notices import mode_of
from handlers.types import Button
from handlers.walk_state import Turn
from storage import repo
from storage.models import NotifyMode, Role

ACTION = "nm"  # nm|<each|digest|off>
CHOOSERS = (Role.MUNICIPAL, Role.REGIONAL)


class NotifyFlow:
    def __init__(self, core: CoreContext) -> None:
        self.core = core

    def routes(self) -> Routes:
        return Routes(commands={"notify": self.command}, actions={ACTION: self.button})

    def _refusal(self, turn: Turn) -> str | None:
        person = turn.person
        if person.removed_at is not None or person.role not in (*CHOOSERS, Role.ADMIN):
            return t.NOTIFY_ONLY_COORDINATORS
        if person.role == Role.ADMIN:
            return t.NOTIFY_NOT_FOR_ADMIN
        return None

    async def command(self, turn: Turn, _args: str) -> None:
        refusal = self._refusal(turn)
        if refusal:
            turn.say(refusal)
            return
        current = mode_of(turn.person)
        buttons = [
            [
                Button(
                    (t.MARK if mode == current else "") + t.BTN_NOTIFY[mode],
                    cb.encode(ACTION, mode),
                )
            ]
            for mode in NotifyMode
        ]
        turn.say(t.NOTIFY_CURRENT.format(mode=t.NOTIFY_MODES[current]), buttons)

    async def button(self, turn: Turn, payload: cb.Payload) -> None:
        refusal = self._refusal(turn)
        if refusal:
            turn.say(refusal)
            return
        choice = payload.str_arg(0)
        if choice not in {mode.value for mode in NotifyMode} or len(payload.args) != 1:
            turn.say(t.NOTIFY_BAD_CHOICE)
            return
        old = turn.person.notify_mode
        if old != choice:
            turn.person.notify_mode = choice
            await repo.audit(
                turn.session, "notify_mode", "person", turn.person.id, turn.person.id,
                old=old, new=choice,
            )  # fmt: skip
        turn.say(t.NOTIFY_SET[choice])
