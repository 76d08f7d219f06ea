"""How a flow plugs into the conversation: the commands, button actions and modes it owns.

The conversation hands an event to the flow that owns its command word, its button action
or the account's current mode (typed text, a file), before its own questionnaire handling.
A flow is built with the core (:class:`handlers.core_context.CoreContext`) and never imports
``handlers.conversation``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from handlers import callbacks as cb
from handlers.walk_state import Turn

CommandHandler = Callable[[Turn, str], Awaitable[None]]  # (turn, the command's arguments)
ButtonHandler = Callable[[Turn, cb.Payload], Awaitable[None]]
TextHandler = Callable[[Turn, str], Awaitable[None]]  # typed text in the flow's mode
FileHandler = Callable[[Turn], Awaitable[None]]  # a document or photo in the flow's mode


@dataclass
class Routes:
    commands: dict[str, CommandHandler] = field(default_factory=dict)
    actions: dict[str, ButtonHandler] = field(default_factory=dict)
    text_modes: dict[str, TextHandler] = field(default_factory=dict)
    file_modes: dict[str, FileHandler] = field(default_factory=dict)

    def add(self, other: Routes) -> None:
        """Merge another flow's routes; two flows may not claim the same word or mode."""
        for mine, theirs in (
            (self.commands, other.commands),
            (self.actions, other.actions),
            (self.text_modes, other.text_modes),
            (self.file_modes, other.file_modes),
        ):
            taken = mine.keys() & theirs.keys()
            if taken:
                raise ValueError(f"routes claimed twice: {sorted(taken)}")
            mine.update(theirs)
