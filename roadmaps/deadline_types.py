"""Public types of the deadline parser: the roadmap period and a parsed deadline."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

from roadmaps.workdays import nth_working_day

DeadlineKind = Literal["day", "range", "month", "recurring", "none"]
Frequency = Literal["yearly", "monthly", "quarterly", "half_yearly"]

__all__ = [
    "Deadline",
    "DeadlineKind",
    "DeadlineParseError",
    "Frequency",
    "Period",
]

MONTH_NAMES = (
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
)


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def _fmt(d: date | None) -> str:
    return d.strftime("%d.%m.%Y") if d else "—"


def _months_between(start: date, end: date) -> Iterator[tuple[int, int]]:
    """(year, month) pairs of every month that intersects [start, end]."""
    y, m = start.year, start.month
    while (y, m) <= (end.year, end.month):
        yield y, m
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)


# --------------------------------------------------------------------------- public types


@dataclass(frozen=True, slots=True)
class Period:
    """Inclusive date range a roadmap covers (calendar or academic year)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.start > self.end:
            raise ValueError(f"period start {self.start} is after its end {self.end}")

    @classmethod
    def calendar_year(cls, year: int) -> Period:
        return cls(date(year, 1, 1), date(year, 12, 31))

    @classmethod
    def academic_year(cls, start_year: int) -> Period:
        """1 September ``start_year`` – 31 August of the next year."""
        return cls(date(start_year, 9, 1), date(start_year + 1, 8, 31))

    @property
    def is_academic(self) -> bool:
        return (self.start.month, self.start.day) == (9, 1) and self.end == date(
            self.start.year + 1, 8, 31
        )

    def contains(self, d: date) -> bool:
        return self.start <= d <= self.end

    def __str__(self) -> str:
        return f"{_fmt(self.start)}–{_fmt(self.end)}"


class DeadlineParseError(ValueError):
    """A deadline phrase could not be read; ``reason`` is a Russian explanation."""

    def __init__(self, text: str, reason: str) -> None:
        shown = text if len(text) <= 120 else text[:117] + "..."
        super().__init__(f"Не удалось разобрать срок «{shown}»: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Deadline:
    """A parsed deadline. The due date of ``day``/``range``/``month`` is ``end``.

    ``day`` is the day of month for recurring deadlines ("до 15 числа каждого месяца",
    "ежегодно до 1 сентября"); ``dates`` holds explicit due dates of a recurring
    deadline listed by hand ("до 10.10.2021 и 20.12.2021").
    """

    kind: DeadlineKind
    source: str
    start: date | None = None
    end: date | None = None
    months: tuple[int, ...] = ()
    frequency: Frequency | None = None
    note: str | None = None
    day: int | None = None
    dates: tuple[date, ...] = field(default=())
    workday: int | None = None  # the N-th working day instead of ``day``
    lag_months: int = 0  # due in the month after the reported one ("следующего за отчётным")

    def due_dates(self, within: Period) -> list[date]:
        """Dates by which the item is due.

        ``day``/``range``/``month`` → ``[end]`` regardless of ``within``; recurring
        deadlines are expanded inside ``within`` (intersected with their own span).
        """
        if self.kind == "none":
            return []
        if self.kind != "recurring":
            return [self.end] if self.end else []
        lo = max(within.start, self.start) if self.start else within.start
        hi = min(within.end, self.end) if self.end else within.end
        if lo > hi:
            return []
        if self.dates:
            return sorted(d for d in self.dates if lo <= d <= hi)
        if self.frequency == "yearly" and not self.months:
            return _yearly_ends(lo, hi)
        months = self.months
        if self.frequency == "monthly":
            months = tuple(range(1, 13))
        elif self.frequency == "quarterly" and not months:
            months = (3, 6, 9, 12)
        out = []
        for y, m in _months_between(lo, hi):
            if m not in months:
                continue
            if self.lag_months:  # reported for (y, m), due in a month after it
                y, m = divmod(y * 12 + m - 1 + self.lag_months, 12)
                m += 1
            if self.workday:
                d = nth_working_day(y, m, self.workday)
            else:
                last = _last_day(y, m)
                d = last.replace(day=min(self.day, last.day)) if self.day else last
            if lo <= d and (d <= hi or self.lag_months):
                out.append(d)
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat() if self.end else None,
            "months": list(self.months),
            "frequency": self.frequency,
            "note": self.note,
            "day": self.day,
            "dates": [d.isoformat() for d in self.dates],
            "source": self.source,
        }
        # only when set, so that stored deadlines of older versions keep their checksum
        if self.workday:
            data["workday"] = self.workday
        if self.lag_months:
            data["lag_months"] = self.lag_months
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deadline:
        def d(v: str | None) -> date | None:
            return date.fromisoformat(v) if v else None

        return cls(
            kind=data["kind"],
            source=data.get("source", ""),
            start=d(data.get("start")),
            end=d(data.get("end")),
            months=tuple(data.get("months") or ()),
            frequency=data.get("frequency"),
            note=data.get("note"),
            day=data.get("day"),
            dates=tuple(date.fromisoformat(x) for x in data.get("dates") or ()),
            workday=data.get("workday"),
            lag_months=data.get("lag_months") or 0,
        )

    def describe(self) -> str:
        """Short Russian description for messages."""
        note = f" ({self.note})" if self.note else ""
        if self.kind == "none":
            text = self.note or "без срока"
            return text[0].upper() + text[1:]
        if self.kind == "day":
            return f"до {_fmt(self.end)}{note}"
        if self.kind == "month":
            assert self.start
            return f"{MONTH_NAMES[self.start.month - 1]} {self.start.year}{note}"
        if self.kind == "range":
            return f"с {_fmt(self.start)} по {_fmt(self.end)}{note}"
        if self.dates:
            return "до " + ", ".join(_fmt(d) for d in self.dates) + note
        freq = {
            "yearly": "ежегодно",
            "monthly": "ежемесячно",
            "quarterly": "ежеквартально",
            "half_yearly": "раз в полугодие",
            None: "",
        }[self.frequency]
        parts = [freq] if freq else []
        after = " месяца, следующего за отчётным" if self.lag_months else ""
        if self.day:
            parts.append(f"до {self.day} числа{after}")
        elif self.workday:
            parts.append(f"на {self.workday}-й рабочий день{after or ' месяца'}")
        if self.months and self.frequency not in ("monthly", "quarterly"):
            parts.append(", ".join(MONTH_NAMES[m - 1] for m in self.months))
        return (": ".join(parts) or "периодически") + note


def _yearly_ends(lo: date, hi: date) -> list[date]:
    """One due date per year-long chunk of [lo, hi], at the chunk's end."""
    out = []
    s = lo
    while s <= hi:
        try:
            nxt = s.replace(year=s.year + 1)
        except ValueError:  # 29 February
            nxt = date(s.year + 1, 3, 1)
        e = min(nxt - timedelta(days=1), hi)
        out.append(e)
        s = e + timedelta(days=1)
    return out
