"""What the side flows (deadlines, export) use of the conversation core, as a Protocol, so
they need not import handlers.conversation, which imports them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Protocol

from sqlalchemy.ext.asyncio import async_sessionmaker

from handlers.registry import FormRegistry
from handlers.types import FileFetcher, Messenger
from handlers.walk_state import CoreConfig
from storage.files import FileStore


class CoreContext(Protocol):
    sessions: async_sessionmaker
    forms: FormRegistry
    files: FileStore
    config: CoreConfig
    fetchers: dict[str, FileFetcher]
    messengers: dict[str, Messenger]
    clock: Callable[[], datetime]

    def today(self) -> date: ...
