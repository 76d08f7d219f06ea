"""One send rate per platform token across processes: a Redis bucket, or rate / WORKERS.

Two Sender instances stand for two worker processes on one bot token. They run on one
virtual clock (time stops while a Redis round trip is in flight) and share one Redis key.
Tests that need Redis skip only when TEST_REDIS_URL is unset.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import os
import uuid
from types import SimpleNamespace

import pytest

from bot.config import ConfigError, ReminderSettings, WorkerSettings, load_settings
from handlers.types import OutText, RetryLater
from scheduler.ratelimit import RedisBucket, TokenRate, bucket_key, redis_client
from scheduler.runner import create_rates, create_sender
from scheduler.sender import Outcome, Sender
from tests.reminder_helpers import TG, FakeMessenger, VirtualTime

REDIS_URL = os.environ.get("TEST_REDIS_URL")
requires_redis = pytest.mark.skipif(not REDIS_URL, reason="set TEST_REDIS_URL (CI does)")
EPS = 1e-6
RATE = 25.0


class IoVirtualTime(VirtualTime):
    """Virtual time that does not move while a real Redis call is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.buckets: list[RedisBucket] = []
        self.rates: list[TokenRate] = []  # time stops while their requests are in flight

    def busy(self) -> bool:
        return any(b.calls for b in self.buckets) or any(r.in_flight for r in self.rates)

    async def run(self, awaitable):
        task = asyncio.ensure_future(awaitable)
        while not task.done():
            while True:
                for _ in range(20):
                    await asyncio.sleep(0)
                if not self.busy():
                    break
                await asyncio.sleep(0.001)  # real time, for the Redis reply
            if task.done():
                break
            if self._sleepers:
                at, _, future = heapq.heappop(self._sleepers)
                self.now = max(self.now, at)
                if not future.cancelled():
                    future.set_result(None)
        return task.result()


def most_in_one_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0 - EPS) for start in times)


@pytest.fixture
async def redis():
    client = redis_client(REDIS_URL)
    names: list[str] = []
    yield client, names
    for name in names:
        await client.delete(bucket_key(name))
    await client.aclose()


def two_workers(vt: IoVirtualTime, client, names: list[str], messenger: FakeMessenger):
    name = f"tg-test-{uuid.uuid4().hex}"
    names.append(name)
    senders = []
    for _ in range(2):
        bucket = RedisBucket(client, name, workers=2, clock=vt.clock)
        vt.buckets.append(bucket)
        senders.append(
            Sender(
                {TG: messenger},
                rate_per_s=RATE,
                clock=vt.clock,
                sleep=vt.sleep,
                buckets={TG: bucket},
                workers=2,
            )
        )
    return senders


@requires_redis
async def test_two_senders_on_one_bucket_stay_within_the_token_limit(redis) -> None:
    client, names = redis
    vt = IoVirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    a, b = two_workers(vt, client, names, messenger)

    async def both():
        return await asyncio.gather(
            *(a.send(TG, f"a{i}", OutText("a")) for i in range(60)),
            *(b.send(TG, f"b{i}", OutText("b")) for i in range(60)),
        )

    results = await vt.run(both())
    assert all(r.outcome == Outcome.SENT for r in results)
    times = sorted(t for _, t in messenger.times)
    assert len(times) == 120
    assert most_in_one_second(times) <= RATE  # together, never above the token's limit
    assert min(y - x for x, y in itertools.pairwise(times)) >= 1 / RATE - EPS
    # ...and together they use it: 120 sends take 119 slots, not twice that
    assert times[-1] - times[0] == pytest.approx(119 / RATE, abs=0.05)
    assert {c[0] for c, _ in messenger.times} == {"a", "b"}
    assert [bucket.failures for bucket in vt.buckets] == [0, 0]  # Redis did the spacing


@requires_redis
async def test_flood_control_seen_by_one_worker_pauses_the_other(redis) -> None:
    client, names = redis
    vt = IoVirtualTime()
    flooded = FakeMessenger(clock=vt.clock)
    flooded.flood.append(3.0)  # Telegram: 429, retry after 3 s
    a, b = two_workers(vt, client, names, flooded)

    async def later_b():
        await vt.sleep(0.5)
        return await asyncio.gather(*(b.send(TG, f"b{i}", OutText("b")) for i in range(5)))

    async def both():
        return await asyncio.gather(a.send(TG, "a0", OutText("a")), later_b())

    first, others = await vt.run(both())
    assert first.outcome == Outcome.SENT and first.attempts == 2
    assert all(r.outcome == Outcome.SENT for r in others)
    b_times = [t for chat, t in flooded.times if chat.startswith("b")]
    assert len(b_times) == 5 and min(b_times) >= 3.0 - EPS  # B waited out A's 429
    assert [bucket.failures for bucket in vt.buckets] == [0, 0]


