"""VK updates the bot does not expect, through the real long poll → inbox → VkChannel.parse →
core, with a registered director at a count question: each gets a polite Russian message or
silence — never a crash, never a write (issue 11 §4)."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.props_state import assert_harmless, snapshot
from tests.vk_harness import VkHarness

USER = 1001
CHAT_PEER = 2_000_000_007
_ids = itertools.count(500)
JUNK = st.text(max_size=60).filter(
    lambda s: not any(ch.isdigit() for ch in s) and not s.lstrip().startswith("/")
)
JUNK_PAYLOAD = st.one_of(
    st.text(max_size=64),
    st.text(max_size=64).map(lambda s: json.dumps({"c": s})),
    st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3),
    st.integers().map(str),
    st.just(None),
    st.lists(st.integers(), max_size=3),
    st.text(max_size=60).map(lambda s: {"c": f"zz|{s}"}),
)


def _message(text: str, attachments: list | None = None, *, peer: int = USER, **extra) -> dict:
    return {
        "id": 0,
        "date": 1700000000,
        "peer_id": peer,
        "from_id": USER,
        "text": text,
        "attachments": attachments or [],
        "conversation_message_id": next(_ids),
        "out": 0,
        **extra,
    }


def _new(message: dict) -> tuple[str, dict]:
    client = {"button_actions": ["text", "callback"], "keyboard": True, "inline_keyboard": True}
    return "message_new", {"message": message, "client_info": client}


def sticker(text):
    return _new(_message("", [{"type": "sticker", "sticker": {"product_id": 1, "sticker_id": 9}}]))


def audio_message(text):
    voice = {"id": 3, "owner_id": USER, "duration": 2, "link_ogg": "https://vk.invalid/a.ogg"}
    return _new(_message("", [{"type": "audio_message", "audio_message": voice}]))


def audio(text):
    track = {"id": 4, "owner_id": USER, "artist": text, "title": text, "duration": 100}
    return _new(_message("", [{"type": "audio", "audio": track}]))


def video(text):
    clip = {"id": 5, "owner_id": USER, "title": text, "duration": 10}
    return _new(_message("", [{"type": "video", "video": clip}]))


def geo(text):
    where = {"type": "point", "coordinates": {"latitude": 55.7, "longitude": 37.6}}
    return _new(_message("", geo=where))


def wall_repost(text):
    post = {"id": 7, "owner_id": -1, "from_id": -1, "text": text, "post_type": "post"}
    return _new(_message("", [{"type": "wall", "wall": post}]))


def link(text):
    return _new(
        _message("", [{"type": "link", "link": {"url": "https://example.org", "title": text}}])
    )


def gif_doc(text):
    doc = {
        "id": 8,
        "owner_id": USER,
        "title": "a.gif",
        "ext": "gif",
        "type": 3,
        "url": "https://vk.invalid/g",
    }
    return _new(_message("", [{"type": "doc", "doc": doc}]))


def forwarded(text):
    fwd = [{"from_id": 777, "text": "5", "date": 1700000000}]
    return _new(_message("", fwd_messages=fwd))


def empty(text):
    return _new(_message("   "))


def from_community(text):  # a message the community itself wrote in the dialog
    return _new({**_message(text), "from_id": -5})


def chat_message(text):
    return _new(_message(text, peer=CHAT_PEER))


def chat_number(text):
    return _new(_message("12", peer=CHAT_PEER))


def chat_start(text):
    return _new(_message("/start ABC123", peer=CHAT_PEER))


def edit(text):
    return "message_edit", {**_message(text), "update_time": 1700000100}


def edit_number(text):
    return edit("7")


def edit_in_chat(text):
    return "message_edit", {**_message(text, peer=CHAT_PEER), "update_time": 1700000100}


def reply_echo(text):  # VK echoes the community's own outgoing messages
    return "message_reply", {**_message(text), "from_id": -5, "out": 1}


def wall_post(text):
    return "wall_post_new", {"id": 9, "owner_id": -5, "from_id": -5, "text": text}


def wall_comment(text):
    return "wall_reply_new", {"id": 10, "from_id": USER, "post_id": 9, "owner_id": -5, "text": text}


def group_join(text):
    return "group_join", {"user_id": USER, "join_type": "join"}


def typing(text):
    return "message_typing_state", {"state": "typing", "from_id": USER, "to_id": -5}


def allow(text):
    return "message_allow", {"user_id": USER, "key": text}


def chat_button(text):
    return "message_event", {
        "user_id": USER,
        "peer_id": CHAT_PEER,
        "event_id": f"e{next(_ids)}",
        "payload": {"c": "go"},
        "conversation_message_id": 1,
    }


def unknown_kind(text):
    return "donut_subscription_create", {"user_id": USER, "amount": 100}


# case -> whether the director gets a Russian reply (True) or silence (False)
CASES = {
    sticker: True,
    audio_message: True,
    audio: True,
    video: True,
    geo: True,
    wall_repost: True,
    link: True,
    gif_doc: True,
    forwarded: True,
    empty: True,
    edit: True,
    edit_number: True,
    from_community: False,
    chat_message: False,
    chat_number: False,
    chat_start: False,
    edit_in_chat: False,
    reply_echo: False,
    wall_post: False,
    wall_comment: False,
    group_join: False,
    typing: False,
    allow: False,
    chat_button: False,
    unknown_kind: False,
}


@pytest.fixture
async def vk(services, region):
    harness = await VkHarness.start(services.conversation)
    user = harness.user(USER)
    await user.send(f"/start {region.codes['S1']}")
    await user.click("▶ Начать заполнение")
    user.expect("Количество педагогических работников")
    yield harness, user
    await harness.stop()


async def _act(services, vk, event_type: str, obj: dict) -> list[str]:
    _harness, user = vk
    before = await snapshot(services.sessions)
    await user._act(event_type, obj)
    texts = await assert_harmless(services.sessions, before)
    assert [m.text for m in user.replies()] == texts
    return texts


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(case=st.sampled_from(list(CASES)), text=JUNK)
async def test_an_unexpected_vk_update_gets_a_russian_reply_or_silence(services, vk, case, text):
    texts = await _act(services, vk, *case(text))
    assert bool(texts) is CASES[case], (case.__name__, texts)


@settings(SETTINGS, max_examples=20)
@given(payload=JUNK_PAYLOAD)
async def test_a_junk_vk_button_payload_gets_a_russian_reply(services, vk, payload):
    obj = {
        "user_id": USER,
        "peer_id": USER,
        "event_id": f"e{next(_ids)}",
        "payload": payload,
        "conversation_message_id": 1,
    }
    texts = await _act(services, vk, "message_event", obj)
    assert texts


async def test_every_kind_once_then_the_director_still_answers_the_question(services, vk):
    for case, replies in CASES.items():
        texts = await _act(services, vk, *case("Привет"))
        assert bool(texts) is replies, (case.__name__, texts)
    _harness, user = vk
    await user.send("20")
    user.expect("Сохранено", "вопрос 2 из 17")
