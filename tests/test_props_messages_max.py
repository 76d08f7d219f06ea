"""MAX updates the bot does not expect, through the real long poll → inbox →
MaxChannel.parse → core, with a registered director at a count question: each gets a polite
Russian message or silence — never a crash, never a write (issue 11 §4)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import fake_max_api as fake
from tests.max_harness import MaxHarness
from tests.props_state import assert_harmless, snapshot

USER = 1001
GROUP_CHAT = 777_000
JUNK = st.text(max_size=60).filter(
    lambda s: not any(ch.isdigit() for ch in s) and not s.lstrip().startswith("/")
)
PERSON = fake.user_obj(USER)


def _with(attachment: dict, text: str | None = None) -> dict:
    return fake.user_message(PERSON, text, [attachment])


def sticker(text):
    body = {"type": "sticker", "payload": {"url": "https://max.invalid/s.webp", "code": "s"}}
    return _with({**body, "width": 128, "height": 128})


def location(text):
    return _with({"type": "location", "latitude": 55.7, "longitude": 37.6})


def contact(text):
    payload = {"vcf_info": f"BEGIN:VCARD\nFN:{text}\nEND:VCARD", "max_info": PERSON}
    return _with({"type": "contact", "payload": payload})


def share(text):
    payload = {"url": "https://example.org/a", "token": "sh"}
    return _with({"type": "share", "payload": payload, "title": text, "description": text})


def audio(text):
    return _with({"type": "audio", "payload": {"url": "https://max.invalid/a.ogg", "token": "a"}})


def video(text):
    payload = {"url": "https://max.invalid/v.mp4", "token": "v"}
    return _with({"type": "video", "payload": payload, "width": 1, "height": 1, "duration": 1})


def file_without_url(text):
    return _with({"type": "file", "payload": {"token": "t"}, "filename": "a.pdf", "size": 3})


def keyboard_echo(text):  # a forwarded bot message with its keyboard
    rows = [[{"type": "callback", "text": text or "Кнопка", "payload": "go"}]]
    return _with({"type": "inline_keyboard", "payload": {"buttons": rows}})


def forwarded(text):
    update = fake.user_message(PERSON, None)
    update["message"]["link"] = {"type": "forward", "message": {"text": "5", "mid": "m-old"}}
    return update


def empty_text(text):
    return fake.user_message(PERSON, "  \n ")


def edited(text):
    return fake.user_message(PERSON, text, update_type="message_edited")


def edited_number(text):
    return fake.user_message(PERSON, "7", update_type="message_edited")


def group_message(text):
    return fake.user_message(PERSON, text, chat_type="chat", chat_id=GROUP_CHAT)


def group_number(text):
    return fake.user_message(PERSON, "12", chat_type="chat", chat_id=GROUP_CHAT)


def group_start(text):
    return fake.user_message(PERSON, "/start ABC123", chat_type="chat", chat_id=GROUP_CHAT)


def channel_post(text):
    return fake.user_message(PERSON, text, chat_type="channel", chat_id=GROUP_CHAT + 1)


def from_a_bot(text):
    return fake.user_message({**fake.user_obj(USER + 1), "is_bot": True}, text)


def bot_added(text):
    update = {"update_type": "bot_added", "timestamp": fake.now_ms(), "chat_id": GROUP_CHAT}
    return {**update, "user": PERSON, "is_channel": False}


def user_added(text):
    update = {"update_type": "user_added", "timestamp": fake.now_ms(), "chat_id": GROUP_CHAT}
    return {**update, "user": PERSON, "inviter_id": USER + 5, "is_channel": False}


def title_changed(text):
    update = {"update_type": "chat_title_changed", "timestamp": fake.now_ms()}
    return {**update, "chat_id": GROUP_CHAT, "user": PERSON, "title": text}


def message_removed(text):
    update = {"update_type": "message_removed", "timestamp": fake.now_ms(), "message_id": "m1"}
    return {**update, "chat_id": fake.dialog_of(USER), "user_id": USER}


def dialog_muted(text):
    update = {"update_type": "dialog_muted", "timestamp": fake.now_ms()}
    return {**update, "chat_id": fake.dialog_of(USER), "user": PERSON, "muted_until": 1}


def group_button(text):
    shown = fake.user_message(fake.BOT, "…", chat_type="chat", chat_id=GROUP_CHAT)["message"]
    return fake.callback(PERSON, "go", shown, f"cbg{len(text)}")


def empty_button(text):
    return fake.callback(PERSON, "", None, f"cbe{len(text)}")


def unknown_kind(text):
    return {"update_type": "message_chat_created_v2", "timestamp": fake.now_ms(), "x": text}


# case -> whether the director gets a Russian reply (True) or silence (False)
CASES = {
    sticker: True,
    location: True,
    contact: True,
    share: True,
    audio: True,
    video: True,
    file_without_url: True,
    keyboard_echo: True,
    forwarded: True,
    empty_text: True,
    edited: True,
    edited_number: True,
    group_message: False,
    group_number: False,
    group_start: False,
    channel_post: False,
    from_a_bot: False,
    bot_added: False,
    user_added: False,
    title_changed: False,
    message_removed: False,
    dialog_muted: False,
    group_button: False,
    empty_button: False,
    unknown_kind: False,
}


@pytest.fixture
async def max_user(services, region):
    async with MaxHarness.open(services.conversation) as harness:
        services.conversation.register_fetcher("max", harness.channel.fetcher)
        user = harness.user(USER, "Анна")
        await user.start(region.codes["S1"])
        await user.click("▶ Начать заполнение")
        user.expect("Количество педагогических работников")
        yield user


async def _act(services, user, update: dict) -> list[str]:
    before = await snapshot(services.sessions)
    await user.act(update)
    texts = await assert_harmless(services.sessions, before)
    assert user.texts() == texts
    return texts


SETTINGS = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@SETTINGS
@given(case=st.sampled_from(list(CASES)), text=JUNK)
async def test_an_unexpected_max_update_gets_a_russian_reply_or_silence(
    services, max_user, case, text
):
    texts = await _act(services, max_user, case(text))
    assert bool(texts) is CASES[case], (case.__name__, texts)


@SETTINGS
@given(payload=st.text(min_size=1, max_size=64))
async def test_a_junk_max_button_payload_gets_a_russian_reply(services, max_user, payload):
    before = await snapshot(services.sessions)
    await max_user.press(payload)
    texts = await assert_harmless(services.sessions, before)
    assert texts


async def test_every_kind_once_then_the_director_still_answers_the_question(services, max_user):
    for case, replies in CASES.items():
        texts = await _act(services, max_user, case("Привет"))
        assert bool(texts) is replies, (case.__name__, texts)
    await max_user.send("20")
    max_user.expect("Сохранено", "вопрос 2 из 17")
