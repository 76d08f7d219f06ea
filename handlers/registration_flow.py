"""Registration: the bootstrap admin, /start with an invite code, the «registered as» texts.

Mixed into :class:`handlers.conversation.Conversation`, whose campaign offer it uses.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import render, texts
from handlers.types import Incoming, Outgoing, OutText
from handlers.walk_state import Turn
from storage import repo
from storage.models import (
    Account,
    Invite,
    Municipality,
    Person,
    Region,
    Role,
    School,
    utcnow,
)


class RegistrationFlow:
    async def _bootstrap_admin(self, session: AsyncSession, event: Incoming) -> Account | None:
        if (str(event.user.platform), event.user.user_id) not in self.config.admins:
            return None
        person = Person(role=Role.ADMIN, full_name=event.user.display_name)
        session.add(person)
        await session.flush()
        account = await _account_for(session, person, event)
        await repo.audit(session, "bootstrap_admin", "person", person.id, person.id)
        return account

    async def _register(self, session: AsyncSession, event: Incoming) -> list[Outgoing]:
        code = repo.normalize_code(event.args)
        invite = await repo.find_invite(session, code)
        if invite is None:
            return [OutText(texts.CODE_NOT_FOUND.format(code=render.shorten(event.args, 40)))]
        if invite.revoked_at is not None:
            return [OutText(texts.CODE_REVOKED)]
        if invite.used_at is not None:
            return [OutText(texts.CODE_USED)]
        person = Person(
            role=invite.role,
            full_name=event.user.display_name,
            region_id=invite.region_id,
            municipality_id=invite.municipality_id,
            school_id=invite.school_id,
        )
        if invite.school_id is not None:
            school = await session.get(School, invite.school_id)
            person.municipality_id = school.municipality_id
        session.add(person)
        await session.flush()
        account = await _account_for(session, person, event)
        invite.used_at = utcnow()
        invite.used_by_account_id = account.id
        await repo.audit(session, "register", "invite", invite.id, person.id, code=invite.code)
        state = await repo.get_state(session, account.id)
        turn = Turn(session, event, account, person, state)
        await self._offer_campaigns(
            turn, prefix=await self._registered_text(session, person, invite)
        )
        return turn.out

    async def _registered_text(self, session: AsyncSession, person: Person, invite: Invite) -> str:
        if person.role == Role.DIRECTOR:
            school = await session.get(School, person.school_id)
            municipality = await session.get(Municipality, school.municipality_id)
            return texts.REGISTERED_DIRECTOR.format(
                school=school.name, municipality=municipality.name
            )
        if person.role == Role.MUNICIPAL:
            municipality = await session.get(Municipality, person.municipality_id)
            return texts.REGISTERED_MUNICIPAL.format(municipality=municipality.name)
        if person.role == Role.REGIONAL:
            region = await session.get(Region, person.region_id) if person.region_id else None
            return texts.REGISTERED_REGIONAL.format(region=region.name if region else "")
        return texts.REGISTERED_ADMIN

    async def _scope_text(self, session: AsyncSession, person: Person) -> str:
        if person.role == Role.DIRECTOR and person.school_id:
            school = await session.get(School, person.school_id)
            municipality = await session.get(Municipality, school.municipality_id)
            return f"школа «{school.name}», {municipality.name}"
        if person.role == Role.MUNICIPAL and person.municipality_id:
            municipality = await session.get(Municipality, person.municipality_id)
            return f"муниципальный координатор, {municipality.name}"
        if person.role == Role.REGIONAL:
            return "региональный координатор"
        return "администратор"


async def _account_for(session: AsyncSession, person: Person, event: Incoming) -> Account:
    user = event.user
    return await repo.create_account(
        session, person, str(user.platform), user.user_id, user.chat_id, user.display_name
    )
