"""Record every bundled form version in the database; a changed form must bump its version."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from forms.loader import form_checksum
from forms.schema import Form
from storage.models import FormVersion


class FormVersionConflict(Exception):
    pass


async def sync_forms(session: AsyncSession, forms: list[Form]) -> None:
    for form in forms:
        checksum = form_checksum(form)
        row = await session.scalar(
            select(FormVersion).where(
                FormVersion.form_id == form.id, FormVersion.version == form.version
            )
        )
        if row is None:
            session.add(
                FormVersion(
                    form_id=form.id,
                    version=form.version,
                    title=form.title,
                    checksum=checksum,
                    definition=form.model_dump(mode="json"),
                )
            )
        elif row.checksum != checksum:
            raise FormVersionConflict(
                f"form {form.id!r} version {form.version} differs from the one already used "
                "in the database: give the changed form a new version number"
            )
