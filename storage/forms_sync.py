"""Record every bundled form version in the database; a changed form must bump its version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.loader import form_checksum
from forms.schema import Form
from storage.database import dialect_insert
from storage.models import FormVersion, utcnow


class FormVersionConflict(Exception):
    pass


async def sync_forms(session: AsyncSession, forms: list[Form]) -> None:
    """Record the versions not yet recorded, and check that every recorded one is the bundled
    form. A missing one is inserted with ``ON CONFLICT DO NOTHING``: workers starting at once
    on a fresh database wait for each other's row instead of failing. A start with every
    version recorded only reads."""
    for form in forms:
        checksum = form_checksum(form)
        recorded = await _recorded_checksum(session, form)
        if recorded is None:
            await session.execute(
                dialect_insert(session, FormVersion)
                .values(
                    form_id=form.id,
                    version=form.version,
                    title=form.title,
                    checksum=checksum,
                    definition=form.model_dump(mode="json"),
                    loaded_at=utcnow(),
                )
                .on_conflict_do_nothing(index_elements=["form_id", "version"])
            )
            recorded = await _recorded_checksum(session, form)
        if recorded != checksum:
            raise FormVersionConflict(
                f"form {form.id!r} version {form.version} differs from the one already used "
                "in the database: give the changed form a new version number"
            )


async def _recorded_checksum(session: AsyncSession, form: Form) -> str | None:
    return await session.scalar(
        select(FormVersion.checksum).where(
            FormVersion.form_id == form.id, FormVersion.version == form.version
        )
    )
