"""APScheduler wiring: jobs are plain async functions; this only schedules them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from handlers.types import Messenger
from scheduler.downloads import retry_pending_downloads

if TYPE_CHECKING:
    from bot.app import Services


def create_scheduler(services: Services, messengers: Mapping[str, Messenger]) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone=services.settings.app.zone)
    scheduler.add_job(
        retry_pending_downloads,
        "interval",
        minutes=1,
        args=(services.sessions, services.files, services.conversation.fetchers, messengers),
        id="retry_downloads",
        coalesce=True,
        max_instances=1,
        replace_existing=True,
    )
    return scheduler
