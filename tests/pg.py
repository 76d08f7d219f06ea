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


@asynccontextmanager
async def temporary_database() -> AsyncIterator[str]:
    """Create an empty database, yield its SQLAlchemy URL, drop it afterwards."""
    assert POSTGRES_URL, "TEST_POSTGRES_URL is not set"
    admin = make_url(POSTGRES_URL)
    name = f"shnor_test_{uuid.uuid4().hex[:12]}"
    connection = await asyncpg.connect(_plain(admin))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        connection = await asyncpg.connect(_plain(admin))
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


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
