"""One person, several platforms: /link codes, binding on VK and MAX, the walk continuing."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from storage.models import (
    Account,
    Answer,
    AuditLog,
    LinkCode,
    Person,
    ResponseStatus,
)
from tests.max_harness import MaxHarness
from tests.max_harness import walk_to_review as max_walk_to_review
from tests.pg import settings_on_both_databases
from tests.vk_harness import VkHarness
from tests.walk import harness_for, position, registered, response_of

CODE = re.compile(r"/link ([A-Z0-9]{8})")


# Every story runs on SQLite, and on PostgreSQL too when TEST_POSTGRES_URL is set.
settings = settings_on_both_databases()


@pytest.fixture
async def vk(services):
    harness = await VkHarness.start(services.conversation)
    yield harness
    await harness.stop()


@pytest.fixture
async def mx(services):
    async with MaxHarness.open(services.conversation) as harness:
        services.conversation.register_fetcher("max", harness.channel.fetcher)
        yield harness


async def tg_director(services, region, school="S1", user_id=1001):
    harness = harness_for(services)
    user = await registered(harness, region, school, user_id)
    return harness, user


async def link_code(user) -> str:
    await user.send("/link")
    found = CODE.search(user.expect("Код для привязки", "действует 15 минут"))
    assert found, user.texts()
    return found.group(1)


async def accounts(services) -> list[tuple[str, str, int]]:
    async with services.sessions() as session:
        rows = await session.execute(
            select(Account.platform, Account.platform_user_id, Account.person_id).order_by(
                Account.id
            )
        )
        return [tuple(r) for r in rows]


async def audits(services, action: str) -> list[AuditLog]:
    async with services.sessions() as session:
        return list(await session.scalars(select(AuditLog).where(AuditLog.action == action)))


# --- the story: Telegram → VK → MAX, one response ------------------------------------------


async def test_a_walk_started_on_telegram_continues_on_vk_and_is_submitted_on_max(
    services, region, vk, mx
):
    _tg, anna = await tg_director(services, region)
    await anna.click("▶ Начать заполнение")
    for _ in range(3):
        await anna.send("10")
    tg_place = await position(services, "tg", "1001")
    assert tg_place[0] == "question"

    code = await link_code(anna)
    vk_anna = vk.user(5001)
    await vk_anna.send(f"/link {code.lower()}")
    vk_anna.expect("привязан к вам", "МБОУ СОШ № 1")
    await vk_anna.send("/resume")
    assert await position(services, "vk", "5001") == tg_place
    vk_anna.expect("вопрос 4 из 17")
    await vk_anna.send("10")
    vk_place = await position(services, "vk", "5001")
    assert vk_place != tg_place

    # back on Telegram the walk is where VK left it: the last place, on any platform
    await anna.send("/resume")
    assert await position(services, "tg", "1001") == vk_place
    anna.expect("вопрос 5 из 17")

    code = await link_code(anna)
    max_anna = mx.user(7001, "Анна")
    await max_anna.start(code)  # the deep link https://max.ru/<bot>?start=<code>
    max_anna.expect("привязан к вам")
    await max_anna.send("/resume")
    assert await position(services, "max", "7001") == vk_place
    await max_walk_to_review(services, max_anna)
    await max_anna.click("📨 Отправить анкету")
    await max_anna.click("Да, отправить")
    max_anna.expect("отправлена")

    response = await response_of(services, region.school_ids["S1"])
    assert response.status == ResponseStatus.SUBMITTED
    people = {person for _p, _u, person in await accounts(services)}
    assert len(people) == 1
    async with services.sessions() as session:
        answered_by = set(
            await session.scalars(
                select(Answer.answered_by).where(Answer.response_id == response.id)
            )
        )
    assert answered_by == people
    links = await audits(services, "link")
    assert sorted(a.details["platform"] for a in links) == ["max", "vk"]


async def test_start_with_a_link_code_binds_on_vk_deep_link(services, region, vk):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    vk_anna = vk.user(5002)
    await vk_anna.send("Начать", ref=code)
    vk_anna.expect("привязан к вам")
    assert [(p, u) for p, u, _ in await accounts(services)][-1] == ("vk", "5002")


async def test_the_link_screen_offers_the_reminder_platform_once_two_are_linked(
    services, region, vk
):
    _tg, anna = await tg_director(services, region)
    await anna.send("/link")
    assert not [b for b in anna.buttons() if b.startswith("Получать напоминания")]
    code = CODE.search(anna.last_text()).group(1)
    await vk.user(5003).send(f"/link {code}")
    await anna.send("/link")
    anna.expect("Привязаны: Telegram, VK")
    assert "Получать напоминания: VK" in anna.buttons()
    await anna.click("Получать напоминания: VK")
    anna.expect("напоминания будут приходить в VK")
    async with services.sessions() as session:
        person = await session.scalar(select(Person).join(Account).where(Account.platform == "tg"))
        assert person.notify_platform == "vk"
    await anna.send("/link")
    await anna.click("Напоминания: где был последним")
    async with services.sessions() as session:
        person = await session.get(Person, person.id)
        assert person.notify_platform is None


# --- refusals ---------------------------------------------------------------------------------


async def test_an_unknown_code_is_refused_and_nothing_is_bound(services, region, vk):
    await tg_director(services, region)
    user = vk.user(5010)
    await user.send("/link ZZZZ2222")
    user.expect("Код «ZZZZ2222» не найден", "/link")
    await user.send("/link")
    user.expect("получите код командой /link")
    assert [p for p, _u, _ in await accounts(services)] == ["tg"]


async def test_an_expired_code_is_refused(services, region, vk, monkeypatch):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    later = services.conversation.clock() + timedelta(minutes=16)
    monkeypatch.setattr(services.conversation, "clock", lambda: later)
    user = vk.user(5011)
    await user.send(f"/link {code}")
    user.expect("Срок действия кода истёк", "отправьте /link")
    assert [p for p, _u, _ in await accounts(services)] == ["tg"]


async def test_a_used_code_is_refused_on_the_next_platform(services, region, vk, mx):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    await vk.user(5012).send(f"/link {code}")
    other = mx.user(7012)
    await other.send(f"/link {code}")
    other.expect("Этот код уже использован")
    assert [p for p, _u, _ in await accounts(services)] == ["tg", "vk"]


async def test_a_new_code_retires_the_previous_one(services, region, vk):
    _tg, anna = await tg_director(services, region)
    first = await link_code(anna)
    second = await link_code(anna)
    assert first != second
    user = vk.user(5013)
    await user.send(f"/link {first}")
    user.expect("Срок действия кода истёк")
    await user.send(f"/link {second}")
    user.expect("привязан к вам")


async def test_a_code_sent_on_its_own_platform_is_refused(services, region):
    harness, anna = await tg_director(services, region)
    code = await link_code(anna)
    await anna.send(f"/link {code}")
    anna.expect("Этот код получен здесь же, в Telegram", "другом мессенджере")
    boris = harness.user(1002, "Борис")
    await boris.send(f"/start {code}")
    boris.expect("получен здесь же")
    async with services.sessions() as session:
        link = await session.scalar(select(LinkCode))
        assert link.used_at is None
    assert len(await accounts(services)) == 1


async def test_an_account_of_another_person_is_not_rebound(services, region, vk):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    boris = vk.user(5014)
    await boris.send(f"/start {region.codes['S2']}")
    boris.expect("зарегистрированы", "МБОУ СОШ № 2")
    await boris.send(f"/link {code}")
    boris.expect("уже зарегистрирован на другого пользователя", "координатору")
    people = {p: person for p, _u, person in await accounts(services)}
    assert people["tg"] != people["vk"]
    async with services.sessions() as session:
        assert (await session.scalar(select(LinkCode))).used_at is None


async def test_repeated_wrong_codes_are_rate_limited(services, region, vk):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    guesser = vk.user(5015)
    for attempt in range(5):
        await guesser.send(f"/link AAAA{attempt}AAA")
        guesser.expect("не найден")
    await guesser.send(f"/link {code}")
    guesser.expect("Слишком много неверных кодов", "Подождите 15 минут")
    await guesser.send(f"/start {region.codes['S2']}")
    guesser.expect("Слишком много неверных кодов")
    assert [p for p, _u, _ in await accounts(services)] == ["tg"]
    # another user of the same platform is not affected
    await vk.user(5016).send(f"/link {code}")
    assert [p for p, _u, _ in await accounts(services)] == ["tg", "vk"]


async def test_the_rate_limit_lifts_after_the_window(services, region, vk, monkeypatch):
    _tg, anna = await tg_director(services, region)
    guesser = vk.user(5017)
    for attempt in range(5):
        await guesser.send(f"/start BBBB{attempt}BBB")
    code = await link_code(anna)
    later = services.conversation.clock() + timedelta(minutes=16)
    await guesser.send(f"/link {code}")
    guesser.expect("Слишком много")
    # a fresh code, and the window passed
    monkeypatch.setattr(services.conversation, "clock", lambda: later)
    code = await link_code(anna)
    await guesser.send(f"/link {code}")
    guesser.expect("привязан к вам")


async def test_every_code_issued_and_bind_is_audited(services, region, vk):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    await vk.user(5018).send(f"/link {code}")
    issued = await audits(services, "link_code")
    bound = await audits(services, "link")
    assert len(issued) == 1 and len(bound) == 1
    assert bound[0].details["platform_user_id"] == "5018"
    async with services.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(LinkCode))
    assert count == 1


async def test_each_event_records_the_accounts_last_activity(services, region, vk, monkeypatch):
    _tg, anna = await tg_director(services, region)
    code = await link_code(anna)
    vk_anna = vk.user(5019)
    later = services.conversation.clock() + timedelta(minutes=5)
    monkeypatch.setattr(services.conversation, "clock", lambda: later)
    await vk_anna.send(f"/link {code}")
    await vk_anna.send("/help")
    async with services.sessions() as session:
        rows = await session.execute(select(Account.platform, Account.last_active_at))
        seen = {platform: at for platform, at in rows}
    assert seen["tg"] is not None and seen["vk"] is not None
    assert seen["vk"] > seen["tg"]


async def test_a_code_from_vk_binds_telegram_by_its_deep_link(services, region, vk):
    vk_boris = vk.user(5020)
    await vk_boris.send(f"/start {region.codes['S2']}")
    await vk_boris.send("/link")
    code = CODE.search(vk_boris.expect("Код для привязки")).group(1)
    harness = harness_for(services)
    tg_boris = harness.user(1020, "Борис")
    await tg_boris.send(f"/start {code}")  # t.me/<bot>?start=<code>
    tg_boris.expect("привязан к вам", "МБОУ СОШ № 2")
    people = {(p, u): person for p, u, person in await accounts(services)}
    assert people[("tg", "1020")] == people[("vk", "5020")]
