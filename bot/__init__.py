"""Adapters and wiring: Telegram, the console, settings, the command line."""

# How the README starts every command: it sets up .venv and runs `python -m bot …` there.
COMMAND = "python3 scripts/dev.py"
