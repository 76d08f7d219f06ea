"""Every bundled form version is recorded once, whoever starts first: two workers starting
at once on a fresh database (the compose replicas do) must both come up."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from forms.loader import load_bundled
from storage.database import create_engine, create_sessionmaker
from storage.forms_sync import FormVersionConflict, sync_forms
from storage.models import FormVersion
from tests.pg import requires_postgres, temporary_database
from tests.reminder_helpers import sqlite_db


async def versions(sessions) -> list[tuple[str, int]]:
    async with sessions() as session:
        rows = await session.execute(
            select(FormVersion.form_id, FormVersion.version, func.count())
            .group_by(FormVersion.form_id, FormVersion.version)
            .order_by(FormVersion.form_id, FormVersion.version)
        )
        return [(form_id, version) for form_id, version, n in rows if n == 1]


@requires_postgres
async def test_two_workers_recording_the_forms_at_once_both_start() -> None:
    forms = list(load_bundled().values())
    async with temporary_database() as url:
        engine = create_engine(url)
        sessions = create_sessionmaker(engine)
        try:
            async with sessions() as first, sessions() as second:
                await sync_forms(first, forms)  # recorded, not yet committed

                async def the_other_worker() -> None:
                    await sync_forms(second, forms)
                    await second.commit()

                other = asyncio.create_task(the_other_worker())
                await asyncio.sleep(0.3)  # the other one waits for the first's rows
                await first.commit()
                await asyncio.wait_for(other, 10)  # and starts too
            assert await versions(sessions) == sorted((f.id, f.version) for f in forms)
        finally:
            await engine.dispose()


async def test_a_changed_form_under_a_used_version_is_refused(tmp_path) -> None:
    forms = list(load_bundled().values())
    _, engine, sessions = await sqlite_db(tmp_path)
    try:
        async with sessions() as session:
            await sync_forms(session, forms)
            await session.commit()
        changed = forms[0].model_copy(update={"title": forms[0].title + " (изменена)"})
        async with sessions() as session:
            with pytest.raises(FormVersionConflict, match="new version number"):
                await sync_forms(session, [changed])
        async with sessions() as session:
            await sync_forms(session, forms)  # the same forms again: nothing to do
            await session.commit()
        assert await versions(sessions) == sorted((f.id, f.version) for f in forms)
    finally:
        await engine.dispose()
