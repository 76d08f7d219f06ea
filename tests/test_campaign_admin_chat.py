"""/campaigns in chat for admins: the list, closing (asked first), moving the deadline and
returning one school's response, through the Telegram harness (real aiogram Dispatcher,
intake and core) on SQLite and PostgreSQL. Bad input is explained and nothing is written;
anybody but an admin, and forged ``cm`` buttons, are refused."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from handlers import campaign_admin_texts as t
from storage.admin import close_campaign, open_campaign
from storage.models import Account, AuditLog, Campaign, ConversationState, Response, ResponseEvent
from tests.pg import settings_on_both_databases
from tests.walk import harness_for, press_payload, registered, walk_to_review

settings = settings_on_both_databases()

ADMIN = 900  # conftest: ADMINS=tg:900


async def submitted(services, harness, region):
    """The director of S1 answers everything and sends the questionnaire."""
    director = await registered(harness, region, "S1", 1001)
    await director.click("▶ Начать заполнение")
    await walk_to_review(services, director)
    await director.click("📨 Отправить анкету")
    await director.click("Да, отправить")
    director.expect("отправлена")
    return director


async def admin_of(harness):
    admin = harness.user(ADMIN, "Ирина")
    await admin.send("/help")  # bootstraps the admin of ADMINS
    return admin


async def written(services) -> tuple:
    """What a campaign action writes: audit rows, campaigns, responses and their steps."""
    async with services.sessions() as session:
        campaigns = (
            await session.execute(
                select(Campaign.id, Campaign.deadline, Campaign.closed_at).order_by(Campaign.id)
            )
        ).all()
        responses = (
            await session.execute(select(Response.id, Response.status).order_by(Response.id))
        ).all()
        return (
            await session.scalar(select(func.count()).select_from(AuditLog)),
            await session.scalar(select(func.count()).select_from(ResponseEvent)),
            tuple(campaigns),
            tuple(responses),
        )


async def campaign(services, campaign_id: int) -> Campaign:
    async with services.sessions() as session:
        return await session.get(Campaign, campaign_id)


async def last_audit(services) -> tuple[str, int | None]:
    """The newest audit row: what was done and by whom."""
    async with services.sessions() as session:
        row = await session.scalar(select(AuditLog).order_by(AuditLog.id.desc()).limit(1))
        return row.action, row.person_id


async def admin_person(services) -> int:
    async with services.sessions() as session:
        return await session.scalar(
            select(Account.person_id).where(Account.platform_user_id == str(ADMIN))
        )


async def mode_of(services, user_id: int) -> str:
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(Account.platform_user_id == str(user_id))
        )
        return (await session.get(ConversationState, account.id)).mode


def day(value) -> str:
    return f"{value:%d.%m.%Y}"


async def test_the_list_shows_every_campaign_and_buttons_for_the_open_ones(services, region):
    harness = harness_for(services)
    await submitted(services, harness, region)
    today = services.conversation.today()
    async with services.sessions() as session:
        old, _ = await open_campaign(
            session,
            services.forms.latest("shnor_school"),
            today + timedelta(days=3),
            today - timedelta(days=30),
            "Пробный мониторинг",
            force=True,
        )
        await session.commit()
        await close_campaign(session, old.id)
        await session.commit()
    admin = await admin_of(harness)
    admin.expect("/campaigns — анкетирования")
    await admin.send("/campaigns")
    listing = admin.expect("📋 Анкетирования: 2")
    first = region.campaign_id
    # the seeded campaign targets all three schools of the region; S1 sent its questionnaire
    assert (
        f"№{first} «Мониторинг 2026» · {day(today)}–{day(today + timedelta(days=14))} · "
        f"открыто · срок {day(today + timedelta(days=14))} · отправили 1 из 3"
    ) in listing
    assert f"№{old.id} «Пробный мониторинг» · " in listing
    assert "закрыто" in listing.split(f"№{old.id} ")[1] and "отправили 0 из 3" in listing
    assert listing.index(f"№{old.id} ") < listing.index(f"№{first} ")  # newest first
    assert admin.buttons() == [
        f"🔒 Закрыть №{first}",
        f"📅 Перенести срок №{first}",
        f"↩️ Вернуть анкету школы №{first}",
    ]  # a closed campaign has none
    assert all(len(p.encode()) <= 64 for p in admin.payloads())


async def test_closing_asks_first_and_then_closes(services, region):
    harness = harness_for(services)
    admin = await admin_of(harness)
    first = region.campaign_id
    await admin.send("/campaigns")
    await admin.click(f"🔒 Закрыть №{first}")
    admin.expect(f"Закрыть анкетирование №{first} «Мониторинг 2026»?")
    before = await written(services)
    await admin.click(t.BTN_CANCEL)
    admin.expect("📋 Анкетирования: 1")
    assert await written(services) == before

    await admin.click(f"🔒 Закрыть №{first}")
    await admin.click(t.BTN_CONFIRM_CLOSE)
    admin.expect(f"✅ Анкетирование №{first} «Мониторинг 2026» закрыто")
    assert (await campaign(services, first)).closed_at is not None
    assert await last_audit(services) == ("close_campaign", await admin_person(services))

    after = await written(services)
    await press_payload(harness, admin, f"cm|C|{first}")  # the old confirmation, again
    admin.expect("уже закрыто")
    await admin.click(t.BTN_LIST)
    listing = admin.expect("📋 Анкетирования: 1")
    assert "закрыто" in listing and admin.buttons() == []
    for stale in (f"cm|d|{first}", f"cm|o|{first}"):  # buttons of the list before the close
        await press_payload(harness, admin, stale)
        admin.expect("уже закрыто")
        assert await mode_of(services, ADMIN) == "idle"
    assert await written(services) == after


async def test_moving_the_deadline_explains_bad_dates_and_writes_nothing_for_them(services, region):
    harness = harness_for(services)
    admin = await admin_of(harness)
    first = region.campaign_id
    today = services.conversation.today()
    old = today + timedelta(days=14)
    await admin.send("/campaigns")
    await admin.click(f"📅 Перенести срок №{first}")
    admin.expect(f"срок сейчас {day(old)}", "ДД.ММ.ГГГГ")
    before = await written(services)
    for wrong in ("в пятницу", "31.02.2027", "2027-05-15", "15.05.27"):
        await admin.send(wrong)
        admin.expect("Не понял дату", "ДД.ММ.ГГГГ")
    yesterday = today - timedelta(days=1)
    await admin.send(day(yesterday))
    admin.expect(f"Дата {day(yesterday)} уже прошла", f"не раньше сегодняшнего дня ({day(today)})")
    await admin.send(day(old))
    admin.expect("менять нечего")  # storage.admin's CampaignError, as is
    assert await written(services) == before
    assert await mode_of(services, ADMIN) == "cm_deadline"  # still waiting for a date

    new = today + timedelta(days=30)
    await admin.send(f" {day(new)} ")
    admin.expect(
        f"✅ Срок анкетирования №{first} «Мониторинг 2026» перенесён: {day(old)} → {day(new)}"
    )
    assert (await campaign(services, first)).deadline == new
    assert await last_audit(services) == ("extend_campaign", await admin_person(services))
    assert await mode_of(services, ADMIN) == "idle"
    after = await written(services)
    await admin.send(day(new + timedelta(days=1)))  # no longer a deadline: the mode was left
    assert await written(services) == after

    await admin.click(t.BTN_LIST)
    await admin.click(f"📅 Перенести срок №{first}")
    await admin.click(t.BTN_CANCEL)
    admin.expect(t.CANCELLED, "📋 Анкетирования: 1")
    await admin.send(day(new + timedelta(days=2)))
    assert await written(services) == after


async def test_returning_a_schools_response_by_its_code(services, region):
    harness = harness_for(services)
    await submitted(services, harness, region)
    admin = await admin_of(harness)
    first = region.campaign_id
    await admin.send("/campaigns")
    await admin.click(f"↩️ Вернуть анкету школы №{first}")
    admin.expect("Код ОО")
    before = await written(services)
    await admin.send("НЕТ-ТАКОЙ")
    admin.expect("Школа с кодом «НЕТ-ТАКОЙ» не найдена", t.TRY_AGAIN)
    await admin.send("S2")
    admin.expect("Анкета школы «МБОУ СОШ № 2» ещё не отправлена", t.TRY_AGAIN)
    assert await written(services) == before

    await admin.send("S1")
    admin.expect(f"✅ Анкета школы «МБОУ СОШ № 1» в анкетировании №{first}", "на доработку")
    async with services.sessions() as session:
        response = await session.scalar(
            select(Response).where(Response.school_id == region.school_ids["S1"])
        )
        steps = list(
            await session.execute(
                select(ResponseEvent.status, ResponseEvent.person_id)
                .where(ResponseEvent.response_id == response.id)
                .order_by(ResponseEvent.id)
            )
        )
    admin_id = await admin_person(services)
    assert response.status == "returned"
    assert [status for status, _ in steps] == ["submitted", "returned"]
    assert steps[-1].person_id == admin_id  # who returned it: the admin
    assert await last_audit(services) == ("reopen_response", admin_id)

    await admin.click(t.BTN_LIST)
    await admin.click(f"↩️ Вернуть анкету школы №{first}")
    after = await written(services)
    await admin.send("S1")
    admin.expect("уже открыта для исправлений", t.TRY_AGAIN)
    assert await written(services) == after


async def test_anybody_but_an_admin_and_forged_buttons_are_refused(services, region):
    harness = harness_for(services)
    director = await submitted(services, harness, region)
    municipal = harness.user(2001, "Ольга")
    await municipal.send(f"/start {region.codes['Северный район']}")
    admin = await admin_of(harness)
    first = region.campaign_id
    before = await written(services)
    for user in (director, municipal):
        await user.send("/campaigns")
        user.expect(t.ADMIN_ONLY)
        for payload in (f"cm|C|{first}", f"cm|d|{first}", f"cm|o|{first}", "cm|l"):
            await press_payload(harness, user, payload)
            user.expect(t.ADMIN_ONLY)
    await director.send("/help")
    assert "/campaigns" not in director.texts()[0]
    assert await written(services) == before

    for payload in ("cm|C|999999", "cm|C|abc", "cm|C|-1", "cm|C", f"cm|zz|{first}", "cm"):
        await press_payload(harness, admin, payload)
        admin.expect(t.STALE)
    assert await written(services) == before
    assert (await campaign(services, first)).closed_at is None
