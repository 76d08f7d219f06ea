"""MaxChannel against the fake MAX API: polling with marker, webhook secret, sending within
MAX's limits, error mapping, files, setup errors."""

from __future__ import annotations

import asyncio

import pytest

from bot.channel import ChannelSetupError, RawEvent
from bot.max import MaxApi, MaxApiError, MaxChannel, TokenBucket
from handlers.types import Button, OutFile, OutText, RecipientBlocked, RetryLater
from tests import fake_max_api as fake
from tests.max_harness import make_channel
from tests.walk import PDF


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
async def server():
    api = await fake.FakeMaxApi().start()
    yield api
    await api.close()


@pytest.fixture
async def channel(server):
    channel = make_channel(server.base_url, webhook_secret="s3cret_Value")
    yield channel
    await channel.close()


def anna() -> dict:
    return fake.user_obj(1001, "Анна")


class Collect:
    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.batches: list[list[RawEvent]] = []

    async def __call__(self, events: list[RawEvent]) -> None:
        self.batches.append(events)
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the inbox is down")


# --- polling --------------------------------------------------------------------------------


async def test_marker_is_confirmed_only_after_the_sink_returned(server, channel):
    server.push(fake.user_message(anna(), "20"))
    server.push(fake.user_message(anna(), "21"))
    failing = Collect(fail=1)
    with pytest.raises(RuntimeError):
        await channel.poll_once(failing, timeout=0)
    assert channel.marker is None and server.committed == 0
    ok = Collect()
    assert await channel.poll_once(ok, timeout=0) == 2
    assert [e.key for e in ok.batches[0]] == [e.key for e in failing.batches[0]]
    assert server.committed == 0  # confirmed only by the next request
    assert await channel.poll_once(ok, timeout=0) == 0
    assert server.requests_to("GET", "/updates")[-1].query["marker"] == str(channel.marker)
    assert server.pending() == []


async def test_a_restart_gets_the_unconfirmed_batch_again(server, channel):
    server.push(fake.user_message(anna(), "20"))
    first = Collect()
    await channel.poll_once(first, timeout=0)  # stored, then the process dies
    restarted = make_channel(server.base_url)
    try:
        again = Collect()
        await restarted.poll_once(again, timeout=0)
        assert "marker" not in server.requests_to("GET", "/updates")[-1].query
        assert [e.key for e in again.batches[0]] == [e.key for e in first.batches[0]]
    finally:
        await restarted.close()


async def test_the_poll_loop_retries_a_failed_sink_with_the_old_marker(server):
    channel = make_channel(server.base_url, poll_timeout=1)
    server.push(fake.user_message(anna(), "20"))
    sink = Collect(fail=2)
    task = asyncio.create_task(channel.poll(sink))
    try:
        for _ in range(200):
            if len(sink.batches) >= 3 and server.committed > 0:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await channel.close()
    keys = [[e.key for e in batch] for batch in sink.batches]
    assert keys[0] == keys[1] == keys[2]
    assert server.pending() == []


async def test_event_keys_and_chats():
    channel = make_channel("http://127.0.0.1:9")
    user = anna()
    created = fake.user_message(user, "20", mid="mid.abc")
    edited = fake.user_message(user, "25", mid="mid.abc", update_type="message_edited")
    pressed = fake.callback(user, "go", None, "cb-1")
    started = fake.bot_started(user, "CODE1")
    events = list(channel.raw_events({"updates": [created, edited, pressed, started]}))
    assert [e.key for e in events][:3] == [
        "mid.abc",
        f"message_edited:mid.abc:{edited['timestamp']}",
        "cb-1",
    ]
    assert events[3].key == f"bot_started:1001:{started['timestamp']}"
    assert {e.chat_id for e in events} == {"1001"}
    [single] = channel.raw_events(created)  # one webhook body is one Update
    assert single.key == "mid.abc" and single.payload == created
    await channel.close()


# --- webhook --------------------------------------------------------------------------------


