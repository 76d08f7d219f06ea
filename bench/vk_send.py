"""Benchmark: how fast the VK channel sends with one community token, and whether VK would
ever see more than 20 requests in a second.

    python bench/vk_send.py            # 200 messages to 50 chats, ~10 s
    python bench/vk_send.py --n 1000

The real ``VkChannel`` (vkbottle's API, our rate limiter) sends concurrently to a fake VK
API on 127.0.0.1 that stamps each ``messages.send`` when it arrives. Every 10th message is
sent twice with the same ``dedup`` (a resend): VK's ``random_id`` must drop it.

The last line is ``rate_per_s=<N> max_in_any_second=<N> shown_twice=<N>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


async def main(n: int, chats: int) -> None:
    from handlers.types import OutText
    from tests.fake_vk_api import FakeVkApi
    from tests.vk_harness import make_channel

    api = FakeVkApi(clock=time.monotonic)
    await api.start()
    channel = make_channel(api)
    await channel.start()
    jobs = [(str(1000 + i % chats), f"m{i}") for i in range(n)]
    jobs += [(str(1000 + i % chats), f"m{i}") for i in range(0, n, 10)]  # resends
    started = time.monotonic()
    await asyncio.gather(
        *(channel.send(chat, OutText(f"Сообщение {d}"), dedup=d) for chat, d in jobs)
    )
    seconds = time.monotonic() - started
    await channel.close()
    await api.stop()
    stamps = sorted(c.at for c in api.calls_of("messages.send"))
    worst = max(sum(1 for s in stamps if t <= s < t + 1.0) for t in stamps)
    shown = len(api.messages) - n
    print(f"requests={len(stamps)} messages={len(api.messages)} seconds={seconds:.2f}")
    print(f"rate_per_s={len(stamps) / seconds:.1f} max_in_any_second={worst} shown_twice={shown}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--chats", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.chats))
