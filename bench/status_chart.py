"""Benchmark of the `/status` chart: how long one PNG takes and how big it is.

    .venv/bin/python bench/status_chart.py                 # 30 and 200 municipalities
    .venv/bin/python bench/status_chart.py --repeat 3      # a quick run

Renders the chart for a region at the bar cap (30 municipalities) and one beyond it (200,
summed into «прочие»), ``--repeat`` times each after one warm-up (font cache, imports).

Last line: ``ms_per_chart=<median at the cap> ms_per_chart_200=<median, 200> png_kb=<at the
cap>``. Target: well under a second per chart, so `/status` can render it in the reply.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exports.status_chart import MAX_BARS, StatusRow, render_status_chart


def rows(count: int) -> list[StatusRow]:
    return [
        StatusRow(f"Муниципальный округ № {i}", 5 + i % 7, i % 4, 3 + i % 5, i % 2, i % 6)
        for i in range(count)
    ]


def timed(data: list[StatusRow], repeat: int) -> tuple[float, int]:
    render_status_chart(data)  # warm-up
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(render_status_chart(data))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    at_cap, size = timed(rows(MAX_BARS), args.repeat)
    many, _ = timed(rows(200), args.repeat)
    print(f"{MAX_BARS} municipalities: {at_cap:.0f} ms, {size / 1024:.0f} KB")
    print(f"200 municipalities: {many:.0f} ms")
    print(f"ms_per_chart={at_cap:.0f} ms_per_chart_200={many:.0f} png_kb={size / 1024:.0f}")


if __name__ == "__main__":
    main()