async def test_webhook_without_the_secret_is_rejected(channel):
    body = b'{"update_type": "bot_started", "timestamp": 1, "chat_id": 5, "user": {"user_id": 7}}'
    sink = Collect()
    assert (await channel.webhook({}, body, sink))[0] == 401
    assert (await channel.webhook({"X-Max-Bot-Api-Secret": "wrong_one"}, body, sink))[0] == 403
    assert sink.batches == []
    status, _ = await channel.webhook({"x-max-bot-api-secret": "s3cret_Value"}, body, sink)
    assert status == 200
    assert [e.key for e in sink.batches[0]] == ["bot_started:7:1"]


async def test_webhook_is_refused_when_no_secret_is_configured(server):
    channel = make_channel(server.base_url)
    sink = Collect()
    assert (await channel.webhook({"X-Max-Bot-Api-Secret": "anything"}, b"{}", sink))[0] == 401
    assert sink.batches == []
    await channel.close()


async def test_webhook_sink_failure_is_not_acknowledged(channel):
    body = b'{"update_type": "bot_started", "timestamp": 1, "chat_id": 5, "user": {"user_id": 7}}'
    with pytest.raises(RuntimeError):
        await channel.webhook({"X-Max-Bot-Api-Secret": "s3cret_Value"}, body, Collect(fail=1))


# --- sending --------------------------------------------------------------------------------


def sent_bodies(server):
    return [r.body for r in server.requests_to("POST", "/messages")]


async def test_long_text_is_split_at_4000_with_the_keyboard_under_the_last_part(server, channel):
    line = "Строка отчёта номер сорок два, довольно длинная. " * 3 + "\n"
    text = line * 60  # about 9,000 characters
    mid = await channel.send("1001", OutText(text, [[Button("Дальше", "go")]]))
    bodies = sent_bodies(server)
    assert len(bodies) == 3
    assert all(len(b["text"]) <= 4000 for b in bodies)
    assert [bool(b["attachments"]) for b in bodies] == [False, False, True]
    assert "".join(b["text"] for b in bodies).replace("\n", "") == text.replace("\n", "")
    assert mid == list(server.messages)[-1]
    assert all(r.query == {"user_id": "1001"} for r in server.requests_to("POST", "/messages"))


async def test_keyboards_are_kept_within_max_limits(server, channel):
    row = [Button(f"{i}", f"e|1|q{i}|0") for i in range(10)]
    long_label = Button("Очень длинная подпись " * 10, "go")
    await channel.send("1001", OutText("Выберите", [row, [long_label]]))
    [body] = sent_bodies(server)
    rows = body["attachments"][0]["payload"]["buttons"]
    assert [len(r) for r in rows] == [7, 3, 1]
    assert len(rows[2][0]["text"]) == 128 and rows[2][0]["text"].endswith("…")
    assert rows[0][0] == {"type": "callback", "text": "0", "payload": "e|1|q0|0"}


@pytest.mark.parametrize(
    "buttons",
    [
        [[Button("x", "p" * 1025)]],
        [[Button(f"{i}", f"p{i}")] for i in range(31)],
        [[Button("   ", "p")]],
    ],
    ids=["payload-over-1024", "31-rows", "empty-label"],
)
async def test_keyboards_max_cannot_show_are_refused_before_sending(server, channel, buttons):
    with pytest.raises(ValueError):
        await channel.send("1001", OutText("Текст", buttons))
    assert sent_bodies(server) == []


async def test_403_means_the_recipient_blocked_the_bot(server, channel):
    server.blocked.add(1001)
    with pytest.raises(RecipientBlocked):
        await channel.send("1001", OutText("Напоминание"))
    assert server.messages == {}


async def test_429_on_the_first_part_is_retry_later(server, channel):
    server.fail_next("POST", "/messages", 429, "too.many.requests", headers={"Retry-After": "7"})
    with pytest.raises(RetryLater) as caught:
        await channel.send("1001", OutText("Напоминание"))
    assert caught.value.seconds == 7.0
    assert server.messages == {}


