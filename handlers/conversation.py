"""The platform-neutral conversation: the router of each event to the flow that owns it.

An event goes to the side flow owning its command word, button action or the current mode
(handlers/flows.py), else to the conversation's own flows, mixed in from one module each:
registration (handlers/registration_flow.py), the command table (handlers/commands.py),
campaigns (handlers/campaign_flow.py), the questionnaire walk (handlers/questionnaire_flow.py),
documents (handlers/documents_flow.py), review and submit (handlers/review_flow.py).

Each event runs in one database transaction that commits before the reply is returned,
so every answer the bot acknowledges survives a crash, and a restart resumes exactly there.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from datetime import UTC, date, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import callbacks as cb
from handlers import deadlines_chat, export_chat, link_flow, texts
from handlers.admin_texts import ACCESS_CLOSED
from handlers.campaign_flow import CampaignFlow
from handlers.commands import CommandTable
from handlers.documents_flow import DocumentsFlow
from handlers.export_chat import ExportChat
from handlers.flow import Routes
from handlers.flows import build_routes
from handlers.questionnaire_flow import QuestionnaireFlow
from handlers.registration_flow import RegistrationFlow
from handlers.registry import FormRegistry
from handlers.review_flow import ReviewFlow
from handlers.types import EventKind, FileFetcher, Incoming, Messenger, Outgoing, OutText
from handlers.walk_state import CoreConfig, Turn
from storage import repo
from storage.files import FileStore
from storage.models import Person

__all__ = ["Conversation", "CoreConfig"]


class Conversation(
    RegistrationFlow, CommandTable, CampaignFlow, QuestionnaireFlow, DocumentsFlow, ReviewFlow
):
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

    # --- commands ------------------------------------------------------------------------

    async def _command(self, turn: Turn, command: str, args: str) -> None:
        routed = self.routes.commands.get(command)
        if routed is not None:
            await routed(turn, args)
            return
        await self._builtin_command(turn, command, args)  # handlers/commands.py

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
            await self._campaign_button(turn, payload)
            return
        await self._walk_button(turn, payload)  # handlers/questionnaire_flow.py

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
        await self._walk_text(turn, text)  # handlers/questionnaire_flow.py
