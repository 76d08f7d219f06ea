"""The questionnaire walk: loading a response with the scope checks, answers by text and by
button, notes, and moving between questions (go to, advance, back, skip, render).

Mixed into :class:`handlers.conversation.Conversation`; the review screen and submitting
are in handlers/review_flow.py, documents in handlers/documents_flow.py.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from forms.engine import AnswerState, Slot
from forms.schema import QuestionKind
from handlers import callbacks as cb
from handlers import render, texts
from handlers.revision_flow import WRITE_ACTIONS
from handlers.walk_state import Mode, Turn, Walk, WalkKind
from storage import repo, review
from storage.files import ACCEPTED_LIST
from storage.models import Campaign, Person, Response, School

log = logging.getLogger("handlers.conversation")

NOTE_MIN_LENGTH = 10
NOTE_MAX_LENGTH = 4000


class QuestionnaireFlow:
    # --- loading a walk with scope checks ------------------------------------------------

    async def _load_walk(
        self,
        session: AsyncSession,
        response: Response,
        campaign: Campaign | None = None,
        school: School | None = None,
    ) -> Walk:
        if campaign is None:
            campaign = await session.get(Campaign, response.campaign_id)
        engine = self.forms.engine(campaign.form_id, response.form_version)
        flags: dict[str, bool] = {}
        if response.school_id is not None:
            if school is None:
                school = await session.get(School, response.school_id)
            flags = school.flags()
        walk = Walk(response, campaign, engine, {}, flags)
        await self._reload(session, walk)
        walk.returned = await review.open_returns(session, response)  # revision_flow
        return walk

    @staticmethod
    async def _reload(session: AsyncSession, walk: Walk) -> None:
        walk.answers, attachments = await repo.load_walk_rows(session, walk.response.id)
        walk.files = {}
        for attachment in attachments:
            slot = Slot(attachment.question_id, attachment.row)
            walk.files.setdefault(slot, []).append((attachment.id, attachment.original_name))

    @staticmethod
    def _remember(walk: Walk, slot: Slot, value: object) -> None:
        """A new value saved by ``repo.save_answer`` (note and documents kept), in memory."""
        previous = walk.answers.get(slot)
        walk.answers[slot] = AnswerState(
            value, previous.note if previous else None, previous.documents if previous else 0
        )

    def _owns(self, person: Person, response: Response) -> bool:
        return response.respondent_key in self._respondent_keys(person)

    async def _current_walk(self, turn: Turn) -> Walk | None:
        if turn.state.response_id is None:
            return None
        loaded = await repo.load_response(turn.session, turn.state.response_id)
        if loaded is None or not self._owns(turn.person, loaded[0]):
            turn.state.response_id = None
            turn.state.mode = Mode.IDLE
            return None
        return await self._load_walk(turn.session, *loaded)

    async def _walk_for_payload(self, turn: Turn, payload: cb.Payload) -> Walk | None:
        """The response a button names, if it is the sender's and the one in progress."""
        response_id = payload.int_arg(0)
        loaded = await repo.load_response(turn.session, response_id) if response_id else None
        response = loaded[0] if loaded is not None else None
        if loaded is None or response is None or not self._owns(turn.person, response):
            log.warning(
                "account %s pressed a button for response %s outside its scope",
                turn.account.id,
                response_id,
            )
            turn.say(texts.NOT_YOUR_RESPONSE)
            return None
        walk = await self._load_walk(turn.session, *loaded)
        if turn.state.response_id != response.id:
            turn.state.response_id = response.id
            turn.state.mode = Mode.REVIEW
        return walk

    # --- buttons -------------------------------------------------------------------------

    async def _walk_button(self, turn: Turn, payload: cb.Payload) -> None:
        """A button of the response in progress (answer, back, skip, review, submit …)."""
        walk = await self._walk_for_payload(turn, payload)
        if walk is None:
            return
        action = payload.action
        if action == cb.Action.REVIEW:
            await self._show_review(turn, walk)
            return
        if walk.locked:
            turn.say(self._submitted_text(walk))
            return
        slot = self._state_slot(turn)
        if action in WRITE_ACTIONS and await self._revision_refuses(turn, walk, slot):
            return
        if action == cb.Action.ANSWER:
            slot = Slot(payload.str_arg(1) or "", payload.int_arg(2) or 0)
            if turn.state.mode != Mode.QUESTION or slot != self._state_slot(turn):
                turn.say(texts.STALE_BUTTON)
                await self._render_current(turn, walk)
                return
            await self._answer_text(turn, walk, slot, self._button_text(walk, slot, payload))
        elif action == cb.Action.BACK:
            if not await self._revision_back(turn, walk):
                await self._back(turn, walk)
        elif action == cb.Action.SKIP:
            await self._skip(turn, walk)
        elif action == cb.Action.CONTINUE:
            slot = self._state_slot(turn)
            if slot is None or walk.answers.get(slot) is None:
                await self._render_current(turn, walk)
            else:
                await self._advance(turn, walk, slot)
        elif action == cb.Action.DOCS_DONE:
            await self._documents_done(turn, walk)
        elif action == cb.Action.REMOVE_FILE:
            await self._remove_file(turn, walk, payload.int_arg(1))
        elif action == cb.Action.NOTE_KEEP:
            slot = self._state_slot(turn)
            state = walk.answers.get(slot) if slot else None
            if turn.state.mode == Mode.NOTE and state is not None and state.note:
                await self._advance(turn, walk, slot)
            else:
                await self._render_current(turn, walk)
        elif action == cb.Action.EDIT:
            slot = Slot(payload.str_arg(1) or "", payload.int_arg(2) or 0)
            if slot not in walk.engine.slots(walk.answers, walk.flags):
                await self._show_review(turn, walk)
                return
            turn.state.data = {"return_to_review": True}
            await self._go_to(turn, walk, slot)
        elif action == cb.Action.FIX:
            await self._next_to_fix(turn, walk, None, WalkKind.CONFLICTS)
        elif action == cb.Action.SUBMIT:
            await self._ask_submit(turn, walk)
        elif action == cb.Action.CONFIRM:
            if turn.state.mode != Mode.CONFIRM:
                await self._ask_submit(turn, walk)
            else:
                await self._submit(turn, walk)
        else:
            await self._render_current(turn, walk)

    @staticmethod
    def _button_text(walk: Walk, slot: Slot, payload: cb.Payload) -> str:
        value = payload.str_arg(3) or ""
        question = walk.engine.question(slot.question_id)
        if question.kind == QuestionKind.YES_NO:
            return {"y": texts.YES, "n": texts.NO}.get(value, value)
        return value

    # --- typed text ----------------------------------------------------------------------

    async def _walk_text(self, turn: Turn, text: str) -> None:
        mode = turn.state.mode
        if mode in (Mode.IDLE, Mode.CHOOSE) or turn.state.response_id is None:
            turn.say(texts.IDLE_HINT)
            return
        walk = await self._current_walk(turn)
        if walk is None:
            turn.say(texts.IDLE_HINT)
            return
        if mode == Mode.REVIEW:
            await self._review_input(turn, walk, text)
            return
        if walk.locked:
            turn.say(self._submitted_text(walk))
            return
        slot = self._state_slot(turn)
        if await self._revision_refuses(turn, walk, slot):
            return
        if mode == Mode.QUESTION and slot is not None:
            await self._answer_text(turn, walk, slot, text)
        elif mode == Mode.DOCUMENTS:
            if text.strip().lower() in ("готово", "готов", "всё", "все"):
                await self._documents_done(turn, walk)
            else:
                await self._render_current(turn, walk)
        elif mode == Mode.NOTE and slot is not None:
            await self._note(turn, walk, slot, text)
        elif mode == Mode.CONFIRM:
            if text.strip().lower() in ("да", "да, отправить", "отправить"):
                await self._submit(turn, walk)
            else:
                await self._show_review(turn, walk)
        else:
            await self._render_current(turn, walk)

    async def _answer_text(self, turn: Turn, walk: Walk, slot: Slot, text: str) -> None:
        engine = walk.engine
        question = engine.question(slot.question_id)
        if question.kind == QuestionKind.DOCUMENT:
            turn.say(
                texts.SEND_DOCUMENT.format(
                    accepted=ACCEPTED_LIST, limit=texts.mb(self._limit(turn))
                )
            )
            return
        result = engine.parse(slot, text, walk.answers, walk.flags)
        if not result.ok:
            await self._render_question(turn, walk, slot, prefix=f"⚠️ {result.error}")
            return
        value = result.value
        previous = walk.answers.get(slot)
        if question.kind == QuestionKind.YES_NO and not engine.is_group_control(slot.question_id):
            if value is False and previous is not None and previous.documents:
                await repo.remove_attachments(turn.session, walk.response, slot, turn.person.id)
            await repo.save_answer(
                turn.session,
                walk.response,
                slot,
                value,
                turn.person.id,
                note=None if value else (previous.note if previous else None),
                keep_note=False,
            )
            # what was written, without reading it back
            walk.answers[slot] = AnswerState(
                value,
                None if value else (previous.note if previous else None),
                previous.documents if previous is not None and value else 0,
            )
            if not value:
                walk.files.pop(slot, None)
            if value and question.document_when_yes:
                turn.state.mode = Mode.DOCUMENTS
                await self._render_current(turn, walk, prefix=texts.SAVED)
                return
            if not value and question.note_when_no:
                turn.state.mode = Mode.NOTE
                await self._render_current(turn, walk, prefix=texts.SAVED)
                return
        else:
            await repo.save_answer(turn.session, walk.response, slot, value, turn.person.id)
            self._remember(walk, slot, value)
            broken = [c for c in walk.engine.conflicts(walk.answers, walk.flags) if c.ref == slot]
            if broken and turn.state.data.get("walk") is None:
                # The new value contradicts answers given earlier: show them all at once.
                turn.state.data = {}
                numbers = self._numbers(walk, [c.slot for c in broken])
                await self._show_review(
                    turn,
                    walk,
                    prefix=f"{texts.SAVED}\n⚠️ {texts.CONFLICTS_AFTER_SAVE.format(items=numbers)}",
                )
                return
        await self._advance(turn, walk, slot, prefix=texts.SAVED)

    async def _note(self, turn: Turn, walk: Walk, slot: Slot, text: str) -> None:
        note = " ".join(text.split())
        if len(note) < NOTE_MIN_LENGTH:
            await self._render_current(turn, walk, prefix=f"⚠️ {texts.NOTE_TOO_SHORT}")
            return
        if len(note) > NOTE_MAX_LENGTH:
            await self._render_current(
                turn, walk, prefix=f"⚠️ {texts.NOTE_TOO_LONG.format(limit=NOTE_MAX_LENGTH)}"
            )
            return
        await repo.save_note(turn.session, walk.response, slot, text.strip(), turn.person.id)
        previous = walk.answers.get(slot)
        walk.answers[slot] = AnswerState(
            previous.value if previous else None,
            text.strip(),
            previous.documents if previous else 0,
        )
        await self._advance(turn, walk, slot, prefix=texts.NOTE_SAVED)

    # --- navigation ----------------------------------------------------------------------

    @staticmethod
    def _state_slot(turn: Turn) -> Slot | None:
        if turn.state.question_id is None:
            return None
        return Slot(turn.state.question_id, turn.state.row or 0)

    async def _go_to(self, turn: Turn, walk: Walk, slot: Slot, prefix: str = "") -> None:
        if await self._revision_refuses(turn, walk, slot):
            return
        turn.state.mode = Mode.QUESTION
        turn.state.response_id = walk.response.id
        turn.state.question_id = slot.question_id
        turn.state.row = slot.row
        await self._render_question(turn, walk, slot, prefix=prefix)

    async def _advance(self, turn: Turn, walk: Walk, after: Slot, prefix: str = "") -> None:
        engine = walk.engine
        kind = turn.state.data.get("walk")
        if kind in (WalkKind.GAPS, WalkKind.CONFLICTS, WalkKind.RETURNED):
            await self._next_to_fix(turn, walk, after, kind, prefix)
            return
        if turn.state.data.get("return_to_review"):
            turn.state.data = {}
            pending = engine.requirement(after, walk.answers)
            if pending is None:
                await self._show_review(turn, walk, prefix=prefix)
                return
        slot = engine.next_slot(after, walk.answers, walk.flags)
        while slot is not None and engine.is_complete(slot, walk.answers):
            slot = engine.next_slot(slot, walk.answers, walk.flags)
        if slot is None:
            slot = engine.first_incomplete(walk.answers, walk.flags)
        if slot is None:
            await self._show_review(
                turn, walk, prefix="\n".join(p for p in (prefix, texts.FORM_DONE) if p)
            )
            return
        await self._go_to(turn, walk, slot, prefix=prefix)

    async def _back(self, turn: Turn, walk: Walk) -> None:
        slot = self._state_slot(turn)
        if turn.state.mode in (Mode.DOCUMENTS, Mode.NOTE) and slot is not None:
            await self._go_to(turn, walk, slot)
            return
        if turn.state.mode in (Mode.REVIEW, Mode.CONFIRM) or slot is None:
            first = walk.engine.first_incomplete(walk.answers, walk.flags)
            if first is not None:
                turn.state.data = {}
                await self._go_to(turn, walk, first)
                return
            await self._render_current(turn, walk, force_question=True)
            return
        previous = walk.engine.prev_slot(slot, walk.answers, walk.flags)
        if previous is None:
            await self._render_question(turn, walk, slot, prefix=texts.AT_START)
            return
        await self._go_to(turn, walk, previous)

    async def _skip(self, turn: Turn, walk: Walk) -> None:
        slot = self._state_slot(turn)
        if slot is None or turn.state.mode != Mode.QUESTION:
            await self._render_current(turn, walk)
            return
        if walk.engine.question(slot.question_id).required:
            await self._render_question(turn, walk, slot, prefix=f"⚠️ {texts.CANNOT_SKIP}")
            return
        await repo.save_answer(turn.session, walk.response, slot, None, turn.person.id)
        self._remember(walk, slot, None)
        await self._advance(turn, walk, slot)

    # --- rendering the current step -------------------------------------------------------

    async def _render_current(
        self,
        turn: Turn,
        walk: Walk,
        prefix: str = "",
        force_question: bool = False,
        with_question: bool = False,
    ) -> None:
        """Show the current step; ``with_question`` repeats the question above a note or
        document step (after a pause, the user no longer sees it)."""
        slot = self._state_slot(turn)
        visible = walk.engine.slots(walk.answers, walk.flags)
        if slot is None or slot not in visible:
            slot = walk.engine.first_incomplete(walk.answers, walk.flags)
            if slot is None:
                await self._show_review(turn, walk, prefix=prefix)
                return
            await self._go_to(turn, walk, slot, prefix=prefix)
            return
        mode = turn.state.mode
        if force_question or mode not in (Mode.DOCUMENTS, Mode.NOTE, Mode.REVIEW, Mode.CONFIRM):
            await self._go_to(turn, walk, slot, prefix=prefix)
        elif mode in (Mode.DOCUMENTS, Mode.NOTE):
            if with_question:
                context = render.question_context(walk.engine, slot, walk.answers, walk.flags)
                prefix = "\n\n".join(p for p in (prefix, context) if p)
            if mode == Mode.DOCUMENTS:
                message = render.documents_message(
                    walk.engine,
                    walk.response.id,
                    slot,
                    walk.files.get(slot, []),
                    prefix=prefix,
                    download_limit=self._limit(turn),
                )
            else:
                state = walk.answers.get(slot)
                message = render.note_message(
                    walk.response.id, state.note if state else None, prefix=prefix
                )
            turn.out.append(message)
        else:
            await self._show_review(turn, walk, prefix=prefix)

    async def _render_question(self, turn: Turn, walk: Walk, slot: Slot, prefix: str = "") -> None:
        turn.out.append(
            render.question_message(
                walk.engine,
                walk.response.id,
                slot,
                walk.answers,
                walk.flags,
                prefix=prefix,
                download_limit=self._limit(turn),
                files=walk.files.get(slot, []),
            )
        )
