"""The crash test's checks: the database after the drain against what the fake Bot API
server delivered and what the balancer had accepted (tests/crash_world.py runs the world).

Definitions (all four are 0 on a good run):

* ``acked_lost``: an answer whose «✅ Сохранено» reply reached the director, but the answer
  with that value is not in ``answers``;
* ``dropped``: an update a worker accepted with HTTP 200 that has no inbox row, or whose row
  ended ``failed`` (given up, neither processed nor pending);
* ``duplicates``: a message the fake server delivered twice. Per chat and text, each
  delivery beyond the outbox rows with that text that were sent (by a Bot API call) or
  handed to a webhook answer is a second delivery (sent, then the process died before the
  sent mark was committed, then sent again; ``duplicates_after_kill`` counts those whose
  first delivery came from a worker killed within :data:`KILL_WINDOW_S` after it).
  Reminders: more «⏰» messages delivered to a chat than ``deliveries`` rows ``sent`` to it;
* ``stuck``: a chat with pending inbox events or unsent replies after the drain, or a
  director whose last action got no reply even after the drain.

Reminders: the campaign's deadline is today, REMINDER_OFFSETS=0 and REMINDER_TIME is the
minute ``reminder_in`` seconds after the start, so the first worker tick after that moment
(at a restart, or the minute tick) plans one reminder for every director registered before
it (the planner skips accounts newer than the moment, by design). ``reminders_missed``
counts delivery rows (not cancelled) whose «⏰» message never arrived, ``reminders_twice``
the «⏰» messages beyond the chat's rows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from storage.database import create_engine
from storage.models import (
    Account,
    Answer,
    Delivery,
    DeliveryStatus,
    InboxEvent,
    InboxStatus,
    OutboxMessage,
    OutboxStatus,
    Person,
    Response,
)
from tests.fake_bot_api import Sent

if TYPE_CHECKING:
    from tests.crash_world import Director, World

REMINDER_MARK = "⏰"
KILL_WINDOW_S = 1.0  # a reply delivered this long before its sender's SIGKILL may come again
# the fake server stamps a delivery when the request arrives; a request sent in the instant
# before the SIGKILL can arrive just after it (seen: 0.0001 s)
IN_FLIGHT_S = 0.05


def is_reminder(sent: Sent) -> bool:
    return sent.text.startswith(REMINDER_MARK)


@dataclass
class Figures:
    directors: int = 0
    workers: int = 0
    kills: int = 0
    elapsed: float = 0.0
    updates: int = 0
    refused: int = 0
    acked: int = 0
    acked_lost: int = 0
    dropped: int = 0
    failed: int = 0
    retried: int = 0
    duplicates: int = 0
    duplicate_replies: int = 0
    duplicates_after_kill: int = 0  # first delivered by a worker killed right after it
    unexplained: int = 0
    replies_sent: int = 0  # by a Bot API call
    replies_handed: int = 0  # in a webhook answer (bot/handover.py)
    stuck: int = 0
    unanswered: int = 0  # actions whose reply did not come within the reply timeout
    walk_errors: list[str] = field(default_factory=list)
    reminders_planned: int = 0
    reminders_sent: int = 0
    reminders_delivered: int = 0
    reminders_twice: int = 0
    reminders_missed: int = 0
    reminder_statuses: dict[str, int] = field(default_factory=dict)
    evidence: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"directors={self.directors} workers={self.workers} kills={self.kills} "
            f"elapsed={self.elapsed:.1f}s updates={self.updates} "
            f"({self.updates / max(self.elapsed, 0.001):.0f}/s) refused_posts={self.refused}",
            f"answers acknowledged={self.acked} lost={self.acked_lost}; inbox: "
            f"failed={self.failed} retried_after_kill={self.retried}",
            f"replies delivered twice={self.duplicate_replies} (first sent by a worker "
            f"killed < {KILL_WINDOW_S:.0f} s later: {self.duplicates_after_kill}) "
            f"unexplained_deliveries={self.unexplained} unanswered_actions={self.unanswered}",
            f"replies: by Bot API call={self.replies_sent} in webhook answers="
            f"{self.replies_handed}",
            f"reminders: planned={self.reminders_planned} sent={self.reminders_sent} "
            f"delivered={self.reminders_delivered} twice={self.reminders_twice} "
            f"missed={self.reminders_missed} statuses={self.reminder_statuses}",
            *(f"walk error: {e}" for e in self.walk_errors[:5]),
            *(f"evidence: {e}" for e in self.evidence[:10]),
            f"acked_lost={self.acked_lost} dropped={self.dropped} "
            f"duplicates={self.duplicates} stuck={self.stuck}",
        ]


async def check(url: str, world: World, directors: list[Director], figures: Figures) -> None:
    engine = create_engine(url)
    try:
        async with engine.connect() as db:
            await _check_answers(db, directors, figures)
            await _check_inbox(db, world, figures)
            await _check_replies(db, world, figures)
            await _check_stuck(db, world, directors, figures)
            await _check_reminders(db, world, figures)
    finally:
        await engine.dispose()
    figures.duplicates = figures.duplicate_replies + figures.reminders_twice


async def _check_answers(db, directors: list[Director], figures: Figures) -> None:
    rows = await db.execute(
        select(Account.chat_id, Answer.question_id, Answer.value)
        .join(Person, Person.id == Account.person_id)
        .join(Response, Response.school_id == Person.school_id)
        .join(Answer, Answer.response_id == Response.id)
        .where(Account.platform == "tg")
    )
    stored: dict[tuple[str, str], list[Any]] = {}
    for chat_id, question_id, value in rows.all():
        stored.setdefault((chat_id, question_id), []).append(value)
    for director in directors:
        for question_id, value in director.acked:
            figures.acked += 1
            values = stored.get((str(director.user_id), question_id), [])
            if not any(v == value or str(v) == str(value) for v in values):
                figures.acked_lost += 1
                figures.evidence.append(
                    f"acked but not stored: chat {director.user_id} {question_id}={value!r} "
                    f"(stored {values!r})"
                )


async def _check_inbox(db, world: World, figures: Figures) -> None:
    rows = (
        await db.execute(
            select(InboxEvent.event_key, InboxEvent.status, InboxEvent.attempts).where(
                InboxEvent.platform == "tg"
            )
        )
    ).all()
    by_key = {key: (status, attempts) for key, status, attempts in rows}
    figures.updates = len(world.accepted)
    for update_id in sorted(world.accepted):
        found = by_key.get(str(update_id))
        if found is None:
            figures.dropped += 1
            figures.evidence.append(f"accepted with 200 but not in the inbox: update {update_id}")
        elif found[0] == InboxStatus.FAILED:
            figures.dropped += 1
            figures.failed += 1
            figures.evidence.append(f"update {update_id} failed after {found[1]} attempts")
    figures.retried = sum(1 for _s, attempts in by_key.values() if attempts > 1)


async def _check_replies(db, world: World, figures: Figures) -> None:
    """Per chat and text: the messages delivered against the outbox rows sent (by a Bot
    API call, or handed to a webhook answer) with that text; each delivery beyond them is a
    duplicate."""
    rows = (
        await db.execute(
            select(
                OutboxMessage.inbox_id,
                OutboxMessage.chat_id,
                OutboxMessage.message,
                OutboxMessage.status,
            )
            .where(OutboxMessage.status.in_([OutboxStatus.SENT, OutboxStatus.HANDED]))
            .order_by(OutboxMessage.inbox_id, OutboxMessage.position, OutboxMessage.id)
        )
    ).all()
    recorded: Counter[tuple[int, str]] = Counter()
    answers: dict[int, tuple[int, list[str]]] = {}  # inbox id -> chat, texts joined in one
    for inbox_id, chat_id, message, status in rows:
        text = message.get("text") or message.get("caption") or ""
        if status == OutboxStatus.HANDED:
            figures.replies_handed += 1
            answers.setdefault(inbox_id, (int(chat_id), []))[1].append(text)
        else:
            figures.replies_sent += 1
            recorded[(int(chat_id), text)] += 1
    for chat_id, texts in answers.values():
        recorded[(chat_id, "\n\n".join(texts))] += 1  # one webhook answer (bot/handover.py)
    for chat_id, sent in world.api.by_chat.items():
        delivered: dict[str, list[Sent]] = {}
        for message in sent:
            if not is_reminder(message):
                delivered.setdefault(message.text, []).append(message)
        for text, copies in delivered.items():
            rows_of = recorded[(chat_id, text)]
            if not rows_of:
                figures.unexplained += len(copies)
                figures.evidence.append(f"delivered, no outbox row: {text[:60]!r}")
                continue
            extra = len(copies) - rows_of
            if extra <= 0:
                continue
            figures.duplicate_replies += extra
            first = copies[0]
            sender = int(first.token.rpartition("-W")[2] or -1)
            if any(
                w == sender and -IN_FLIGHT_S <= at - first.at < KILL_WINDOW_S
                for at, w in world.kills
            ):
                figures.duplicates_after_kill += extra
            resent = [f"{s.token[-2:]} {s.at - first.at:+.3f}s" for s in copies[1:]]
            near = [
                f"W{w} {at - first.at:+.3f}s" for at, w in world.kills if abs(at - first.at) < 5
            ]
            figures.evidence.append(
                f"delivered {len(copies)} times to chat {chat_id} ({rows_of} sent rows): "
                f"{text[:40]!r} first by {first.token[-2:]}, again by {resent}; "
                f"kills near the first: {near}"
            )


async def _check_stuck(db, world: World, directors: list[Director], figures: Figures) -> None:
    busy: set[str] = set()
    for model, status in ((InboxEvent, InboxStatus.PENDING), (OutboxMessage, OutboxStatus.PENDING)):
        rows = await db.execute(select(model.chat_id).where(model.status == status).distinct())
        busy.update(str(chat_id) for (chat_id,) in rows.all())
    for director in directors:
        if director.error:
            figures.walk_errors.append(f"chat {director.user_id}: {director.error}")
        if director.unanswered_at is not None:
            figures.unanswered += 1
            chat = world.api.by_chat.get(director.user_id, [])
            later = chat[director.unanswered_at :]
            figures.evidence.append(
                f"chat {director.user_id}: no fresh reply in {world.reply_timeout:.0f} s; "
                f"last messages {[s.text[:50] for s in chat[-4:]]}"
            )
            if not [s for s in later if not is_reminder(s)]:
                busy.add(str(director.user_id))
                figures.evidence.append(f"chat {director.user_id}: last action never answered")
    figures.stuck = len(busy)


async def _check_reminders(db, world: World, figures: Figures) -> None:
    """Each director has at most one delivery row (one campaign, offset 0): per chat, «⏰»
    messages beyond its rows were sent twice, rows without a message were missed."""
    rows = (await db.execute(select(Delivery.status, Account.chat_id).join(Account))).all()
    figures.reminders_planned = len(rows)
    figures.reminder_statuses = dict(Counter(str(status) for status, _chat in rows))
    figures.reminders_sent = sum(1 for status, _chat in rows if status == DeliveryStatus.SENT)
    due = Counter(int(chat) for status, chat in rows if status != DeliveryStatus.CANCELLED)
    delivered = Counter(
        chat for chat, sent in world.api.by_chat.items() for s in sent if is_reminder(s)
    )
    figures.reminders_delivered = sum(delivered.values())
    for chat in set(due) | set(delivered):
        extra = delivered[chat] - due[chat]
        if extra > 0:
            figures.reminders_twice += extra
            figures.evidence.append(f"reminder delivered {delivered[chat]}x to chat {chat}")
        elif extra < 0:
            figures.reminders_missed -= extra
