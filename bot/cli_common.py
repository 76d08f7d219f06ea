"""What every CLI module shares: settings (or a Russian error and exit 2), failing with a
message, reading a date."""

from __future__ import annotations

import logging
import os
from datetime import date
from pathlib import Path

import typer

from bot import logsafe
from bot.config import ENV_FILE, ConfigError, Settings, load_settings


def _log_format() -> str | None:
    """LOG_FORMAT from the environment, else from .env (read before the settings are)."""
    if "LOG_FORMAT" in os.environ:
        return os.environ["LOG_FORMAT"]
    if not Path(ENV_FILE).is_file():
        return None
    from dotenv import dotenv_values

    return dotenv_values(ENV_FILE).get("LOG_FORMAT")


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(
            f"{exc}\nИсправьте настройку в .env или в окружении и запустите снова.", err=True
        )
        raise typer.Exit(2) from None
    try:
        logsafe.configure(settings.app.log_level, _log_format())
    except ValueError as exc:
        typer.echo(
            f"LOG_FORMAT: неизвестный формат «{exc}», ожидается text или json.\n"
            "Исправьте настройку в .env или в окружении и запустите снова.",
            err=True,
        )
        raise typer.Exit(2) from None
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return settings


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


def parse_day(value: str, option: str) -> date:
    for parse in (date.fromisoformat, lambda v: date(*reversed([int(p) for p in v.split(".")]))):
        try:
            return parse(value)
        except (ValueError, TypeError, OverflowError):  # OverflowError: a 20-digit year
            continue
    raise fail(f"{option}: не удалось прочитать дату «{value}». Формат: ГГГГ-ММ-ДД.", 2)


class cli_session:
    """Migrated database session for one CLI command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self):
        from storage.database import create_engine, create_sessionmaker, upgrade

        await upgrade(self.settings.storage.url)
        self.engine = create_engine(self.settings.storage.url)
        self.session = create_sessionmaker(self.engine)()
        return self.session

    async def __aexit__(self, *exc) -> None:
        await self.session.close()
        await self.engine.dispose()
