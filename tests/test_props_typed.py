"""Random typed lines and commands with random arguments, through the real Telegram intake,
from a director in the middle of the questionnaire and from a municipal coordinator
(issue 11 §4): every one gets a Russian reply, never a crash. A typed line may be a real
answer, so rows may be written here; the property is «no crash, a Russian reply»."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.pg import settings_on_both_databases
from tests.props_state import assert_no_crash, snapshot
from tests.walk import harness_for, registered

COMMANDS = [
    "start",
    "resume",
    "continue",
    "review",
    "help",
    "deadlines",
    "export",
    "link",
    "status",
    "notify",
    "check",
    "history",
    "people",
    "broadcast",
    "nosuchcommand",
]
ARGS = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["done", "готово", "done 1", "done 99999999999999999999", "done ١", "all"]),
    st.integers().map(str),
    st.sampled_from(["each", "digest", "off", "tg", "vk", "max", "last", "*", "ABC123"]),
)
LINES = st.one_of(
    st.tuples(st.sampled_from(COMMANDS), ARGS).map(lambda t: f"/{t[0]} {t[1]}".strip()),
    st.text(min_size=1, max_size=120).filter(str.strip),
    st.sampled_from(["отмена", "Начать", "да", "нет", "0", "-1", "1 000", "9" * 30, "1,5"]),
)


# on PostgreSQL too: an id that fits 64 bits may not fit a 32-bit column there
settings = settings_on_both_databases()


@pytest.fixture
async def people(services, region):
    harness = harness_for(services)
    director = await registered(harness, region, "S1", 1001)
    await director.click("▶ Начать заполнение")
    coordinator = harness.user(2001, "Ольга")
    await coordinator.send(f"/start {region.codes['Северный район']}")
    coordinator.expect("Северный район")
    return harness, {"director": director, "coordinator": coordinator}


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(who=st.sampled_from(["director", "coordinator"]), line=LINES)
async def test_a_random_line_gets_a_russian_reply_never_a_crash(services, people, who, line):
    _harness, by_role = people
    user = by_role[who]
    before = await snapshot(services.sessions)
    await user.send(line)
    texts = await assert_no_crash(services.sessions, before)
    assert texts and user.texts(), (who, line)


@pytest.fixture
async def at_documents(services, region):
    """A director asked for the documents of a «Да» answer (then, after «Нет», for a note)."""
    harness = harness_for(services)
    director = await registered(harness, region, "S1", 1001)
    await director.click("▶ Начать заполнение")
    for _ in range(8):
        await director.send("10")
    await director.click("Да")
    director.expect("файл")
    return director


@hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(line=LINES)
async def test_a_random_line_at_a_document_step_gets_a_russian_reply(services, at_documents, line):
    before = await snapshot(services.sessions)
    await at_documents.send(line)
    texts = await assert_no_crash(services.sessions, before)
    assert texts and at_documents.texts(), line
