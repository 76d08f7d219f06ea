"""Shared by the notice, digest and broadcast tests: the real reminder tick with a recording
messenger, and coordinators in the seeded region."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select

from bot.app import Services
from scheduler.reminders import Reminders
from scheduler.sender import Sender
from storage.models import Account, Person, Region, Role
from tests.reminder_helpers import FakeMessenger, JumpClock
from tests.tg_harness import TgHarness


def reminders_for(
    services: Services, clock: Callable[[], datetime] | None = None
) -> tuple[Reminders, FakeMessenger]:
    """The reminder tick of the bot, sending to a FakeMessenger instead of Telegram."""
    clock = clock or services.conversation.clock or (lambda: datetime.now(UTC))
    messenger = FakeMessenger()
    config = services.settings.reminders
    jump = JumpClock()
    sender = Sender(
        {"tg": messenger},
        rate_per_s=config.rate_per_s,
        per_chat_per_s=config.per_chat_per_s,
        sessions=services.sessions,
        clock=jump.clock,
        sleep=jump.sleep,
        now=clock,
    )
    reminders = Reminders(
        services.sessions,
        sender,
        config,
        forms=services.forms,
        default_zone=services.settings.app.timezone,
        clock=clock,
    )
    return reminders, messenger


async def municipal(harness: TgHarness, region, municipality: str = "Северный район", user_id=2001):
    user = harness.user(user_id, "Ольга")
    await user.send(f"/start {region.codes[municipality]}")
    user.expect("муниципальный координатор")
    return user


async def regional(services: Services, harness: TgHarness, user_id: int = 3001, name="Ирина"):
    """A regional coordinator of the seeded region (made directly: their invites are another
    command's job)."""
    async with services.sessions() as session:
        region_id = await session.scalar(select(Region.id))
        person = Person(role=Role.REGIONAL, full_name=name, region_id=region_id)
        session.add(person)
        await session.flush()
        session.add(
            Account(
                person_id=person.id,
                platform="tg",
                platform_user_id=str(user_id),
                chat_id=str(user_id),
                display_name=name,
            )
        )
        await session.commit()
    return harness.user(user_id, name)
