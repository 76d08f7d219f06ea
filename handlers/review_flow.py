"""The review screen, walks through gaps and conflicts, and submitting.

Mixed into :class:`handlers.conversation.Conversation`, whose navigation it uses.
"""

from __future__ import annotations

from forms.engine import Slot
from handlers import callbacks as cb
from handlers import render, revision_flow, revision_texts, submission_notices, texts
from handlers.types import Button
from handlers.walk_state import Mode, Turn, Walk, WalkKind
from storage import review
from storage.models import Campaign, ResponseStatus

# words typed while the review is on screen (it has no yes/no question of its own)
_REVIEW_WORDS = {
    **dict.fromkeys(("да", "д", "yes", "отправить", "отправляю", "готово"), "submit"),
    **dict.fromkeys(("нет", "н", "no", "не отправлять", "не надо"), "decline"),
    **dict.fromkeys(("продолжить", "продолжить заполнение", "дальше"), "continue"),
    **dict.fromkeys(("исправить", "исправить по очереди"), "fix"),
}


class ReviewFlow:
    async def _next_to_fix(
        self, turn: Turn, walk: Walk, after: Slot | None, kind: str, prefix: str = ""
    ) -> None:
        """One step of a walk through every gap (after a blocked submit), every conflict, or
        every returned answer (``rx``)."""
        if kind == WalkKind.RETURNED:
            await self._next_returned(turn, walk, after, prefix)
            return
        engine = walk.engine
        conflicts = {c.slot: c for c in engine.conflicts(walk.answers, walk.flags)}
        todo = engine.blocking(walk.answers, walk.flags) if kind == WalkKind.GAPS else []
        if kind == WalkKind.CONFLICTS:
            todo = list(conflicts)
        slot = (todo[0] if todo else None) if after is None else engine.following(after, todo)
        if slot is None:
            turn.state.data = {}
            done = texts.NO_MORE_CONFLICTS if kind == WalkKind.CONFLICTS else texts.NO_MORE_GAPS
            await self._show_review(turn, walk, prefix="\n".join(p for p in (prefix, done) if p))
            return
        turn.state.data = {"return_to_review": True, "walk": kind}
        if slot in conflicts:
            prefix = "\n".join(p for p in (prefix, f"⚠️ {conflicts[slot].message}") if p)
        await self._go_to(turn, walk, slot, prefix=prefix)

    async def _next_returned(
        self, turn: Turn, walk: Walk, after: Slot | None, prefix: str = ""
    ) -> None:
        slot = revision_flow.next_returned(walk, after)
        if slot is None:
            turn.state.data = {}
            done = revision_texts.WALK_DONE
            await self._show_review(turn, walk, prefix="\n".join(p for p in (prefix, done) if p))
            return
        turn.state.data = {"walk": WalkKind.RETURNED}
        comment = revision_flow.comment_line(walk, slot)
        await self._go_to(turn, walk, slot, prefix="\n".join(p for p in (prefix, comment) if p))

    async def _revision_refuses(self, turn: Turn, walk: Walk, slot: Slot | None) -> bool:
        """Returned with comments, any other answer is locked: say so, show the review."""
        if slot is None or walk.editable(slot):
            return False
        turn.state.data = {}
        turn.state.question_id = None
        await self._show_review(turn, walk, prefix=f"⚠️ {revision_texts.NOT_RETURNED}")
        return True

    async def _revision_back(self, turn: Turn, walk: Walk) -> bool:
        """Returned with comments, «Назад» on a question steps to the previous returned
        answer (then to the review), never onto a locked one."""
        slot = self._state_slot(turn)
        if not walk.returned or turn.state.mode != Mode.QUESTION or slot is None:
            return False
        previous = revision_flow.previous_returned(walk, slot)
        if previous is None:
            turn.state.data = {}
            await self._show_review(turn, walk)
            return True
        comment = revision_flow.comment_line(walk, previous)
        await self._go_to(turn, walk, previous, prefix=comment)
        return True

    @staticmethod
    def _numbers(walk: Walk, slots: list[Slot], limit: int = 10) -> str:
        visible = walk.engine.slots(walk.answers, walk.flags)
        numbers = ", ".join(str(visible.index(s) + 1) for s in slots[:limit] if s in visible)
        if len(slots) > limit:
            numbers += f" и ещё {len(slots) - limit}"
        return numbers

    async def _show_review(self, turn: Turn, walk: Walk, prefix: str = "") -> None:
        engine = walk.engine
        slots = engine.slots(walk.answers, walk.flags)
        done, total = engine.progress(walk.answers, walk.flags)
        lines = [prefix, ""] if prefix else []
        lines.append(texts.REVIEW_TITLE.format(title=walk.campaign.title))
        lines.append(texts.REVIEW_PROGRESS.format(done=done, total=total))
        lines.append("")
        conflicts = engine.conflicts(walk.answers, walk.flags)
        marks = {
            c.slot: texts.REVIEW_CONFLICT.format(ref=slots.index(c.ref) + 1)
            if c.ref in slots
            else texts.REVIEW_OUT_OF_RANGE
            for c in conflicts
        }
        revised = bool(walk.returned) and not walk.locked
        found: dict[Slot, revision_flow.Change] = {}
        if revised:
            found = await revision_flow.changes(turn.session, walk)
            revision_flow.sync_fixed(walk, found, self.clock())
            for slot, mark in revision_flow.marks(walk, found).items():
                marks[slot] = f"{marks[slot]} {mark}" if slot in marks else mark
        lines.extend(render.review_lines(engine, slots, walk.answers, walk.files, marks))
        rid = walk.response.id
        if walk.locked:
            turn.state.mode = Mode.IDLE
            turn.say("\n".join(lines))
            return
        turn.state.mode = Mode.REVIEW
        lines.append("")
        if revised:
            ready = not revision_flow.waiting(found)
            lines.append(revision_texts.HINT_READY if ready else revision_texts.HINT)
            buttons = revision_flow.number_buttons(walk)
        else:
            lines.append(texts.REVIEW_CONFLICTS_HINT if conflicts else texts.REVIEW_HINT)
            buttons = render.number_buttons(rid, slots)
        if conflicts:
            buttons.append([Button(texts.BTN_FIX, cb.encode(cb.Action.FIX, rid))])
        buttons.append([Button(texts.BTN_SUBMIT, cb.encode(cb.Action.SUBMIT, rid))])
        if not revised:
            buttons.append([Button(texts.BTN_CONTINUE, cb.encode(cb.Action.BACK, rid))])
        turn.say("\n".join(lines), buttons)

    async def _review_input(self, turn: Turn, walk: Walk, text: str) -> None:
        slots = walk.engine.slots(walk.answers, walk.flags)
        word = text.casefold().strip(" .!,;")
        if word in _REVIEW_WORDS:
            if walk.locked:
                turn.say(self._submitted_text(walk))
            elif _REVIEW_WORDS[word] == "submit":
                await self._ask_submit(turn, walk)
            elif _REVIEW_WORDS[word] == "continue":
                await self._back(turn, walk)
            elif _REVIEW_WORDS[word] == "fix":
                kind = WalkKind.RETURNED if walk.returned else WalkKind.CONFLICTS
                await self._next_to_fix(turn, walk, None, kind)
            else:
                turn.say(texts.REVIEW_NOT_SENT)
            return
        number = text.strip().lstrip("№#").strip()
        if not number.isdigit():
            turn.say(texts.REVIEW_NOT_UNDERSTOOD.format(total=len(slots)))
            return
        if not 1 <= int(number) <= len(slots):
            turn.say(
                texts.REVIEW_BAD_NUMBER.format(number=render.shorten(text, 20), total=len(slots))
            )
            return
        if walk.locked:
            turn.say(self._submitted_text(walk))
            return
        if await self._revision_refuses(turn, walk, slots[int(number) - 1]):
            return
        turn.state.data = {"return_to_review": True}
        await self._go_to(turn, walk, slots[int(number) - 1])

    async def _ask_submit(self, turn: Turn, walk: Walk) -> None:
        engine = walk.engine
        missing = engine.missing(walk.answers, walk.flags)
        if missing:
            numbers = self._numbers(walk, missing)
            prefix = f"⚠️ {texts.SUBMIT_MISSING.format(items=numbers)}"
            await self._next_to_fix(turn, walk, None, WalkKind.GAPS, prefix)
            return
        if engine.conflicts(walk.answers, walk.flags):
            await self._next_to_fix(turn, walk, None, WalkKind.GAPS, f"⚠️ {texts.SUBMIT_CONFLICTS}")
            return
        if await self._returns_waiting(turn, walk):
            return
        turn.state.mode = Mode.CONFIRM
        rid = walk.response.id
        turn.say(
            texts.CONFIRM_SUBMIT.format(title=walk.campaign.title),
            [
                [Button(texts.BTN_CONFIRM, cb.encode(cb.Action.CONFIRM, rid))],
                [Button(texts.BTN_BACK, cb.encode(cb.Action.REVIEW, rid))],
            ],
        )

    async def _submit(self, turn: Turn, walk: Walk) -> None:
        engine = walk.engine
        if engine.missing(walk.answers, walk.flags) or engine.violations(walk.answers, walk.flags):
            await self._ask_submit(turn, walk)
            return
        if await self._returns_waiting(turn, walk):
            return
        response = walk.response
        again = response.status == ResponseStatus.RETURNED
        status = ResponseStatus.RESUBMITTED if again else ResponseStatus.SUBMITTED
        now = self.clock()
        found = await revision_flow.changes(turn.session, walk) if walk.returned else {}
        revision_flow.sync_fixed(walk, found, now)
        changed = revision_flow.notice_lines(walk, found) if found else []
        event = await review.move(turn.session, response, status, turn.person.id, now)
        await turn.session.flush()
        await submission_notices.submitted(
            turn.session,
            response,
            walk.campaign.title,
            now,
            resubmitted=again,
            event_id=event.id,
            changes=changed,
        )
        turn.state.mode = Mode.IDLE
        turn.state.question_id = None
        turn.state.data = {}
        if found:
            turn.say(revision_texts.RESUBMITTED.format(title=walk.campaign.title, count=len(found)))
        else:
            turn.say(texts.SUBMITTED.format(title=walk.campaign.title))

    async def _returns_waiting(self, turn: Turn, walk: Walk) -> bool:
        """Returned with comments: every returned answer must change before it goes back."""
        if not walk.returned:
            return False
        found = await revision_flow.changes(turn.session, walk)
        left = revision_flow.waiting(found)
        if not left:
            return False
        warning = revision_texts.WAITING.format(items=revision_flow.numbers(walk, left))
        await self._show_review(turn, walk, prefix=f"⚠️ {warning}")
        return True

    def _submitted_text(self, walk: Walk) -> str:
        if walk.campaign.closed_at is not None:
            return self._closed_text(walk.campaign)
        when = walk.response.submitted_at
        shown = when.astimezone(self.config.timezone).strftime("%d.%m.%Y в %H:%M") if when else ""
        return texts.ALREADY_SUBMITTED.format(title=walk.campaign.title, when=shown)

    def _closed_text(self, campaign: Campaign) -> str:
        when = campaign.closed_at.astimezone(self.config.timezone).strftime("%d.%m.%Y")
        return texts.CAMPAIGN_CLOSED.format(number=campaign.id, title=campaign.title, when=when)
