"""Coordinators hear of submissions: a notice each time, or one digest at 09:00 their local
time listing the day's submissions and resubmissions with «отправили X из Y», exactly once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from scheduler.digests import send_digests
from scheduler.runner import create_scheduler
from storage import review
from storage.models import (
    Campaign,
    Delivery,
    DeliveryKind,
    Municipality,
    Person,
    ResponseStatus,
)
from storage.repo import get_or_create_response
from tests.conftest import seed_region
from tests.notice_helpers import municipal, regional, reminders_for
from tests.pg import settings_on_both_databases
from tests.reminder_helpers import FakeMessenger, FixedClock, utc
from tests.walk import harness_for, registered, response_of, walk_to_review

settings = settings_on_both_databases()

SUBMIT_AT = utc(2026, 3, 2, 10, 0)  # 13:00 in Moscow
NOTICE = "🔔 МБОУ СОШ № 1 (Северный район) отправила анкету «Мониторинг 2026»."
S1_LINE = "• 02.03 13:00 — МБОУ СОШ № 1 (Северный район), «Мониторинг 2026»"


@pytest.fixture
def clock(services) -> FixedClock:
    clock = FixedClock(SUBMIT_AT)
    services.conversation.clock = clock
    return clock


@pytest.fixture
async def region(services, clock):
    return await seed_region(services)


async def submit(services, harness, region) -> None:
    """МБОУ СОШ № 1's director answers everything and sends the questionnaire."""
    director = await registered(harness, region)
    await director.click("▶ Начать заполнение")
    await walk_to_review(services, director)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("Спасибо! Анкета «Мониторинг 2026» отправлена")
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED


async def south_sends_twice(services, region, at: datetime) -> None:
    """ООШ с. Южное submits, gets it back and sends it again (the storage steps the review
    flow takes)."""
    async with services.sessions() as session:
        campaign = await session.get(Campaign, region.campaign_id)
        response = await get_or_create_response(
            session, campaign, f"school:{region.school_ids['U1']}"
        )
        await session.flush()
        for status in (
            ResponseStatus.SUBMITTED,
            ResponseStatus.RETURNED,
            ResponseStatus.RESUBMITTED,
        ):
            await review.move(session, response, status, None, at)
        await session.commit()


async def digests(services, clock: FixedClock, at: datetime, checked=None) -> int:
    clock.set(at)
    return await send_digests(services.sessions, clock, checked=checked)


async def test_a_coordinator_who_wants_each_is_told_at_once(services, region, clock):
    harness = harness_for(services)
    await municipal(harness, region)  # municipal: each submission by default
    await regional(services, harness)  # regional: the daily digest by default
    await submit(services, harness, region)
    ticker, messenger = reminders_for(services, clock)
    await ticker.tick()
    assert messenger.texts("2001") == [NOTICE]
    assert messenger.sent[0][1].buttons[0][0].text == "Открыть анкету"
    assert messenger.texts("3001") == []
    await ticker.tick()
    assert messenger.texts("2001") == [NOTICE]  # once
    # the regional digest of today was cut off at 09:00, before the submission
    assert await digests(services, clock, SUBMIT_AT) == 0


