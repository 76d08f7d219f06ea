"""The conversation's own commands: /start, /resume, /review, /help and the side flows'
words (/deadlines, /export, /link); a «/» text that is no command word is typed text.

Mixed into :class:`handlers.conversation.Conversation`; the flows' commands
(handlers/flows.py) are looked up before this table.
"""

from __future__ import annotations

import re

from forms.schema import QuestionKind
from handlers import callbacks as cb
from handlers import deadlines_chat, link_flow, render, texts
from handlers.admin_texts import HELP_ADMIN
from handlers.types import Button
from handlers.walk_state import Mode, Turn
from storage.models import Role

# Telegram's command words; «/home/user/file.pdf» or «/2.5» is text typed with a slash
_COMMAND_WORD = re.compile(r"[a-z0-9_]{1,32}")


class CommandTable:
    async def _builtin_command(self, turn: Turn, command: str, args: str) -> None:
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
