"""The crash test, small, in CI: 20 directors walk the questionnaire through the fake Bot
API while two `python -m bot run` webhook workers on one PostgreSQL database are SIGKILLed
three times and restarted (tests/crash_world.py has the definitions; bench/crash.py is the
big run)."""

from __future__ import annotations

import pytest

from tests.crash_world import run_crash
from tests.pg import POSTGRES_URL, requires_postgres


@requires_postgres
async def test_kills_lose_nothing_repeat_nothing_and_leave_nothing_stuck(tmp_path):
    assert POSTGRES_URL
    figures = await run_crash(
        POSTGRES_URL,
        n=20,
        kills=3,
        workers=2,
        seed_value=11,
        kill_interval=1.0,
        steps=12,
        reply_timeout=60,
        # a reminder claimed by a killed worker is taken back after REMINDER_CLAIM_TIMEOUT
        # (20 s) at the next minute's tick: the drain waits for that too
        drain_timeout=100,
        reminder_in=30,
        folder=tmp_path,
    )
    report = "\n".join(figures.lines())
    assert figures.kills == 3, report
    assert figures.acked > 20, report  # the directors did walk, and were acknowledged
    assert not figures.walk_errors, report
    assert figures.acked_lost == 0, report
    assert figures.dropped == 0, report
    assert figures.stuck == 0, report
    assert figures.reminders_twice == 0 and figures.reminders_missed == 0, report
    # a reply delivered twice for any other reason than its sender's death is a bug
    assert figures.duplicate_replies == figures.duplicates_after_kill, report
    # the replies ride in the webhook answers (bot/handover.py): exactly once
    assert figures.replies_handed > figures.replies_sent, report
    if figures.duplicates_after_kill:
        # Known: a reply sent by a Bot API call (not fitting one answer, or its request gone)
        # and delivered just before SIGKILL, before its sent mark was committed, is sent
        # again by the next worker: Telegram has no idempotency key.
        pytest.xfail(f"replies delivered twice after SIGKILL:\n{report}")
    assert figures.duplicates == 0, report
