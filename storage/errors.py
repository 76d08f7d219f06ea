"""What of an error may be stored: its type and HTTP status, never its text.

Error texts of HTTP clients quote the URL, and Telegram's file URLs carry the bot token.
"""

from __future__ import annotations

# Bot API error classes (aiogram) by the HTTP status they stand for; matched by name so
# storage does not depend on a messenger library.
_STATUS_BY_CLASS = {
    "TelegramBadRequest": 400,
    "TelegramUnauthorizedError": 401,
    "TelegramForbiddenError": 403,
    "TelegramNotFound": 404,
    "TelegramConflictError": 409,
    "TelegramEntityTooLarge": 413,
    "TelegramRetryAfter": 429,
    "TelegramServerError": 500,
}


def http_status(exc: BaseException) -> int | None:
    for attribute in ("status", "status_code", "http_status"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int):
            return value
    for cls in type(exc).__mro__:
        if cls.__name__ in _STATUS_BY_CLASS:
            return _STATUS_BY_CLASS[cls.__name__]
    return None


def error_summary(exc: BaseException) -> str:
    """``"ClientResponseError (HTTP 404)"``, ``"TimeoutError"``."""
    status = http_status(exc)
    name = type(exc).__name__
    return f"{name} (HTTP {status})" if status is not None else name
