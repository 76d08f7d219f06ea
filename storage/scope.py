"""Who may see which schools: the one scope rule every coordinator command and button uses.

- director: their own school only (and never coordinator commands);
- municipal coordinator: the schools of their municipality;
- regional coordinator: the schools of their region (every school when no region is set);
- admin: every school.

A removed person (``people.removed_at``) sees nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Municipality, Person, Role, School

COORDINATOR_ROLES = (Role.MUNICIPAL, Role.REGIONAL, Role.ADMIN)


@dataclass(frozen=True, slots=True)
class Scope:
    role: str
    region_id: int | None = None
    municipality_id: int | None = None
    school_id: int | None = None
    removed: bool = False

    @classmethod
    def of(cls, person: Person) -> Scope:
        return cls(
            person.role,
            person.region_id,
            person.municipality_id,
            person.school_id,
            person.removed_at is not None,
        )

    @property
    def is_coordinator(self) -> bool:
        """May use coordinator commands: /status, review, broadcasts."""
        return self.role in COORDINATOR_ROLES and not self.removed

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN and not self.removed

    def school_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on ``School`` for the schools in scope (join-free for PostgreSQL
        and SQLite: the region goes through a sub-select of its municipalities)."""
        if self.removed:
            return false()
        if self.role == Role.ADMIN:
            return true()
        if self.role == Role.REGIONAL:
            if self.region_id is None:
                return true()
            return School.municipality_id.in_(
                select(Municipality.id).where(Municipality.region_id == self.region_id)
            )
        if self.role == Role.MUNICIPAL and self.municipality_id is not None:
            return School.municipality_id == self.municipality_id
        if self.role == Role.DIRECTOR and self.school_id is not None:
            return School.id == self.school_id
        return false()

    def municipality_clause(self) -> ColumnElement[bool]:
        """A WHERE clause on ``Municipality`` for the municipalities in scope."""
        if self.removed:
            return false()
        if self.role == Role.ADMIN or (self.role == Role.REGIONAL and self.region_id is None):
            return true()
        if self.role == Role.REGIONAL:
            return Municipality.region_id == self.region_id
        if self.role == Role.MUNICIPAL and self.municipality_id is not None:
            return Municipality.id == self.municipality_id
        return false()

    async def sees_school(self, session: AsyncSession, school_id: int | None) -> bool:
        if school_id is None:
            return False
        found = await session.scalar(
            select(School.id).where(School.id == school_id, self.school_clause())
        )
        return found is not None

    async def sees_municipality(self, session: AsyncSession, municipality_id: int | None) -> bool:
        if municipality_id is None:
            return False
        found = await session.scalar(
            select(Municipality.id).where(
                Municipality.id == municipality_id, self.municipality_clause()
            )
        )
        return found is not None

    async def schools(self, session: AsyncSession) -> list[School]:
        query = select(School).where(self.school_clause())
        return list(await session.scalars(query.order_by(School.municipality_id, School.name)))
