"""The hot path's database work: how many SQL statements one director's update costs through
the real intake (inbox -> processor -> Conversation -> outbox -> send), and that the answers
kept in memory are what the database holds."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import event, select

from storage.models import Answer
from tests.walk import started

# Before the hot-path work a typed answer cost 30 here; bench/load.py has the figures.
MAX_STATEMENTS_PER_ANSWER = 18  # with the two of the harness's final look at the queue


@contextlib.contextmanager
def statements(engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_a_typed_answer_costs_few_statements(services, region):
    _harness, user = await started(services, region)
    with statements(services.engine) as seen:
        await user.send("20")  # teachers_total, the first question
    user.expect("Сохранено")
    assert len(seen) <= MAX_STATEMENTS_PER_ANSWER, "\n".join(seen)
    # the account, person and state come in one query; nothing is read twice
    assert sum("FROM accounts" in s for s in seen) == 1, "\n".join(seen)
    assert sum("FROM answers" in s for s in seen) == 1, "\n".join(seen)


async def test_answers_kept_in_memory_match_the_database(services, region):
    _harness, user = await started(services, region)
    for value in ("20", "5", "5"):
        await user.send(value)
    await user.click("◀ Назад")
    await user.send("6")  # change an answer already given: an update, not a second row
    async with services.sessions() as session:
        rows = list(await session.scalars(select(Answer).order_by(Answer.question_id)))
    assert sorted(r.value for r in rows) == [5, 6, 20]
    user.expect("Сохранено")
