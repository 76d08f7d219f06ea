"""Telegram updates the bot does not expect, on the real parse path (raw JSON → inbox →
TelegramChannel.parse → core), with a registered director at a count question: each gets a
polite Russian message or silence — never a crash, never a write (issue 11 §4)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.props_state import assert_harmless, snapshot
from tests.walk import started

USER = 1001
_ids = itertools.count(10_000)
# no digits (a number is a real answer to the count question) and no leading "/"
JUNK = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Nd", "No", "Cc")), min_size=1, max_size=60
).filter(lambda s: s.strip() and not s.lstrip().startswith("/"))
ANY = st.text(max_size=60)


def _not_an_answer(text: str) -> bool:
    return not any(ch.isdigit() for ch in text) and not text.lstrip().startswith("/")


def _ts() -> int:
    return int(datetime.now(UTC).timestamp())


def _file(prefix: str) -> dict:
    n = next(_ids)
    return {"file_id": f"{prefix}-{n}", "file_unique_id": f"u-{prefix}-{n}"}


def _person(user_id: int = USER) -> dict:
    return {"id": user_id, "is_bot": False, "first_name": "Анна", "language_code": "ru"}


PRIVATE = {"id": USER, "type": "private", "first_name": "Анна"}
GROUP = {"id": -100_500, "type": "group", "title": "Директора района"}
SUPERGROUP = {"id": -100_100_500, "type": "supergroup", "title": "Чат школ"}
CHANNEL = {"id": -100_200_500, "type": "channel", "title": "Новости"}


def _message(content: dict, chat: dict = PRIVATE, *, sender: dict | None = None) -> dict:
    message = {"message_id": next(_ids), "date": _ts(), "chat": chat, **content}
    if sender is not None:
        message["from"] = sender
    return message


def _update(**body) -> dict:
    return {"update_id": next(_ids), **body}


def sticker(text: str) -> dict:
    sticker = {**_file("st"), "type": "regular", "width": 512, "height": 512}
    sticker |= {"is_animated": False, "is_video": False, "emoji": text[:1] or "🙂"}
    return _update(message=_message({"sticker": sticker}, sender=_person()))


def voice(text: str) -> dict:
    body = {"voice": {**_file("vo"), "duration": 3, "mime_type": "audio/ogg"}, "caption": text}
    return _update(message=_message(body, sender=_person()))


def video_note(_text: str) -> dict:
    note = {**_file("vn"), "length": 240, "duration": 5}
    return _update(message=_message({"video_note": note}, sender=_person()))


def location(_text: str) -> dict:
    where = {"latitude": 55.75, "longitude": 37.62}
    return _update(message=_message({"location": where}, sender=_person()))


def venue(text: str) -> dict:
    where = {"latitude": 55.75, "longitude": 37.62}
    body = {"venue": {"location": where, "title": text, "address": text}, "location": where}
    return _update(message=_message(body, sender=_person()))


def contact(text: str) -> dict:
    body = {"contact": {"phone_number": "+79990000000", "first_name": text, "user_id": USER}}
    return _update(message=_message(body, sender=_person()))


def poll(text: str) -> dict:
    options = [
        {"persistent_id": f"o{i}", "text": word, "voter_count": 0}
        for i, word in enumerate(("Да", "Нет"))
    ]
    body = {
        "poll": {
            "id": f"p{next(_ids)}",
            "question": text,
            "options": options,
            "total_voter_count": 0,
            "is_closed": False,
            "is_anonymous": True,
            "type": "regular",
            "allows_multiple_answers": False,
            "allows_revoting": False,
            "members_only": False,
        }
    }
    return _update(message=_message(body, sender=_person()))


def dice(_text: str) -> dict:
    return _update(message=_message({"dice": {"emoji": "🎲", "value": 4}}, sender=_person()))


def animation(text: str) -> dict:
    gif = {**_file("an"), "width": 320, "height": 240, "duration": 2, "file_name": "a.gif.mp4"}
    body = {"animation": gif, "document": gif, "caption": text}
    return _update(message=_message(body, sender=_person()))


def forwarded_text(text: str) -> dict:
    origin = {"type": "user", "date": _ts(), "sender_user": _person(777)}
    return _update(message=_message({"text": text, "forward_origin": origin}, sender=_person()))


def edited(text: str) -> dict:
    body = {"text": text, "edit_date": _ts()}
    return _update(edited_message=_message(body, sender=_person()))


def edited_number(_text: str) -> dict:
    return edited("7")


def group_text(text: str) -> dict:
    return _update(message=_message({"text": text}, GROUP, sender=_person()))


def group_number(_text: str) -> dict:
    return _update(message=_message({"text": "12"}, SUPERGROUP, sender=_person()))


def group_command(_text: str) -> dict:
    entities = [{"type": "bot_command", "offset": 0, "length": 6}]
    body = {"text": "/start ABC123", "entities": entities}
    return _update(message=_message(body, GROUP, sender=_person()))


def group_edited(text: str) -> dict:
    body = {"text": text, "edit_date": _ts()}
    return _update(edited_message=_message(body, GROUP, sender=_person()))


def anonymous_admin(text: str) -> dict:  # a group message sent on behalf of the group
    body = {"text": text, "sender_chat": SUPERGROUP}
    return _update(message=_message(body, SUPERGROUP))


def channel_post(text: str) -> dict:
    return _update(channel_post=_message({"text": text, "sender_chat": CHANNEL}, CHANNEL))


def edited_channel_post(text: str) -> dict:
    body = {"text": text, "sender_chat": CHANNEL, "edit_date": _ts()}
    return _update(edited_channel_post=_message(body, CHANNEL))


def group_button(text: str) -> dict:
    shown = _message({"text": "…"}, GROUP, sender={"id": 42, "is_bot": True, "first_name": "Бот"})
    query = {
        "id": f"q{next(_ids)}",
        "from": _person(),
        "chat_instance": "ci",
        "message": shown,
        "data": text[:20] or "x",
    }
    return _update(callback_query=query)


def inline_button(text: str) -> dict:  # a press under an inline-mode message: no message
    query = {"id": f"q{next(_ids)}", "from": _person(), "chat_instance": "ci"}
    query |= {"inline_message_id": "im1", "data": text[:20] or "x"}
    return _update(callback_query=query)


def my_chat_member(_text: str) -> dict:
    member = {"status": "member", "user": {"id": 42, "is_bot": True, "first_name": "Бот"}}
    left = {"status": "left", "user": {"id": 42, "is_bot": True, "first_name": "Бот"}}
    body = {
        "chat": GROUP,
        "from": _person(),
        "date": _ts(),
        "old_chat_member": left,
        "new_chat_member": member,
    }
    return _update(my_chat_member=body)


def reaction(_text: str) -> dict:
    body = {
        "chat": PRIVATE,
        "message_id": 1,
        "user": _person(),
        "date": _ts(),
        "old_reaction": [],
        "new_reaction": [{"type": "emoji", "emoji": "👍"}],
    }
    return _update(message_reaction=body)


def unknown_kind(text: str) -> dict:  # an update type newer than the library
    return _update(business_message_of_the_future={"text": text})


# case -> whether the director gets a Russian reply (True) or silence (False)
CASES = {
    sticker: True,
    voice: True,
    video_note: True,
    location: True,
    venue: True,
    contact: True,
    poll: True,
    dice: True,
    animation: True,
    forwarded_text: True,
    edited: True,
    edited_number: True,
    group_text: False,
    group_number: False,
    group_command: False,
    group_edited: False,
    anonymous_admin: False,
    channel_post: False,
    edited_channel_post: False,
    group_button: False,
    inline_button: False,
    my_chat_member: False,
    reaction: False,
    unknown_kind: False,
}


@pytest.fixture
async def director(services, region):
    harness, user = await started(services, region)
    user.expect("Количество педагогических работников")
    return harness, user


def _sent_to_user(harness, mark: int) -> list[str]:
    return [
        getattr(c, "text", None) or type(c).__name__
        for c in harness.session.calls[mark:]
        if type(c).__name__ != "AnswerCallbackQuery"
    ]


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=st.sampled_from(list(CASES)), text=st.one_of(JUNK, ANY.filter(_not_an_answer)))
async def test_an_unexpected_telegram_update_gets_a_russian_reply_or_silence(
    services, director, case, text
):
    harness, _user = director
    before = await snapshot(services.sessions)
    mark = len(harness.session.calls)
    await harness.feed_raw([case(text)])
    texts = await assert_harmless(services.sessions, before)
    sent = _sent_to_user(harness, mark)
    if CASES[case]:
        assert texts and sent, case.__name__
    else:
        assert not texts and not sent, (case.__name__, sent)


async def test_every_kind_once_then_the_director_still_answers_the_question(services, director):
    harness, user = director
    for case, replies in CASES.items():
        before = await snapshot(services.sessions)
        mark = len(harness.session.calls)
        await harness.feed_raw([case("Привет")])
        texts = await assert_harmless(services.sessions, before)
        assert bool(texts) is replies and bool(_sent_to_user(harness, mark)) is replies, case
    await user.send("20")
    user.expect("Сохранено", "вопрос 2 из 17")
