"""Crash test: directors walk the questionnaire while bot workers are SIGKILLed.

    python bench/crash.py                       # 500 directors, 20 kills, 2 workers
    python bench/crash.py --n 50 --kills 5 --workers 3 --seed 7
    python bench/crash.py --db postgresql+asyncpg://postgres@127.0.0.1:5432/test

Two or more real `python -m bot run` workers in webhook mode share a fresh PostgreSQL
database (created next to ``--db`` or TEST_POSTGRES_URL / DATABASE_URL, dropped at the
end); a local fake Bot API server takes their sends and a round-robin balancer POSTs the
updates. What is checked and how is in tests/crash_world.py. The last line is
``acked_lost=<N> dropped=<N> duplicates=<N> stuck=<N>``; the exit code is 1 unless all
four are 0 and no reminder was missed or delivered twice (the ``reminders:`` line).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.crash_world import run_crash

DEFAULT_DB = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="directors (default 500)")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs (default 20)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, ≥ 2")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the kills")
    parser.add_argument("--kill-interval", type=float, default=6.0, help="mean seconds")
    parser.add_argument("--steps", type=int, default=40, help="actions per director, at most")
    parser.add_argument(
        "--db",
        default=os.environ.get("TEST_POSTGRES_URL") or DEFAULT_DB,
        help="a PostgreSQL URL; the run uses a fresh database beside it",
    )
    args = parser.parse_args()
    if args.workers < 2:
        parser.error("--workers: two or more")
    figures = asyncio.run(
        run_crash(
            args.db,
            n=args.n,
            kills=args.kills,
            workers=args.workers,
            seed_value=args.seed,
            kill_interval=args.kill_interval,
            steps=args.steps,
            reply_timeout=180.0,
            drain_timeout=180.0,
        )
    )
    for line in figures.lines():
        print(line)
    bad = figures.acked_lost + figures.dropped + figures.duplicates + figures.stuck
    bad += figures.reminders_twice + figures.reminders_missed  # the reminders line above
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
