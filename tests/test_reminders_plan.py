"""Who gets which reminder when: offsets, time zones, digests, campaigns, escalation."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from bot.config import ReminderSettings
from forms.engine import Slot
from forms.loader import load_bundled
from handlers.registry import FormRegistry
from scheduler.reminders import days_left, send_window
from storage import repo
from storage.models import Campaign, Delivery, DeliveryStatus, Response, ResponseStatus, RoadmapItem
from storage.roadmaps_db import mark_done
from tests.reminder_helpers import (
    KALININGRAD,
    FakeMessenger,
    FixedClock,
    World,
    add_campaign,
    add_roadmap,
    build_world,
    make_reminders,
    roadmap,
    settings,
    sqlite_db,
    utc,
)

KGD_9 = (7, 0)  # 09:00 in Kaliningrad (UTC+2) is 07:00 UTC
MSK_9 = (6, 0)  # 09:00 in Moscow (UTC+3) is 06:00 UTC
DIRECTOR_ONLY = ["director"]
SCHOOL_AND_MUNICIPAL = ["director", "municipal"]


@pytest.fixture
async def world(tmp_path: Path):
    _, engine, sessions = await sqlite_db(tmp_path)
    w = await build_world(sessions, engine)
    yield w
    await engine.dispose()


def at(day: date, hm: tuple[int, int]) -> datetime:
    return utc(day.year, day.month, day.day, *hm)


async def run_days(world: World, days: list[date], hours=(MSK_9, KGD_9, (12, 0)), **kw):
    """Tick at the given UTC hours of each day; returns [(chat, text, when)]."""
    clock = FixedClock(at(days[0], hours[0]))
    messenger = FakeMessenger(clock=clock)
    reminders = make_reminders(world, clock, messenger, **kw)
    for day in days:
        for hm in hours:
            clock.set(at(day, hm))
            await reminders.tick()
    return messenger


def school_key(world: World, name: str) -> str:
    return f"school:{world.schools[name]}"


def daterange(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


async def item_id(world: World, number: str) -> RoadmapItem:
    async with world.sessions() as session:
        return await session.scalar(select(RoadmapItem).where(RoadmapItem.number == number))


# --- offsets and time zones -----------------------------------------------------------------


async def test_offsets_seven_three_one_and_the_day(world: World) -> None:
    await add_roadmap(
        world, roadmap([("1", "Назначить ответственных", "До 15.02.2023", DIRECTOR_ONLY)])
    )
    clock = FixedClock(utc(2023, 2, 1))
    messenger = FakeMessenger(clock=clock)
    reminders = make_reminders(world, clock, messenger)
    for day in daterange(date(2023, 2, 1), date(2023, 2, 20)):
        for hm in (MSK_9, KGD_9, (12, 0), (20, 0)):
            clock.set(at(day, hm))
            await reminders.tick()
    d1 = [when for chat, when in messenger.times if chat == "d1"]
    assert d1 == [at(date(2023, 2, d), KGD_9) for d in (8, 12, 14, 15)]
    texts = messenger.texts("d1")
    assert "через 7 дней" in texts[0] and "через 3 дня" in texts[1]
    assert "Завтра, 15 февраля 2023 г." in texts[2]
    assert "Сегодня, 15 февраля 2023 г." in texts[3]
    assert all("Подтверждение: Справка к п. 1" in t and "/deadlines" in t for t in texts)


async def test_custom_offsets_from_settings(world: World) -> None:
    await add_roadmap(world, roadmap([("1", "Отчёт", "До 15.02.2023", DIRECTOR_ONLY)]))
    messenger = await run_days(
        world, daterange(date(2023, 2, 1), date(2023, 2, 16)), offsets=(14, 2)
    )
    days = sorted({when.date() for chat, when in messenger.times if chat == "d1"})
    assert days == [date(2023, 2, 1), date(2023, 2, 13)]


async def test_kaliningrad_gets_it_at_its_own_nine(world: World) -> None:
    """Kaliningrad is UTC+2, Kalmykia (Moscow time) UTC+3: same 09:00, an hour apart."""
    await add_roadmap(world, roadmap([("1", "Отчёт", "До 15.02.2023", DIRECTOR_ONLY)], region=None))
    clock = FixedClock(utc(2023, 2, 8, 5, 59))
    messenger = FakeMessenger(clock=clock)
    reminders = make_reminders(world, clock, messenger)
    await reminders.tick()
    assert messenger.sent == []  # 08:59 in Moscow

    def directors() -> list[str]:
        return sorted(c for c in messenger.chats() if c.startswith("d"))

    clock.set(utc(2023, 2, 8, 6, 0))
    await reminders.tick()
    assert directors() == ["d5"]  # 09:00 Moscow, 08:00 Kaliningrad
    assert sorted(messenger.chats()) == ["d5", "m3", "r2"]
    clock.set(utc(2023, 2, 8, 6, 59))
    await reminders.tick()
    assert directors() == ["d5"]
    clock.set(utc(2023, 2, 8, 7, 0))
    await reminders.tick()
    assert directors() == ["d1", "d2", "d3", "d4", "d5"]
    async with world.sessions() as session:
        due = {
            d.account_id: d.due_at
            for d in await session.scalars(select(Delivery).where(Delivery.kind == "item"))
        }
    assert due[world.accounts["d1"]].hour == 7 and due[world.accounts["d5"]].hour == 6


def test_send_window_respects_grace_and_quiet_hours() -> None:
    config = settings(grace_minutes=240)
    window = send_window(date(2023, 2, 8), "Europe/Kaliningrad", config)
    assert window.due_at == utc(2023, 2, 8, 7, 0)
    assert window.send_until == utc(2023, 2, 8, 11, 0)  # 13:00 local
    long_grace = settings(grace_minutes=20 * 60)
    window = send_window(date(2023, 2, 8), "Europe/Moscow", long_grace)
    assert window.send_until == utc(2023, 2, 8, 18, 0)  # 21:00 Moscow: never into the night
    with pytest.raises(ValidationError):
        ReminderSettings(_env_file=None, REMINDER_TIME="23:30")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ReminderSettings(_env_file=None, REMINDER_OFFSETS="7,-1")  # type: ignore[call-arg]
    assert ReminderSettings(_env_file=None, REMINDER_OFFSETS="0, 3,7").offsets == (7, 3, 0)  # type: ignore[call-arg]


def test_days_left_wording() -> None:
    assert days_left(3) == "осталось 3 дня"
    assert days_left(1) == "остался 1 день"
    assert days_left(5) == "осталось 5 дней"
    assert days_left(21) == "остался 21 день"
    assert days_left(0) == "сегодня последний день"


# --- who gets what ----------------------------------------------------------------------------


async def test_director_gets_only_own_items_and_done_ones_are_dropped(world: World) -> None:
    await add_roadmap(
        world,
        roadmap(
            [
                ("1", "Школьный пункт", "До 15.02.2023", DIRECTOR_ONLY),
                ("2", "Региональный пункт", "До 15.02.2023", ["regional"]),
                ("3", "Муниципальный пункт", "До 15.02.2023", ["municipal"]),
            ]
        ),
    )
    item = await item_id(world, "1")
    async with world.sessions() as session:
        await mark_done(
            session, item, f"school:{world.schools['Школа 2']}", date(2023, 2, 15), None
        )
        await session.commit()
    messenger = await run_days(world, [date(2023, 2, 8)])
    assert len(messenger.texts("d1")) == 1
    assert "Школьный пункт" in messenger.texts("d1")[0]
    assert "Региональный" not in messenger.texts("d1")[0]
    assert messenger.texts("d2") == []  # its school reported the item already
    assert messenger.texts("d5") == []  # Kalmykia is outside the Kaliningrad roadmap
    assert messenger.texts("r2") == [] and messenger.texts("m3") == []


async def test_coordinator_digest_is_one_message_with_who_has_not_reported(world: World) -> None:
    await add_roadmap(
        world,
        roadmap(
            [
                ("1", "Назначить ответственных", "До 15.02.2023", SCHOOL_AND_MUNICIPAL),
                ("2", "Входной мониторинг", "01.02-15.02.2023", DIRECTOR_ONLY),
                ("3", "Совещание", "До 11.02.2023", ["municipal"]),  # 3 days: also on the 8th
            ]
        ),
    )
    item = await item_id(world, "1")
    async with world.sessions() as session:
        await mark_done(
            session, item, f"school:{world.schools['Школа 1']}", date(2023, 2, 15), None
        )
        await session.commit()
    messenger = await run_days(world, [date(2023, 2, 8)])
    (digest,) = messenger.texts("m1")
    assert "Гурьевский округ" in digest
    assert "п. 1. Назначить ответственных" in digest and "п. 3. Совещание" in digest
    assert "Отметили школы: 1 из 2. Не отметили: Школа 2" in digest
    assert "Отметили школы: 0 из 2. Не отметили: Школа 1, Школа 2" in digest  # item 2
    assert "Ваша отметка о выполнении: ещё нет." in digest
    (regional,) = messenger.texts("r1")
    assert "Отметили муниципалитеты: 0 из 2" in regional
    assert "Школа 3" in regional and "Школа 5" not in regional
    assert len(messenger.texts("d1")) == 1 and "Входной мониторинг" in messenger.texts("d1")[0]


async def test_overdue_goes_one_level_up_the_day_after(world: World) -> None:
    await add_roadmap(
        world,
        roadmap(
            [("1", "Назначить ответственных", "До 15.02.2023", SCHOOL_AND_MUNICIPAL)], region=None
        ),
    )
    item = await item_id(world, "1")
    async with world.sessions() as session:
        await mark_done(
            session, item, f"school:{world.schools['Школа 1']}", date(2023, 2, 15), None
        )
        await mark_done(
            session,
            item,
            f"municipality:{world.municipalities['Зеленоградский округ']}",
            date(2023, 2, 15),
            None,
        )
        await session.commit()
    messenger = await run_days(world, [date(2023, 2, 16), date(2023, 2, 17)])
    (m1,) = messenger.texts("m1")
    assert m1.startswith("⚠️ Просрочено по дорожной карте")
    assert "срок был 15 февраля 2023 г." in m1
    assert "Не отметили выполнение (1): Школа 2" in m1
    (m2,) = messenger.texts("m2")
    assert "Не отметили выполнение (2): Школа 3, Школа 4" in m2
    (r1,) = messenger.texts("r1")
    assert "Не отметили выполнение (1): Гурьевский округ" in r1  # Зеленоградский reported
    assert "Черноземельский" not in r1
    (r2,) = messenger.texts("r2")
    assert "Черноземельский район" in r2
    assert [c for c in messenger.chats() if c.startswith("d")] == []  # directors: nothing
    (m3_at,) = [w for c, w in messenger.times if c == "m3"]
    assert m3_at == at(date(2023, 2, 16), MSK_9)


async def test_overdue_is_skipped_when_everyone_reported(world: World) -> None:
    await add_roadmap(world, roadmap([("1", "Отчёт", "До 15.02.2023", DIRECTOR_ONLY)]))
    item = await item_id(world, "1")
    async with world.sessions() as session:
        for name in ("Школа 1", "Школа 2"):
            await mark_done(session, item, f"school:{world.schools[name]}", date(2023, 2, 15), None)
        await session.commit()
    messenger = await run_days(world, [date(2023, 2, 16)])
    assert messenger.texts("m1") == []
    assert len(messenger.texts("m2")) == 1


async def test_recurring_item_reminds_before_each_due_date(world: World) -> None:
    await add_roadmap(
        world, roadmap([("1", "Мониторинг", "ежегодно май сентябрь ноябрь", DIRECTOR_ONLY)])
    )
    messenger = await run_days(
        world, [date(2023, 5, 24), date(2023, 9, 23), date(2023, 11, 23), date(2023, 11, 24)]
    )
    days = [w.date() for c, w in messenger.times if c == "d1"]
    assert days == [date(2023, 5, 24), date(2023, 9, 23), date(2023, 11, 23)]


# --- campaigns --------------------------------------------------------------------------------


async def test_campaign_reminds_only_those_who_have_not_submitted(world: World) -> None:
    forms = FormRegistry(load_bundled())
    campaign_id = await add_campaign(world, date(2023, 2, 11), ["Школа 1", "Школа 2", "Школа 3"])
    engine = forms.engine("shnor_school", 1)
    async with world.sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        draft = await repo.get_or_create_response(
            session, campaign, f"school:{world.schools['Школа 1']}"
        )
        await session.flush()
        flags = {"shnor": True, "shnsu": False, "risk_zone": False}
        first = engine.slots({}, flags)[0]
        question = engine.question(first.question_id)
        value = True if question.kind == "yes_no" else "1"
        await repo.save_answer(session, draft, Slot(first.question_id, first.row), value, None)
        done = await repo.get_or_create_response(
            session, campaign, f"school:{world.schools['Школа 2']}"
        )
        done.status = ResponseStatus.SUBMITTED
        await session.commit()
        answers = await repo.load_answers(session, draft.id)
    progress = engine.progress(answers, flags)
    total_new = engine.progress({}, flags)[1]

    clock = FixedClock(utc(2023, 2, 8, 7, 0))
    messenger = FakeMessenger(clock=clock)
    reminders = make_reminders(world, clock, messenger, forms=forms)
    await reminders.tick()
    (text_1,) = messenger.texts("d1")
    assert text_1 == (
        f"⏰ Анкета «Мониторинг ШНОР»: осталось 3 дня (срок — 11 февраля 2023 г.), "
        f"заполнено {progress[0]} из {progress[1]}. Пожалуйста, завершите и отправьте её."
    )
    (message,) = [m for c, m in messenger.sent if c == "d1"]
    assert [[b.payload for b in row] for row in message.buttons] == [[f"c|{campaign_id}"]]
    assert message.buttons[0][0].text == "▶ Продолжить заполнение"
    assert messenger.texts("d2") == []  # submitted: nothing
    (text_3,) = messenger.texts("d3")
    assert re.search(rf"заполнено 0 из {total_new}\.", text_3)
    assert messenger.texts("d4") == []  # not a target

    async with world.sessions() as session:  # Школа 1 submits before the next reminder
        response = await session.scalar(
            select(Response).where(Response.respondent_key == f"school:{world.schools['Школа 1']}")
        )
        response.status = ResponseStatus.SUBMITTED
        await session.commit()
    clock.set(utc(2023, 2, 10, 7, 0))
    await reminders.tick()
    assert len(messenger.texts("d1")) == 1
    assert "остался 1 день" in messenger.texts("d3")[-1]
    clock.set(utc(2023, 2, 11, 7, 0))
    await reminders.tick()
    assert "сегодня последний день" in messenger.texts("d3")[-1]

    clock.set(utc(2023, 2, 12, 7, 0))  # the day after: the municipal coordinator is told
    await reminders.tick()
    assert messenger.texts("m1") == []  # Школа 1 and Школа 2 both submitted
    (late,) = messenger.texts("m2")
    assert late.startswith("⚠️ Срок анкеты «Мониторинг ШНОР» прошёл (11 февраля 2023 г.)")
    assert "Не отправили (1):\nШкола 3" in late


async def test_campaign_opened_late_does_not_backfill_missed_rows(world: World) -> None:
    await add_campaign(world, date(2023, 2, 11), ["Школа 1"], created=utc(2023, 2, 9, 12, 0))
    messenger = await run_days(world, daterange(date(2023, 2, 9), date(2023, 2, 11)))
    assert len(messenger.texts("d1")) == 2  # 1 day before and on the day; the 3-day one: no
    async with world.sessions() as session:
        statuses = list(await session.scalars(select(Delivery.status)))
    assert DeliveryStatus.MISSED not in statuses


async def test_roadmap_scoped_by_region_name_in_database(world: World) -> None:
    await add_roadmap(
        world, roadmap([("1", "Отчёт", "До 15.02.2023", DIRECTOR_ONLY)], region=KALININGRAD)
    )
    messenger = await run_days(world, [date(2023, 2, 8)])
    assert sorted(c for c in messenger.chats() if c.startswith("d")) == ["d1", "d2", "d3", "d4"]
