"""The platform-neutral conversation: registration, the questionnaire walk, review and submit.

Each event runs in one database transaction that commits before the reply is returned,
so every answer the bot acknowledges survives a crash, and a restart resumes exactly there.
"""

from __future__ import annotations

import asyncio
import logging
import re
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from forms.engine import AnswerState, Slot
from forms.schema import QuestionKind
from handlers import callbacks as cb
from handlers import deadlines_chat, export_chat, link_flow, prefill_flow, render, texts
from handlers.admin_texts import ACCESS_CLOSED, HELP_ADMIN
from handlers.documents_flow import DocumentsFlow
from handlers.export_chat import ExportChat
from handlers.flow import Routes
from handlers.flows import build_routes
from handlers.registry import FormRegistry
from handlers.review_flow import ReviewFlow
from handlers.types import (
    Button,
    EventKind,
    FileFetcher,
    Incoming,
    Messenger,
    Outgoing,
    OutText,
)
from handlers.walk_state import CoreConfig, Mode, Turn, Walk, WalkKind
from storage import repo
from storage.files import (
    ACCEPTED_LIST,
    FileStore,
)
from storage.models import (
    Account,
    Campaign,
    Invite,
    Municipality,
    Person,
    Region,
    Response,
    Role,
    School,
    utcnow,
)

log = logging.getLogger(__name__)

# Telegram's command words; «/home/user/file.pdf» or «/2.5» is text typed with a slash
_COMMAND_WORD = re.compile(r"[a-z0-9_]{1,32}")
NOTE_MIN_LENGTH = 10
NOTE_MAX_LENGTH = 4000


