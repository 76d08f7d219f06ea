"""/link: one person on several platforms (Telegram, VK, MAX).

* ``/link`` on a platform where the person is registered gives a one-time code (the
  invite alphabet, valid :data:`CODE_TTL`, single use) and the «Получать напоминания: …»
  buttons once more than one platform is linked;
* ``/link КОД`` (or ``/start КОД`` from a deep link, while not registered there) on another
  platform binds that platform's account to the same person. Wrong codes are counted per
  platform user: after :data:`MAX_FAILURES` within :data:`FAILURE_WINDOW` every try is
  refused until the window passes.

The conversation state stays per account; :func:`storage.repo.person_state` brings it up to
the person's latest place on any platform, so a walk continues where it was left.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from handlers import callbacks as cb
from handlers import render, texts
from handlers.types import Button, Incoming, Outgoing, OutText, Platform
from handlers.walk_state import Turn
from storage import repo
from storage.models import Account, LinkCode, Person


class Conversation(Protocol):
    """What the flow uses of handlers.conversation.Conversation (no import: no cycle)."""

    clock: Callable[[], datetime]

    async def _register(self, session: AsyncSession, event: Incoming) -> list[Outgoing]: ...

    async def _scope_text(self, session: AsyncSession, person: Person) -> str: ...


ACTION = "lk"  # lk|<platform> or lk|last: where reminders go
LAST = "last"
CODE_TTL = timedelta(minutes=15)
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)


def platform_name(platform: str) -> str:
    return texts.PLATFORM_NAMES.get(platform, platform)


def touch(account: Account, now: datetime, linked: bool = True) -> None:
    """Record the last activity: reminders go to the platform used last. It only matters
    between a person's accounts, so a person on one platform is written once, not on every
    answer (the hot path)."""
    if linked or account.last_active_at is None:
        account.last_active_at = now


# --- registered: /link and /link КОД ---------------------------------------------------------


async def command(core: Conversation, turn: Turn, args: str) -> None:
    if args.strip():
        turn.out.extend(await _bind(core, turn.session, turn.event, turn.account))
        return
    now = core.clock()
    link = await repo.issue_link_code(turn.session, turn.account, now, now + CODE_TTL)
    await repo.audit(
        turn.session, "link_code", "person", turn.person.id, turn.person.id, account=turn.account.id
    )
    minutes = int(CODE_TTL.total_seconds() // 60)
    lines = [texts.LINK_CODE.format(code=link.code, minutes=minutes)]
    lines.extend(await _notify_lines(turn.session, turn.person))
    buttons = await _notify_buttons(turn.session, turn.person)
    turn.say("\n\n".join(lines), buttons)


async def _platforms(session: AsyncSession, person: Person) -> list[str]:
    found = []
    for account in await repo.accounts_of(session, person.id):
        if account.platform not in found and account.platform != Platform.CONSOLE:
            found.append(account.platform)
    return found


async def _notify_lines(session: AsyncSession, person: Person) -> list[str]:
    platforms = await _platforms(session, person)
    if len(platforms) < 2:
        return []
    linked = texts.LINK_LINKED.format(platforms=", ".join(platform_name(p) for p in platforms))
    if person.notify_platform in platforms:
        choice = texts.LINK_NOTIFY_CHOSEN.format(platform=platform_name(person.notify_platform))
    else:
        choice = texts.LINK_NOTIFY_LAST
    return [f"{linked} {choice}"]


async def _notify_buttons(session: AsyncSession, person: Person) -> list[list[Button]]:
    platforms = await _platforms(session, person)
    if len(platforms) < 2:
        return []
    rows = [
        [Button(texts.BTN_NOTIFY.format(platform=platform_name(p)), cb.encode(ACTION, p))]
        for p in platforms
    ]
    rows.append([Button(texts.BTN_NOTIFY_LAST, cb.encode(ACTION, LAST))])
    return rows


async def button(core: Conversation, turn: Turn, payload: cb.Payload) -> None:
    choice = payload.str_arg(0) or ""
    person = turn.person
    if choice == LAST:
        person.notify_platform = None
        message = texts.LINK_NOTIFY_SET_LAST
    elif choice in await _platforms(turn.session, person):
        person.notify_platform = choice
        message = texts.LINK_NOTIFY_SET.format(platform=platform_name(choice))
    else:
        name = platform_name(choice) if choice in texts.PLATFORM_NAMES else "Этот мессенджер"
        turn.say(texts.LINK_NOTIFY_NOT_LINKED.format(platform=name))
        return
    await repo.audit(
        turn.session, "notify_platform", "person", person.id, person.id, platform=choice
    )
    turn.say(message)


# --- not registered here: /link КОД, /start КОД -----------------------------------------------


def wants_link(event: Incoming) -> bool:
    return event.command == "link"


async def unregistered(
    core: Conversation, session: AsyncSession, event: Incoming
) -> list[Outgoing]:
    """``/link [КОД]`` or ``/start КОД`` from a platform user with no account yet."""
    if event.command == "link":
        if not event.args.strip():
            return [OutText(texts.LINK_NEEDS_CODE)]
        return await _bind(core, session, event, None)
    refused = await _rate_limited(core, session, event)
    if refused is not None:
        return refused
    code = repo.normalize_code(event.args)
    if await repo.find_invite(session, code) is not None:
        return await core._register(session, event)
    if await repo.find_link_code(session, code) is not None:
        return await _bind(core, session, event, None)
    _fail(core, session, event)
    return [OutText(texts.CODE_NOT_FOUND.format(code=render.shorten(event.args, 40)))]


async def is_link_code(session: AsyncSession, args: str) -> bool:
    return bool(args.strip()) and await repo.find_link_code(session, args) is not None


async def _rate_limited(
    core: Conversation, session: AsyncSession, event: Incoming
) -> list[Outgoing] | None:
    since = core.clock() - FAILURE_WINDOW
    user = event.user
    failures = await repo.link_failures_since(session, str(user.platform), user.user_id, since)
    if failures >= MAX_FAILURES:
        minutes = int(FAILURE_WINDOW.total_seconds() // 60)
        return [OutText(texts.LINK_TOO_MANY.format(minutes=minutes))]
    return None


def _fail(core: Conversation, session: AsyncSession, event: Incoming) -> None:
    repo.record_link_failure(session, str(event.user.platform), event.user.user_id, core.clock())


async def _bind(
    core: Conversation, session: AsyncSession, event: Incoming, account: Account | None
) -> list[Outgoing]:
    refused = await _rate_limited(core, session, event)
    if refused is not None:
        return refused
    platform = str(event.user.platform)
    link = await repo.find_link_code(session, event.args)
    refusal = _refusal(core, link, event)
    if refusal is not None:
        _fail(core, session, event)
        return [OutText(refusal)]
    assert link is not None
    issuer = await session.get(Account, link.account_id)
    if issuer is not None and issuer.platform == platform:
        return [OutText(texts.LINK_SAME_PLATFORM.format(platform=platform_name(platform)))]
    if account is not None and account.person_id == link.person_id:
        return [OutText(texts.LINK_ALREADY_YOURS)]
    if account is not None:
        return [OutText(texts.LINK_OTHER_PERSON.format(platform=platform_name(platform)))]
    person = await session.get(Person, link.person_id)
    user = event.user
    account = await repo.create_account(
        session, person, platform, user.user_id, user.chat_id, user.display_name
    )
    now = core.clock()
    touch(account, now)
    link.used_at = now
    link.used_by_account_id = account.id
    await repo.audit(
        session,
        "link",
        "account",
        account.id,
        person.id,
        platform=platform,
        platform_user_id=user.user_id,
        code=link.id,
        issued_by_account=link.account_id,
    )
    await repo.person_state(session, account)
    scope = await core._scope_text(session, person)
    text = texts.LINK_DONE.format(platform=platform_name(platform), scope=scope)
    return [OutText(text, [[Button(texts.BTN_RESUME, cb.encode(cb.Action.START))]])]


def _refusal(core: Conversation, link: LinkCode | None, event: Incoming) -> str | None:
    minutes = int(CODE_TTL.total_seconds() // 60)
    if link is None:
        return texts.LINK_NOT_FOUND.format(code=render.shorten(event.args.strip(), 40))
    if link.used_at is not None:
        return texts.LINK_USED
    if repo.as_utc(link.expires_at) <= core.clock():
        return texts.LINK_EXPIRED.format(minutes=minutes)
    return None
