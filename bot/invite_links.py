"""Deep links for the invites workbook: one column per configured platform.

Telegram ``https://t.me/<bot>?start=<code>``, VK ``https://vk.me/<group>?ref=<code>`` (the
ref arrives in ``message.ref``, bot/vk/events.py), MAX ``https://max.ru/<bot>?start=<code>``
(bot/max/channel.py ``deep_link``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from urllib.parse import quote

from bot.config import Settings
from bot.max.channel import deep_link as max_deep_link

log = logging.getLogger(__name__)

# t.me names: 5-32 of A-Z a-z 0-9 _; VK short names and MAX bot names: letters, digits, _ .
_TELEGRAM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,31}")
_SHORT_NAME = re.compile(r"[A-Za-z0-9_.]{2,64}")

LinkColumn = tuple[str, Callable[[str], str]]


class BadName(ValueError):
    """A Russian message for the user: which option, what value, what is expected."""


def _check(option: str, value: str, pattern: re.Pattern[str], example: str) -> str:
    value = value.strip().lstrip("@")
    if not pattern.fullmatch(value):
        raise BadName(
            f"{option}: «{value}» — не похоже на имя, ожидаются латинские буквы, цифры и _, "
            f"например {example}."
        )
    return value


def columns(telegram: str | None, vk_group: str | None, max_bot: str | None) -> list[LinkColumn]:
    """The link columns for the platforms given; raises :class:`BadName`."""
    found: list[LinkColumn] = []
    if telegram:
        name = _check("--bot-username", telegram, _TELEGRAM_NAME, "shnor_bot")
        found.append(("Ссылка Telegram", lambda code: f"https://t.me/{name}?start={code}"))
    if vk_group:
        group = _check("--vk-group", vk_group, _SHORT_NAME, "club123456 или shnor_monitoring")
        found.append(
            ("Ссылка VK", lambda code: f"https://vk.me/{group}?ref={quote(code, safe='')}")
        )
    if max_bot:
        bot = _check("--max-bot", max_bot, _SHORT_NAME, "shnor_bot")
        found.append(("Ссылка MAX", lambda code: max_deep_link(bot, code)))
    return found


def vk_group_from(settings: Settings) -> str | None:
    group_id = settings.vk.group_id
    return f"club{group_id}" if group_id else None


async def max_bot_name(settings: Settings) -> str | None:
    """The MAX bot's username from ``GET /me`` when MAX_TOKEN is set (links are optional)."""
    if settings.max.token is None:
        return None
    from bot.max.api import MaxApi

    api = MaxApi(
        settings.max.token.get_secret_value(), settings.max.api_url, ca_file=settings.max.ca_file
    )
    try:
        me = await api.call("GET", "/me")
        return str(me.get("username") or "") or None
    except Exception as exc:  # no network, wrong token
        log.warning("could not ask MAX for the bot name: %s", exc)
        return None
    finally:
        await api.close()
