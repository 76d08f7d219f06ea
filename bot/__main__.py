"""`python -m bot …`: the command line, with a clear word when the dependencies are missing."""

import os
import sys

from bot import COMMAND

OURS = {"bot", "handlers", "forms", "scheduler", "exports", "storage", "roadmaps"}

try:
    from bot.cli import app
except ModuleNotFoundError as exc:
    if (exc.name or "").partition(".")[0] in OURS:
        raise
    args = " ".join(sys.argv[1:]) or "--help"
    sys.exit(
        f"Не установлены зависимости бота (нет модуля {exc.name}): этот Python — не из .venv.\n"
        f"Запустите команду так: {COMMAND} {args}\n"
        "Скрипт сам создаст .venv и установит зависимости."
    )

app(prog_name=os.environ.get("SHNOR_BOT_PROG") or "python -m bot")