async def test_429_on_a_later_part_is_waited_out(server):
    clock = FakeClock()
    channel = make_channel(server.base_url, sleep=clock.sleep)
    text = ("а" * 3000 + "\n") * 2
    server.fail_next(
        "POST", "/messages", 429, "too.many.requests", headers={"Retry-After": "3"}, skip=1
    )
    await channel.send("1001", OutText(text))  # the second part fails once and is retried
    assert clock.sleeps == [3.0]
    assert len(server.messages) == 2
    await channel.close()


async def test_other_errors_leave_delivery_unknown(server, channel):
    server.fail_next("POST", "/messages", 500, "internal", "boom")
    with pytest.raises(MaxApiError) as caught:
        await channel.send("1001", OutText("Напоминание"))
    assert caught.value.status == 500


async def test_file_is_uploaded_and_sent_when_processed(tmp_path):
    server = await fake.FakeMaxApi(not_ready_attempts=3).start()
    clock = FakeClock()
    channel = make_channel(server.base_url, sleep=clock.sleep)
    try:
        path = tmp_path / "report.xlsx"
        path.write_bytes(PDF)
        mid = await channel.send("1001", OutFile(path, "Отчёт.xlsx", "Выгрузка готова"))
        message = server.messages[mid]
        assert message.file == ("Отчёт.xlsx", PDF)
        assert message.text == "Выгрузка готова"
        assert clock.sleeps == [0.5, 1.0, 2.0]
        assert server.requests_to("POST", "/uploads")[0].query == {"type": "file"}
    finally:
        await channel.close()
        await server.close()


async def test_a_file_never_processed_gives_up(tmp_path):
    server = await fake.FakeMaxApi(not_ready_attempts=100).start()
    channel = make_channel(server.base_url)
    try:
        path = tmp_path / "a.pdf"
        path.write_bytes(PDF)
        with pytest.raises(MaxApiError) as caught:
            await channel.send("1001", OutFile(path, "a.pdf"))
        assert caught.value.code == "attachment.not.ready"
        assert len(server.requests_to("POST", "/messages")) == 7
        assert server.messages == {}
    finally:
        await channel.close()
        await server.close()


async def test_edit_replaces_text_and_keyboard(server, channel):
    mid = await channel.send("1001", OutText("Готовлю выгрузку…", [[Button("Отмена", "x")]]))
    await channel.edit("1001", mid, OutText("Выгрузка готова"))
    assert server.messages[mid].text == "Выгрузка готова"
    assert server.messages[mid].keyboard is None


async def test_a_button_press_is_answered_even_twice(server, channel):
    update = fake.callback(anna(), "go", None, "cb-9")
    [event] = channel.raw_events(update)
    first = await channel.parse(event)
    server.fail_next("POST", "/answers", 400, "callback.expired", "too late")
    second = await channel.parse(event)  # after a crash: the answer fails, the press stays
    assert first == second and first.incoming.payload == "go"
    assert [body for _, body in server.answers] == [{"notification": "Принято"}]


# --- rate limit ---------------------------------------------------------------------------


async def test_token_bucket_keeps_about_25_requests_a_second():
    clock = FakeClock()
    bucket = TokenBucket(25, 5, clock=clock, sleep=clock.sleep)
    start = clock.now
    stamps = []
    for _ in range(105):
        await bucket.acquire()
        stamps.append(clock.now)
    assert stamps[4] == start  # the burst goes at once
    assert stamps[-1] - start == pytest.approx(100 / 25)
    assert max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps) <= 25 + 5


