"""The whole coordinator loop, run on Telegram, VK and MAX and on SQLite and PostgreSQL: a
director and a municipal coordinator on two accounts of one platform. Submission → the
reminder tick tells the coordinator → /check re-sends the documents → two answers returned →
the tick tells the director → exactly those two fixed → resubmitted → the tick tells the
coordinator what changed → accepted. Every message a user reads comes back from the
platform's recording session or fake server."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from PIL import Image, ImageStat
from sqlalchemy import select

import tests.walk
from exports.data import ExportScope
from exports.service import run_export
from exports.status_chart import WIDTH_PX, chart_height
from handlers import coordinator_texts as t
from handlers import revision_texts
from handlers import submission_notices as sn
from scheduler.reminders import Reminders
from scheduler.sender import Sender
from storage.models import Account, ResponseEvent, ResponseStatus
from tests.conformance_chats import ChatUser, Platform, open_platform
from tests.pg import settings_on_both_databases
from tests.reminder_helpers import JumpClock
from tests.test_export_workbook import by_id
from tests.walk import PDF, response_of, walk_to_review

settings = settings_on_both_databases()

COMMENT_2 = "Проверьте число: в приказе указано 7 педагогов."
COMMENT_9 = "Приложите приказ об участии, а не программу мероприятия."
PAGE_1_DOCS = ["pd_events.pdf", "curator_assigned.pdf"]  # answers 9 and 10 of S1


@pytest.fixture(params=["tg", "vk", "max"])
async def platform(request, services) -> AsyncIterator[Platform]:
    async with open_platform(request.param, services) as opened:
        yield opened


def tick_on(services, platform: Platform) -> Reminders:
    """The bot's reminder tick, sending through the platform's real channel."""
    config = services.settings.reminders
    jump = JumpClock()
    sender = Sender(
        {platform.name: platform.messenger},
        rate_per_s=config.rate_per_s,
        per_chat_per_s=config.per_chat_per_s,
        sessions=services.sessions,
        clock=jump.clock,
        sleep=jump.sleep,
    )
    return Reminders(
        services.sessions,
        sender,
        config,
        forms=services.forms,
        default_zone=services.settings.app.timezone,
    )


async def person_of(services, platform: str, user_id: int) -> int:
    async with services.sessions() as session:
        return await session.scalar(
            select(Account.person_id).where(
                Account.platform == platform, Account.platform_user_id == str(user_id)
            )
        )


async def events_of(services, response_id: int) -> list[ResponseEvent]:
    async with services.sessions() as session:
        rows = await session.scalars(
            select(ResponseEvent)
            .where(ResponseEvent.response_id == response_id)
            .order_by(ResponseEvent.id)
        )
        return list(rows)


async def play(platform: Platform, services, region) -> tuple[int, ChatUser, ChatUser]:
    """The story up to the acceptance; returns the response id, the director, the
    coordinator."""
    tick = tick_on(services, platform)
    coordinator = platform.user(1002, "Ольга")
    await coordinator.register(region.codes["Северный район"])
    coordinator.expect("муниципальный координатор")
    director = platform.user(1001, "Анна")
    await director.register(region.codes["S1"])
    director.expect("зарегистрированы")
    await director.click("▶ Начать заполнение")
    uploaded: dict[str, bytes] = {}

    async def attach(data: bytes, name: str) -> None:
        uploaded[name] = data + f"% {name}\n".encode()  # each document its own bytes
        await director.attach(uploaded[name], name)

    await walk_to_review(services, director.user, platform=platform.name, attach=attach)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("отправлена")
    rid = (await response_of(services, region.school_ids["S1"])).id

    # the tick tells the coordinator, on this platform
    coordinator.watch()
    await tick.tick()
    coordinator.expect("МБОУ СОШ № 1 (Северный район) отправила анкету «Мониторинг 2026»")
    assert sn.BTN_OPEN in coordinator.buttons()

    await coordinator.send("/check")
    coordinator.expect("Анкеты на проверке: 1")
    await coordinator.click("1. МБОУ СОШ № 1")
    coordinator.expect("МБОУ СОШ № 1", "Страница 1 из 2", "2. ")
    sent = coordinator.files()
    assert [name for name, _ in sent] == PAGE_1_DOCS
    for name, content in sent:
        assert content == uploaded[name] and content.startswith(PDF)  # what the director sent

    await coordinator.click(t.BTN_RETURN.format(number=2))
    coordinator.expect("Напишите комментарий")
    await coordinator.send(COMMENT_2)
    coordinator.expect(t.RETURNED_ONE.format(number=2))
    await coordinator.click(t.BTN_RETURN.format(number=9))
    await coordinator.send(COMMENT_9)
    coordinator.expect(t.RETURNED_ONE.format(number=9))
    await coordinator.click(t.BTN_RETURN_ALL)
    coordinator.expect("возвращена на доработку: ответы 2, 9")

    # the tick tells the director, with the button to fix the answers
    director.watch()
    await tick.tick()
    director.expect("вернул анкету", COMMENT_2, COMMENT_9)
    await director.click(t.BTN_FIX)
    director.expect("№2, №9", COMMENT_2)
    await director.send("7")
    director.expect("✅ Сохранено", COMMENT_9)
    await director.click("Нет")
    await director.send(tests.walk.NOTE)
    director.expect(revision_texts.WALK_DONE)

    # the other answers stay locked: typed or forged, nothing changes
    await director.send("1")
    director.expect(revision_texts.NOT_RETURNED)
    await director.forge(f"e|{rid}|teachers_total|0")
    director.expect(revision_texts.NOT_RETURNED)

    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("снова отправлена координатору", "исправлено ответов: 2")

    coordinator.watch()
    await tick.tick()
    notice = coordinator.expect("исправила и снова отправила")
    assert "№2 " in notice and "5 → 7" in notice
    assert "№9 " in notice and "Да → Нет" in notice
    await coordinator.click(sn.BTN_OPEN)
    coordinator.expect("Статус: исправлена и отправлена снова")
    await coordinator.click(t.BTN_ACCEPT_ALL)
    coordinator.expect(t.ACCEPTED_ALL.format(school="МБОУ СОШ № 1"))
    director.watch()
    await tick.tick()
    director.expect("Координатор принял анкету")
    return rid, director, coordinator


async def test_the_whole_review_loop(platform: Platform, services, region):
    rid, _director, _coordinator = await play(platform, services, region)
    director_id = await person_of(services, platform.name, 1001)
    coordinator_id = await person_of(services, platform.name, 1002)
    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.ACCEPTED
    events = await events_of(services, rid)
    assert [(e.status, e.person_id) for e in events] == [
        (ResponseStatus.SUBMITTED, director_id),
        (ResponseStatus.RETURNED, coordinator_id),
        (ResponseStatus.RESUBMITTED, director_id),
        (ResponseStatus.ACCEPTED, coordinator_id),
    ]
    moments = [e.at.replace(tzinfo=e.at.tzinfo or UTC) for e in events]
    assert moments == sorted(moments) and moments[-1] <= datetime.now(UTC)


async def test_after_the_loop_status_sends_a_chart_and_the_export_shows_the_story(
    services, region, tmp_path
):
    async with open_platform("tg", services) as platform:
        _rid, _director, coordinator = await play(platform, services, region)
        await coordinator.send("/status")
        coordinator.expect("Ход заполнения", "• принято: 1")
        ((name, content),) = coordinator.files()
    assert name.endswith(".png")
    image = Image.open(io.BytesIO(content))
    assert image.format == "PNG" and image.size == (WIDTH_PX, chart_height(1))
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 10, "the chart is blank"

    out = tmp_path / "export.xlsx"
    await run_export(
        services.sessions,
        services.forms,
        ExportScope(),
        out,
        timezone=ZoneInfo("Europe/Moscow"),
        files=services.files,
        writer_process=False,
    )
    wb = load_workbook(out)
    _, rows = by_id(wb["Показатели"])
    s1 = {r["school_code"]: r for r in rows}["S1"]
    # pd_events was changed to «нет» on return; the others stayed «да» and were all accepted
    for indicator, declared_confirmed in {
        "pd_events": (0, 0),
        "failure_prevention": (1, 1),
        "iup": (1, 1),
    }.items():
        assert (s1[indicator], s1[f"{indicator}__confirmed"]) == declared_confirmed, indicator
    _, log = by_id(wb["Журнал изменений"])
    story = [
        (r["person"], r["question"], r["old"], r["new"], r["action"])
        for r in log
        if r["school"] == "МБОУ СОШ № 1"
    ]
    diag = "1.2.3 «Диагностика предметных дефицитов»"
    pd = "1.2.4 «Участие в мероприятиях по профмастерству»"
    steps = [(who, old, new) for who, _q, old, new, action in story if action == "статус анкеты"]
    assert steps == [
        ("Анна", "черновик", "отправлена"),
        ("Ольга", "отправлена", "возвращена: Вернуть на доработку ответы 2, 9"),
        ("Анна", "возвращена", "исправлена и отправлена"),
        ("Ольга", "исправлена и отправлена", "принята"),
    ]
    returned = story.index(("Ольга", None, "отправлена", steps[1][2], "статус анкеты"))
    resubmitted = story.index(("Анна", None, "возвращена", steps[2][2], "статус анкеты"))
    between = story[returned + 1 : resubmitted]
    assert ("Анна", diag, 5, 7, "ответ изменён") in between
    assert ("Анна", pd, "да", "нет", "ответ изменён") in between
    assert ("Анна", pd, "pd_events.pdf", None, "документ удалён") in between
    assert {q for _, q, _, _, _ in between} == {diag, pd}  # nothing else was touched
    verdicts = [(q, new) for who, q, _old, new, action in story if action == "решение координатора"]
    assert verdicts[:2] == [(diag, f"возвращён: {COMMENT_2}"), (pd, f"возвращён: {COMMENT_9}")]
    assert [new for _, new in verdicts[2:]] == ["принят"] * 17
