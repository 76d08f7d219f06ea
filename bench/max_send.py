"""Benchmark: how fast MaxChannel sends through its token bucket (real clock).

    python bench/max_send.py [--n 300]

Serves the fake MAX API from tests/fake_max_api.py on 127.0.0.1, sends ``--n`` texts (and a
few files, each answered «attachment.not.ready» once) through the real ``MaxChannel`` with the
default bucket (25 requests/s, burst 5), and measures from the server side: the overall rate
and the most requests seen in any one-second window.

The last line is ``rate_per_s=<N> max_in_1s=<N> requests=<N> seconds=<N>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.max import MaxApi, MaxChannel
from handlers.types import OutFile, OutText
from tests import fake_max_api as fake


async def main(n: int) -> None:
    server = await fake.FakeMaxApi().start()
    channel = MaxChannel(MaxApi(fake.TOKEN, server.base_url))
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "report.pdf"
            path.write_bytes(b"%PDF-1.4\n%%EOF\n")
            for i in range(n):
                if i % 100 == 99:
                    await channel.send(str(1000 + i % 7), OutFile(path, "Отчёт.pdf", "Отчёт"))
                else:
                    await channel.send(str(1000 + i % 7), OutText(f"Напоминание {i}"))
    finally:
        await channel.close()
        await server.close()
    seconds = time.monotonic() - started
    # Uploads go to the fake's «CDN» port without a token; count only API requests.
    stamps = sorted(r.at for r in server.requests if not r.path.startswith("/upload/"))
    window = max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps)
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    print(f"rate_per_s={rate:.1f} max_in_1s={window} requests={len(stamps)} seconds={seconds:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    asyncio.run(main(parser.parse_args().n))
