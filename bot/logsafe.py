"""Secrets never reach a log: a filter masks bot tokens and configured secrets.

Telegram puts the token into every API and file URL (``/bot<id>:<token>/…``), and aiohttp
and aiogram errors quote those URLs, so a failed download or a refused connection would
print it. :func:`install` puts :class:`SecretFilter` on the root logger and runs it from
the log record factory too, so records of every logger, their arguments and their exception
text are masked before any handler (console, file, pytest's caplog) formats them.
"""

from __future__ import annotations

import json
import logging
import re
import traceback
from collections.abc import Iterable
from datetime import UTC, datetime

MASK = "***"
# bot<id>:<token> in URLs, and a bare <id>:<token> of BotFather's shape
_TOKEN_IN_URL = re.compile(r"bot(\d+):[A-Za-z0-9_-]+")
_BARE_TOKEN = re.compile(r"\b(\d{5,}):[A-Za-z0-9_-]{30,}")


class SecretFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for secret in secrets:
            if secret and len(secret) >= 4:
                self.secrets.add(secret)
                _, _, tail = secret.partition(":")
                if tail and len(tail) >= 4:
                    self.secrets.add(tail)  # the part after the id alone

    def mask(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        text = _TOKEN_IN_URL.sub(rf"bot\1:{MASK}", text)
        return _BARE_TOKEN.sub(rf"\1:{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_secrets_masked", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep what we can, masked
            message = f"{record.msg!r} {record.args!r}"
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        record._secrets_masked = True
        return True


_installed: SecretFilter | None = None


def install(secrets: Iterable[str] = ()) -> SecretFilter:
    """Mask tokens in every log record of this process (idempotent; adds ``secrets``)."""
    global _installed
    if _installed is not None:
        _installed.add(secrets)
        return _installed
    secret_filter = SecretFilter(secrets)
    logging.getLogger().addFilter(secret_filter)
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        secret_filter.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _installed = secret_filter
    return secret_filter


# --- the log format ----------------------------------------------------------------------------

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged too.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "_secrets_masked"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, message, extra fields, exc (if any)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _STANDARD and not name.startswith("_"):
                entry[name] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        line = json.dumps(entry, ensure_ascii=False)
        return _installed.mask(line) if _installed is not None else line


def configure(level: str, log_format: str | None) -> None:
    """The process's logging: human text (default) or ``json``; raises ValueError on an
    unknown format. Secrets are masked either way once :func:`install` ran (``run`` does)."""
    chosen = (log_format or "text").strip().lower()
    if chosen not in LOG_FORMATS:
        raise ValueError(chosen)
    root = logging.getLogger()
    if root.handlers:  # like logging.basicConfig: someone (pytest, an embedding app) owns it
        return
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if chosen == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level.upper())
    # vkbottle gives its logger a coloured console handler of its own unless it has one
    # already: this one, so its records reach the root handler alone, in our format.
    own = logging.getLogger("vkbottle")
    if not own.handlers:
        own.addHandler(logging.NullHandler())
