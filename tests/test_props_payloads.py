"""Random button payloads (≤ 64 bytes) pressed through the real Telegram intake by a
registered director and by a municipal coordinator (issue 11 §4): every press gets a Russian
reply, never a crash, and writes nothing — the ids in them are another school's response,
numbers that name nothing, or junk."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from handlers import callbacks as cb
from tests.pg import settings_on_both_databases
from tests.props_state import assert_harmless, snapshot
from tests.walk import harness_for, press_payload, registered, response_of

# every action a flow registers, with the sub-actions of the flows that have them
PREFIXES = [
    *["a", "d", "k", "b", "s", "v", "e", "S", "C", "n", "c", "rf", "fx", "r", "x", "lk", "go"],
    *["cr", "cp", "ca", "cx", "cA", "cR", "hi", "rx", "st", "nm", "bc", "ad"],
    "r|d",
    "x|c",
    "x|t",
    "x|d",
    "st|c",
    "st|p",
    "st|m",
    "st|s",
    "st|g",
    "bc|a",
    "bc|m",
    "bc|mp",
    "bc|n",
    "bc|ok",
    "bc|x",
    "bc|r",
    "ad|l",
    "ad|m",
    "ad|p",
    "ad|r",
    "ad|R",
    "ad|a",
    "ad|A",
    "ad|c",
    "ad|n",
]
WORDS = ["", "0", "*", "last", "tg", "vk", "max", "each", "digest", "off", "teachers_total"]
NO_SEP = st.text(max_size=12).map(lambda s: s.replace(cb.SEP, ""))


def _arg(foreign: list[int]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(foreign).map(str),
        st.integers(10**6, 2**63 - 1).map(str),
        st.integers(2**63, 10**30).map(str),
        st.integers(-(10**20), -1).map(str),
        st.sampled_from(WORDS),
        st.sampled_from(["١٢", "１２", "+1", " 1", "1e3", "0x10", "20240230", "99999999"]),
        NO_SEP,
    )


def _fit(text: str) -> str:
    while len(text.encode()) > cb.MAX_PAYLOAD_BYTES:
        text = text[:-1]
    return text


def payloads(foreign: list[int]) -> st.SearchStrategy[str]:
    built = st.tuples(st.sampled_from(PREFIXES), st.lists(_arg(foreign), max_size=4)).map(
        lambda t: cb.SEP.join((t[0], *t[1]))
    )
    return st.one_of(built, built, st.text(min_size=1, max_size=64)).map(_fit).filter(bool)


# on PostgreSQL too: an id that fits 64 bits may not fit a 32-bit column there
settings = settings_on_both_databases()


@pytest.fixture
async def people(services, region):
    """A director of S1 and of U1 at their second question, and the coordinator of S1's
    municipality; the director of S1 presses with U1's response, the coordinator with both
    (S1's is a draft: nothing to review, U1's is outside the municipality)."""
    harness = harness_for(services)
    director = await registered(harness, region, "S1", 1001)
    other = await registered(harness, region, "U1", 1003)
    for user in (director, other):
        await user.click("▶ Начать заполнение")
        await user.send("20")
        user.expect("Сохранено")
    coordinator = harness.user(2001, "Ольга")
    await coordinator.send(f"/start {region.codes['Северный район']}")
    coordinator.expect("Северный район")
    own = (await response_of(services, region.school_ids["S1"])).id
    foreign = (await response_of(services, region.school_ids["U1"])).id
    return harness, {
        "director": (director, [foreign]),
        "coordinator": (coordinator, [own, foreign]),
    }


SETTINGS = hypothesis_settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(who=st.sampled_from(["director", "coordinator"]), data=st.data())
async def test_a_random_payload_gets_a_russian_reply_and_writes_nothing(
    services, people, who, data
):
    harness, by_role = people
    user, foreign = by_role[who]
    payload = data.draw(payloads(foreign), label="payload")
    before = await snapshot(services.sessions)
    await press_payload(harness, user, payload)
    texts = await assert_harmless(services.sessions, before, moves=True)
    assert texts and user.texts(), (who, payload)
