"""Campaign management through the admin CLI on a real SQLite file: duplicates, close,
extend, reopen; every change audited, every refusal in Russian with nothing written."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from bot.cli import app
from storage.database import create_engine, create_sessionmaker, upgrade_sync
from storage.models import (
    AuditLog,
    Campaign,
    Delivery,
    DeliveryStatus,
    Person,
    Response,
    ResponseStatus,
    School,
    respondent_key,
)
from tests.test_cli import GOOD, write_schools

runner = CliRunner()
FAR = "2030-12-15"


def db(settings, work):
    """Run ``work(session)`` against the CLI's database and return its result."""
    upgrade_sync(settings.storage.url)

    async def go():
        engine = create_engine(settings.storage.url)
        try:
            async with create_sessionmaker(engine)() as session:
                result = await work(session)
                await session.commit()
                return result
        finally:
            await engine.dispose()

    return asyncio.run(go())


def campaigns(settings) -> list[Campaign]:
    async def work(session):
        return list(await session.scalars(select(Campaign).order_by(Campaign.id)))

    return db(settings, work)


def audit_actions(settings) -> list[str]:
    async def work(session):
        return list(await session.scalars(select(AuditLog.action).order_by(AuditLog.id)))

    return db(settings, work)


@pytest.fixture
def schools(settings, tmp_path):
    path = write_schools(tmp_path / "schools.xlsx", GOOD)
    result = runner.invoke(app, ["import-schools", str(path), "--region", "Область"])
    assert result.exit_code == 0, result.output


def open_(*extra: str):
    return runner.invoke(
        app, ["campaign", "open", "--form", "shnor_school", "--deadline", FAR, *extra]
    )


def submitted_response(settings, code: str, campaign_id: int = 1) -> int:
    async def work(session):
        school = await session.scalar(select(School).where(School.code == code))
        campaign = await session.get(Campaign, campaign_id)
        response = Response(
            campaign_id=campaign_id,
            respondent_key=respondent_key(school.id, None),
            school_id=school.id,
            form_version=campaign.form_version,
            status=ResponseStatus.SUBMITTED,
        )
        session.add(response)
        await session.flush()
        return response.id

    return db(settings, work)


def status_of(settings, response_id: int) -> str:
    async def work(session):
        return (await session.get(Response, response_id)).status

    return db(settings, work)


# --- duplicates ---------------------------------------------------------------------------------


def test_opening_the_same_form_again_is_refused_naming_the_campaign_and_schools(settings, schools):
    assert open_("--title", "Мониторинг 2026").exit_code == 0
    again = open_()
    assert again.exit_code == 1
    assert "уже открыта" in again.output and "№1 «Мониторинг 2026»" in again.output
    assert "15.12.2030" in again.output
    assert "школ: 3 (" in again.output and "МАОУ СОШ № 1" in again.output
    assert "--force" in again.output and "campaign close 1" in again.output
    assert len(campaigns(settings)) == 1


def test_an_overlapping_subset_is_refused_and_only_the_overlap_is_named(settings, schools):
    assert open_("--only", "shnor").exit_code == 0  # СОШ № 1 and Лунино
    again = open_("--municipality", "Гурьевский округ")  # СОШ № 1 and СОШ № 2
    assert again.exit_code == 1
    assert "школ: 1 (" in again.output and "МАОУ СОШ № 1" in again.output
    assert "МАОУ СОШ № 2" not in again.output and "Лунино" not in again.output
    # schools with no open campaign of this form are fine
    assert open_("--only", "shnsu").exit_code == 0  # СОШ № 2 only


def test_force_opens_a_second_campaign_and_is_audited(settings, schools):
    assert open_().exit_code == 0
    forced = open_("--force", "--title", "Повторный сбор")
    assert forced.exit_code == 0, forced.output
    assert "№2" in forced.output
    assert len(campaigns(settings)) == 2

    async def work(session):
        row = await session.scalar(
            select(AuditLog).where(AuditLog.action == "open_campaign", AuditLog.entity_id == 2)
        )
        return row.details

    details = db(settings, work)
    assert details["force"] is True and details["duplicates"] == {"1": 3}


def test_a_closed_campaign_does_not_block_a_new_one(settings, schools):
    assert open_().exit_code == 0
    assert runner.invoke(app, ["campaign", "close", "1"]).exit_code == 0
    assert open_().exit_code == 0


def test_a_different_form_is_no_duplicate(settings, schools):
    assert open_().exit_code == 0
    other = runner.invoke(
        app, ["campaign", "open", "--form", "shnor_municipality", "--deadline", FAR]
    )
    assert other.exit_code == 0, other.output


# --- close ----------------------------------------------------------------------------------------