async def test_without_redis_each_worker_takes_its_share() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    senders = [
        Sender({TG: messenger}, rate_per_s=RATE, clock=vt.clock, sleep=vt.sleep, workers=2)
        for _ in range(2)
    ]

    async def both():
        await asyncio.gather(
            *(
                s.send(TG, f"{n}-{i}", OutText("x"))
                for n, s in enumerate(senders)
                for i in range(40)
            )
        )

    await vt.run(both())
    times = [t for _, t in messenger.times]
    assert len(times) == 80
    # Unsynchronised, each may send ceil(12.5) in a second: at most one more than the limit
    # in a window (the default 25/s stays below Telegram's ~30/s).
    assert most_in_one_second(times) <= 2 * math.ceil(RATE / 2)
    assert len(times) / (max(times) - min(times) + 2 / RATE) == pytest.approx(RATE)
    assert max(times) == pytest.approx(39 * 2 / RATE)  # each at 12.5/s


class _DeadRedis:
    def register_script(self, _script):
        async def call(**_kwargs):
            raise ConnectionError("Connection refused")

        return call


async def test_redis_down_falls_back_to_the_share_and_still_sends() -> None:
    vt = VirtualTime()
    messenger = FakeMessenger(clock=vt.clock)
    bucket = RedisBucket(_DeadRedis(), "tg-dead", workers=4, clock=vt.clock)
    sender = Sender(
        {TG: messenger}, rate_per_s=RATE, clock=vt.clock, sleep=vt.sleep, buckets={TG: bucket}
    )

    async def burst():
        return await asyncio.gather(*(sender.send(TG, f"c{i}", OutText("x")) for i in range(10)))

    results = await vt.run(burst())
    assert all(r.outcome == Outcome.SENT for r in results)
    times = sorted(t for _, t in messenger.times)
    assert times[-1] - times[0] == pytest.approx(9 * 4 / RATE)  # a quarter of the limit


def _services(monkeypatch, **env: str) -> SimpleNamespace:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = SimpleNamespace(
        reminders=ReminderSettings(_env_file=None),  # type: ignore[call-arg]
        workers=WorkerSettings(_env_file=None),  # type: ignore[call-arg]
    )
    return SimpleNamespace(settings=settings, sessions=None)


async def test_create_sender_divides_the_rate_without_redis(monkeypatch) -> None:
    services = _services(monkeypatch, WORKERS="2", SEND_RATE_PER_S="20")
    sender = create_sender(services, {TG: FakeMessenger()}, {TG: "tg-abc"})
    assert sender.limiters == {}
    assert sender.limiter_for(TG).interval == pytest.approx(2 / 20)


async def test_create_sender_shares_a_bucket_per_token_with_redis(monkeypatch) -> None:
    services = _services(monkeypatch, WORKERS="3", REDIS_URL="redis://127.0.0.1:6379/15")
    sender = create_sender(services, {TG: FakeMessenger(), "vk": FakeMessenger()}, {TG: "tg-x"})
    try:
        limiter = sender.limiter_for(TG)
        assert limiter.bucket is not None and limiter.bucket.key == bucket_key("tg-x")
        assert limiter.interval == pytest.approx(1 / 25)  # the whole token's rate, shared
        assert limiter.fallback_interval == pytest.approx(3 / 25)
        assert sender.limiter_for("vk").bucket is None  # no token name: its share alone
        assert sender.limiter_for("vk").interval == pytest.approx(3 / 25)
    finally:
        await sender.close()


def test_worker_settings_in_russian_without_echoing_the_redis_url(monkeypatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    monkeypatch.setenv("WORKERS", "0")
    monkeypatch.setenv("REDIS_URL", "http://user:hunter2@cache:6379")
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None)
    message = str(caught.value)
    assert "WORKERS" in message and "не меньше 1" in message
    assert "REDIS_URL" in message and "redis://" in message
    assert "hunter2" not in message
    monkeypatch.setenv("WORKERS", "4")
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    workers = load_settings(env_file=None).workers
    assert workers.count == 4 and workers.redis_url is not None
    assert "cache" not in repr(workers)


