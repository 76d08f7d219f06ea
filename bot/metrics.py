"""Prometheus metrics for ``/metrics`` (webhook mode), in prometheus-client's text format.

Gauges are read from the database at scrape time, one indexed query each, so every worker
reports the same shared queues. The counters (events processed, replies carried in webhook
answers, per platform) live in this process (Prometheus sums them over the workers).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client import generate_latest as _generate
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    Delivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
)

CONTENT_TYPE = CONTENT_TYPE_LATEST
REGISTRY = CollectorRegistry(auto_describe=True)

EVENTS_PROCESSED = Counter(
    "shnor_events_processed",
    "Inbox events this process finished (done), by platform.",
    ["platform"],
    registry=REGISTRY,
)
REPLIES_HANDED = Counter(
    "shnor_replies_handed",
    "Replies this process carried in a webhook's HTTP answer (bot/handover.py), by platform.",
    ["platform"],
    registry=REGISTRY,
)
INBOX_PENDING = Gauge(
    "shnor_inbox_pending", "Inbox events waiting to be processed.", ["platform"], registry=REGISTRY
)
OUTBOX_PENDING = Gauge(
    "shnor_outbox_pending", "Replies recorded and not yet sent.", ["platform"], registry=REGISTRY
)
SEND_FAILED = Gauge(
    "shnor_send_failed",
    "Messages that could not be sent (outbox replies, scheduled deliveries), all time.",
    ["queue"],
    registry=REGISTRY,
)
REMINDER_LAG = Gauge(
    "shnor_reminder_lag_seconds",
    "Age of the oldest pending delivery that is already due (0 when none is late).",
    registry=REGISTRY,
)


def processed(platform: str) -> None:
    EVENTS_PROCESSED.labels(platform=platform).inc()


def handed(platform: str) -> None:
    REPLIES_HANDED.labels(platform=platform).inc()


async def _by_platform(session: AsyncSession, model, status: str) -> dict[str, int]:
    rows = await session.execute(
        select(model.platform, func.count()).where(model.status == status).group_by(model.platform)
    )
    return {platform: int(n) for platform, n in rows.all()}


def _set(gauge: Gauge, counts: dict[str, int], platforms: Iterable[str]) -> None:
    gauge.clear()  # a platform no longer configured and with nothing queued is not shown
    for platform in {*platforms, *counts}:
        gauge.labels(platform=platform).set(counts.get(platform, 0))


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def refresh(session: AsyncSession, platforms: Iterable[str], now: datetime) -> None:
    platforms = list(platforms)
    _set(INBOX_PENDING, await _by_platform(session, InboxEvent, InboxStatus.PENDING), platforms)
    _set(
        OUTBOX_PENDING, await _by_platform(session, OutboxMessage, OutboxStatus.PENDING), platforms
    )
    for queue, model, status in (
        ("outbox", OutboxMessage, OutboxStatus.FAILED),
        ("deliveries", Delivery, DeliveryStatus.FAILED),
    ):
        failed = await session.scalar(
            select(func.count()).select_from(model).where(model.status == status)
        )
        SEND_FAILED.labels(queue=queue).set(int(failed or 0))
    oldest = await session.scalar(
        select(func.min(Delivery.due_at)).where(
            Delivery.status == DeliveryStatus.PENDING, Delivery.due_at <= now
        )
    )
    lag = (_aware(now) - _aware(oldest)).total_seconds() if oldest is not None else 0.0
    REMINDER_LAG.set(max(lag, 0.0))


def generate() -> bytes:
    return _generate(REGISTRY)
