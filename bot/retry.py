"""Exponential backoff for waiting out an unreachable platform API."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 1.0
    factor: float = 2.0
    cap: float = 60.0
    jitter: float = 0.1  # ± share of each delay, so restarted bots do not knock in step

    def delays(self) -> Iterator[float]:
        delay = self.first
        while True:
            spread = delay * self.jitter
            yield max(0.0, delay + random.uniform(-spread, spread))
            delay = min(self.cap, delay * self.factor)
