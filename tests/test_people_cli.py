"""`people …`, `invites reissue` and `invites --regional` through typer's CliRunner, on a
real SQLite file and on PostgreSQL: happy paths, and bad input that writes nothing."""

from __future__ import annotations

import asyncio

import openpyxl
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.app import create_services
from bot.cli import app
from handlers import admin_texts
from handlers.types import EventKind, Incoming, Platform, UserRef
from storage.models import Account, AuditLog, Invite, Person, Role
from tests.conftest import seed_region
from tests.pg import settings_on_both_databases

settings = settings_on_both_databases()
runner = CliRunner()
DIRECTOR, MUNICIPAL = "1001", "2001"


def start(services, user_id: str, name: str, code: str):
    event = Incoming(
        UserRef(Platform.TELEGRAM, user_id, user_id, name),
        EventKind.COMMAND,
        text=f"/start {code}",
        command="start",
        args=code,
    )
    return services.conversation.handle(event)


def send(services, user_id: str, text: str):
    user = UserRef(Platform.TELEGRAM, user_id, user_id, "x")
    return services.conversation.handle(Incoming(user, EventKind.TEXT, text=text))


def in_db(settings, work):
    async def go():
        services = await create_services(settings)
        try:
            return await work(services)
        finally:
            await services.close()

    return asyncio.run(go())


def seeded(settings) -> dict[str, str]:
    """The tiny region of conftest, a registered director of S1 and a municipal coordinator
    of «Северный район»; returns the invite codes."""

    async def work(services):
        region = await seed_region(services)
        await start(services, DIRECTOR, "Анна Петрова", region.codes["S1"])
        await start(services, MUNICIPAL, "Борис Орлов", region.codes["Северный район"])
        return region.codes

    return in_db(settings, work)


def person_id(settings, user_id: str) -> int:
    async def work(services):
        async with services.sessions() as session:
            return await session.scalar(
                select(Account.person_id).where(Account.platform_user_id == user_id)
            )

    return in_db(settings, work)


def counts(settings) -> tuple[int, int, int]:
    """invites, audit rows, people removed or accounts off: what a bad input must not change."""

    async def work(services):
        async with services.sessions() as session:
            invites = await session.scalar(select(func.count()).select_from(Invite))
            audit = await session.scalar(select(func.count()).select_from(AuditLog))
            closed = await session.scalar(
                select(func.count()).select_from(Person).where(Person.removed_at.is_not(None))
            ) + await session.scalar(
                select(func.count()).select_from(Account).where(Account.deactivated_at.is_not(None))
            )
            return invites, audit, closed

    return in_db(settings, work)


