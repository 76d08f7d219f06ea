"""/notify and /broadcast in chat: the choice is saved; a broadcast is previewed, confirmed,
sent by the reminder tick, and its report names whoever blocked the bot; nothing leaves the
sender's scope, whatever the buttons say."""

from __future__ import annotations

from sqlalchemy import func, select

from storage import review
from storage.admin import import_schools
from storage.models import (
    Broadcast,
    Campaign,
    ConversationState,
    Delivery,
    DeliveryKind,
    Municipality,
    Person,
    ResponseStatus,
)
from storage.repo import get_or_create_response
from storage.school_import import SchoolRow
from tests.notice_helpers import municipal, regional, reminders_for
from tests.pg import settings_on_both_databases
from tests.walk import harness_for, press_payload

settings = settings_on_both_databases()

DIRECTORS = (("S1", 1001, "Анна"), ("S2", 1002, "Борис"), ("U1", 1003, "Вера"))
TEXT = "Совещание директоров в пятницу в 10:00, актовый зал управления образования."


async def directors(harness, region):
    users = {}
    for code, user_id, name in DIRECTORS:
        user = harness.user(user_id, name)
        await user.send(f"/start {region.codes[code]}")
        users[code] = user
    return users


async def count(services, model, *where) -> int:
    async with services.sessions() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def broadcasts_sent(messenger) -> dict[str, list[str]]:
    return {
        chat: [text for text in messenger.texts(chat) if text.startswith("📣")]
        for chat in ("1001", "1002", "1003", "2001")
    }


# --- /notify -------------------------------------------------------------------------------


async def test_a_coordinator_chooses_how_to_hear_of_submissions(services, region):
    harness = harness_for(services)
    coordinator = await municipal(harness, region)
    await coordinator.send("/notify")
    coordinator.expect("Уведомления о сданных анкетах сейчас: каждый раз")
    assert coordinator.buttons() == ["✓ Каждый раз", "Раз в день, в 09:00", "Не присылать"]
    await coordinator.click("Раз в день, в 09:00")
    coordinator.expect("раз в день, в 09:00 по вашему времени")
    async with services.sessions() as session:
        person = await session.scalar(select(Person).where(Person.role == "municipal"))
    assert person.notify_mode == "digest"
    await coordinator.send("/notify")
    coordinator.expect("сейчас: раз в день, в 09:00")
    assert coordinator.buttons() == ["Каждый раз", "✓ Раз в день, в 09:00", "Не присылать"]
    await press_payload(harness, coordinator, "nm|weekly")
    coordinator.expect("Такого варианта нет")
    await coordinator.send("/help")
    coordinator.expect("/notify", "/broadcast")


async def test_a_director_cannot_use_notify_or_broadcast(services, region):
    harness = harness_for(services)
    director = (await directors(harness, region))["S1"]
    await director.send("/notify")
    director.expect("Эта команда — для координаторов")
    await press_payload(harness, director, "nm|off")
    director.expect("Эта команда — для координаторов")
    await director.send("/broadcast")
    director.expect("Рассылки доступны координаторам")
    await press_payload(harness, director, "bc|a|d")
    director.expect("Рассылки доступны координаторам")
    await press_payload(harness, director, "bc|ok")
    director.expect("Рассылки доступны координаторам")
    async with services.sessions() as session:
        person = await session.scalar(select(Person).where(Person.role == "director"))
    assert person.notify_mode is None
    assert await count(services, Broadcast) == 0
    assert await count(services, Delivery) == 0


# --- /broadcast ------------------------------------------------------------------------------


