"""Factories: from settings to a ready conversation core and its services."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from bot.config import (
    LOCAL_TELEGRAM_DOWNLOAD_LIMIT,
    PUBLIC_TELEGRAM_DOWNLOAD_LIMIT,
    Settings,
)
from forms.loader import load_bundled
from handlers.conversation import Conversation, CoreConfig
from handlers.registry import FormRegistry
from handlers.types import Platform
from storage.database import create_engine, create_sessionmaker, upgrade
from storage.files import FileStore
from storage.forms_sync import sync_forms


@dataclass
class Services:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    forms: FormRegistry
    files: FileStore
    conversation: Conversation

    async def close(self) -> None:
        await self.engine.dispose()


def core_config(settings: Settings) -> CoreConfig:
    telegram = settings.telegram
    # Only a Bot API server in --local mode serves files over 20 MB; a plain self-hosted
    # server has the same getFile limit as the official one.
    local = bool(telegram.api_url) and telegram.local_files
    limit = LOCAL_TELEGRAM_DOWNLOAD_LIMIT if local else PUBLIC_TELEGRAM_DOWNLOAD_LIMIT
    return CoreConfig(
        admins=tuple((a.platform, a.user_id) for a in settings.app.admins),
        download_limits={str(Platform.TELEGRAM): limit},
        timezone=settings.app.zone,
    )


async def create_services(
    settings: Settings, *, migrate: bool = True, database_url: str | None = None
) -> Services:
    url = database_url or settings.storage.url
    if migrate:
        await upgrade(url)
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    bundled = load_bundled()
    async with sessions() as session:
        await sync_forms(session, list(bundled.values()))
        await session.commit()
    forms = FormRegistry(bundled)
    files = FileStore(settings.storage.files_dir)
    conversation = Conversation(sessions, forms, files, core_config(settings))
    return Services(settings, engine, sessions, forms, files, conversation)
