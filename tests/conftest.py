"""Shared fixtures: real SQLite files under tmp_path, the real core, seeded schools."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from bot.app import Services, create_services
from bot.config import Settings, load_settings
from storage.admin import import_schools, issue_invites, open_campaign
from storage.models import School
from storage.school_import import SchoolRow
from tests import sqlite_template

sqlite_template.install()  # before the test modules import upgrade_sync

ENV_VARS = (
    "BOT_TOKEN",
    "TELEGRAM_API_URL",
    "TELEGRAM_LOCAL_FILES",
    "DATABASE_URL",
    "DATA_DIR",
    "TIMEZONE",
    "ADMINS",
)

# A tiny region: «Северный» has a risk-zone ШНОР school and an ordinary one; «Южный» one ШНСУ.
SCHOOLS = [
    SchoolRow(2, "Северный район", "МБОУ СОШ № 1", "S1", True, False, True, "Петрова А. А."),
    SchoolRow(3, "Северный район", "МБОУ СОШ № 2", "S2", False, False, False, None),
    SchoolRow(4, "Южный район", "МБОУ ООШ с. Южное", "U1", False, True, False, None),
]


@pytest.fixture
def settings(tmp_path, monkeypatch) -> Settings:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ADMINS", "tg:900")
    return load_settings(env_file=None)


@dataclass
class Region:
    services: Services
    codes: dict[str, str]  # school code or municipality name → invite code
    campaign_id: int
    school_ids: dict[str, int]


async def seed_region(services: Services, *, deadline_days: int = 14) -> Region:
    today = services.conversation.today()
    async with services.sessions() as session:
        await import_schools(session, "Тестовая область", SCHOOLS, "Europe/Moscow")
        form = services.forms.latest("shnor_school")
        campaign, _ = await open_campaign(
            session, form, today + timedelta(days=deadline_days), today, "Мониторинг 2026"
        )
        invites = await issue_invites(session)
        schools = {s.code: s for s in await session.scalars(select(School))}
        await session.commit()
    by_name = {s.name: code for code, s in schools.items()}
    codes = {}
    for row in invites:
        codes[by_name[row.school] if row.school else row.municipality] = row.code
    return Region(services, codes, campaign.id, {code: s.id for code, s in schools.items()})


@pytest.fixture
async def services(settings):
    services = await create_services(settings)
    yield services
    await services.close()


@pytest.fixture
async def region(services) -> Region:
    return await seed_region(services)


def today_plus(days: int) -> date:
    return date.today() + timedelta(days=days)


def pytest_sessionfinish(session, exitstatus) -> None:
    from tests.pg import drop_template

    drop_template()