async def test_a_digest_coordinator_gets_one_digest_at_nine_local(services, region, clock):
    harness = harness_for(services)
    coordinator = await municipal(harness, region)
    await coordinator.send("/notify")
    await coordinator.click("Раз в день, в 09:00")
    await regional(services, harness)
    await submit(services, harness, region)
    await south_sends_twice(services, region, utc(2026, 3, 2, 12, 30))
    ticker, messenger = reminders_for(services, clock)
    await ticker.tick()
    assert messenger.sent == []  # nothing at once

    checked: set[str] = set()
    assert await digests(services, clock, utc(2026, 3, 3, 5, 59), checked) == 0  # 08:59
    await ticker.tick()
    assert messenger.sent == []
    assert await digests(services, clock, utc(2026, 3, 3, 6, 0), checked) == 2  # 09:00
    await ticker.tick()
    [municipal_digest] = messenger.texts("2001")
    assert municipal_digest.splitlines() == [
        "📋 Сводка за сутки: отправленные анкеты",
        "",
        S1_LINE,
        "",
        "Всего по открытым анкетам:",
        "• «Мониторинг 2026»: отправили 1 из 2",
        "",
        "Настроить уведомления: /notify",
    ]
    [regional_digest] = messenger.texts("3001")
    assert regional_digest.splitlines()[2:6] == [
        S1_LINE,
        "• 02.03 15:30 — МБОУ ООШ с. Южное (Южный район), «Мониторинг 2026»",
        "• 02.03 15:30 — МБОУ ООШ с. Южное (Южный район), «Мониторинг 2026»"
        " — исправлена и отправлена снова",
        "",
    ]
    assert "• «Мониторинг 2026»: отправили 2 из 3" in regional_digest

    # a second tick, a second process (its own memory), the next day with nothing new
    assert await digests(services, clock, utc(2026, 3, 3, 6, 1), checked) == 0
    assert await digests(services, clock, utc(2026, 3, 3, 7, 0)) == 0
    assert await digests(services, clock, utc(2026, 3, 4, 6, 0)) == 0
    await ticker.tick()
    assert len(messenger.sent) == 2
    async with services.sessions() as session:
        keys = list(
            await session.scalars(select(Delivery.key).where(Delivery.kind == DeliveryKind.DIGEST))
        )
    assert sorted(keys) == sorted(
        f"digest:{p}:2026-03-03" for p in await _coordinator_ids(services)
    )


async def test_a_missed_digest_goes_out_later_that_day_but_never_after_nine_pm(
    services, region, clock
):
    async with services.sessions() as session:  # Северный район lives two hours ahead
        north = await session.scalar(
            select(Municipality).where(Municipality.name == "Северный район")
        )
        north.timezone = "Asia/Yekaterinburg"
        await session.commit()
    harness = harness_for(services)
    coordinator = await municipal(harness, region)
    await coordinator.send("/notify")
    await coordinator.click("Раз в день, в 09:00")
    await regional(services, harness)
    await submit(services, harness, region)
    ticker, messenger = reminders_for(services, clock)

    # the bot was down all day: back at 21:30 in Yekaterinburg, 19:30 in Moscow
    assert await digests(services, clock, utc(2026, 3, 3, 16, 30)) == 1
    await ticker.tick()
    assert messenger.texts("2001") == []
    [late] = messenger.texts("3001")
    assert S1_LINE in late
    assert await digests(services, clock, utc(2026, 3, 3, 16, 31)) == 0
    await ticker.tick()
    assert len(messenger.sent) == 1


async def test_coordinators_who_chose_nothing_hear_nothing(services, region, clock):
    harness = harness_for(services)
    coordinator = await municipal(harness, region)
    await coordinator.send("/notify")
    await coordinator.click("Не присылать")
    await submit(services, harness, region)
    ticker, messenger = reminders_for(services, clock)
    await ticker.tick()
    assert await digests(services, clock, utc(2026, 3, 3, 6, 0)) == 0
    await ticker.tick()
    assert messenger.sent == []


async def _coordinator_ids(services) -> list[int]:
    async with services.sessions() as session:
        return list(
            await session.scalars(
                select(Person.id).where(Person.role.in_(["municipal", "regional"]))
            )
        )


async def test_the_digest_job_runs_every_minute_with_the_bot_clock(services, region):
    scheduler = create_scheduler(services, {"tg": FakeMessenger()})
    job = scheduler.get_job("digests")
    assert job.trigger.interval == timedelta(minutes=1)
    assert job.coalesce is True and job.max_instances == 1
    assert job.args == (services.sessions, services.conversation.clock)
    assert await job.func(*job.args, **job.kwargs) == 0  # nobody in digest mode yet