async def test_a_broadcast_to_three_directors_reports_the_one_who_blocked_the_bot(services, region):
    harness = harness_for(services)
    await directors(harness, region)
    sender = await regional(services, harness)
    await sender.send("/broadcast")
    sender.expect("Кому отправить сообщение?")
    assert sender.buttons() == [
        "Директора всех школ",
        "Директора одного муниципалитета",
        "Муниципальные координаторы",
        "Директора, не отправившие анкету",
    ]
    await sender.click("Директора всех школ")
    sender.expect("директора всех школ вашей зоны — 3 чел.", "до 3000 символов")
    await sender.send(TEXT)
    sender.expect("Так сообщение увидят получатели")
    shown = f"📣 Сообщение от: Ирина, региональный координатор\n\n{TEXT}"
    assert shown in sender.texts()
    sender.expect("— 3 чел.", "Отправить?")
    assert await count(services, Broadcast) == 0  # nothing before the confirmation
    assert await count(services, Delivery) == 0

    await sender.click("📨 Отправить")
    sender.expect("Рассылка №", "поставлена в очередь: 3 получ.")
    ticker, messenger = reminders_for(services)
    messenger.blocked.add("1003")
    await ticker.tick()
    assert await broadcasts_sent(messenger) == {
        "1001": [shown],
        "1002": [shown],
        "1003": [],
        "2001": [],
    }
    await ticker.tick()  # sent once
    assert len(messenger.sent) == 2

    await sender.click(sender.buttons()[0])  # «Отчёт №…» under the confirmation
    report = sender.expect("Отчёт о рассылке", "получателей: 3")
    assert "✅ Доставлено: 2" in report
    assert "⏳ Ожидают отправки: 0" in report
    assert "🚫 Недоступны (заблокировали бота): 1" in report
    assert "• Вера — МБОУ ООШ с. Южное, Южный район (Telegram)" in report
    assert "Анна" not in report and "Борис" not in report

    await sender.send("/broadcast")  # the recent broadcasts, each with its report
    sender.expect("Ваши последние рассылки:", "3 получ.", "Совещание директоров")
    assert sender.buttons()[0].startswith("Отчёт №")


async def test_cancel_sends_nothing_and_a_late_confirm_finds_nothing(services, region):
    harness = harness_for(services)
    await directors(harness, region)
    coordinator = await municipal(harness, region)
    await coordinator.send("/broadcast")
    # a municipal coordinator: only the directors of their own municipality
    assert coordinator.buttons() == ["Директора всех школ", "Директора, не отправившие анкету"]
    await coordinator.click("Директора всех школ")
    coordinator.expect("— 2 чел.")
    await coordinator.send("   ")
    coordinator.expect("Сообщение пустое")
    await coordinator.send_document(b"%PDF-1.4\n%%EOF\n", "plan.pdf", "application/pdf")
    coordinator.expect("В рассылке можно отправить только текст")
    await coordinator.send("Я" * 3001)
    coordinator.expect("слишком длинное: 3001 символов, можно до 3000")
    await coordinator.send(TEXT)
    coordinator.expect("Отправить?", "— 2 чел.")
    await coordinator.send("Совещание переносится на понедельник.")  # a new text: a new preview
    assert (
        "📣 Сообщение от: Ольга, муниципальный координатор, Северный район\n\n"
        "Совещание переносится на понедельник." in coordinator.texts()
    )
    await coordinator.click("Отмена")
    coordinator.expect("Рассылка отменена, ничего не отправлено")
    await press_payload(harness, coordinator, "bc|ok")  # a late «Отправить» from another device
    coordinator.expect("Нет подготовленной рассылки")
    ticker, messenger = reminders_for(services)
    await ticker.tick()
    assert await broadcasts_sent(messenger) == {c: [] for c in ("1001", "1002", "1003", "2001")}
    assert await count(services, Broadcast) == 0
    assert await count(services, Delivery, Delivery.kind == DeliveryKind.BROADCAST) == 0


async def test_forged_audiences_and_reports_are_refused(services, region):
    harness = harness_for(services)
    await directors(harness, region)
    coordinator = await municipal(harness, region)
    async with services.sessions() as session:
        south = await session.scalar(
            select(Municipality.id).where(Municipality.name == "Южный район")
        )
    for forged in (f"bc|m|{south}", "bc|a|c", "bc|a|m", "bc|n|999", "bc|m|-1", "bc|zz"):
        await press_payload(harness, coordinator, forged)
        coordinator.expect("Эта аудитория вне вашей зоны, рассылка не создана")
    async with services.sessions() as session:
        state = await session.scalar(
            select(ConversationState).where(ConversationState.mode != "idle")
        )
    assert state is None  # never waiting for a text
    await press_payload(harness, coordinator, "bc|ok")
    coordinator.expect("Нет подготовленной рассылки")

    # another sender's report is not theirs to see
    sender = await regional(services, harness)
    await sender.send("/broadcast")
    await sender.click("Директора одного муниципалитета")
    assert sender.buttons() == ["Северный район", "Южный район"]
    await sender.click("Южный район")
    sender.expect("директора школ: Южный район — 1 чел.")
    await sender.send(TEXT)
    await sender.click("📨 Отправить")
    sender.expect("поставлена в очередь: 1 получ.")
    broadcast_id = (await _only_broadcast(services)).id
    for forged in (f"bc|r|{broadcast_id}", "bc|r|abc", f"bc|r|{broadcast_id + 1}"):
        await press_payload(harness, coordinator, forged)
        coordinator.expect("Отчёт недоступен")
    await press_payload(harness, sender, f"bc|r|{broadcast_id}")
    sender.expect("Отчёт о рассылке", "⏳ Ожидают отправки: 1")
    assert await count(services, Broadcast) == 1
    assert await count(services, Delivery) == 1


