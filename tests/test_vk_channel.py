"""The VK channel against the fake VK API: setup errors, limits, error mapping on a fake
clock, long-poll ``ts`` handling, the Callback API webhook, files out and in."""

from __future__ import annotations

import json

import pytest

from bot.channel import ChannelSetupError, RawEvent
from bot.config import ConfigError, load_settings
from bot.vk import render
from bot.vk.api import RateLimiter
from handlers.types import Button, OutFile, OutText, RecipientBlocked, RetryLater
from tests.fake_vk_api import FakeVkApi
from tests.vk_harness import CALLBACK_SECRET, CONFIRMATION_CODE, VkHarness, make_channel

PEER = 1001


class FakeClock:
    """``sleep`` moves the time on instead of waiting."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.slept: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def vk(clock):
    harness = await VkHarness.start(None, clock=clock.now, sleep=clock.sleep)
    yield harness
    await harness.stop()


@pytest.fixture
async def fake_api():
    api = FakeVkApi()
    await api.start()
    yield api
    await api.stop()


# --- start ------------------------------------------------------------------------------------


async def test_a_bad_token_is_a_setup_error_in_russian(fake_api):
    channel = make_channel(fake_api)
    channel.api.token_generator.token = "wrong"  # type: ignore[attr-defined]
    with pytest.raises(ChannelSetupError, match="не принял VK_TOKEN"):
        await channel.start()
    await channel.close()


async def test_bot_features_off_912_is_a_setup_error_saying_where_to_switch_them_on(fake_api):
    fake_api.fail_next("messages.getConversations", 912)
    channel = make_channel(fake_api)
    with pytest.raises(ChannelSetupError, match="Возможности ботов"):
        await channel.start()
    await channel.close()


async def test_a_token_of_another_community_is_a_setup_error(fake_api):
    channel = make_channel(fake_api)
    channel.group_id = 1
    with pytest.raises(ChannelSetupError, match="VK_GROUP_ID"):
        await channel.start()
    await channel.close()


async def test_webhook_mode_needs_the_secret_and_confirmation_code(fake_api):
    channel = make_channel(fake_api, callback_secret=None)
    with pytest.raises(ChannelSetupError, match="VK_CALLBACK_SECRET"):
        await channel.start(webhook_url="https://bot.example/vk")
    await channel.close()


# --- sending: limits --------------------------------------------------------------------------


async def test_at_most_20_requests_in_any_second(vk, clock):
    start = clock.now()
    for n in range(50):
        await vk.channel.send(str(PEER), OutText(f"сообщение {n}"), dedup=f"m{n}")
    stamps = [c.at for c in vk.api.calls_of("messages.send")]
    assert len(stamps) == 50
    for i, t in enumerate(stamps):
        assert sum(1 for s in stamps[i:] if s < t + 1.0) <= 20
    assert clock.now() - start >= 2.0  # 50 requests need at least two more seconds


async def test_a_request_slow_on_the_way_still_counts_where_vk_sees_it(clock):
    """The window is counted from the answer, not from the send: a request that took 0.9 s
    to reach VK must not let the next ones through closer than the limit."""
    limiter = RateLimiter(rate=2, clock=clock.now, sleep=clock.sleep)
    arrivals: list[float] = []
    for latency in (0.9, 0.0, 0.0, 0.0, 0.0):
        async with limiter.slot():
            clock.t += latency
            arrivals.append(clock.now())
    for t in arrivals:
        assert sum(1 for a in arrivals if t <= a < t + 1.0) <= 2, arrivals


async def test_random_id_comes_from_dedup_so_a_resend_is_not_shown_twice(vk):
    message = OutText("Сохранено", [[Button("Да", "a|1|q|0|y")]])
    first = await vk.channel.send(str(PEER), message, dedup="out-17")
    again = await vk.channel.send(str(PEER), message, dedup="out-17")
    other = await vk.channel.send(str(PEER), message, dedup="out-18")
    assert first == again != other
    assert len(vk.api.to_peer(PEER)) == 2
    ids = [int(c.params["random_id"]) for c in vk.api.calls_of("messages.send")]
    assert ids[0] == ids[1] != ids[2] and all(0 < i < 2**31 for i in ids)


async def test_long_text_is_split_and_the_keyboard_goes_under_the_last_part(vk):
    text = "\n".join(f"строка {n} " + "т" * 80 for n in range(100))
    await vk.channel.send(str(PEER), OutText(text, [[Button("Да", "x")]]), dedup="long")
    sent = vk.api.to_peer(PEER)
    assert len(sent) == 3 and all(len(m.text) <= 4096 for m in sent)
    assert "\n".join(m.text for m in sent) == text
    assert [bool(m.keyboard) for m in sent] == [False, False, True]


async def test_a_long_choice_list_is_paginated_with_more(vk):
    buttons = [[Button(f"Вариант {n}", f"a|1|q|0|{n}")] for n in range(23)]
    await vk.channel.send(str(PEER), OutText("Выберите", buttons), dedup="choice")
    sent = vk.api.to_peer(PEER)
    assert [m.text for m in sent] == ["Выберите", "Ещё…", "Ещё…", "Ещё…"]  # 6 rows a page
    pressed = [payload["c"] for m in sent for _, payload in m.buttons()]
    assert pressed == [f"a|1|q|0|{n}" for n in range(23)]
    for m in sent:
        assert len(m.buttons()) <= 10 and len(m.keyboard["buttons"]) <= 6


def test_wide_rows_wrap_at_five_and_pages_hold_ten():
    row = [Button(str(n), f"e|1|q{n}|0") for n in range(17)]
    pages = render.paginate([row, [Button("◀ Назад", "b|1")]])
    assert [[len(r) for r in page] for page in pages] == [[5, 5], [5, 2, 1]]


def test_a_grid_of_six_a_row_is_reflowed_five_a_row():
    numbers = [Button(str(n), f"e|1|q{n}|0") for n in range(1, 18)]
    grid = [numbers[0:6], numbers[6:12], numbers[12:17]]  # handlers.render.number_buttons
    nav = [Button("📨 Отправить анкету", "S|1")]
    pages = render.paginate([*grid, [Button("Да", "x"), Button("Нет", "y")], nav])
    assert [[len(r) for r in page] for page in pages] == [[5, 5], [5, 2, 2, 1]]
    labels = [b.text for page in pages for r in page for b in r]
    assert labels[:17] == [str(n) for n in range(1, 18)]


def test_a_long_label_is_shortened_and_the_payload_kept():
    label = "Очень длинное название варианта ответа, которое не влезает в кнопку"
    keyboard = json.loads(render.keyboard_json([[Button(label, "a|1|q|0|long")]]))
    action = keyboard["buttons"][0][0]["action"]
    assert len(action["label"]) == 40 and action["label"].endswith("…")
    assert action["label"][:-1] == label[:39].rstrip()
    assert action["payload"] == {"c": "a|1|q|0|long"} and action["type"] == "callback"


async def test_a_payload_over_255_bytes_sends_nothing(vk):
    message = OutText("Текст", [[Button("Да", "x" * 250)]])
    with pytest.raises(ValueError, match="255"):
        await vk.channel.send(str(PEER), message, dedup="big")
    assert vk.api.calls_of("messages.send") == []


# --- sending: errors --------------------------------------------------------------------------


@pytest.mark.parametrize("code", [901, 902])
async def test_a_user_who_does_not_allow_messages_is_blocked(vk, code):
    vk.api.fail_next("messages.send", code)
    with pytest.raises(RecipientBlocked):
        await vk.channel.send(str(PEER), OutText("Напоминание"), dedup="r1")
    assert vk.api.to_peer(PEER) == []


async def test_error_6_is_waited_out_and_retried(vk, clock):
    vk.api.fail_next("messages.send", 6, 6)
    before = clock.now()
    await vk.channel.send(str(PEER), OutText("Привет"), dedup="h")
    assert len(vk.api.calls_of("messages.send")) == 3
    assert len(vk.api.to_peer(PEER)) == 1
    assert clock.now() - before >= 2.0


async def test_error_6_that_persists_is_retry_later(vk):
    vk.api.fail_next("messages.send", 6, 6, 6)
    with pytest.raises(RetryLater):
        await vk.channel.send(str(PEER), OutText("Привет"), dedup="h")
    assert vk.api.to_peer(PEER) == []


async def test_rate_limit_reached_29_is_retry_later_and_slows_everything(vk, clock):
    vk.api.fail_next("messages.send", 29)
    with pytest.raises(RetryLater) as raised:
        await vk.channel.send(str(PEER), OutText("Привет"), dedup="h")
    assert raised.value.seconds >= 60
    assert len(vk.api.calls_of("messages.send")) == 1
    before = clock.now()
    await vk.channel.send(str(PEER + 1), OutText("Привет"), dedup="h2")  # waits the pause out
    assert clock.now() - before >= raised.value.seconds


async def test_flood_control_9_is_retry_later_for_that_send_only(vk, clock):
    vk.api.fail_next("messages.send", 9)
    with pytest.raises(RetryLater) as raised:
        await vk.channel.send(str(PEER), OutText("Привет"), dedup="h")
    assert raised.value.seconds >= 10
    before = clock.now()
    await vk.channel.send(str(PEER + 1), OutText("Другому"), dedup="h2")
    assert clock.now() - before < 1


# --- files ------------------------------------------------------------------------------------


async def test_a_file_goes_through_the_messages_upload_server(vk, tmp_path):
    path = tmp_path / "report.xlsx"
    path.write_bytes(b"PK\x03\x04 workbook")
    await vk.channel.send(str(PEER), OutFile(path, "Отчёт.xlsx", "Выгрузка готова"), dedup="f")
    [server] = vk.api.calls_of("docs.getMessagesUploadServer")
    assert server.params["peer_id"] == str(PEER)
    [saved] = vk.api.calls_of("docs.save")
    assert saved.params["title"] == "Отчёт.xlsx"
    [message] = vk.api.to_peer(PEER)
    assert message.attachment == "doc-777_1" and message.text == "Выгрузка готова"
    assert vk.api.docs["doc-777_1"] == ("Отчёт.xlsx", b"PK\x03\x04 workbook")


async def test_fetcher_downloads_by_url_and_leaves_nothing_on_failure(vk, tmp_path):
    vk.api.files["a"] = b"%PDF-1.4 data"
    dest = tmp_path / "x" / "a.pdf"
    await vk.channel.fetcher.fetch(f"{vk.api.base_url}/files/a?hash=1", dest)
    assert dest.read_bytes() == b"%PDF-1.4 data"
    missing = tmp_path / "x" / "b.pdf"
    with pytest.raises(Exception, match="404"):
        await vk.channel.fetcher.fetch(f"{vk.api.base_url}/files/none", missing)
    assert sorted(p.name for p in missing.parent.iterdir()) == ["a.pdf"]


async def test_edit_changes_the_message_in_place(vk):
    message_id = await vk.channel.send(str(PEER), OutText("Готовлю выгрузку… 10%"), dedup="e")
    await vk.channel.edit(str(PEER), message_id, OutText("Готовлю выгрузку… 60%"))
    [message] = vk.api.to_peer(PEER)
    assert message.text == "Готовлю выгрузку… 60%"


# --- long poll --------------------------------------------------------------------------------


def _message_new(api: FakeVkApi, text: str, peer: int = PEER) -> dict:
    return api.push(
        "message_new", {"message": {"peer_id": peer, "from_id": peer, "text": text, "id": 0}}
    )


async def test_ts_is_not_advanced_when_sink_fails(vk):
    event = _message_new(vk.api, "20")
    before = vk.channel.ts

    async def broken(batch):
        raise RuntimeError("inbox is down")

    with pytest.raises(RuntimeError):
        await vk.channel.poll_once(broken)
    assert vk.channel.ts == before
    got: list[RawEvent] = []

    async def sink(batch):
        got.extend(batch)

    assert await vk.channel.poll_once(sink) == 1
    assert [e.key for e in got] == [event["event_id"]] and got[0].chat_id == str(PEER)
    assert vk.api.lp_requests[-1]["ts"] == before
    assert vk.channel.ts != before
    assert await vk.channel.poll_once(sink) == 0 and len(got) == 1


async def test_a_restart_resumes_from_the_saved_ts(fake_api, tmp_path):
    ts_path = tmp_path / "vk.ts"
    first = make_channel(fake_api, ts_path=ts_path)
    await first.start()
    got: list[RawEvent] = []

    async def sink(batch):
        got.extend(batch)

    _message_new(fake_api, "one")
    await first.poll_once(sink)
    await first.close()
    _message_new(fake_api, "two")  # arrives while the bot is down
    second = make_channel(fake_api, ts_path=ts_path)
    await second.start()
    await second.poll_once(sink)
    await second.close()
    assert [e.payload["object"]["message"]["text"] for e in got] == ["one", "two"]


async def test_failed_1_goes_on_from_the_new_ts(vk):
    _message_new(vk.api, "lost")
    vk.api.lp_failed.append(1)
    assert await vk.channel.poll_once(_never) == 0
    assert vk.channel.ts == str(len(vk.api.events))


async def test_failed_2_gets_a_new_key_and_keeps_ts(vk):
    ts = vk.channel.ts
    vk.api.lp_key = "key-2"  # the old key expired
    _message_new(vk.api, "kept")
    got: list[RawEvent] = []

    async def sink(batch):
        got.extend(batch)

    assert await vk.channel.poll_once(sink) == 0
    assert len(vk.api.calls_of("groups.getLongPollServer")) == 2 and vk.channel.ts == ts
    assert await vk.channel.poll_once(sink) == 1


async def test_failed_3_gets_a_new_key_and_ts(vk):
    _message_new(vk.api, "gone")
    vk.api.lp_failed.append(3)
    assert await vk.channel.poll_once(_never) == 0
    assert len(vk.api.calls_of("groups.getLongPollServer")) == 2
    assert vk.channel.ts == str(len(vk.api.events))


async def _never(batch):
    raise AssertionError(f"nothing should reach the sink: {batch}")


# --- Callback API webhook ---------------------------------------------------------------------


def _body(**fields) -> bytes:
    return json.dumps({"group_id": 777, "v": "5.199", **fields}).encode()


async def test_webhook_answers_the_confirmation_code(vk):
    assert await vk.channel.webhook({}, _body(type="confirmation"), _never) == (
        200,
        CONFIRMATION_CODE,
    )
    other = json.dumps({"type": "confirmation", "group_id": 1}).encode()
    assert (await vk.channel.webhook({}, other, _never))[0] == 403


@pytest.mark.parametrize("secret", [None, "wrong"])
async def test_webhook_without_the_secret_is_rejected(vk, secret):
    fields = {"type": "message_new", "event_id": "e1", "object": {"message": {"peer_id": 5}}}
    if secret:
        fields["secret"] = secret
    assert (await vk.channel.webhook({}, _body(**fields), _never))[0] == 403


async def test_webhook_says_ok_only_after_sink(vk):
    got: list[RawEvent] = []

    async def sink(batch):
        got.extend(batch)

    obj = {"message": {"peer_id": 5, "from_id": 5, "text": "hi"}}
    body = _body(type="message_new", event_id="e1", object=obj, secret=CALLBACK_SECRET)
    assert await vk.channel.webhook({}, body, sink) == (200, "ok")
    assert [(e.key, e.chat_id) for e in got] == [("e1", "5")]

    async def broken(batch):
        raise RuntimeError("inbox is down")

    with pytest.raises(RuntimeError):
        await vk.channel.webhook({}, body, broken)
    assert (await vk.channel.webhook({}, b"not json", _never))[0] == 400


def test_raw_events_split_a_message_with_several_files(vk):
    files = [{"type": "doc", "doc": {"url": "u1"}}, {"type": "doc", "doc": {"url": "u2"}}]
    update = {
        "type": "message_new",
        "event_id": "abc",
        "object": {"message": {"peer_id": 7, "from_id": 7, "attachments": files}},
    }
    press = {"type": "message_event", "event_id": "p1", "object": {"peer_id": 7, "user_id": 7}}
    events = list(vk.channel.raw_events({"ts": "5", "updates": [update, press]}))
    assert [(e.key, e.chat_id) for e in events] == [("abc/0", "7"), ("abc/1", "7"), ("p1", "7")]


# --- settings ---------------------------------------------------------------------------------


def test_vk_settings(monkeypatch):
    monkeypatch.setenv("VK_TOKEN", "vk1.a.TOPSECRET")
    monkeypatch.setenv("VK_GROUP_ID", "123")
    settings = load_settings(env_file=None).vk
    assert settings.configured and settings.group_id == 123
    assert settings.api_url == "https://api.vk.ru"
    assert "TOPSECRET" not in repr(settings)
    monkeypatch.setenv("VK_API_URL", "127.0.0.1:8080")
    with pytest.raises(ConfigError, match="VK_API_URL"):
        load_settings(env_file=None)
    monkeypatch.delenv("VK_API_URL")
    monkeypatch.delenv("VK_GROUP_ID")
    with pytest.raises(ConfigError, match="VK_GROUP_ID"):
        load_settings(env_file=None)


def test_vk_is_off_without_settings(monkeypatch):
    for name in ("VK_TOKEN", "VK_GROUP_ID"):
        monkeypatch.delenv(name, raising=False)
    assert not load_settings(env_file=None).vk.configured


async def test_start_switches_long_poll_on_with_our_events(vk):
    [settings] = vk.api.calls_of("groups.setLongPollSettings")
    assert settings.params["enabled"] == "1" and settings.params["group_id"] == "777"
    for event in ("message_new", "message_event", "message_edit"):
        assert settings.params[event] == "1"


async def test_a_key_without_manage_rights_still_starts(fake_api):
    fake_api.fail_next("groups.setLongPollSettings", 15)
    channel = make_channel(fake_api)
    await channel.start()
    assert channel.ts is not None
    await channel.close()


async def test_parsing_a_press_twice_gives_the_same_press(vk):
    """After a crash the intake parses the stored press again: it must not be lost because
    its keyboard is already gone, nor fail because the message is too old to edit (909)."""
    keyboard = [[Button("Да", "a|1|q|0|y"), Button("Нет", "a|1|q|0|n")]]
    message_id = await vk.channel.send(str(PEER), OutText("Вопрос", keyboard), dedup="q")
    update = vk.api.push(
        "message_event",
        {
            "user_id": PEER,
            "peer_id": PEER,
            "event_id": "cb1",
            "payload": {"c": "a|1|q|0|y"},
            "conversation_message_id": int(message_id),
        },
    )
    [event] = vk.channel.raw_events(update)
    first = await vk.channel.parse(event)
    assert vk.api.to_peer(PEER)[0].keyboard is None
    again = await vk.channel.parse(event)
    assert first.incoming is not None and first.incoming.payload == "a|1|q|0|y"
    assert again.incoming == first.incoming
    assert first.incoming.user.display_name == f"Пользователь {PEER}"

    await vk.channel.send(str(PEER), OutText("Старый", keyboard), dedup="old")
    vk.api.fail_next("messages.edit", 909)
    old = vk.api.push("message_event", {**update["object"], "conversation_message_id": 2})
    [event] = vk.channel.raw_events(old)
    assert (await vk.channel.parse(event)).incoming.payload == "a|1|q|0|y"
    assert len(vk.api.calls_of("messages.sendMessageEventAnswer")) == 3


async def test_group_chats_and_service_events_mean_nothing(vk):
    chat = 2_000_000_005
    for update in (
        {"type": "message_new", "object": {"message": {"peer_id": chat, "from_id": 5}}},
        {"type": "message_event", "object": {"peer_id": chat, "user_id": 5, "payload": {}}},
        {"type": "message_reply", "object": {"peer_id": PEER, "from_id": -777, "text": "x"}},
        {"type": "message_typing_state", "object": {"from_id": PEER, "to_id": -777}},
        {"type": "group_join", "object": {"user_id": PEER}},
    ):
        [event] = vk.channel.raw_events({**update, "event_id": "e"})
        parsed = await vk.channel.parse(event)
        assert parsed.incoming is None and parsed.reply is None
    assert vk.api.calls_of("messages.send") == [] and vk.api.calls_of("users.get") == []


async def test_an_unreachable_api_is_a_setup_error_naming_vk_api_url():
    from bot.vk import VkChannel

    channel = VkChannel("token", 777, api_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(ChannelSetupError, match="VK_API_URL"):
        await channel.start()
    await channel.close()


async def test_create_channel_from_settings(fake_api, monkeypatch, tmp_path):
    from bot.vk import TS_FILE, create_channel

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VK_TOKEN", fake_api.token)
    monkeypatch.setenv("VK_GROUP_ID", str(fake_api.group_id))
    monkeypatch.setenv("VK_API_URL", fake_api.base_url)
    channel = create_channel(load_settings(env_file=None))
    await channel.start()
    await channel.close()
    assert (tmp_path / "data" / TS_FILE).read_text() == channel.ts


def test_a_doc_without_extension_in_its_title_gets_it_from_ext_and_a_gif_is_no_document():
    from bot.vk import events

    def update(doc: dict) -> dict:
        message = {"peer_id": 5, "from_id": 5, "attachments": [{"type": "doc", "doc": doc}]}
        return {"type": "message_new", "object": {"message": message}}

    doc = {"id": 1, "owner_id": 5, "title": "Приказ", "ext": "pdf", "size": 10, "url": "u"}
    incoming = events.message_to_incoming(update(doc))
    assert incoming.document.file_name == "Приказ.pdf"
    assert incoming.document.mime_type == "application/pdf" and incoming.document.size == 10
    assert incoming.document.file_id == "u" and incoming.document.file_unique_id == "doc5_1"
    assert events.message_to_incoming(update({**doc, "type": 3, "ext": "gif"})) is None


@pytest.mark.parametrize(
    ("text", "command"),
    [("/start AB12", ("start", "AB12")), ("Начать", ("start", "")), ("/Review", ("review", ""))],
)
def test_commands_with_a_slash_or_as_known_words(text, command):
    from bot.vk import events

    assert events.parse_command(text) == command
    assert events.parse_command("начать заполнение") is None


async def test_a_failed_name_lookup_does_not_fail_the_message(vk):
    vk.api.fail_next("users.get", 10)
    update = _message_new(vk.api, "/start AB12")
    [event] = vk.channel.raw_events(update)
    parsed = await vk.channel.parse(event)
    assert parsed.incoming.command == "start" and parsed.incoming.user.display_name is None
    again = await vk.channel.parse(event)  # asked again, not remembered as nameless
    assert again.incoming.user.display_name == f"Пользователь {PEER}"


async def test_poll_retries_a_failed_batch_until_the_sink_takes_it(vk, clock):
    import asyncio

    from bot.vk.channel import POLL_RETRY_DELAY

    event = _message_new(vk.api, "20")
    got: list[RawEvent] = []
    attempts = 0

    async def flaky(batch):
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise RuntimeError("inbox is down")
        got.extend(batch)

    task = asyncio.create_task(vk.channel.poll(flaky))
    for _ in range(200):
        if got:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [e.key for e in got] == [event["event_id"]] and attempts == 2
    assert POLL_RETRY_DELAY in clock.slept