class Conversation(DocumentsFlow, ReviewFlow):
    def __init__(
        self,
        sessions: async_sessionmaker,
        forms: FormRegistry,
        files: FileStore,
        config: CoreConfig,
        fetchers: dict[str, FileFetcher] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        messengers: dict[str, Messenger] | None = None,
    ) -> None:
        self.sessions = sessions
        self.forms = forms
        self.files = files
        self.config = config
        self.fetchers: dict[str, FileFetcher] = dict(fetchers or {})
        self.clock = clock
        # bot-initiated messages per platform (export progress); filled by the runner
        self.messengers: dict[str, Messenger] = dict(messengers or {})
        self.exports = ExportChat(self)
        # side flows (coordinator review, status, broadcasts, admin): see handlers/flow.py
        self.routes: Routes = build_routes(self)
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def register_fetcher(self, platform: str, fetcher: FileFetcher) -> None:
        self.fetchers[platform] = fetcher

    def today(self) -> date:
        return self.clock().astimezone(self.config.timezone).date()

    # --- entry point ---------------------------------------------------------------------

    async def handle(self, event: Incoming) -> list[Outgoing]:
        key = (str(event.user.platform), event.user.user_id)
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock, self.sessions() as session:
            out = await self._handle(session, event)
            await session.commit()
            return out

    async def handle_in(self, session: AsyncSession, event: Incoming) -> list[Outgoing]:
        """Run one event inside the caller's transaction; the caller commits (the intake
        commits the effects together with the outbox rows and the inbox done-mark)."""
        return await self._handle(session, event)

    async def _handle(self, session: AsyncSession, event: Incoming) -> list[Outgoing]:
        platform = str(event.user.platform)
        sender = await repo.load_sender(session, platform, event.user.user_id)
        if sender is None:
            account = await self._bootstrap_admin(session, event)
            if account is None:
                if event.kind == EventKind.COMMAND and (
                    link_flow.wants_link(event) or (event.command == "start" and event.args.strip())
                ):
                    return await link_flow.unregistered(self, session, event)
                if event.kind == EventKind.COMMAND and event.command == "start":
                    return [OutText(texts.WELCOME_UNKNOWN)]
                return [OutText(texts.NOT_REGISTERED)]
            person = await session.get(Person, account.person_id)
            state = await repo.person_state(session, account)
            linked = True
        else:
            account, person, state, linked = sender
            if person.removed_at is not None or account.deactivated_at is not None:
                return [OutText(ACCESS_CLOSED)]  # nothing else happens, nothing written
            if linked:  # the person uses another messenger too: continue where they last were
                state = await repo.person_state(session, account, state)
        if account.chat_id != event.user.chat_id:
            account.chat_id = event.user.chat_id
        if account.unreachable_since is not None:
            account.unreachable_since = None
        link_flow.touch(account, self.clock(), linked)
        turn = Turn(session, event, account, person, state)
        await self._dispatch(turn)
        return turn.out

    async def _dispatch(self, turn: Turn) -> None:
        event = turn.event
        if event.kind in (EventKind.DOCUMENT, EventKind.PHOTO):
            on_file = self.routes.file_modes.get(turn.state.mode)
            if on_file is not None:
                await on_file(turn)
                return
        if event.kind == EventKind.COMMAND:
            await self._command(turn, event.command or "", event.args)
        elif event.kind == EventKind.BUTTON:
            await self._button(turn, cb.decode(event.payload))
        elif event.kind in (EventKind.DOCUMENT, EventKind.PHOTO):
            if turn.state.mode == deadlines_chat.MODE:
                await deadlines_chat.file(self, turn)
            else:
                await self._file(turn)
        else:
            await self._text(turn, event.text)

    # --- registration --------------------------------------------------------------------

    async def _bootstrap_admin(self, session: AsyncSession, event: Incoming) -> Account | None:
        if (str(event.user.platform), event.user.user_id) not in self.config.admins:
            return None
        person = Person(role=Role.ADMIN, full_name=event.user.display_name)
        session.add(person)
        await session.flush()
        account = await _account_for(session, person, event)
        await repo.audit(session, "bootstrap_admin", "person", person.id, person.id)
        return account

    async def _register(self, session: AsyncSession, event: Incoming) -> list[Outgoing]:
        code = repo.normalize_code(event.args)
        invite = await repo.find_invite(session, code)
        if invite is None:
            return [OutText(texts.CODE_NOT_FOUND.format(code=render.shorten(event.args, 40)))]
        if invite.revoked_at is not None:
            return [OutText(texts.CODE_REVOKED)]
        if invite.used_at is not None:
            return [OutText(texts.CODE_USED)]
        person = Person(
            role=invite.role,
            full_name=event.user.display_name,
            region_id=invite.region_id,
            municipality_id=invite.municipality_id,
            school_id=invite.school_id,
        )
        if invite.school_id is not None:
            school = await session.get(School, invite.school_id)
            person.municipality_id = school.municipality_id
        session.add(person)
        await session.flush()
        account = await _account_for(session, person, event)
        invite.used_at = utcnow()
        invite.used_by_account_id = account.id
        await repo.audit(session, "register", "invite", invite.id, person.id, code=invite.code)
        state = await repo.get_state(session, account.id)
        turn = Turn(session, event, account, person, state)
        await self._offer_campaigns(
            turn, prefix=await self._registered_text(session, person, invite)
        )
        return turn.out

    async def _registered_text(self, session: AsyncSession, person: Person, invite: Invite) -> str:
        if person.role == Role.DIRECTOR:
            school = await session.get(School, person.school_id)
            municipality = await session.get(Municipality, school.municipality_id)
            return texts.REGISTERED_DIRECTOR.format(
                school=school.name, municipality=municipality.name
            )
        if person.role == Role.MUNICIPAL:
            municipality = await session.get(Municipality, person.municipality_id)
            return texts.REGISTERED_MUNICIPAL.format(municipality=municipality.name)
        if person.role == Role.REGIONAL:
            region = await session.get(Region, person.region_id) if person.region_id else None
            return texts.REGISTERED_REGIONAL.format(region=region.name if region else "")
        return texts.REGISTERED_ADMIN

    async def _scope_text(self, session: AsyncSession, person: Person) -> str:
        if person.role == Role.DIRECTOR and person.school_id:
            school = await session.get(School, person.school_id)
            municipality = await session.get(Municipality, school.municipality_id)
            return f"школа «{school.name}», {municipality.name}"
        if person.role == Role.MUNICIPAL and person.municipality_id:
            municipality = await session.get(Municipality, person.municipality_id)
            return f"муниципальный координатор, {municipality.name}"
        if person.role == Role.REGIONAL:
            return "региональный координатор"
        return "администратор"

    # --- commands ------------------------------------------------------------------------

    async def _command(self, turn: Turn, command: str, args: str) -> None:
        routed = self.routes.commands.get(command)
        if routed is not None:
            await routed(turn, args)
            return
        if command == "start":
            scope = await self._scope_text(turn.session, turn.person)
            if await link_flow.is_link_code(turn.session, args):
                await link_flow.command(self, turn, args)
                return
            if args.strip():
                turn.say(
                    texts.ALREADY_REGISTERED.format(scope=scope),
                    [[Button(texts.BTN_RESUME, cb.encode(cb.Action.START))]],
                )
                return
            await self._offer_campaigns(
                turn, prefix=texts.GREETING.format(scope=scope[:1].upper() + scope[1:])
            )
        elif command in ("resume", "continue"):
            await self._resume(turn)
        elif command == "review":
            walk = await self._current_walk(turn)
            if walk is None:
                await self._resume(turn)
            else:
                await self._show_review(turn, walk)
        elif command == "help":
            help_text = texts.HELP_COMMON
            if turn.person.role != Role.DIRECTOR:
                help_text += texts.HELP_COORDINATOR
            if turn.person.role == Role.ADMIN:
                help_text += HELP_ADMIN
            turn.say(help_text)
        elif command == "deadlines":
            await deadlines_chat.command(self, turn, args)
        elif command == "export":
            await self.exports.command(turn, args)
        elif command == "link":
            await link_flow.command(self, turn, args)
        elif not _COMMAND_WORD.fullmatch(command):
            await self._slash_text(turn, turn.event.text)
        else:
            turn.say(texts.UNKNOWN_COMMAND)

    async def _slash_text(self, turn: Turn, text: str) -> None:
        """A text starting with «/» that is no command word: a path, a fraction, a date."""
        walk = await self._current_walk(turn) if turn.state.response_id else None
        slot = self._state_slot(turn)
        if walk is not None and slot is not None and not walk.locked:
            question = walk.engine.question(slot.question_id)
            wants_file = turn.state.mode == Mode.DOCUMENTS or (
                turn.state.mode == Mode.QUESTION
                and (
                    question.kind == QuestionKind.DOCUMENT
                    or (question.kind == QuestionKind.YES_NO and question.document_when_yes)
                )
            )
            if wants_file:
                turn.say(texts.PATH_NOT_FILE.format(path=render.shorten(text, 60)))
                return
        await self._text(turn, text)

    # --- campaigns -----------------------------------------------------------------------

    def _respondent_keys(self, person: Person) -> list[str]:
        keys = []
        for respondent in ("school", "municipality"):
            key = repo.respondent_key_for(person, respondent)
            if key:
                keys.append(key)
        return keys

    async def _campaigns(self, turn: Turn) -> list[Campaign]:
        return await repo.open_campaigns_for(
            turn.session, self._respondent_keys(turn.person), self.today()
        )

    async def _offer_campaigns(self, turn: Turn, prefix: str = "") -> None:
        lines = [prefix] if prefix else []
        campaigns = await self._campaigns(turn)
        if not campaigns:
            lines.append(
                texts.NO_CAMPAIGNS if self._respondent_keys(turn.person) else texts.HELP_COMMON
            )
            turn.say("\n\n".join(lines))
            return
        lines.extend(self._campaign_line(campaign) for campaign in campaigns)
        if len(campaigns) == 1:
            turn.say(
                "\n\n".join(lines),
                [[Button(texts.BTN_START, cb.encode(cb.Action.CAMPAIGN, campaigns[0].id))]],
            )
        else:
            turn.say("\n\n".join(lines))
            await self._choose_campaign(turn, campaigns)

    def _campaign_line(self, campaign: Campaign) -> str:
        template = texts.CAMPAIGN_LATE if campaign.deadline < self.today() else texts.CAMPAIGN_OPEN
        return template.format(
            number=campaign.id,
            title=campaign.title,
            opens=texts.human_date(campaign.opens_on),
            deadline=texts.human_date(campaign.deadline),
        )

    async def _choose_campaign(self, turn: Turn, campaigns: list[Campaign]) -> None:
        turn.state.mode = Mode.CHOOSE
        turn.say(
            texts.CHOOSE_CAMPAIGN,
            [[Button(_campaign_label(c), cb.encode(cb.Action.CAMPAIGN, c.id))] for c in campaigns],
        )

    async def _resume(self, turn: Turn) -> None:
        walk = await self._current_walk(turn)
        if walk is not None and not walk.locked:
            await self._render_current(turn, walk, with_question=True)
            return
        campaigns = await self._campaigns(turn)
        if not campaigns:
            turn.say(
                texts.NO_CAMPAIGNS
                if self._respondent_keys(turn.person)
                else texts.NO_FORMS_FOR_ROLE
            )
            return
        if len(campaigns) > 1:
            await self._choose_campaign(turn, campaigns)
            return
        await self._open_campaign(turn, campaigns[0])

    async def _open_campaign(
        self, turn: Turn, campaign: Campaign, start_from: str | None = None
    ) -> None:
        engine = self.forms.engine(campaign.form_id, campaign.form_version)
        key = repo.respondent_key_for(turn.person, engine.form.respondent)
        allowed = {c.id for c in await self._campaigns(turn)}
        if key is None or campaign.id not in allowed:
            turn.say(texts.NOT_YOUR_RESPONSE)
            return
        first_time = await repo.find_response(turn.session, campaign.id, key) is None
        chosen = start_from in (prefill_flow.PREVIOUS, prefill_flow.FRESH)
        if (
            first_time
            and not chosen
            and await prefill_flow.offer(turn, campaign, key, self.config.timezone)
        ):
            return
        response = await repo.get_or_create_response(turn.session, campaign, key)
        prefilled = None
        if first_time and start_from == prefill_flow.PREVIOUS:
            prefilled = await prefill_flow.apply(turn, campaign, response, key, engine)
        walk = await self._load_walk(turn.session, response, campaign)
        turn.state.response_id = response.id
        turn.state.data = {}
        if walk.locked:
            turn.state.mode = Mode.IDLE
            turn.say(self._submitted_text(walk))
            await self._show_review(turn, walk)
            return
        if prefilled:
            await self._show_review(turn, walk, prefix=prefilled)
            return
        slot = walk.engine.first_incomplete(walk.answers, walk.flags)
        if slot is None:
            await self._show_review(turn, walk, prefix=texts.FORM_DONE)
            return
        intro = self._campaign_line(campaign)
        if first_time and engine.form.description:
            # the form's own instructions (a document for «да», a note for «нет»), once
            intro += "\n\n" + engine.form.description
        turn.say(intro)
        await self._go_to(turn, walk, slot)

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

    async def _button(self, turn: Turn, payload: cb.Payload | None) -> None:
        if payload is None:
            await self._resume(turn)
            return
        routed = self.routes.actions.get(payload.action)
        if routed is not None:
            await routed(turn, payload)
            return
        if payload.action == export_chat.ACTION:
            await self.exports.button(turn, payload)
            return
        if payload.action == deadlines_chat.ACTION:
            await deadlines_chat.button(self, turn, payload)
            return
        if payload.action == link_flow.ACTION:
            await link_flow.button(self, turn, payload)
            return
        if payload.action == cb.Action.START:
            await self._resume(turn)
            return
        if payload.action == cb.Action.CAMPAIGN:
            campaign_id = payload.int_arg(0)
            campaign = await turn.session.get(Campaign, campaign_id) if campaign_id else None
            if campaign is None:
                turn.say(texts.NOT_YOUR_RESPONSE)
                return
            if campaign.closed_at is not None:
                turn.say(self._closed_text(campaign))
                return
            await self._open_campaign(turn, campaign, payload.str_arg(1))
            return
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
        if action == cb.Action.ANSWER:
            slot = Slot(payload.str_arg(1) or "", payload.int_arg(2) or 0)
            if turn.state.mode != Mode.QUESTION or slot != self._state_slot(turn):
                turn.say(texts.STALE_BUTTON)
                await self._render_current(turn, walk)
                return
            await self._answer_text(turn, walk, slot, self._button_text(walk, slot, payload))
        elif action == cb.Action.BACK:
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

    async def _text(self, turn: Turn, text: str) -> None:
        mode = turn.state.mode
        routed = self.routes.text_modes.get(mode)
        if routed is not None:
            await routed(turn, text)
            return
        if mode == deadlines_chat.MODE:
            await deadlines_chat.text(self, turn, text)
            return
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
        turn.state.mode = Mode.QUESTION
        turn.state.response_id = walk.response.id
        turn.state.question_id = slot.question_id
        turn.state.row = slot.row
        await self._render_question(turn, walk, slot, prefix=prefix)

    async def _advance(self, turn: Turn, walk: Walk, after: Slot, prefix: str = "") -> None:
        engine = walk.engine
        kind = turn.state.data.get("walk")
        if kind in (WalkKind.GAPS, WalkKind.CONFLICTS):
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


def _campaign_label(campaign: Campaign) -> str:
    label = texts.CAMPAIGN_BUTTON.format(
        number=campaign.id,
        period=texts.short_period(campaign.opens_on, campaign.deadline),
        title=campaign.title,
    )
    return render.shorten(label, 80)


async def _account_for(session: AsyncSession, person: Person, event: Incoming) -> Account:
    user = event.user
    return await repo.create_account(
        session, person, str(user.platform), user.user_id, user.chat_id, user.display_name
    )