async def test_directors_who_have_not_sent_the_form(services, region):
    harness = harness_for(services)
    users = await directors(harness, region)
    async with services.sessions() as session:  # МБОУ СОШ № 1 has sent its questionnaire
        campaign = await session.get(Campaign, region.campaign_id)
        response = await get_or_create_response(
            session, campaign, f"school:{region.school_ids['S1']}"
        )
        await session.flush()
        now = services.conversation.clock()
        await review.move(session, response, ResponseStatus.SUBMITTED, None, now)
        await session.commit()
    coordinator = await municipal(harness, region)
    await coordinator.send("/broadcast")
    await coordinator.click("Директора, не отправившие анкету")
    coordinator.expect("Директорам, не отправившим какую анкету?")
    await coordinator.click(coordinator.buttons()[0])
    coordinator.expect("директора, не отправившие анкету «Мониторинг 2026» — 1 чел.")
    await coordinator.send("Напоминаю: анкету нужно отправить до пятницы.")
    await coordinator.click("📨 Отправить")
    ticker, messenger = reminders_for(services)
    await ticker.tick()
    sent = await broadcasts_sent(messenger)
    # МБОУ СОШ № 2 only: not the school that sent it, not another municipality's school
    assert [chat for chat, texts in sent.items() if texts] == [str(users["S2"].user_id)]


async def _only_broadcast(services) -> Broadcast:
    async with services.sessions() as session:
        return (await session.scalars(select(Broadcast))).one()


async def test_an_admin_pages_through_municipalities_and_sees_any_report(services, region):
    async with services.sessions() as session:  # eleven municipalities: two pages of buttons
        rows = [
            SchoolRow(
                10 + n, f"Район {n:02d}", f"СОШ района {n:02d}", f"R{n}", False, False, False, None
            )
            for n in range(9)
        ]
        await import_schools(session, "Тестовая область", rows, "Europe/Moscow")
        await session.commit()
    harness = harness_for(services)
    await directors(harness, region)
    sender = await regional(services, harness)
    await sender.send("/broadcast")
    await sender.click("Муниципальные координаторы")
    sender.expect("В этой аудитории пока никого нет в боте")  # no coordinator registered yet
    coordinator = await municipal(harness, region)

    admin = harness.user(900, "Админ")
    await admin.send("/broadcast")
    await admin.click("Директора одного муниципалитета")
    admin.expect("Выберите муниципалитет (страница 1 из 2)")
    assert admin.buttons() == [*(f"Район {n:02d}" for n in range(8)), "Далее ▶"]
    await admin.click("Далее ▶")
    admin.expect("страница 2 из 2")
    assert admin.buttons() == ["Район 08", "Северный район", "Южный район", "◀ Назад"]
    await admin.click("Северный район")
    admin.expect("директора школ: Северный район — 2 чел.")
    await admin.send("Проверка связи.")
    admin.expect("📣 Сообщение от: Админ, администратор\n\nПроверка связи.")
    await admin.click("📨 Отправить")

    await sender.send("/broadcast")
    await sender.click("Муниципальные координаторы")
    sender.expect("муниципальные координаторы — 1 чел.")
    await sender.send(TEXT)
    await sender.click("📨 Отправить")
    ticker, messenger = reminders_for(services)
    await ticker.tick()
    sent = await broadcasts_sent(messenger)
    assert [len(sent[c]) for c in ("1001", "1002", "1003", "2001")] == [1, 1, 0, 1]
    regional_broadcast = max(b.id for b in await _broadcasts(services))
    await press_payload(harness, admin, f"bc|r|{regional_broadcast}")  # an admin sees any report
    admin.expect("Отчёт о рассылке", "✅ Доставлено: 1")
    await press_payload(harness, coordinator, f"bc|r|{regional_broadcast}")
    coordinator.expect("Отчёт недоступен")


async def _broadcasts(services) -> list[Broadcast]:
    async with services.sessions() as session:
        return list(await session.scalars(select(Broadcast)))
