"""Secrets never reach a log: a filter masks bot tokens and configured secrets.

Telegram puts the token into every API and file URL (``/bot<id>:<token>/…``), and aiohttp
and aiogram errors quote those URLs, so a failed download or a refused connection would
print it. :func:`install` puts :class:`SecretFilter` on the root logger and runs it from
the log record factory too, so records of every logger, their arguments and their exception
text are masked before any handler (console, file, pytest's caplog) formats them.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable

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
