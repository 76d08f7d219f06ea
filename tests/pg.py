"""Throw-away PostgreSQL databases for tests; used only when TEST_POSTGRES_URL is set."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")
requires_postgres = pytest.mark.skipif(
    not POSTGRES_URL, reason="set TEST_POSTGRES_URL to run against PostgreSQL (CI does)"
)


def _plain(url) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


_template: str | None = None  # one migrated database per test session, copied for each test


async def _execute(sql: str) -> None:
    connection = await asyncpg.connect(_plain(make_url(POSTGRES_URL)))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


async def _migrated_template() -> str:
    """A database at the newest migration, made once; ``CREATE DATABASE … TEMPLATE`` copies
    it in a fraction of the time the migrations take."""
    global _template
    if _template is None:
        import asyncio

        from storage.database import upgrade_sync

        name = f"shnor_template_{uuid.uuid4().hex[:12]}"
        await _execute(f'CREATE DATABASE "{name}"')
        url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
        await asyncio.to_thread(upgrade_sync, url)
        _template = name
    return _template


def drop_template() -> None:
    """Called once at the end of the test session (tests/conftest.py)."""
    global _template
    if _template is not None and POSTGRES_URL:
        import asyncio

        asyncio.run(_execute(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)'))
        _template = None


@asynccontextmanager
async def temporary_database(migrated: bool = True) -> AsyncIterator[str]:
    """Create a database (at the newest migration, or empty), yield its SQLAlchemy URL, drop
    it afterwards."""
    assert POSTGRES_URL, "TEST_POSTGRES_URL is not set"
    admin = make_url(POSTGRES_URL)
    name = f"shnor_test_{uuid.uuid4().hex[:12]}"
    template = f' TEMPLATE "{await _migrated_template()}"' if migrated else ""
    await _execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        await _execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def settings_on_both_databases():
    """A module's ``settings`` fixture: each test runs on SQLite, and again on a throw-away
    PostgreSQL database when TEST_POSTGRES_URL is set. Use as
    ``settings = settings_on_both_databases()``."""
    from bot.config import load_settings

    @pytest.fixture(params=["sqlite", pytest.param("postgres", marks=requires_postgres)])
    async def settings(settings, request, monkeypatch):
        if request.param == "sqlite":
            yield settings
            return
        async with temporary_database() as url:
            monkeypatch.setenv("DATABASE_URL", url)
            yield load_settings(env_file=None)

    return settings
