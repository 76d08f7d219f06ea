"""Admin operations behind the CLI: importing schools, issuing invites, opening campaigns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.schema import Form
from storage import repo
from storage.models import (
    Campaign,
    CampaignTarget,
    Invite,
    Municipality,
    Role,
    School,
    respondent_key,
    utcnow,
)
from storage.school_import import IssueLog, SchoolRow, normalize_key
from storage.school_upsert import ImportSummary as ImportSummary
from storage.school_upsert import SchoolImportError, resolve_region, upsert_schools


async def import_schools(
    session: AsyncSession, region_name: str, rows: Iterable[SchoolRow], timezone: str
) -> ImportSummary:
    """Upsert schools keyed by code, else by municipality + name. Idempotent.

    Raises ``SchoolImportError`` (nothing flushed is meant to be kept: roll back) when a row
    conflicts with the database; the CLI streams a file through ``upsert_schools`` instead.
    """
    region = await resolve_region(session, region_name, timezone)
    issues = IssueLog()
    summary = await upsert_schools(session, region, rows, issues)
    if issues:
        raise SchoolImportError(issues.result())
    return summary


@dataclass
class InviteRow:
    role: str
    municipality: str
    school: str | None
    code: str
    used: bool
    new: bool


async def issue_invites(session: AsyncSession, reissue: bool = False) -> list[InviteRow]:
    """One live code per school (directors) and per municipality (coordinators).

    Codes already handed out are kept unless `reissue`; then unused codes are revoked and
    replaced. Used codes are never touched: the person behind them stays registered.
    """
    invites = list(await session.scalars(select(Invite).where(Invite.revoked_at.is_(None))))
    live: dict[tuple[str, int], Invite] = {}
    for invite in invites:
        target = (
            ("school", invite.school_id)
            if invite.school_id is not None
            else ("municipality", invite.municipality_id)
        )
        live[target] = invite
    taken = {code for code in await session.scalars(select(Invite.code))}
    rows: list[InviteRow] = []

    async def ensure(
        target: tuple[str, int], role: str, municipality: Municipality, school: School | None
    ):
        invite = live.get(target)
        new = False
        if invite is not None and reissue and invite.used_at is None:
            invite.revoked_at = utcnow()
            invite = None
        if invite is None:
            code = repo.new_code()
            while code in taken:
                code = repo.new_code()
            taken.add(code)
            invite = Invite(
                code=code,
                role=role,
                region_id=municipality.region_id,
                municipality_id=municipality.id,
                school_id=school.id if school else None,
            )
            session.add(invite)
            new = True
        rows.append(
            InviteRow(
                role,
                municipality.name,
                school.name if school else None,
                invite.code,
                invite.used_at is not None,
                new,
            )
        )

    municipalities = list(await session.scalars(select(Municipality).order_by(Municipality.name)))
    for municipality in municipalities:
        await ensure(("municipality", municipality.id), Role.MUNICIPAL, municipality, None)
        schools = await session.scalars(
            select(School).where(School.municipality_id == municipality.id).order_by(School.name)
        )
        for school in schools:
            await ensure(("school", school.id), Role.DIRECTOR, municipality, school)
    await repo.audit(
        session,
        "issue_invites",
        "invite",
        None,
        None,
        new=sum(r.new for r in rows),
        reissue=reissue,
    )
    return rows


class CampaignError(ValueError):
    pass


async def open_campaign(
    session: AsyncSession,
    form: Form,
    deadline: date,
    opens_on: date,
    title: str | None = None,
    municipality_names: list[str] | None = None,
    only: str | None = None,
) -> tuple[Campaign, int]:
    """Open a form for every matching school (or municipality); returns the campaign and
    how many respondents it targets."""
    if deadline < opens_on:
        raise CampaignError("Срок сдачи раньше даты открытия. Проверьте --deadline и --opens.")
    query = select(Municipality)
    if municipality_names:
        wanted = {normalize_key(name) for name in municipality_names}
        all_municipalities = list(await session.scalars(query))
        chosen = [m for m in all_municipalities if normalize_key(m.name) in wanted]
        missing = wanted - {normalize_key(m.name) for m in chosen}
        if missing:
            raise CampaignError(f"Муниципалитеты не найдены: {', '.join(sorted(missing))}.")
    else:
        chosen = list(await session.scalars(query))
    campaign = Campaign(
        form_id=form.id,
        form_version=form.version,
        title=title or form.title,
        opens_on=opens_on,
        deadline=deadline,
    )
    ids = [m.id for m in chosen]
    if form.respondent == "school":
        query = select(School).where(School.municipality_id.in_(ids))
        if only == "shnor":
            query = query.where(School.is_shnor.is_(True))
        elif only == "shnsu":
            query = query.where(School.is_shnsu.is_(True))
        elif only == "shnor_shnsu":
            query = query.where(School.is_shnor.is_(True) | School.is_shnsu.is_(True))
        elif only == "risk_zone":
            query = query.where(School.is_risk_zone.is_(True))
        for school in await session.scalars(query):
            campaign.targets.append(
                CampaignTarget(
                    respondent_key=respondent_key(school.id, None),
                    school_id=school.id,
                    municipality_id=school.municipality_id,
                )
            )
    else:
        for municipality in chosen:
            campaign.targets.append(
                CampaignTarget(
                    respondent_key=respondent_key(None, municipality.id),
                    municipality_id=municipality.id,
                )
            )
    if not campaign.targets:
        raise CampaignError(
            "Анкету некому открыть: нет подходящих школ. Сначала загрузите список: "
            "python3 scripts/dev.py import-schools ФАЙЛ.xlsx --region «Название региона»"
        )
    session.add(campaign)
    await session.flush()
    await repo.audit(
        session,
        "open_campaign",
        "campaign",
        campaign.id,
        None,
        form=form.id,
        version=form.version,
        targets=len(campaign.targets),
    )
    return campaign, len(campaign.targets)
