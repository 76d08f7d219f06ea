"""When a reminder goes out: UTC normalisation and the local send window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.config import ReminderSettings


def as_utc(moment: datetime) -> datetime:
    """SQLite returns naive datetimes; everything stored here is UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Window:
    due_at: datetime  # UTC
    send_until: datetime  # UTC


def send_window(day: date, zone: str, settings: ReminderSettings) -> Window:
    """When a delivery for ``day`` (local) goes out, and until when it may still go."""
    tz = ZoneInfo(zone)
    local = datetime.combine(day, settings.send_time, tzinfo=tz)
    quiet_day = day if settings.quiet_start > settings.send_time else day + timedelta(days=1)
    quiet = datetime.combine(quiet_day, settings.quiet_start, tzinfo=tz)
    if settings.quiet_start == settings.quiet_end:
        quiet = local + timedelta(days=1)
    until = min(local + settings.grace, quiet)
    return Window(local.astimezone(UTC), until.astimezone(UTC))