async def test_every_api_request_takes_a_token():
    clock = FakeClock()
    server = await fake.FakeMaxApi(clock=clock).start()
    api = MaxApi(
        fake.TOKEN, server.base_url, bucket=TokenBucket(25, 5, clock=clock, sleep=clock.sleep)
    )
    channel = MaxChannel(api, sleep=clock.sleep)
    try:
        for i in range(60):
            await channel.send("1001", OutText(f"Сообщение {i}"))
        stamps = [r.at for r in server.requests]
        assert len(stamps) == 60
        assert stamps[-1] - stamps[0] >= (60 - 5) / 25 - 1e-9
        assert max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps) <= 30
    finally:
        await channel.close()
        await server.close()


# --- setup ----------------------------------------------------------------------------------


async def test_a_bad_token_stops_the_start_with_a_russian_message(server):
    api = MaxApi("wrong-token", server.base_url)
    channel = MaxChannel(api)
    with pytest.raises(ChannelSetupError, match="MAX_TOKEN"):
        await channel.start()
    await channel.close()


async def test_an_unreachable_api_names_the_setting():
    channel = make_channel("http://127.0.0.1:9")
    with pytest.raises(ChannelSetupError, match="MAX_API_URL"):
        await channel.start()
    await channel.close()


async def test_start_checks_the_token_and_sets_commands(server, channel):
    await channel.start()
    assert channel.me["username"] == "test_bot"
    [commands] = server.requests_to("PATCH", "/me/commands")
    assert {"name": "start", "description": "Начать / ввести код приглашения"} in commands.body[
        "commands"
    ]
    assert all(r.query.get("access_token") is None for r in server.requests)


async def test_webhook_mode_subscribes_with_url_and_secret(server, channel):
    await channel.start(webhook_url="https://bot.example.ru/max")
    [request] = server.requests_to("POST", "/subscriptions")
    assert request.body == {"url": "https://bot.example.ru/max", "secret": "s3cret_Value"}
    assert [s["url"] for s in server.subscriptions] == ["https://bot.example.ru/max"]


async def test_polling_mode_drops_a_webhook_subscription(server, channel):
    server.subscriptions.append({"url": "https://old.example.ru/max", "time": 1})
    await channel.start()
    assert server.subscriptions == []


@pytest.mark.parametrize(
    ("secret", "url", "fragment"),
    [
        (None, "https://bot.example.ru/max", "MAX_WEBHOOK_SECRET"),
        ("s3cret_Value", "http://bot.example.ru/max", "https"),
    ],
)
async def test_webhook_mode_needs_a_secret_and_https(server, secret, url, fragment):
    channel = make_channel(server.base_url, webhook_secret=secret)
    with pytest.raises(ChannelSetupError, match=fragment):
        await channel.start(webhook_url=url)
    assert server.subscriptions == []
    await channel.close()


# --- files ----------------------------------------------------------------------------------


async def test_fetcher_downloads_by_url_into_place(server, channel, tmp_path):
    url = server.serve_file("doc1", PDF)
    dest = tmp_path / "in" / "doc.pdf"
    await channel.fetcher.fetch(url, dest)
    assert dest.read_bytes() == PDF


async def test_a_failed_download_leaves_nothing_behind(server, channel, tmp_path):
    dest = tmp_path / "doc.pdf"
    with pytest.raises(MaxApiError):
        await channel.fetcher.fetch(server.cdn_url + "/files/missing", dest)
    assert list(tmp_path.iterdir()) == []


async def test_a_failed_subscription_check_does_not_stop_polling(server, channel):
    server.fail_next("GET", "/subscriptions", 500, "internal", "boom")
    await channel.start()
    assert channel.me is not None


async def test_deep_link_round_trip(server, channel):
    await channel.start()
    link = channel.deep_link("AB12CD34")
    assert link == "https://max.ru/test_bot?start=AB12CD34"
    with pytest.raises(ValueError):
        channel.deep_link("x" * 129)
    payload = link.partition("?start=")[2]
    [event] = channel.raw_events(fake.bot_started(anna(), payload))
    parsed = await channel.parse(event)
    assert (parsed.incoming.command, parsed.incoming.args) == ("start", "AB12CD34")