def test_a_redis_password_is_masked_in_the_logs(monkeypatch) -> None:
    from bot.runner import _redis_password

    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@cache:6379/0")
    assert _redis_password(load_settings(env_file=None)) == ["hunter2"]
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/0")
    assert _redis_password(load_settings(env_file=None)) == []


# --- replies: every request of the channels takes from the token's one budget ---------------


@pytest.fixture
async def bot_api():
    from tests.fake_bot_api import FakeBotApi

    api = FakeBotApi()
    url = await api.start()
    yield api, url
    await api.stop()


def shared_rates(vt: IoVirtualTime, client, names: list[str], count: int = 2) -> list[TokenRate]:
    """The budgets of ``count`` processes on one token, on one Redis key."""
    name = f"token-test-{uuid.uuid4().hex}"
    names.append(name)
    rates = []
    for _ in range(count):
        bucket = RedisBucket(client, name, workers=count, clock=vt.clock)
        vt.buckets.append(bucket)
        rates.append(TokenRate(RATE, bucket=bucket, clock=vt.clock, sleep=vt.sleep))
    vt.rates.extend(rates)
    return rates


def telegram_channels(url: str, rates: list[TokenRate]):
    from bot.telegram import TelegramChannel, create_bot

    channels = []
    for rate in rates:
        channel = TelegramChannel(create_bot("4242:FAKE-TOKEN", url))
        channel.share_rate(rate)
        channels.append(channel)
    return channels


@requires_redis
async def test_replies_of_two_workers_share_the_token_limit(redis, bot_api) -> None:
    client, names = redis
    api, url = bot_api
    vt = IoVirtualTime()
    api.clock = vt.clock
    a, b = telegram_channels(url, shared_rates(vt, client, names))
    long = "\n".join("строка " + "т" * 90 for _ in range(60))  # two messages in Telegram

    async def both():
        return await asyncio.gather(
            *(a.send(str(100 + i), OutText(f"ответ a{i}"), dedup=f"a{i}") for i in range(30)),
            *(b.send(str(200 + i), OutText(f"ответ b{i}"), dedup=f"b{i}") for i in range(28)),
            b.send("300", OutText(long), dedup="long"),
        )

    try:
        await vt.run(both())
    finally:
        for channel in (a, b):
            await channel.close()
    times = sorted(s.at for s in api.sent)
    assert len(times) == 60  # each part of the long reply is a request of its own
    assert most_in_one_second(times) <= RATE  # together, never above the token's limit
    assert min(y - x for x, y in itertools.pairwise(times)) >= 1 / RATE - EPS
    assert times[-1] - times[0] == pytest.approx(59 / RATE, abs=0.05)  # and they use it
    assert [bucket.failures for bucket in vt.buckets] == [0, 0]


@requires_redis
async def test_replies_and_reminders_together_stay_within_the_limit(redis, bot_api) -> None:
    client, names = redis
    api, url = bot_api
    vt = IoVirtualTime()
    api.clock = vt.clock
    rates = shared_rates(vt, client, names)
    replying, reminding = telegram_channels(url, rates)
    # The scheduler's sender over a channel with a shared budget spaces per chat only.
    sender = Sender(
        {TG: reminding},
        rate_per_s=RATE,
        clock=vt.clock,
        sleep=vt.sleep,
        shared_rates={TG: rates[1]},
    )

    async def both():
        return await asyncio.gather(
            *(replying.send(str(100 + i), OutText("ответ"), dedup=f"r{i}") for i in range(40)),
            *(sender.send(TG, str(500 + i % 20), OutText("напоминание")) for i in range(40)),
        )

    try:
        results = await vt.run(both())
    finally:
        for channel in (replying, reminding):
            await channel.close()
    assert all(r.outcome == Outcome.SENT for r in results[40:])
    times = sorted(s.at for s in api.sent)
    assert len(times) == 80
    assert {s.text for s in api.sent} == {"ответ", "напоминание"}
    assert most_in_one_second(times) <= RATE
    reminders = sorted((s.chat_id, s.at) for s in api.sent if s.text == "напоминание")
    for (chat, t1), (again, t2) in itertools.pairwise(reminders):
        if chat == again:
            assert t2 - t1 >= 1.0  # the per-chat limit stays


