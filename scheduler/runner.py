"""APScheduler wiring: jobs are plain async functions; this only schedules them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.max.api import RATE_PER_S as MAX_RATE_PER_S
from bot.vk.api import REQUESTS_PER_SECOND as VK_REQUESTS_PER_SECOND
from handlers.types import Messenger
from scheduler.digests import send_digests
from scheduler.downloads import retry_pending_downloads
from scheduler.ratelimit import RedisBucket, TokenRate, redis_client
from scheduler.reminders import Reminders, reminders_tick
from scheduler.sender import Sender
from storage import export_jobs, inbox

if TYPE_CHECKING:
    from bot.app import Services
    from bot.config import Settings

log = logging.getLogger(__name__)


# A platform's own limit per token where it is below SEND_RATE_PER_S' default.
PLATFORM_RATES = {"vk": VK_REQUESTS_PER_SECOND, "max": MAX_RATE_PER_S}


@dataclass
class SharedRates:
    """Each platform token's one send budget in this process (see :class:`TokenRate`)."""

    rates: dict[str, TokenRate]
    client: Any = None  # the Redis client of the buckets

    async def close(self) -> None:
        if self.client is not None:
            close = getattr(self.client, "aclose", None) or self.client.close
            try:
                await close()
            except Exception as exc:
                log.debug("closing redis: %r", exc)


def create_rates(settings: Settings, token_names: Mapping[str, str]) -> SharedRates:
    """One budget per platform token for every request this process sends with it (replies
    and unprompted messages alike): with REDIS_URL a bucket shared by every process on the
    token, else SEND_RATE_PER_S / WORKERS (capped by the platform's own limit)."""
    workers = settings.workers
    rate = settings.reminders.rate_per_s
    client = None
    if workers.redis_url is not None and token_names:
        client = redis_client(workers.redis_url.get_secret_value())
    rates = {}
    for platform, name in token_names.items():
        limit = min(rate, PLATFORM_RATES.get(platform, rate))
        bucket = RedisBucket(client, name, workers=workers.count) if client else None
        rates[platform] = TokenRate(limit, workers=workers.count, bucket=bucket)
    return SharedRates(rates, client)


def create_sender(
    services: Services,
    messengers: Mapping[str, Messenger],
    token_names: Mapping[str, str] | None = None,
    *,
    shared_rates: Mapping[str, TokenRate] | None = None,
) -> Sender:
    """The one rate-limited sender for every unprompted message of this process.

    ``token_names``: platform → a name of its token (a hash, ``bot.runlock.identity``). With
    REDIS_URL those platforms share one send rate across every process on the token;
    otherwise each of the WORKERS processes sends at its share of SEND_RATE_PER_S.
    ``shared_rates``: the budgets (:func:`create_rates`) that the platforms' messengers take
    from themselves."""
    config = services.settings.reminders
    workers = services.settings.workers
    buckets: dict[str, RedisBucket] = {}
    if workers.redis_url is not None and token_names:
        client = redis_client(workers.redis_url.get_secret_value())
        buckets = {
            platform: RedisBucket(client, name, workers=workers.count)
            for platform, name in token_names.items()
            if platform in messengers and platform not in (shared_rates or {})
        }
    return Sender(
        messengers,
        rate_per_s=config.rate_per_s,
        per_chat_per_s=config.per_chat_per_s,
        max_retries=config.max_retries,
        sessions=services.sessions,
        buckets=buckets,
        workers=workers.count,
        shared_rates=shared_rates,
    )


def create_scheduler(
    services: Services, messengers: Mapping[str, Messenger], sender: Sender | None = None
) -> AsyncIOScheduler:
    """Jobs of this process. Pass ``sender`` to share it with other unprompted messages
    (``sender.messengers_view()`` are drop-in rate-limited Messengers)."""
    scheduler = AsyncIOScheduler(timezone=services.settings.app.zone)
    sender = sender or create_sender(services, messengers)
    limited = sender.messengers_view()
    scheduler.add_job(
        retry_pending_downloads,
        "interval",
        minutes=1,
        args=(services.sessions, services.files, services.conversation.fetchers, limited),
        id="retry_downloads",
        coalesce=True,
        max_instances=1,
        replace_existing=True,
    )
    reminders = Reminders(
        services.sessions,
        sender,
        services.settings.reminders,
        forms=services.forms,
        default_zone=services.settings.app.timezone,
    )
    scheduler.add_job(
        reminders_tick,
        "interval",
        minutes=1,
        args=(reminders,),
        id="reminders",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=60,
        next_run_time=datetime.now(UTC),
        replace_existing=True,
    )
    scheduler.add_job(
        send_digests,
        "interval",
        minutes=1,
        args=(services.sessions, services.conversation.clock),
        kwargs={"default_zone": services.settings.app.timezone, "checked": set()},
        id="digests",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=60,
        replace_existing=True,
    )
    scheduler.add_job(
        prune_inbox,
        "interval",
        hours=1,
        args=(services.sessions,),
        id="prune_inbox",
        coalesce=True,
        max_instances=1,
        replace_existing=True,
    )
    return scheduler


async def prune_inbox(sessions: async_sessionmaker) -> int:
    """Forget finished intake events older than the key retention (at least 24 h), and
    finished export jobs older than a week."""
    async with sessions() as session:
        removed = await inbox.prune(session)
        removed += await export_jobs.prune(session, datetime.now(UTC))
        await session.commit()
    return removed