def test_close_marks_the_campaign_closed_and_cancels_its_reminders(settings, schools):
    assert open_().exit_code == 0

    async def plan(session):
        person = Person(role="director")
        session.add(person)
        await session.flush()
        from storage.models import Account, utcnow

        account = Account(person_id=person.id, platform="tg", platform_user_id="7", chat_id="7")
        session.add(account)
        await session.flush()
        session.add(
            Delivery(
                key="campaign:1:2030-12-15:1:1",
                kind="campaign",
                campaign_id=1,
                account_id=account.id,
                platform="tg",
                offset_days=1,
                due_on=date(2030, 12, 15),
                due_at=utcnow() + timedelta(days=3),
                send_until=utcnow() + timedelta(days=3, hours=4),
            )
        )

    db(settings, plan)
    closed = runner.invoke(app, ["campaign", "close", "1"])
    assert closed.exit_code == 0, closed.output
    assert "№1" in closed.output and "закрыт" in closed.output
    assert campaigns(settings)[0].closed_at is not None
    assert "закрыта" in runner.invoke(app, ["campaign", "list"]).output

    async def delivery_status(session):
        return await session.scalar(select(Delivery.status))

    assert db(settings, delivery_status) == DeliveryStatus.CANCELLED
    assert audit_actions(settings)[-1] == "close_campaign"

    again = runner.invoke(app, ["campaign", "close", "1"])
    assert again.exit_code == 1 and "уже закрыт" in again.output


def test_close_of_an_unknown_campaign_says_how_to_list_them(settings, schools):
    result = runner.invoke(app, ["campaign", "close", "7"])
    assert result.exit_code == 1
    assert "№7 не найдено" in result.output and "campaign list" in result.output
    assert "close_campaign" not in audit_actions(settings)


# --- extend ---------------------------------------------------------------------------------------


def test_extend_moves_the_deadline_and_cancels_reminders_for_the_old_one(settings, schools):
    assert open_().exit_code == 0
    result = runner.invoke(app, ["campaign", "extend", "1", "--deadline", "2031-01-20"])
    assert result.exit_code == 0, result.output
    assert "15.12.2030" in result.output and "20.01.2031" in result.output
    assert campaigns(settings)[0].deadline == date(2031, 1, 20)

    async def details(session):
        row = await session.scalar(select(AuditLog).where(AuditLog.action == "extend_campaign"))
        return row.details

    assert db(settings, details) == {"old": "2030-12-15", "new": "2031-01-20"}


def test_extend_refuses_a_past_date_a_closed_campaign_and_a_bad_date(settings, schools):
    assert open_().exit_code == 0
    past = runner.invoke(app, ["campaign", "extend", "1", "--deadline", "2020-01-01"])
    assert past.exit_code == 1 and "прошла" in past.output
    bad = runner.invoke(app, ["campaign", "extend", "1", "--deadline", "завтра"])
    assert bad.exit_code == 2 and "ГГГГ-ММ-ДД" in bad.output
    same = runner.invoke(app, ["campaign", "extend", "1", "--deadline", FAR])
    assert same.exit_code == 1 and "уже 15.12.2030" in same.output
    unknown = runner.invoke(app, ["campaign", "extend", "5", "--deadline", "2031-01-20"])
    assert unknown.exit_code == 1 and "№5 не найдено" in unknown.output
    assert runner.invoke(app, ["campaign", "close", "1"]).exit_code == 0
    closed = runner.invoke(app, ["campaign", "extend", "1", "--deadline", "2031-01-20"])
    assert closed.exit_code == 1 and "закрыто" in closed.output
    assert campaigns(settings)[0].deadline == date(2030, 12, 15)
    assert "extend_campaign" not in audit_actions(settings)


# --- reopen ---------------------------------------------------------------------------------------


def test_reopen_returns_a_submitted_response_for_editing(settings, schools):
    assert open_().exit_code == 0
    response_id = submitted_response(settings, "39001")
    result = runner.invoke(app, ["campaign", "reopen", "1", "--school", "39001"])
    assert result.exit_code == 0, result.output
    assert "МАОУ СОШ № 1" in result.output and "№1" in result.output
    assert status_of(settings, response_id) == ResponseStatus.RETURNED

    async def details(session):
        row = await session.scalar(select(AuditLog).where(AuditLog.action == "reopen_response"))
        return row.entity_id, row.details

    assert db(settings, details) == (response_id, {"campaign": 1, "old": "submitted"})
    again = runner.invoke(app, ["campaign", "reopen", "1", "--school", "39001"])
    assert again.exit_code == 1 and "уже открыта для исправлений" in again.output


def test_reopen_refusals_write_nothing(settings, schools):
    assert open_("--only", "shnor").exit_code == 0  # СОШ № 1 and Лунино, not СОШ № 2
    unknown_school = runner.invoke(app, ["campaign", "reopen", "1", "--school", "00000"])
    assert unknown_school.exit_code == 1 and "«00000» не найдена" in unknown_school.output
    not_targeted = runner.invoke(app, ["campaign", "reopen", "1", "--school", "39002"])
    assert not_targeted.exit_code == 1 and "не участвует" in not_targeted.output
    not_started = runner.invoke(app, ["campaign", "reopen", "1", "--school", "39001"])
    assert not_started.exit_code == 1 and "ещё не отправлена" in not_started.output
    unknown = runner.invoke(app, ["campaign", "reopen", "9", "--school", "39001"])
    assert unknown.exit_code == 1 and "№9 не найдено" in unknown.output
    response_id = submitted_response(settings, "39001")
    assert runner.invoke(app, ["campaign", "close", "1"]).exit_code == 0
    closed = runner.invoke(app, ["campaign", "reopen", "1", "--school", "39001"])
    assert closed.exit_code == 1 and "закрыто" in closed.output
    assert status_of(settings, response_id) == ResponseStatus.SUBMITTED
    assert "reopen_response" not in audit_actions(settings)

    async def counted(session):
        return await session.scalar(select(func.count()).select_from(Response))

    assert db(settings, counted) == 1
