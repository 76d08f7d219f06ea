"""The director's side of a returned response: only the returned answers are open, «rx»
walks through them with the coordinator's comments, and a resubmission tells the
coordinators what changed (old → new, new notes, new documents) against the snapshot each
verdict kept of the answer the coordinator saw.

The helpers below are used by the review screen (handlers/review_flow.py); the flow owns
the button ``rx|<response>`` sent with the coordinator's return notice.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy.ext.asyncio import AsyncSession

from forms.engine import AnswerState, Slot
from handlers import callbacks as cb
from handlers import render
from handlers import revision_texts as texts
from handlers.core_context import CoreContext
from handlers.flow import Routes
from handlers.types import Button
from handlers.walk_state import Turn, Walk, WalkKind
from storage import repo, review
from storage.models import AnswerReview, Campaign, Response, ResponseStatus, Role, School
from storage.scope import Scope

log = logging.getLogger(__name__)

ACTION = "rx"  # rx|<response>: walk through exactly the returned answers
# buttons that write to the answer on screen (the state's slot)
WRITE_ACTIONS = (
    cb.Action.ANSWER,
    cb.Action.SKIP,
    cb.Action.CONTINUE,
    cb.Action.DOCS_DONE,
    cb.Action.NOTE_KEEP,
)
MARK_LIMIT = 150  # the comment beside an answer on the review screen
COMMENT_LIMIT = 1000  # the comment above the question (as long as a coordinator may write)


class RevisionCore(CoreContext, Protocol):
    """What the flow uses of the conversation (handlers/conversation.py, review_flow.py)."""

    async def _load_walk(
        self,
        session: AsyncSession,
        response: Response,
        campaign: Campaign | None = None,
        school: School | None = None,
    ) -> Walk: ...

    async def _next_to_fix(
        self, turn: Turn, walk: Walk, after: Slot | None, kind: str, prefix: str = ""
    ) -> None: ...

    async def _show_review(self, turn: Turn, walk: Walk, prefix: str = "") -> None: ...

    def _closed_text(self, campaign: Campaign) -> str: ...


class RevisionFlow:
    def __init__(self, core: CoreContext) -> None:
        # the conversation core is built with the review screen and the walk (RevisionCore)
        self.core = cast(RevisionCore, core)

    def routes(self) -> Routes:
        return Routes(actions={ACTION: self.open})

    async def open(self, turn: Turn, payload: cb.Payload) -> None:
        response_id = payload.int_arg(0)
        loaded = await repo.load_response(turn.session, response_id) if response_id else None
        scope = Scope.of(turn.person)
        if (
            loaded is None
            or scope.role != Role.DIRECTOR
            or scope.removed
            or loaded[0].school_id is None
            or loaded[0].school_id != scope.school_id
        ):
            log.warning(
                "account %s pressed rx for response %s outside its scope",
                turn.account.id,
                response_id,
            )
            turn.say(texts.NOT_THEIRS)
            return
        response, campaign, _school = loaded
        if campaign.closed_at is not None:
            turn.say(self.core._closed_text(campaign))
            return
        if response.status != ResponseStatus.RETURNED:
            template = {
                ResponseStatus.DRAFT: texts.STILL_DRAFT,
                ResponseStatus.ACCEPTED: texts.ACCEPTED,
            }.get(response.status, texts.IN_REVIEW)
            turn.say(template.format(title=campaign.title))
            return
        walk = await self.core._load_walk(turn.session, *loaded)
        turn.state.response_id = response.id
        turn.state.question_id = None
        turn.state.data = {}
        todo = ordered(walk)
        if not todo:  # a whole reopen: everything is open, the review shows it
            await self.core._show_review(turn, walk)
            return
        intro = texts.INTRO.format(items=numbers(walk, todo))
        await self.core._next_to_fix(turn, walk, None, WalkKind.RETURNED, intro)


# --- what the review screen and the submit use ------------------------------------------------


def ordered(walk: Walk) -> list[Slot]:
    """The returned answers on screen, in form order (a hidden one cannot be changed)."""
    return [s for s in walk.engine.slots(walk.answers, walk.flags) if s in walk.returned]


def number_of(walk: Walk, slot: Slot) -> int:
    return walk.engine.slots(walk.answers, walk.flags).index(slot) + 1


def numbers(walk: Walk, slots: list[Slot]) -> str:
    return ", ".join(f"№{number_of(walk, s)}" for s in slots)


def next_returned(walk: Walk, after: Slot | None) -> Slot | None:
    """The next returned answer after ``after``; None after the last one (no wrap-around)."""
    todo = ordered(walk)
    if after is None:
        return todo[0] if todo else None
    visible = walk.engine.slots(walk.answers, walk.flags)
    if after not in visible:
        return None
    position = visible.index(after)
    return next((s for s in todo if visible.index(s) > position), None)


def previous_returned(walk: Walk, before: Slot) -> Slot | None:
    visible = walk.engine.slots(walk.answers, walk.flags)
    if before not in visible:
        return None
    position = visible.index(before)
    earlier = [s for s in ordered(walk) if visible.index(s) < position]
    return earlier[-1] if earlier else None


def _comment(row: AnswerReview, limit: int = MARK_LIMIT) -> str:
    return render.shorten(row.comment, limit) if row.comment else texts.NO_COMMENT


def comment_line(walk: Walk, slot: Slot) -> str:
    return texts.COMMENT.format(comment=_comment(walk.returned[slot], COMMENT_LIMIT))


@dataclass
class Change:
    """One returned answer now against the snapshot the coordinator's verdict kept."""

    changed: bool
    old: Any = None
    old_note: str | None = None
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _names_now(walk: Walk, slot: Slot) -> list[str]:
    return [name for _, name in walk.files.get(slot, [])]


