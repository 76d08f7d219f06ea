"""What every CLI module shares: settings (or a Russian error and exit 2), failing with a
message, reading a date."""

from __future__ import annotations

import logging
from datetime import date

import typer

from bot.config import ConfigError, Settings, load_settings


def settings_or_exit() -> Settings:
    try:
        settings = load_settings()
    except ConfigError as exc:
        typer.echo(
            f"{exc}\nИсправьте настройку в .env или в окружении и запустите снова.", err=True
        )
        raise typer.Exit(2) from None
    logging.basicConfig(
        level=settings.app.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
