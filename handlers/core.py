"""The contract between platform adapters and the conversation core."""

from __future__ import annotations

from typing import Protocol

from handlers.types import Incoming, Outgoing


class ConversationCore(Protocol):
    async def handle(self, event: Incoming) -> list[Outgoing]:
        """Process one user event; the returned messages go back to the same chat."""
        ...