@requires_redis
async def test_vk_replies_of_two_workers_share_the_token_limit(redis) -> None:
    from tests.fake_vk_api import FakeVkApi
    from tests.vk_harness import make_channel

    client, names = redis
    vt = IoVirtualTime()
    api = FakeVkApi(clock=vt.clock)
    await api.start()
    channels = [make_channel(api, clock=vt.clock, sleep=vt.sleep) for _ in range(2)]
    for channel, rate in zip(channels, shared_rates(vt, client, names), strict=True):
        channel.share_rate(rate)

    async def both():
        return await asyncio.gather(
            *(
                channel.send(str(1000 + i), OutText(f"ответ {n}-{i}"), dedup=f"{n}-{i}")
                for n, channel in enumerate(channels)
                for i in range(30)
            )
        )

    try:
        await vt.run(both())
    finally:
        for channel in channels:
            await channel.close()
        await api.stop()
    times = sorted(c.at for c in api.calls_of("messages.send"))
    assert len(times) == 60
    assert most_in_one_second(times) <= RATE
    assert times[-1] - times[0] == pytest.approx(59 / RATE, abs=0.05)


@requires_redis
async def test_a_429_on_a_reply_pauses_the_other_worker(redis, bot_api) -> None:
    client, names = redis
    api, url = bot_api
    vt = IoVirtualTime()
    api.clock = vt.clock
    api.flood.append(3)  # Telegram: 429, retry after 3 s
    a, b = telegram_channels(url, shared_rates(vt, client, names))

    async def flooded():
        with pytest.raises(RetryLater):
            await a.send("100", OutText("ответ a"))

    async def later_b():
        await vt.sleep(0.5)
        await asyncio.gather(*(b.send(str(200 + i), OutText("ответ b")) for i in range(3)))

    try:
        await vt.run(asyncio.gather(flooded(), later_b()))
    finally:
        for channel in (a, b):
            await channel.close()
    times = [s.at for s in api.sent]
    assert len(times) == 3 and min(times) >= 3.0 - EPS  # B waited out A's 429


async def test_without_redis_each_workers_replies_take_their_share(bot_api) -> None:
    api, url = bot_api
    vt = IoVirtualTime()
    api.clock = vt.clock
    rates = [TokenRate(RATE, workers=2, clock=vt.clock, sleep=vt.sleep) for _ in range(2)]
    vt.rates.extend(rates)
    channels = telegram_channels(url, rates)

    async def both():
        await asyncio.gather(
            *(
                channel.send(str(100 * (n + 1) + i), OutText("x"))
                for n, channel in enumerate(channels)
                for i in range(20)
            )
        )

    try:
        await vt.run(both())
    finally:
        for channel in channels:
            await channel.close()
    times = sorted(s.at for s in api.sent)
    assert len(times) == 40
    assert most_in_one_second(times) <= 2 * math.ceil(RATE / 2)
    assert max(times) - min(times) == pytest.approx(19 * 2 / RATE)  # each at 12.5/s


def _settings(monkeypatch, **env: str) -> SimpleNamespace:
    return _services(monkeypatch, **env).settings


async def test_create_rates_divides_the_rate_without_redis(monkeypatch) -> None:
    settings = _settings(monkeypatch, WORKERS="2", SEND_RATE_PER_S="20")
    shared = create_rates(settings, {TG: "tg-abc", "vk": "vk-abc"})
    assert shared.client is None
    assert shared.rates[TG].bucket is None
    assert shared.rates[TG].interval == pytest.approx(2 / 20)


async def test_create_rates_shares_a_bucket_per_token_with_redis(monkeypatch) -> None:
    settings = _settings(monkeypatch, WORKERS="3", REDIS_URL="redis://127.0.0.1:6379/15")
    shared = create_rates(settings, {TG: "tg-x", "vk": "vk-x"})
    try:
        telegram, vk = shared.rates[TG], shared.rates["vk"]
        assert telegram.bucket is not None and telegram.bucket.key == bucket_key("tg-x")
        assert vk.bucket is not None and vk.bucket.key == bucket_key("vk-x")
        assert telegram.interval == pytest.approx(1 / 25)
        assert telegram.fallback_interval == pytest.approx(3 / 25)
        assert vk.interval == pytest.approx(1 / 20)  # VK allows 20 requests a second
        sender = create_sender(
            SimpleNamespace(settings=settings, sessions=None),
            {TG: FakeMessenger()},
            {TG: "tg-x"},
            shared_rates=shared.rates,
        )
        limiter = sender.limiter_for(TG)
        assert limiter.rate is telegram and limiter.prepaid  # the channel's own budget
        assert limiter.bucket is None
    finally:
        await shared.close()
