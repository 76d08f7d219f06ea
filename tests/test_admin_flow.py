"""Admin commands in chat (/people) and closed access, through the Telegram harness (real
aiogram Dispatcher, intake and core) on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from handlers import admin_texts as t
from handlers.callbacks import encode
from scheduler.recipients import recipient_query
from storage.models import Account, AuditLog, ConversationState, Invite, Person, utcnow
from tests.pg import settings_on_both_databases
from tests.walk import PDF, harness_for, press_payload

settings = settings_on_both_databases()
ADMIN, DIRECTOR, MUNICIPAL = 900, 1001, 2001  # conftest: ADMINS=tg:900


async def people(services, region):
    """An admin, the director of S1 («Анна») and the coordinator of «Северный район»."""
    harness = harness_for(services)
    admin = harness.user(ADMIN, "Ирина")
    await admin.send("/help")  # bootstraps the admin of ADMINS
    director = harness.user(DIRECTOR, "Анна")
    await director.send(f"/start {region.codes['S1']}")
    municipal = harness.user(MUNICIPAL, "Борис")
    await municipal.send(f"/start {region.codes['Северный район']}")
    return harness, admin, director, municipal


async def ids(services, user_id: int) -> tuple[int, int]:
    """(person id, account id) of a Telegram user."""
    async with services.sessions() as session:
        account = await session.scalar(
            select(Account).where(Account.platform_user_id == str(user_id))
        )
        return account.person_id, account.id


async def written(services) -> tuple:
    """What an admin action writes: audit rows, invites, removed people, accounts off."""
    async with services.sessions() as session:
        return (
            await session.scalar(select(func.count()).select_from(AuditLog)),
            await session.scalar(select(func.count()).select_from(Invite)),
            await session.scalar(
                select(func.count()).select_from(Person).where(Person.removed_at.is_not(None))
            ),
            await session.scalar(
                select(func.count()).select_from(Account).where(Account.deactivated_at.is_not(None))
            ),
        )


async def test_people_lists_by_municipality_and_opens_a_card(services, region):
    _, admin, director, _ = await people(services, region)
    await admin.send("/help")
    admin.expect("/people — кто где зарегистрирован")
    await director.send("/help")
    assert "/people" not in director.texts()[0]
    await admin.send("/people")
    admin.expect("Кто зарегистрирован: 3 чел.")
    assert admin.buttons() == [
        "Региональный уровень (1)",
        "Северный район (2)",
        "Южный район (0)",
    ]
    await admin.click("Северный район (2)")
    listing = admin.expect("Северный район — 2 чел., стр. 1 из 1")
    assert "Анна — директор, МБОУ СОШ № 1 · Telegram ·" in listing
    assert "Борис — муниципальный координатор, Северный район · Telegram" in listing
    await admin.click("1. Анна")
    person, account = await ids(services, DIRECTOR)
    card = admin.expect(f"№{person} Анна — директор")
    assert "МБОУ СОШ № 1, Северный район" in card and f"Telegram (№{account}," in card
    assert admin.buttons() == [
        t.BTN_REISSUE,
        f"🚫 Отключить Telegram (№{account})",
        t.BTN_REMOVE,
        t.BTN_BACK,
    ]
    await admin.click(t.BTN_BACK)
    await admin.click("🏛 Муниципалитеты")
    await admin.click("Южный район (0)")
    admin.expect("Южный район: пока никто не зарегистрирован.")


async def test_removing_a_person_asks_first_then_closes_their_access(services, region):
    _, admin, director, _ = await people(services, region)
    person, _ = await ids(services, DIRECTOR)
    await admin.send("/people")
    await admin.click("Северный район (2)")
    await admin.click("1. Анна")
    await admin.click(t.BTN_REMOVE)
    admin.expect("Удалить Анна (директор, МБОУ СОШ № 1) из бота?")
    before = await written(services)
    await admin.click(t.BTN_CANCEL)
    admin.expect(f"№{person} Анна")
    assert await written(services) == before

    await admin.click(t.BTN_REMOVE)
    await admin.click(t.BTN_CONFIRM_REMOVE)
    admin.expect("✅ Анна удалён(а) из бота.")
    listing = admin.expect("Северный район — 1 чел.")
    assert "Анна" not in listing
    async with services.sessions() as session:
        audit = await session.scalar(
            select(AuditLog).where(AuditLog.action == "remove_person", AuditLog.entity_id == person)
        )
        assert audit is not None and audit.person_id == (await ids(services, ADMIN))[0]

    await director.send("/start")
    assert director.texts() == [t.ACCESS_CLOSED]
    await press_payload(admin.harness, admin, encode("ad", "R", person))  # a double tap
    admin.expect(f"Человек №{person} уже удалён.")


async def test_an_account_is_switched_off_and_a_code_reissued(services, region):
    harness, admin, director, _ = await people(services, region)
    person, account = await ids(services, DIRECTOR)
    await admin.send("/people")
    await admin.click("Северный район (2)")
    await admin.click("1. Анна")
    await admin.click(f"🚫 Отключить Telegram (№{account})")
    admin.expect(f"Отключить аккаунт Telegram №{account} (Анна)?")
    await admin.click(t.BTN_CONFIRM_DEACTIVATE)
    card = admin.expect(f"✅ Аккаунт Telegram №{account} отключён.")
    assert f"Telegram (№{account}, отключён)" in card
    assert f"🚫 Отключить Telegram (№{account})" not in admin.buttons()

    await director.send("Привет")
    assert director.texts() == [t.ACCESS_CLOSED]

    await admin.click(t.BTN_REISSUE)
    reply = admin.expect("🔑 Для человека", "Новый код:")
    code = reply.split("Новый код: ")[1].split()[0]
    successor = harness.user(3001, "Вера")
    await successor.send(f"/start {code}")
    successor.expect("МБОУ СОШ № 1")
    async with services.sessions() as session:
        new_person = await session.scalar(
            select(Person).join(Account).where(Account.platform_user_id == "3001")
        )
        assert new_person.school_id == region.school_ids["S1"] and new_person.id != person


async def test_people_and_ad_buttons_are_refused_to_non_admins(services, region):
    harness, _, director, municipal = await people(services, region)
    person, account = await ids(services, DIRECTOR)
    before = await written(services)
    await director.send("/people")
    assert director.texts() == [t.ADMIN_ONLY]
    await municipal.send("/people")
    assert municipal.texts() == [t.ADMIN_ONLY]
    for payload in (
        encode("ad", "R", person),
        encode("ad", "A", account),
        encode("ad", "c", person),
        encode("ad", "l", 0),
        encode("ad", "n", 1),  # a code for a new coordinator
    ):
        await press_payload(harness, municipal, payload)
        assert municipal.texts() == [t.ADMIN_ONLY], payload
    assert await written(services) == before


async def test_forged_ad_ids_change_nothing(services, region):
    harness, admin, _, _ = await people(services, region)
    own_person, own_account = await ids(services, ADMIN)
    before = await written(services)
    for payload in (
        "ad|p|999999",
        "ad|R|999999",
        "ad|A|999999",
        "ad|c|999999",
        "ad|R|-1",
        "ad|c|abc",
        "ad|m|999999|0",
        "ad|zz|1",
        "ad",
    ):
        await press_payload(harness, admin, payload)
        assert admin.texts() == [t.STALE], payload
    await press_payload(harness, admin, encode("ad", "R", own_person))
    admin.expect("Себя удалить нельзя")
    await press_payload(harness, admin, encode("ad", "A", own_account))
    admin.expect("Свой аккаунт отключить нельзя")
    await press_payload(harness, admin, encode("ad", "c", own_person))
    admin.expect("администратор")
    assert await written(services) == before


async def test_closed_senders_get_one_refusal_and_nothing_is_written(services, region):
    harness, _, director, municipal = await people(services, region)
    await director.click("▶ Начать заполнение")
    person, _ = await ids(services, DIRECTOR)
    _, account = await ids(services, MUNICIPAL)
    async with services.sessions() as session:
        (await session.get(Person, person)).removed_at = utcnow()
        (await session.get(Account, account)).deactivated_at = utcnow()
        await session.commit()

    async def snapshot():
        async with services.sessions() as session:
            states = [
                (s.account_id, s.mode, s.question_id, s.response_id, dict(s.data or {}))
                for s in await session.scalars(select(ConversationState))
            ]
            accounts = [
                (a.id, a.chat_id, a.last_active_at)
                for a in await session.scalars(select(Account).order_by(Account.id))
            ]
        return states, accounts, await written(services)

    before = await snapshot()
    for user in (director, municipal):
        for act in (
            user.send("/start"),
            user.send(f"/start {region.codes['S2']}"),
            user.send("20"),
            user.send("/export"),
            user.send_document(PDF, "приказ.pdf", "application/pdf"),
        ):
            await act
            assert user.texts() == [t.ACCESS_CLOSED]
        await press_payload(harness, user, "go")
        assert user.texts() == [t.ACCESS_CLOSED]
    assert await snapshot() == before


async def test_reminders_skip_removed_people_and_deactivated_accounts(services, region):
    await people(services, region)
    person, _ = await ids(services, DIRECTOR)
    _, account = await ids(services, MUNICIPAL)

    async def reached() -> set[int]:
        async with services.sessions() as session:
            rows = await session.execute(recipient_query(["tg"]))
            return {row[1] for row in rows}

    everyone = await reached()
    assert person in everyone and (await ids(services, MUNICIPAL))[0] in everyone
    async with services.sessions() as session:
        (await session.get(Person, person)).removed_at = utcnow()
        (await session.get(Account, account)).deactivated_at = utcnow()
        await session.commit()
    assert await reached() == everyone - {person, (await ids(services, MUNICIPAL))[0]}


async def test_a_regional_coordinator_exports_only_their_region(services, region):
    """Scope gap found in the audit: /export gave a regional coordinator every region."""
    from openpyxl import load_workbook

    from handlers.types import EventKind, Incoming, OutFile, Platform, UserRef
    from storage.admin import import_schools, open_campaign
    from storage.models import Region, Role
    from storage.school_import import SchoolRow

    today = services.conversation.today()
    async with services.sessions() as session:
        other = [SchoolRow(2, "Дальний район", "Школа за горами", "F1", True, False, False, None)]
        await import_schools(session, "Другая область", other, "Europe/Moscow")
        await open_campaign(
            session,
            services.forms.latest("shnor_school"),
            today,
            today,
            "Второй",
            municipality_names=["Дальний район"],
        )
        home = await session.scalar(select(Region.id).where(Region.name == "Тестовая область"))
        person = Person(role=Role.REGIONAL, region_id=home, full_name="Рег")
        session.add(person)
        await session.flush()
        session.add(
            Account(person_id=person.id, platform="tg", platform_user_id="77", chat_id="77")
        )
        await session.commit()
    user = UserRef(Platform.TELEGRAM, "77", "77", "Рег")

    async def say(**event):
        return await services.conversation.handle(Incoming(user, **event))

    for forged in ("x|t|2", "x|c|2", "x|d|2"):  # the other region's campaign
        replies = await say(kind=EventKind.BUTTON, payload=forged)
        assert replies[0].text.startswith("Эта кнопка устарела"), forged
    # only campaign №1 is in the region: no choice is offered, the table comes at once
    replies = await say(kind=EventKind.COMMAND, text="/export", command="export", args="")
    files = [m for m in replies if isinstance(m, OutFile)]
    assert files and replies[0].text.startswith("✅ Выгрузка «Мониторинг 2026» готова")
    book = load_workbook(files[0].path)
    cells = " ".join(
        str(value) for sheet in book for row in sheet.iter_rows(values_only=True) for value in row
    )
    assert "МБОУ СОШ № 1" in cells and "Северный район" in cells
    assert "Школа за горами" not in cells and "Дальний район" not in cells
    assert "Другая область" not in cells


# --- /deadlines: a director pressing a coordinator's item (audit: no gap found) ---------------


@pytest.fixture
async def deadlines_world(tmp_path):
    from tests.reminder_helpers import add_roadmap, build_world, roadmap, sqlite_db
    from tests.test_deadlines_chat import ITEMS

    _, engine, sessions = await sqlite_db(tmp_path)
    world = await build_world(sessions, engine)
    await add_roadmap(world, roadmap(ITEMS))
    yield world
    await engine.dispose()


@pytest.fixture
def deadlines_conv(deadlines_world, tmp_path):
    from datetime import UTC, datetime

    from forms.loader import load_bundled
    from handlers.registry import FormRegistry
    from handlers.walk_state import CoreConfig
    from storage.files import FileStore
    from tests.reminder_helpers import FixedClock
    from tests.test_deadlines_chat import WiredConversation

    return WiredConversation(
        deadlines_world.sessions,
        FormRegistry(load_bundled()),
        FileStore(tmp_path / "files"),
        CoreConfig(admins=(("tg", "admin"),)),
        clock=FixedClock(datetime(2023, 2, 12, 8, 0, tzinfo=UTC)),
    )


async def test_a_director_cannot_mark_a_coordinators_deadline(deadlines_conv, deadlines_world):
    from storage.models import ItemCompletion
    from tests.test_deadlines_chat import press, say

    (listing,) = await say(deadlines_conv, "m1", "/deadlines")
    payloads = [b.payload for row in listing.buttons for b in row if "3" in b.text]
    assert payloads, listing.buttons  # «✅ п. 3»: a municipal-only item
    (forged,) = await press(deadlines_conv, "d1", payloads[0])
    assert forged.text.startswith("Этот пункт не относится к вам")
    (typed,) = await say(deadlines_conv, "d1", "/deadlines done 3 Протокол № 1")
    assert typed.text == "Пункт «3» не найден среди ваших. Список: /deadlines"
    async with deadlines_world.sessions() as session:
        assert await session.scalar(select(ItemCompletion)) is None


async def test_a_long_municipality_is_paged(services, region):
    from storage.models import Municipality, Role

    harness, admin, _, _ = await people(services, region)
    async with services.sessions() as session:
        north = await session.scalar(
            select(Municipality.id).where(Municipality.name == "Северный район")
        )
        for n in range(11):
            person = Person(role=Role.DIRECTOR, full_name=f"Директор {n:02}",
                            municipality_id=north, school_id=region.school_ids["S2"])  # fmt: skip
            session.add(person)
            await session.flush()
            session.add(
                Account(person_id=person.id, platform="vk", platform_user_id=f"v{n}", chat_id="1")
            )
        await session.commit()
    await admin.send("/people")
    await admin.click("Северный район (13)")
    first = admin.expect("Северный район — 13 чел., стр. 1 из 2")
    assert first.count("\n") == 10 and "VK" in first
    await admin.click("▶")
    second = admin.expect("стр. 2 из 2")
    assert second.count("\n") == 3 and second.splitlines()[1].startswith("11. ")
    assert "▶" not in admin.buttons() and "◀" in admin.buttons()
    await press_payload(harness, admin, encode("ad", "m", north, 99))  # past the end
    admin.expect("стр. 2 из 2")


async def test_add_gives_a_code_for_a_new_municipal_coordinator(services, region):
    harness, admin, _, _ = await people(services, region)
    await admin.send("/people")
    await admin.click("Южный район (0)")
    assert admin.buttons() == [t.BTN_ADD, "🏛 Муниципалитеты"]
    await admin.click(t.BTN_ADD)
    reply = admin.expect("Код для нового муниципального координатора (муниципалитет «Южный")
    code = reply.split("): ")[1].split()[0]
    newcomer = harness.user(8001, "Гена")
    await newcomer.send(f"/start {code}")
    newcomer.expect("муниципальный координатор", "Южный район")
    before = await written(services)
    await press_payload(harness, admin, "ad|n|999999")
    assert admin.texts() == [t.STALE]
    assert await written(services) == before