def _compare(walk: Walk, slot: Slot, row: AnswerReview, touch: review.Touch | None) -> Change:
    state = walk.answers.get(slot) or AnswerState(None)
    files = walk.files.get(slot, [])
    fresh = [name for attachment_id, name in files if touch and attachment_id in touch.attached]
    snapshot = row.snapshot
    if snapshot is None:  # no snapshot kept: any write since the verdict counts
        return Change(bool(touch and touch.changed), added=fresh)
    old_value = snapshot.get("value")
    old_note = (snapshot.get("note") or "").strip() or None
    old_names = Counter(str(n) for n in snapshot.get("documents") or [])
    new_names = Counter(_names_now(walk, slot))
    added = list((new_names - old_names).elements())
    added += [name for name in fresh if name not in added]
    removed = list((old_names - new_names).elements())
    value_changed = repo.encode_value(state.value) != old_value and state.value != old_value
    note_changed = ((state.note or "").strip() or None) != old_note
    return Change(
        value_changed or note_changed or bool(added) or bool(removed),
        old=repo.decode_value(old_value),
        old_note=old_note,
        added=added,
        removed=removed,
    )


async def changes(session: AsyncSession, walk: Walk) -> dict[Slot, Change]:
    """Every returned answer on screen, changed or not (one query on the audit log)."""
    todo = ordered(walk)
    if not todo:
        return {}
    touched = await review.touched_since_verdicts(session, walk.response.id)
    return {s: _compare(walk, s, walk.returned[s], touched.get(s)) for s in todo}


def sync_fixed(walk: Walk, found: dict[Slot, Change], now: datetime) -> None:
    """``answer_reviews.fixed_at``: when the school changed the returned answer (cleared
    again when it was changed back to what the coordinator saw)."""
    for slot, change in found.items():
        row = walk.returned[slot]
        if change.changed and row.fixed_at is None:
            row.fixed_at = now
        elif not change.changed and row.fixed_at is not None:
            row.fixed_at = None


def waiting(found: dict[Slot, Change]) -> list[Slot]:
    return [slot for slot, change in found.items() if not change.changed]


def marks(walk: Walk, found: dict[Slot, Change]) -> dict[Slot, str]:
    shown = {}
    for slot, change in found.items():
        template = texts.MARK_FIXED if change.changed else texts.MARK_RETURNED
        shown[slot] = template.format(comment=_comment(walk.returned[slot]))
    return shown


def number_buttons(walk: Walk, per_row: int = 6) -> list[list[Button]]:
    """Buttons only for the answers that may change (the rest is locked)."""
    rid = walk.response.id
    buttons = [
        Button(str(number), cb.encode(cb.Action.EDIT, rid, slot.question_id, slot.row))
        for number, slot in enumerate(walk.engine.slots(walk.answers, walk.flags), start=1)
        if walk.editable(slot)
    ]
    rows = [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]
    rows.append([Button(texts.BTN_WALK, cb.encode(ACTION, rid))])
    return rows


def notice_lines(walk: Walk, found: dict[Slot, Change]) -> list[str]:
    """What changed, for the coordinators' resubmission notice."""
    lines = [texts.CHANGES]
    for slot, change in found.items():
        question = walk.engine.question(slot.question_id)
        state = walk.answers.get(slot) or AnswerState(None)
        new = render.shorten(render.format_value(question, state.value), render.VALUE_LIMIT)
        old = (
            render.shorten(render.format_value(question, change.old), render.VALUE_LIMIT)
            if walk.returned[slot].snapshot is not None
            else texts.NOTHING
        )
        template = texts.SAME if old == new else texts.CHANGED
        label = render.label(walk.engine, slot)
        lines.append(template.format(number=number_of(walk, slot), label=label, old=old, new=new))
        note = (state.note or "").strip()
        if note and note != (change.old_note or ""):
            lines.append(texts.NEW_NOTE.format(note=render.shorten(note, 300)))
        if change.added:
            names = render.shorten(", ".join(change.added), 300)
            lines.append(texts.NEW_DOCUMENTS.format(names=names))
        if change.removed:
            names = render.shorten(", ".join(change.removed), 300)
            lines.append(texts.REMOVED_DOCUMENTS.format(names=names))
    return lines
