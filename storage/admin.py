"""Admin operations behind the CLI: importing schools, issuing invites, managing campaigns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from forms.schema import Form
from storage import repo, review
from storage.models import (
    SENT_STATUSES,
    Campaign,
    CampaignTarget,
    Delivery,
    DeliveryStatus,
    Invite,
    Municipality,
    Response,
    ResponseStatus,
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


LIST_HINT = "Список: python3 scripts/dev.py campaign list"
NAMES_SHOWN = 5


async def open_campaign(
    session: AsyncSession,
    form: Form,
    deadline: date,
    opens_on: date,
    title: str | None = None,
    municipality_names: list[str] | None = None,
    only: str | None = None,
    force: bool = False,
) -> tuple[Campaign, int]:
    """Open a form for every matching school (or municipality); returns the campaign and
    how many respondents it targets.

    Respondents that already have an open campaign of the same form are refused unless
    ``force``: every director would otherwise get two identical choices.
    """
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
    names: dict[str, str] = {}  # respondent key → school or municipality name
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
        for school in await session.scalars(query.order_by(School.name)):
            key = respondent_key(school.id, None)
            names[key] = school.name
            campaign.targets.append(
                CampaignTarget(
                    respondent_key=key,
                    school_id=school.id,
                    municipality_id=school.municipality_id,
                )
            )
    else:
        for municipality in chosen:
            key = respondent_key(None, municipality.id)
            names[key] = municipality.name
            campaign.targets.append(
                CampaignTarget(respondent_key=key, municipality_id=municipality.id)
            )
    if not campaign.targets:
        raise CampaignError(
            "Анкету некому открыть: нет подходящих школ. Сначала загрузите список: "
            "python3 scripts/dev.py import-schools ФАЙЛ.xlsx --region «Название региона»"
        )
    duplicates = await _open_with_form(session, form.id, list(names))
    if duplicates and not force:
        raise CampaignError(_duplicates_text(form, duplicates, names))
    session.add(campaign)
    await session.flush()
    extra = (
        {"force": True, "duplicates": {str(c.id): len(keys) for c, keys in duplicates}}
        if duplicates
        else {}
    )
    await repo.audit(
        session,
        "open_campaign",
        "campaign",
        campaign.id,
        None,
        form=form.id,
        version=form.version,
        targets=len(campaign.targets),
        **extra,
    )
    return campaign, len(campaign.targets)


async def _open_with_form(
    session: AsyncSession, form_id: str, keys: list[str]
) -> list[tuple[Campaign, list[str]]]:
    """Open campaigns of this form that already target some of ``keys``, with those keys."""
    wanted = set(keys)
    rows = await session.execute(
        select(Campaign, CampaignTarget.respondent_key)
        .join(CampaignTarget, CampaignTarget.campaign_id == Campaign.id)
        .where(Campaign.form_id == form_id, Campaign.closed_at.is_(None))
        .order_by(Campaign.id)
    )
    found: dict[int, tuple[Campaign, list[str]]] = {}
    for campaign, key in rows:
        if key in wanted:
            found.setdefault(campaign.id, (campaign, []))[1].append(key)
    return list(found.values())


def _duplicates_text(
    form: Form, duplicates: list[tuple[Campaign, list[str]]], names: dict[str, str]
) -> str:
    whom = "школ" if form.respondent == "school" else "муниципалитетов"
    lines = [f"Анкета «{form.title}» уже открыта для части участников:"]
    for campaign, keys in duplicates:
        shown = sorted(names[k] for k in keys)
        listed = ", ".join(shown[:NAMES_SHOWN])
        if len(shown) > NAMES_SHOWN:
            listed += f" и ещё {len(shown) - NAMES_SHOWN}"
        lines.append(
            f"  №{campaign.id} «{campaign.title}» (срок до {campaign.deadline:%d.%m.%Y}) — "
            f"{whom}: {len(keys)} ({listed})."
        )
    first = duplicates[0][0].id
    lines.append(
        "Новое анкетирование не открыто. Закройте прежнее (python3 scripts/dev.py campaign "
        f"close {first}) или, если второй сбор действительно нужен, повторите с --force."
    )
    return "\n".join(lines)


# --- managing an open campaign ----------------------------------------------------------------


async def find_campaign(session: AsyncSession, campaign_id: int, *, open_only: bool) -> Campaign:
    campaign = await session.get(Campaign, campaign_id)
    if campaign is None:
        raise CampaignError(f"Анкетирование №{campaign_id} не найдено. {LIST_HINT}")
    if open_only and campaign.closed_at is not None:
        raise CampaignError(
            f"Анкетирование №{campaign_id} «{campaign.title}» закрыто: менять его нельзя. "
            "Если сбор нужно продолжить, откройте новое: python3 scripts/dev.py campaign open …"
        )
    return campaign


async def _cancel_reminders(session: AsyncSession, campaign_id: int, keep: date | None) -> int:
    """Cancel the campaign's planned reminders (all, or those not about ``keep``)."""
    query = update(Delivery).where(
        Delivery.campaign_id == campaign_id, Delivery.status == DeliveryStatus.PENDING
    )
    if keep is not None:
        query = query.where(Delivery.due_on != keep)
    result = await session.execute(
        query.values(status=DeliveryStatus.CANCELLED).execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


async def close_campaign(
    session: AsyncSession, campaign_id: int, *, by: int | None = None
) -> Campaign:
    """No more answers, submits or reminders; the answers stay for the export. ``by``: the
    admin's person id when done in chat (the command line has none)."""
    campaign = await session.get(Campaign, campaign_id)
    if campaign is not None and campaign.closed_at is not None:
        raise CampaignError(f"Анкетирование №{campaign_id} «{campaign.title}» уже закрыто.")
    campaign = await find_campaign(session, campaign_id, open_only=True)
    campaign.closed_at = utcnow()
    cancelled = await _cancel_reminders(session, campaign.id, None)
    await repo.audit(
        session, "close_campaign", "campaign", campaign.id, by, reminders_cancelled=cancelled
    )
    return campaign


async def extend_campaign(
    session: AsyncSession, campaign_id: int, deadline: date, today: date, *, by: int | None = None
) -> tuple[Campaign, date]:
    """A new deadline (not in the past); returns the campaign and its old deadline."""
    campaign = await find_campaign(session, campaign_id, open_only=True)
    if deadline < today:
        raise CampaignError(
            f"Дата {deadline:%d.%m.%Y} уже прошла. Укажите новый срок не раньше сегодняшнего "
            f"дня ({today:%d.%m.%Y}) в формате ГГГГ-ММ-ДД."
        )
    if deadline < campaign.opens_on:
        raise CampaignError(
            f"Срок раньше даты открытия анкетирования ({campaign.opens_on:%d.%m.%Y}). "
            "Укажите более позднюю дату."
        )
    if deadline == campaign.deadline:
        raise CampaignError(f"Срок уже {deadline:%d.%m.%Y}: менять нечего.")
    old = campaign.deadline
    campaign.deadline = deadline
    await _cancel_reminders(session, campaign.id, deadline)
    await repo.audit(
        session,
        "extend_campaign",
        "campaign",
        campaign.id,
        by,
        old=old.isoformat(),
        new=deadline.isoformat(),
    )
    return campaign, old


async def reopen_response(
    session: AsyncSession, campaign_id: int, school_code: str, *, by: int | None = None
) -> tuple[Campaign, School, Response]:
    """Return one school's submitted response for editing (status «returned»)."""
    campaign = await find_campaign(session, campaign_id, open_only=True)
    code = school_code.strip()
    school = await session.scalar(select(School).where(School.code == code))
    if school is None:
        raise CampaignError(
            f"Школа с кодом «{code}» не найдена. Код — столбец «Код ОО» в списке школ."
        )
    key = respondent_key(school.id, None)
    targeted = await session.scalar(
        select(CampaignTarget.id).where(
            CampaignTarget.campaign_id == campaign.id, CampaignTarget.respondent_key == key
        )
    )
    if targeted is None:
        raise CampaignError(
            f"Школа «{school.name}» не участвует в анкетировании №{campaign.id}. {LIST_HINT}"
        )
    response = await repo.find_response(session, campaign.id, key)
    if response is None or response.status == ResponseStatus.DRAFT:
        raise CampaignError(
            f"Анкета школы «{school.name}» ещё не отправлена: школа может менять ответы сама."
        )
    if response.status not in SENT_STATUSES:
        raise CampaignError(f"Анкета школы «{school.name}» уже открыта для исправлений.")
    old = response.status
    await review.move(
        session, response, ResponseStatus.RETURNED, by, utcnow(), comment="campaign reopen"
    )
    await repo.audit(
        session, "reopen_response", "response", response.id, by, campaign=campaign.id, old=old
    )
    return campaign, school, response
