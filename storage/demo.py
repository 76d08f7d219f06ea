"""A demo school with an open campaign, so anyone can try the questionnaire in the console."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.schema import Form
from storage import repo
from storage.models import Account, Campaign, CampaignTarget, Person, Role, School, respondent_key

DEMO_REGION = "Демонстрационный регион"
DEMO_MUNICIPALITY = "Демонстрационный муниципальный район"
DEMO_SCHOOL = "МБОУ «Демонстрационная средняя школа»"
DEMO_SCHOOL_CODE = "DEMO-0001"


def demo_user_id(form: Form) -> str:
    return f"demo-{form.respondent}"


async def seed_demo(
    session: AsyncSession, form: Form, today: date, platform: str = "console"
) -> Account:
    """Idempotent: the region, a school (ШНОР, risk zone), a campaign and a director account."""
    region = await repo.get_or_create_region(session, DEMO_REGION)
    municipality = await repo.get_or_create_municipality(session, region, DEMO_MUNICIPALITY)
    school = await session.scalar(select(School).where(School.code == DEMO_SCHOOL_CODE))
    if school is None:
        school = School(
            municipality_id=municipality.id,
            code=DEMO_SCHOOL_CODE,
            name=DEMO_SCHOOL,
            is_shnor=True,
            is_shnsu=False,
            is_risk_zone=True,
            director_name="Иванова Мария Петровна",
        )
        session.add(school)
        await session.flush()
    key = (
        respondent_key(school.id, None)
        if form.respondent == "school"
        else respondent_key(None, municipality.id)
    )
    campaign = await session.scalar(
        select(Campaign)
        .join(CampaignTarget)
        .where(
            Campaign.form_id == form.id,
            Campaign.closed_at.is_(None),
            CampaignTarget.respondent_key == key,
        )
    )
    if campaign is None:
        campaign = Campaign(
            form_id=form.id,
            form_version=form.version,
            title=f"{form.title} (демо)",
            opens_on=today,
            deadline=today + timedelta(days=30),
        )
        campaign.targets.append(
            CampaignTarget(
                respondent_key=key,
                school_id=school.id if form.respondent == "school" else None,
                municipality_id=municipality.id if form.respondent != "school" else None,
            )
        )
        session.add(campaign)
    user_id = demo_user_id(form)
    account = await repo.find_account(session, platform, user_id)
    if account is None:
        role = Role.DIRECTOR if form.respondent == "school" else Role.MUNICIPAL
        person = Person(
            role=role,
            full_name="Демо-пользователь",
            region_id=region.id,
            municipality_id=municipality.id,
            school_id=school.id if role == Role.DIRECTOR else None,
        )
        session.add(person)
        await session.flush()
        account = await repo.create_account(
            session, person, platform, user_id, user_id, "Демо-пользователь"
        )
    return account
