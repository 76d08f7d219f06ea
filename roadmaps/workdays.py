"""Working days of the Russian production calendar (holidays and moved days off)."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=64)
def _calendar(year: int) -> Any:
    import holidays  # only phrases with "рабочий день" need the calendar

    return holidays.country_holidays("RU", years=range(year - 1, year + 2))


def nth_working_day(year: int, month: int, n: int) -> date:
    """The ``n``-th working day of a month (1-based)."""
    return _calendar(year).get_nth_working_day(date(year, month, 1) - timedelta(days=1), n)
