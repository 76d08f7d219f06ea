"""`backup [--to DIR]` and `restore FILE [--force]`: see bot/backup.py.

Exit codes: 0 done; 1 the restore finished but does not match the copy (or a tool failed);
2 nothing was changed (a broken archive, a non-empty database without --force, bad settings).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from bot.cli_common import fail, settings_or_exit


def backup(
    to: Annotated[
        Path, typer.Option("--to", help="Папка для архива (по умолчанию backups).")
    ] = Path("backups"),
) -> None:
    """Резервная копия: база данных и документы в одном архиве .tar.gz с описью."""
    from bot import backup as engine

    settings = settings_or_exit()
    try:
        outcome = asyncio.run(engine.backup(settings.storage.url, settings.storage.files_dir, to))
    except engine.BackupError as exc:
        raise fail(str(exc), exc.code) from None
    typer.echo(
        f"Резервная копия готова: {outcome.archive} — таблиц {outcome.tables}, "
        f"строк {outcome.rows}, документов {outcome.files}."
    )


def restore(
    file: Annotated[Path, typer.Argument(help="Архив, сделанный командой backup.")],
    force: Annotated[
        bool, typer.Option("--force", help="Заменить непустую базу и папку документов.")
    ] = False,
) -> None:
    """Восстановить базу и документы из резервной копии и сверить их с описью."""
    from bot import backup as engine

    settings = settings_or_exit()
    try:
        outcome = asyncio.run(
            engine.restore(settings.storage.url, settings.storage.files_dir, file, force)
        )
    except engine.BackupError as exc:
        raise fail(str(exc), exc.code) from None
    typer.echo(
        f"Восстановлено из {file}: таблиц {outcome.tables}, строк {outcome.rows}, "
        f"документов {outcome.files}; всё совпадает с описью копии."
    )


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("restore")(restore)