def test_people_list_shows_who_is_registered_where(settings):
    seeded(settings)
    result = runner.invoke(app, ["people", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "Северный район" in lines
    director = next(line for line in lines if "Анна Петрова" in line)
    assert "директор, МБОУ СОШ № 1" in director and "Telegram (аккаунт" in director
    municipal = next(line for line in lines if "Борис Орлов" in line)
    assert "муниципальный координатор, Северный район" in municipal
    assert "Всего: 2" in result.output

    only = runner.invoke(app, ["people", "list", "--municipality", "южный РАЙОН"])
    assert only.exit_code == 0 and "Пока никто не зарегистрирован" in only.output

    unknown = runner.invoke(app, ["people", "list", "--municipality", "Марс"])
    assert unknown.exit_code == 1
    assert "Муниципалитет «Марс» не найден" in unknown.output


def test_people_add_prints_a_code_that_registers_with_that_role(settings):
    seeded(settings)
    result = runner.invoke(
        app, ["people", "add", "--role", "director", "--school", "S2", "--name", "Вера"]
    )
    assert result.exit_code == 0, result.output
    assert "школа «МБОУ СОШ № 2», Северный район" in result.output
    code = result.output.split("): ")[1].split()[0]
    assert f"/start {code}" in result.output

    regional = runner.invoke(
        app, ["people", "add", "--role", "regional", "--region", "тестовая область"]
    )
    assert regional.exit_code == 0, regional.output
    regional_code = regional.output.split("): ")[1].split()[0]

    async def work(services):
        await start(services, "3001", "Вера", code)
        await start(services, "4001", "Глеб", regional_code)
        async with services.sessions() as session:
            people = {
                p.full_name: p
                for p in await session.scalars(
                    select(Person).where(Person.full_name.in_(("Вера", "Глеб")))
                )
            }
        return people

    people = in_db(settings, work)
    assert people["Вера"].role == Role.DIRECTOR and people["Вера"].school_id is not None
    assert people["Глеб"].role == Role.REGIONAL and people["Глеб"].region_id is not None
    assert people["Глеб"].municipality_id is None


def test_people_add_bad_input_is_refused_and_writes_nothing(settings):
    seeded(settings)
    before = counts(settings)
    cases = [
        (["--role", "director", "--school", "NOPE"], "Школа с кодом «NOPE» не найдена"),
        (["--role", "director", "--municipality", "Северный район"], "укажите только --school"),
        (["--role", "municipal", "--municipality", "Марс"], "Муниципалитет «Марс» не найден"),
        (["--role", "regional", "--region", "Луна"], "Регион «Луна» не найден"),
        (["--role", "admin", "--region", "Тестовая область"], "Укажите --role director"),
        (
            ["--role", "municipal", "--municipality", "Северный район", "--school", "S1"],
            "укажите только --municipality",
        ),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["people", "add", *args])
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output, (args, result.output)
    assert counts(settings) == before


def test_people_remove_closes_access_and_is_audited(settings):
    seeded(settings)
    director = person_id(settings, DIRECTOR)
    result = runner.invoke(app, ["people", "remove", str(director)])
    assert result.exit_code == 0, result.output
    assert f"Человек №{director} (Анна Петрова) удалён" in result.output

    async def work(services):
        replies = await send(services, DIRECTOR, "привет")
        async with services.sessions() as session:
            person = await session.get(Person, director)
            audit = await session.scalar(
                select(AuditLog).where(
                    AuditLog.action == "remove_person", AuditLog.entity_id == director
                )
            )
        return replies, person, audit

    replies, person, audit = in_db(settings, work)
    assert [r.text for r in replies] == [admin_texts.ACCESS_CLOSED]
    assert person.removed_at is not None and audit is not None

    before = counts(settings)
    again = runner.invoke(app, ["people", "remove", str(director)])
    assert again.exit_code == 1 and "уже удалён" in again.output
    missing = runner.invoke(app, ["people", "remove", "999999"])
    assert missing.exit_code == 1 and "Человек №999999 не найден" in missing.output
    typo = runner.invoke(app, ["people", "remove", "Анна"])
    assert typo.exit_code == 2 and "ожидается номер" in typo.output
    assert counts(settings) == before


def test_deactivate_account_refuses_that_account_only(settings):
    seeded(settings)

    async def account_of(services):
        async with services.sessions() as session:
            return await session.scalar(
                select(Account.id).where(Account.platform_user_id == MUNICIPAL)
            )

    account = in_db(settings, account_of)
    result = runner.invoke(app, ["people", "deactivate-account", str(account)])
    assert result.exit_code == 0, result.output
    assert f"Аккаунт №{account} (Telegram) отключён" in result.output

    async def work(services):
        closed = await send(services, MUNICIPAL, "/help")
        open_ = await send(services, DIRECTOR, "/help")
        return closed, open_

    closed, open_ = in_db(settings, work)
    assert [r.text for r in closed] == [admin_texts.ACCESS_CLOSED]
    assert admin_texts.ACCESS_CLOSED not in open_[0].text

    listing = runner.invoke(app, ["people", "list"])
    assert f"Telegram (аккаунт {account}, отключён)" in listing.output
    before = counts(settings)
    again = runner.invoke(app, ["people", "deactivate-account", str(account)])
    assert again.exit_code == 1 and "уже отключён" in again.output
    missing = runner.invoke(app, ["people", "deactivate-account", "424242"])
    assert missing.exit_code == 1 and "Аккаунт №424242 не найден" in missing.output
    assert counts(settings) == before


def test_invites_reissue_an_unused_code_and_for_a_registered_person(settings):
    codes = seeded(settings)
    unused = codes["S2"]
    result = runner.invoke(app, ["invites", "reissue", unused.lower()])
    assert result.exit_code == 0, result.output
    assert f"Код {unused} отозван" in result.output
    new = result.output.split("Новый код: ")[1].split()[0]
    assert new != unused

    async def work(services):
        old = await start(services, "5001", "Дина", unused)
        fresh = await start(services, "5002", "Дина", new)
        return old, fresh

    old, fresh = in_db(settings, work)
    assert "больше не действует" in old[0].text
    assert "МБОУ СОШ № 2" in fresh[0].text

    # the director's used code (or their number): a new invite with the same school
    used = runner.invoke(app, ["invites", "reissue", codes["S1"]])
    assert used.exit_code == 0, used.output
    again = used.output.split("Новый код: ")[1].split()[0]
    by_number = runner.invoke(app, ["invites", "reissue", str(person_id(settings, DIRECTOR))])
    assert by_number.exit_code == 0 and "с той же ролью" in by_number.output

    async def successor(services):
        return await start(services, "6001", "Ева", again)

    assert "МБОУ СОШ № 1" in in_db(settings, successor)[0].text

    before = counts(settings)
    revoked = runner.invoke(app, ["invites", "reissue", unused])
    assert revoked.exit_code == 1 and "уже отозван" in revoked.output
    nonsense = runner.invoke(app, ["invites", "reissue", "ZZZZ"])
    assert nonsense.exit_code == 1 and "не код приглашения и не номер" in nonsense.output
    assert counts(settings) == before
    no_out = runner.invoke(app, ["invites"])
    assert no_out.exit_code == 2 and "--out" in no_out.output


def test_invites_regional_adds_a_code_per_region_with_links(settings, tmp_path):
    seeded(settings)
    out = tmp_path / "invites.xlsx"
    result = runner.invoke(
        app,
        ["invites", "--out", str(out), "--regional", "--bot-username", "shnor_bot",
         "--vk-group", "shnor_group"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(openpyxl.load_workbook(out).active.iter_rows(values_only=True))
    header = rows[0]
    assert header[:6] == (
        "Муниципалитет", "Наименование ОО", "Роль", "Код", "Ссылка Telegram", "Ссылка VK"
    )  # fmt: skip
    regional = [r for r in rows[1:] if r[2] == "Региональный координатор"]
    assert len(regional) == 1
    region_row = regional[0]
    code = region_row[3]
    assert region_row[0] == "Тестовая область" and region_row[1] == "—"
    assert region_row[4] == f"https://t.me/shnor_bot?start={code}"
    assert region_row[5] == f"https://vk.me/shnor_group?ref={code}"
    assert f"/start {code}" in region_row
    assert len(rows) == 1 + 1 + 2 + 3  # the region, two municipalities, three schools

    again = runner.invoke(app, ["invites", "--out", str(out), "--regional"])
    assert again.exit_code == 0
    kept = [r for r in openpyxl.load_workbook(out).active.iter_rows(values_only=True)]
    assert [r[3] for r in kept if r[2] == "Региональный координатор"] == [code]
    plain = runner.invoke(app, ["invites", "--out", str(out)])
    assert plain.exit_code == 0
    assert not any(
        r[2] == "Региональный координатор"
        for r in openpyxl.load_workbook(out).active.iter_rows(values_only=True)
    )

    async def register(services):
        return await start(services, "7001", "Жанна", code)

    reply = in_db(settings, register)
    assert "региональный координатор: Тестовая область" in reply[0].text
