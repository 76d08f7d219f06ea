"""Date logic of the deadline parser: the years of elements and their bounds.

A year missing from an element is taken from the phrase (the context year, the other end
of a range) or else from the roadmap period: the year in which the element overlaps the
period most; see :mod:`roadmaps.deadlines` for the decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from roadmaps.deadline_grammar import _El, _Fail
from roadmaps.deadline_types import Period, _fmt, _last_day


@dataclass
class _Ctx:
    """What the whole phrase says about years, plus the roadmap period."""

    period: Period
    year: int | None = None  # stand-alone calendar year ("2023 ...", "..., 2021")
    acyear: int | None = None  # academic context ("2022-2023 уч.г.")

    @property
    def academic(self) -> bool:
        if self.acyear is not None:
            return True
        if self.year is not None:
            return False
        return self.period.is_academic


def _half_months(n: int, academic: bool) -> tuple[int, int]:
    if n not in (1, 2):
        raise _Fail(f"полугодий всего два, а указано {n}-е")
    if academic:
        return (9, 12) if n == 1 else (1, 5)
    return (1, 6) if n == 1 else (7, 12)


def _month_span(el: _El, academic: bool) -> tuple[int, int]:
    if el.unit == "month":
        return el.n, el.n
    if el.unit == "quarter":
        if not 1 <= el.n <= 4:
            raise _Fail(f"кварталов всего четыре, а указан {el.n}-й")
        return 3 * el.n - 2, 3 * el.n
    if el.unit == "half":
        return _half_months(el.n, academic and el.year is None)
    if el.unit == "year":
        return 1, 12
    raise AssertionError(el.unit)


def _bounds(el: _El, year: int, academic: bool) -> tuple[date, date]:
    """Bounds of ``el`` when its start falls into calendar ``year``."""
    if el.unit == "date":
        assert el.day is not None
        try:
            d = date(year, el.n, el.day)
        except ValueError:
            raise _Fail(f"даты {el.day:02d}.{el.n:02d}.{year} не существует") from None
        return d, d
    if el.unit == "acyear":
        return date(year, 9, 1), date(year + 1, 8, 31)
    m1, m2 = _month_span(el, academic)
    return date(year, m1, 1), _last_day(year, m2)


def _best_year(build: Callable[[int], tuple[date, date]], ctx: _Ctx, what: str) -> int:
    """Calendar year (of the element's start) that overlaps the period most."""
    p = ctx.period
    best: tuple[int, int] | None = None
    for y in range(p.start.year - 1, p.end.year + 1):
        try:
            s, e = build(y)
        except _Fail:
            continue
        overlap = (min(e, p.end) - max(s, p.start)).days + 1
        if overlap <= 0:
            continue
        if best is not None and overlap == best[0]:
            raise _Fail(
                f"год не указан, а «{what}» одинаково подходит к {best[1]} и {y} году — укажите год"
            )
        if best is None or overlap > best[0]:
            best = (overlap, y)
    if best is None:
        raise _Fail(f"год не указан, а «{what}» не попадает в период дорожной карты {p}")
    return best[1]


def _context_year(el: _El, ctx: _Ctx, academic: bool) -> int | None:
    if ctx.year is not None:
        return ctx.year
    if ctx.acyear is not None:
        m1 = el.n if el.unit == "date" else _month_span(el, academic)[0]
        return ctx.acyear if m1 >= 9 else ctx.acyear + 1
    return None


def _resolve(el: _El, ctx: _Ctx) -> tuple[date, date]:
    """Bounds of a single element, inferring its year if needed."""
    academic = ctx.academic
    if el.unit == "thisyear":
        y = ctx.year if ctx.year is not None else ctx.period.start.year
        if ctx.year is None and not ctx.period.is_academic:
            return ctx.period.start, ctx.period.end
        return date(y, 1, 1), date(y, 12, 31)
    if el.unit == "thisacyear":
        if ctx.acyear is not None:
            return date(ctx.acyear, 9, 1), date(ctx.acyear + 1, 8, 31)
        if not ctx.period.is_academic:
            raise _Fail("не указано, какой учебный год, а период дорожной карты — не учебный год")
        return ctx.period.start, ctx.period.end
    year = el.year if el.year is not None else _context_year(el, ctx, academic)
    if year is None:
        year = _best_year(lambda y: _bounds(el, y, academic), ctx, el.label())
    return _bounds(el, year, academic)


def _resolve_range(a: _El, b: _El, ctx: _Ctx) -> tuple[date, date]:
    academic = ctx.academic
    if {a.unit, b.unit} & {"thisyear", "thisacyear"}:
        raise _Fail("в диапазоне не понятны границы")

    def wrap_end(ya: int) -> int:
        # the end element falls into the same year as the start, or the next one
        sa, _ = _bounds(a, ya, academic)
        _, eb = _bounds(b, ya, academic)
        return ya if eb >= sa else ya + 1

    if a.year is not None and b.year is not None:
        ya, yb = a.year, b.year
    elif b.year is not None:
        ya = b.year
        if _bounds(a, ya, academic)[0] > _bounds(b, b.year, academic)[1]:
            ya -= 1
        yb = b.year
    elif a.year is not None:
        ya = a.year
        yb = wrap_end(ya)
    else:
        cy = _context_year(a, ctx, academic)
        if cy is None:
            cy = _best_year(
                lambda y: (_bounds(a, y, academic)[0], _bounds(b, wrap_end(y), academic)[1]),
                ctx,
                f"{a.label()} – {b.label()}",
            )
        ya = cy
        cb = _context_year(b, ctx, academic)
        yb = cb if cb is not None and ctx.acyear is not None else wrap_end(ya)
    start = _bounds(a, ya, academic)[0]
    end = _bounds(b, yb, academic)[1]
    if start > end:
        raise _Fail(f"начало срока {_fmt(start)} позже окончания {_fmt(end)}")
    return start, end
