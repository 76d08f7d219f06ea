"""Admin operations on people: who is registered where, invites for new people, removing a
person, switching an account off, re-issuing a code. Shared by the CLI (bot/cli_people.py)
and the chat (handlers/admin_flow.py); every error is a Russian :class:`PeopleError` that
says what to do next, raised before anything is written."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import repo
from storage.admin import InviteRow
from storage.models import Account, Invite, Municipality, Person, Region, Role, School
from storage.school_cells import normalize_key

ROLE_NAMES = {
    Role.DIRECTOR: "директор",
    Role.MUNICIPAL: "муниципальный координатор",
    Role.REGIONAL: "региональный координатор",
    Role.ADMIN: "администратор",
}
PLATFORM_NAMES = {"tg": "Telegram", "vk": "VK", "max": "MAX", "console": "консоль"}
INVITE_ROLES = (Role.DIRECTOR, Role.MUNICIPAL, Role.REGIONAL)
LIST_HINT = "Список: python3 scripts/dev.py people list"


class PeopleError(ValueError):
    """A Russian message for the admin: what is wrong and what to do next."""


@dataclass(frozen=True, slots=True)
class AccountRow:
    id: int
    platform: str
    last_active_at: datetime | None
    deactivated: bool

    @property
    def platform_name(self) -> str:
        return PLATFORM_NAMES.get(self.platform, self.platform)


@dataclass(slots=True)
class PersonRow:
    id: int
    name: str
    role: str
    municipality_id: int | None
    municipality: str | None
    school: str | None
    region: str | None
    removed: bool
    accounts: list[AccountRow] = field(default_factory=list)

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    @property
    def place(self) -> str:
        """The school, the municipality or the region the person works for."""
        return self.school or self.municipality or self.region or "весь регион"

    @property
    def last_active(self) -> datetime | None:
        moments = [repo.as_utc(a.last_active_at) for a in self.accounts if a.last_active_at]
        return max(moments, default=None)


def _person_query():
    municipality_id = func.coalesce(School.municipality_id, Person.municipality_id)
    region_id = func.coalesce(Municipality.region_id, Person.region_id)
    return (
        select(Person, School.name, Municipality.id, Municipality.name, Region.name)
        .outerjoin(School, School.id == Person.school_id)
        .outerjoin(Municipality, Municipality.id == municipality_id)
        .outerjoin(Region, Region.id == region_id)
    )


async def _rows(session: AsyncSession, query) -> list[PersonRow]:
    rows: list[PersonRow] = []
    for person, school, municipality_id, municipality, region in await session.execute(query):
        rows.append(
            PersonRow(
                person.id,
                person.full_name or "без имени",
                person.role,
                municipality_id,
                municipality,
                school,
                region,
                person.removed_at is not None,
            )
        )
    if rows:
        by_id = {row.id: row for row in rows}
        accounts = await session.scalars(
            select(Account).where(Account.person_id.in_(list(by_id))).order_by(Account.id)
        )
        for account in accounts:
            by_id[account.person_id].accounts.append(
                AccountRow(
                    account.id,
                    account.platform,
                    account.last_active_at,
                    account.deactivated_at is not None,
                )
            )
    return rows


async def list_people(
    session: AsyncSession,
    municipality_id: int | None = None,
    *,
    region_level: bool = False,
    include_removed: bool = True,
) -> list[PersonRow]:
    """People ordered by municipality (region-level people first), role, school, name.
    ``municipality_id``: only that municipality; ``region_level``: only people of no
    municipality (regional coordinators, admins)."""
    query = _person_query()
    if municipality_id is not None:
        query = query.where(Municipality.id == municipality_id)
    elif region_level:
        query = query.where(Municipality.id.is_(None))
    if not include_removed:
        query = query.where(Person.removed_at.is_(None))
    query = query.order_by(
        Municipality.name.is_not(None), Municipality.name, Person.role, School.name, Person.id
    )
    return await _rows(session, query)


async def person_row(session: AsyncSession, person_id: int | None) -> PersonRow | None:
    if person_id is None:
        return None
    found = await _rows(session, _person_query().where(Person.id == person_id))
    return found[0] if found else None


async def municipality_counts(session: AsyncSession) -> list[tuple[int | None, str | None, int]]:
    """(municipality id, name, people not removed) with None first for region-level people;
    municipalities without people are listed too."""
    people = await list_people(session, include_removed=False)
    counts: dict[int | None, int] = {}
    for row in people:
        counts[row.municipality_id] = counts.get(row.municipality_id, 0) + 1
    municipalities = await session.execute(
        select(Municipality.id, Municipality.name).order_by(Municipality.name)
    )
    found: list[tuple[int | None, str | None, int]] = []
    if counts.get(None):
        found.append((None, None, counts[None]))
    found.extend((mid, name, counts.get(mid, 0)) for mid, name in municipalities)
    return found


async def find_municipality(session: AsyncSession, name: str) -> Municipality:
    wanted = normalize_key(name)
    found = [
        m for m in await session.scalars(select(Municipality)) if normalize_key(m.name) == wanted
    ]
    if len(found) != 1:
        raise PeopleError(
            f"Муниципалитет «{name.strip()}» не найден. Проверьте название, как в списке школ "
            "(столбец «Муниципалитет»)."
        )
    return found[0]


async def find_region(session: AsyncSession, name: str) -> Region:
    regions = list(await session.scalars(select(Region).order_by(Region.name)))
    wanted = normalize_key(name)
    found = next((r for r in regions if normalize_key(r.name) == wanted), None)
    if found is None:
        known = ", ".join(f"«{r.name}»" for r in regions) or "нет ни одного"
        raise PeopleError(f"Регион «{name.strip()}» не найден. В базе: {known}.")
    return found


# --- invites ------------------------------------------------------------------------------------


async def _new_invite(session: AsyncSession, **scope: int | str | None) -> Invite:
    code = repo.new_code()
    while await repo.code_taken(session, code):
        code = repo.new_code()
    invite = Invite(code=code, **scope)
    session.add(invite)
    await session.flush()
    return invite


async def add_person(
    session: AsyncSession,
    role: str,
    *,
    school_code: str | None = None,
    municipality: str | None = None,
    region: str | None = None,
    name: str | None = None,
    by: int | None = None,
) -> tuple[Invite, str]:
    """A new invite for one person: returns it and where it leads («школа …»). The person
    registers with the code (/start КОД); ``name`` is kept in the audit log."""
    if role not in INVITE_ROLES:
        raise PeopleError(
            f"Роль «{role}» не подходит. Укажите --role director, municipal или regional."
        )
    given = [o for o, v in (("--school", school_code), ("--municipality", municipality),
                            ("--region", region)) if v]  # fmt: skip
    wanted = {Role.DIRECTOR: "--school", Role.MUNICIPAL: "--municipality"}.get(role, "--region")
    if given != [wanted]:
        raise PeopleError(
            f"Для роли {role} укажите только {wanted} "
            f"({'код школы' if wanted == '--school' else 'название'})."
        )
    if role == Role.DIRECTOR:
        code = (school_code or "").strip()
        school = await session.scalar(select(School).where(School.code == code))
        if school is None:
            raise PeopleError(
                f"Школа с кодом «{code}» не найдена. Код — столбец «Код ОО» в списке школ."
            )
        found = await session.get(Municipality, school.municipality_id)
        scope = {"region_id": found.region_id, "municipality_id": found.id, "school_id": school.id}
        where = f"школа «{school.name}», {found.name}"
    elif role == Role.MUNICIPAL:
        found = await find_municipality(session, municipality or "")
        scope = {"region_id": found.region_id, "municipality_id": found.id}
        where = f"муниципалитет «{found.name}»"
    else:
        place = await find_region(session, region or "")
        scope = {"region_id": place.id}
        where = f"регион «{place.name}»"
    invite = await _new_invite(session, role=role, **scope)
    await repo.audit(session, "add_person", "invite", invite.id, by, role=role, name=name)
    return invite, where


async def issue_regional_invites(session: AsyncSession, reissue: bool = False) -> list[InviteRow]:
    """One live code per region for regional coordinators, kept like the others (bot/cli.py
    ``invites --regional``): unused ones are replaced only with ``reissue``."""
    rows: list[InviteRow] = []
    for region in await session.scalars(select(Region).order_by(Region.name)):
        invite = await session.scalar(
            select(Invite)
            .where(
                Invite.role == Role.REGIONAL,
                Invite.region_id == region.id,
                Invite.municipality_id.is_(None),
                Invite.revoked_at.is_(None),
            )
            .order_by(Invite.id.desc())
            .limit(1)
        )
        new = False
        if invite is not None and reissue and invite.used_at is None:
            invite.revoked_at = repo.utcnow()
            invite = None
        if invite is None:
            invite = await _new_invite(session, role=Role.REGIONAL, region_id=region.id)
            new = True
        rows.append(
            InviteRow(
                Role.REGIONAL, region.name, None, invite.code, invite.used_at is not None, new
            )
        )
    if any(r.new for r in rows):
        await repo.audit(
            session, "issue_regional_invites", "invite", None, None, new=sum(r.new for r in rows)
        )
    return rows


async def reissue(
    session: AsyncSession, id_or_code: str, now: datetime, by: int | None = None
) -> tuple[Invite, str]:
    """A new code instead of an unused one (the old is revoked), or for a registered person
    (by person number or by the code they used) a new invite with the same role and scope.
    Returns the new invite and what was done, in Russian."""
    text = id_or_code.strip()
    old = await repo.find_invite(session, text) if text else None
    person: Person | None = None
    if old is not None:
        if old.revoked_at is not None:
            raise PeopleError(
                f"Код {old.code} уже отозван. Возьмите действующий код из таблицы "
                "(python3 scripts/dev.py invites --out …) или создайте новый: people add …"
            )
        if old.used_at is None:
            invite = await _new_invite(
                session,
                role=old.role,
                region_id=old.region_id,
                municipality_id=old.municipality_id,
                school_id=old.school_id,
            )
            old.revoked_at = now
            await repo.audit(
                session, "reissue_invite", "invite", invite.id, by, old=old.code, new=invite.code
            )
            return invite, f"Код {old.code} отозван, вместо него выдан новый."
        account = await session.get(Account, old.used_by_account_id or -1)
        person = await session.get(Person, account.person_id) if account else None
    elif text.isdigit() and len(text) <= 18:
        person = await session.get(Person, int(text))
    if person is None:
        raise PeopleError(
            f"«{text}» — не код приглашения и не номер человека. Номера — в списке: {LIST_HINT}"
        )
    return await reissue_for_person(session, person.id, by=by)


async def reissue_for_person(
    session: AsyncSession, person_id: int, by: int | None = None
) -> tuple[Invite, str]:
    """A new invite with the person's role and scope (they lost their account, or a
    successor takes over): whoever registers with it gets the same place."""
    person = await session.get(Person, person_id)
    if person is None:
        raise PeopleError(f"Человек №{person_id} не найден. {LIST_HINT}")
    if person.removed_at is not None:
        raise PeopleError(
            f"Человек №{person.id} удалён из бота: новый код ему не выдаётся. Если нужно "
            "вернуть доступ, создайте приглашение: python3 scripts/dev.py people add …"
        )
    if person.role not in INVITE_ROLES:
        raise PeopleError(
            f"Человек №{person.id} — администратор: администраторы задаются в ADMINS, "
            "код приглашения им не нужен."
        )
    invite = await _new_invite(
        session,
        role=person.role,
        region_id=person.region_id,
        municipality_id=person.municipality_id if person.role != Role.REGIONAL else None,
        school_id=person.school_id if person.role == Role.DIRECTOR else None,
    )
    await repo.audit(
        session, "reissue_invite", "invite", invite.id, by, person=person.id, new=invite.code
    )
    return invite, f"Для человека №{person.id} выдан новый код с той же ролью."


# --- removing and switching off ---------------------------------------------------------------


async def remove_person(
    session: AsyncSession, person_id: int | None, now: datetime, by: int | None = None
) -> Person:
    """No access, no messages; the person's answers and history stay."""
    person = await session.get(Person, person_id) if person_id is not None else None
    if person is None:
        raise PeopleError(f"Человек №{person_id} не найден. {LIST_HINT}")
    if person.removed_at is not None:
        raise PeopleError(f"Человек №{person.id} уже удалён.")
    if by is not None and person.id == by:
        raise PeopleError("Себя удалить нельзя: попросите другого администратора.")
    person.removed_at = now
    await repo.audit(session, "remove_person", "person", person.id, by, role=person.role)
    return person


async def deactivate_account(
    session: AsyncSession, account_id: int | None, now: datetime, by: int | None = None
) -> Account:
    """The account gets «Доступ закрыт» for every message; the person's other accounts work."""
    account = await session.get(Account, account_id) if account_id is not None else None
    if account is None:
        raise PeopleError(
            f"Аккаунт №{account_id} не найден. Номера аккаунтов — в списке: {LIST_HINT}"
        )
    if account.deactivated_at is not None:
        raise PeopleError(f"Аккаунт №{account.id} уже отключён.")
    if by is not None and account.person_id == by:
        raise PeopleError("Свой аккаунт отключить нельзя: попросите другого администратора.")
    account.deactivated_at = now
    await repo.audit(
        session,
        "deactivate_account",
        "account",
        account.id,
        by,
        person=account.person_id,
        platform=account.platform,
    )
    return account
