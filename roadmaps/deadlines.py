"""Parser for the free-text deadlines ("Сроки") of Russian roadmaps.

The parser works in three steps:

1. ``_normalize`` lower-cases the phrase, maps every dash variant to ``-``, roman-numeral
   look-alikes to Latin ``i``/``v`` and collapses whitespace;
2. ``_lex`` turns it into tokens (numeric dates, years, numbers, month names, keywords,
   connectors) — any word it does not know is an error, nothing is skipped silently;
3. ``_combine`` glues tokens into time elements ("06 декабря 2021", "II полугодие",
   "Сентябрь 2022") and ``_interpret`` decides the resulting :class:`Deadline`.

A year missing from the phrase is taken from the phrase itself (the other end of a range,
a stand-alone "2023") and otherwise from the roadmap :class:`Period`: the calendar year in
which the element overlaps the period most. Nothing outside the period is ever inferred:
if no year fits, or two years fit equally well ("декабрь – январь" in a calendar-year
roadmap), :class:`DeadlineParseError` is raised. Explicit years are kept even when they
fall outside the period (the importer reports that as a warning).

Decisions for ambiguous phrases (also listed in the tests):

* "постоянно" / "систематически" / "на постоянной основе" → ``range`` over the whole
  period (or over an explicit year) with ``note="постоянно"``, so the item is still due
  (and can be checked) at the end of the period;
* "в течение года" → ``range`` over the whole period; "в течение учебного года" → the
  period when it is an academic year, otherwise an error;
* "до конца года" → 31 December of the period's first year (for a calendar-year roadmap
  that is the period end); "до конца учебного года" → 31 August (academic period only);
* "до <месяц>" / "до <год>" without "конца" → the day before that month/year starts
  ("до сентября 2023" → 31.08.2023); "до 1 сентября" → 1 September of the year where it
  falls into the period (in a 2022-2023 academic roadmap that is 01.09.2022);
* "Ежегодно" without months → ``recurring`` yearly with ``months=()``; it is due once per
  year of the period, on the period's last day. ``start``/``end`` of a recurring deadline
  are the span it recurs in (the period, or an explicit year);
* "I/II полугодие" are calendar halves (январь–июнь, июль–декабрь) when a calendar year
  is given or the period is a calendar year; in an academic context (academic period, or
  "2022-2023 уч.г.") they are school halves: сентябрь–декабрь and январь–май;
* "2022-2023" without "уч."/"гг." is the academic year in an academic-year roadmap and two
  calendar years otherwise;
* "с 01.09.2023" without an end → ``range`` up to the end of the period; "с 01.02 до
  15.05.2023" is a range like "01.02-15.05.2023"; a range end without a year lends its
  year to the start, one year earlier if the start would come after the end
  ("01.12-15.01.2023" → 01.12.2022–15.01.2023);
* a dangling "до"/"с" without a date, an unknown word, a non-existent date → error;
* several explicit dates ("до 10.10.2021 и 20.12.2021") → ``recurring`` with
  ``frequency=None`` and ``dates``; several months without "ежегодно" → ``recurring``
  with ``frequency=None`` and ``months``;
* "по графику", "в соответствии с графиком проведения", "План РМО", "по мере
  необходимости", "по запросу" → ``none`` with a note, unless a date is also given;
* school terms ("I четверть") and weekly frequencies are rejected: their dates depend on
  the school calendar and cannot be derived from the text.

Phrases of other regions' roadmaps (the grammar is in :mod:`roadmaps.deadline_grammar`):

* what is not the date is kept as the note: a time of day ("до 17:00 по местному
  времени"), a leading label ("Отчёт – до 1 апреля" → note «Отчёт»; a bare «Срок —» is
  dropped), whose schedule it is ("по графику проведения ВПР"), "по согласованию с ...",
  and a remark in brackets ("01.02-15.05.2024 (с учётом каникул)");
* a remark in brackets that mentions a date or a month and cannot be read is an error
  ("до 12.03 (перенесено на 15.03)"): it may change the deadline;
* a weekday ("14.05. (вт)") is checked against the date; a contradiction is an error;
* footnote marks ("2024**", "2024¹") are ignored; "в течении" is read as "в течение";
* "ежемесячно до 5 числа месяца, следующего за отчётным" → monthly, ``day=5``,
  ``lag_months=1``: the report for December is due on 5 January of the next year;
* "ежеквартально, на 10 рабочий день" → the 10th working day of each quarter (its first
  month) under the Russian production calendar (:mod:`roadmaps.workdays`); with
  "месяца, следующего за отчётным кварталом" — of the month after each quarter.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from roadmaps.deadline_dates import (
    _bounds,
    _Ctx,
    _half_months,
    _resolve,
    _resolve_range,
)
from roadmaps.deadline_grammar import (
    _TERM_REASON,
    _El,
    _Fail,
    _Tok,
    check_weekdays,
    combine,
    lex,
    normalize,
    normalize_cased,
)

__all__ = [
    "Deadline",
    "DeadlineKind",
    "DeadlineParseError",
    "Frequency",
    "Period",
    "parse_deadline",
]

from roadmaps.deadline_types import (
    Deadline,
    DeadlineKind,
    DeadlineParseError,
    Frequency,
    Period,
    _fmt,
)

# --------------------------------------------------------------------------- interpret


# Kinds whose token value is the note itself ("по графику ВПР", "до 17:00", a remark).
_NOTE_KINDS = {"schedule", "plan", "agreed", "time", "remark", "label"}
_FIXED_NOTES = {"asneeded": "по мере необходимости", "onrequest": "по запросу"}
MAX_WORKDAY = 15  # every month has at least 15 working days


def _note_for(t: _Tok) -> str:
    return _FIXED_NOTES.get(t.kind) or t.value


def _interpret(text: str, toks: list[_Tok], period: Period) -> Deadline:
    notes: list[str] = []
    freqs: list[str] = []
    flags: set[str] = set()
    dom: int | None = None
    workday: int | None = None
    lag = 0
    seq: list[_Tok] = []  # elements and connectors, in order
    dangling: _Tok | None = None  # "до"/"с"/"конец" still waiting for its date
    for t in toks:
        if t.kind in ("el", "dom", "workday"):
            dangling = None
        elif t.kind in ("until", "from", "end"):
            dangling = t
        if t.kind == "until" and "from" in flags and seq and seq[-1].kind == "el":
            seq.append(_Tok("to", t.text))  # "с 01.02 до 15.05.2023"
            continue
        if t.kind in _NOTE_KINDS or t.kind in _FIXED_NOTES:
            notes.append(_note_for(t))
        elif t.kind == "workday":
            if workday is not None or dom is not None:
                raise _Fail("указано несколько дней месяца")
            workday = t.value
        elif t.kind == "lag":
            lag = 1
        elif t.kind in ("yearly", "monthly", "quarterly"):
            freqs.append(t.kind)
        elif t.kind == "freq":
            freqs.append(t.value)
        elif t.kind == "weekly":
            raise _Fail("еженедельная периодичность не поддерживается — укажите даты")
        elif t.kind == "term":
            raise _Fail(_TERM_REASON)
        elif t.kind == "dom":
            if dom is not None:
                raise _Fail("указано несколько чисел месяца")
            dom = t.value
        elif t.kind in ("always", "during", "until", "from"):
            flags.add(t.kind)
        elif t.kind in ("el", "to", "and", "end"):
            seq.append(t)
        else:  # pragma: no cover - every lexed kind is handled above
            raise _Fail(f"не понятно «{t.text}»")
    if dangling is not None:
        raise _Fail(f"после «{dangling.text}» не указана дата")
    if len(set(freqs)) > 1:
        raise _Fail("указано несколько разных периодичностей")
    freq = freqs[0] if freqs else None
    if "always" in flags:
        notes.insert(0, "постоянно")
    note = "; ".join(dict.fromkeys(notes)) or None

    groups = _group(seq)
    ctx = _Ctx(period)
    # A stand-alone year (or academic year) next to other elements is the context year.
    if len(groups) > 1 or freq or "always" in flags or dom is not None or workday is not None:
        rest = []
        for g in groups:
            if len(g) == 1 and not g[0].end_of and g[0].unit in ("year", "acyear"):
                if g[0].unit == "year" and ctx.year is None:
                    ctx.year = g[0].year
                    continue
                if g[0].unit == "acyear" and ctx.acyear is None:
                    ctx.acyear = g[0].year
                    continue
                raise _Fail("указано несколько разных лет")
            rest.append(g)
        groups = rest
        if ctx.year is not None and ctx.acyear is not None:
            raise _Fail("указан и календарный, и учебный год")

    def span() -> tuple[date, date]:
        if ctx.acyear is not None:
            return date(ctx.acyear, 9, 1), date(ctx.acyear + 1, 8, 31)
        if ctx.year is not None:
            return date(ctx.year, 1, 1), date(ctx.year, 12, 31)
        return period.start, period.end

    mk = _Maker(text, note)

    recurs = span()
    if freq is not None or dom is not None or workday is not None:
        groups, recurs = _recurrence_span(groups, flags, ctx, recurs, freq)
    if workday is not None:
        return _on_workday(freq, workday, lag, groups, recurs, mk)
    if lag:
        if dom is None:
            raise _Fail("«следующего за отчётным» — укажите, до какого числа")
        if freq not in ("monthly", "quarterly") or groups:
            raise _Fail(
                "«следующего за отчётным» понятно только при «ежемесячно» или «ежеквартально»"
            )
        months = tuple(range(1, 13)) if freq == "monthly" else (3, 6, 9, 12)
        s, e = recurs
        return mk("recurring", start=s, end=e, frequency=freq, months=months, day=dom, lag_months=1)
    if freq is not None or dom is not None:
        return _recurring(freq, dom, groups, ctx, recurs, mk)

    if not groups:
        if "always" in flags:
            s, e = span()
            return mk("range", start=s, end=e)
        if "during" in flags:
            s, e = span()
            return mk("range", start=s, end=e)
        if note:
            return mk("none")
        raise _Fail("не найден срок")

    # several halves/quarters listed ("первое, второе полугодие") → recurring
    singles = [g[0] for g in groups if len(g) == 1]
    if len(groups) > 1 and len(singles) == len(groups):
        return _listed(singles, ctx, mk, flags)

    if len(groups) > 1:
        raise _Fail("не понятно сочетание нескольких сроков")

    group = groups[0]
    if len(group) == 2:
        if "until" in flags:
            raise _Fail("«до» перед диапазоном дат")
        s, e = _resolve_range(group[0], group[1], ctx)
        return mk("range", start=s, end=e)

    el = group[0]
    if el.unit == "thisyear" and not el.end_of:
        # "в течение года" → the whole period (or the explicit year)
        if flags & {"until", "from"}:
            raise _Fail("не понятно, какой год имеется в виду")
        s, e = span()
        return mk("range", start=s, end=e)
    s, e = _resolve(el, ctx)
    if "from" in flags:
        if el.end_of:
            raise _Fail("«с конца ...» не понятно")
        if s > period.end:
            raise _Fail(f"начало {_fmt(s)} позже окончания периода {period}")
        return mk("range", start=s, end=max(period.end, s))
    if el.end_of:
        return mk("day", end=e)
    if "until" in flags:
        if el.unit == "date":
            return mk("day", end=s)
        # "до сентября" → the day before September starts
        return mk("day", end=s - timedelta(days=1))
    if el.unit == "date":
        return mk("day", end=s)
    if el.unit == "month":
        return mk("month", start=s, end=e)
    return mk("range", start=s, end=e)


def _recurrence_span(
    groups: list[list[_El]],
    flags: set[str],
    ctx: _Ctx,
    span: tuple[date, date],
    freq: str | None,
) -> tuple[list[list[_El]], tuple[date, date]]:
    """The span a frequency recurs in, when the phrase says it.

    "не реже 1 раза в месяц в течение учебного года", "ежемесячно с 01.09.2024",
    "ежеквартально с 01.02 по 31.12.2024", "ежемесячно в течение II полугодия".
    A year ("в течение 2024 года") is the context year already.
    """
    rest: list[list[_El]] = []
    found: tuple[date, date] | None = None
    for g in groups:
        el = g[0]
        if len(g) == 2 and freq not in (None, "yearly"):
            bounds = _resolve_range(g[0], g[1], ctx)
        elif len(g) == 1 and not el.end_of and _is_span(el, flags, freq):
            bounds = _resolve(el, ctx)
        elif len(g) == 1 and "from" in flags and el.unit == "date" and not el.end_of:
            start = _resolve(el, ctx)[0]
            if start > span[1]:
                raise _Fail(f"начало {_fmt(start)} позже окончания периода {ctx.period}")
            bounds = (start, span[1])
        else:
            rest.append(g)
            continue
        if found is not None:
            raise _Fail("не понятно, в какой период повторяется срок")
        found = bounds
    return rest, found or span


def _is_span(el: _El, flags: set[str], freq: str | None) -> bool:
    if el.unit in ("thisyear", "thisacyear"):
        return True
    return "during" in flags and el.unit in ("quarter", "half") and freq not in (None, "yearly")


class _Maker:
    def __init__(self, text: str, note: str | None) -> None:
        self.text, self.note = text, note

    def __call__(self, kind: DeadlineKind, **kw: Any) -> Deadline:
        return Deadline(kind=kind, source=self.text, note=self.note, **kw)


def _group(seq: list[_Tok]) -> list[list[_El]]:
    """Split "el (to el)? (and el (to el)?)*" into groups of one or two elements."""
    groups: list[list[_El]] = []
    pending_end = False
    expect_range_end = False
    for t in seq:
        if t.kind == "end":
            pending_end = True
            continue
        if t.kind == "to":
            if not groups or len(groups[-1]) != 1 or expect_range_end:
                raise _Fail("тире или «по» стоит не между двумя датами")
            expect_range_end = True
            continue
        if t.kind == "and":
            if expect_range_end:
                raise _Fail("лишняя запятая или «и» внутри диапазона")
            continue
        el: _El = t.value
        el.end_of = pending_end
        pending_end = False
        if expect_range_end:
            groups[-1].append(el)
            expect_range_end = False
        else:
            groups.append([el])
    if pending_end:
        raise _Fail("не понятно, конец чего имеется в виду")
    if expect_range_end:
        raise _Fail("диапазон не закончен")
    return groups


def _listed(els: list[_El], ctx: _Ctx, mk: _Maker, flags: set[str]) -> Deadline:
    units = {el.unit for el in els}
    if "until" in flags and units != {"date"}:
        raise _Fail("«до» перед списком сроков")
    if any(el.end_of for el in els):
        raise _Fail("«конец» в списке сроков не поддерживается")
    # an explicit year on the last element applies to earlier ones ("10 и 20.12.2021")
    last_year = None
    for el in reversed(els):
        if el.year is not None:
            last_year = el.year
        elif last_year is not None and ctx.year is None and ctx.acyear is None:
            el.year = last_year
    bounds = [_resolve(el, ctx) for el in els]
    start = min(b[0] for b in bounds)
    end = max(b[1] for b in bounds)
    if units == {"date"}:
        dates = tuple(sorted({b[1] for b in bounds}))
        return mk(
            "recurring", start=start, end=end, dates=dates, months=_uniq(d.month for d in dates)
        )
    if units == {"month"}:
        return mk("recurring", start=start, end=end, months=_uniq(el.n for el in els))
    if units == {"half"}:
        months = _uniq(b[1].month for b in bounds)
        return mk("recurring", start=start, end=end, months=months, frequency="half_yearly")
    if units == {"quarter"}:
        months = _uniq(b[1].month for b in bounds)
        return mk("recurring", start=start, end=end, months=months, frequency="quarterly")
    raise _Fail("не понятно сочетание нескольких сроков разного вида")


def _uniq(values: Any) -> tuple[int, ...]:
    return tuple(dict.fromkeys(values))


def _recurring(
    freq: str | None,
    dom: int | None,
    groups: list[list[_El]],
    ctx: _Ctx,
    span: tuple[date, date],
    mk: _Maker,
) -> Deadline:
    s, e = span
    if any(len(g) != 1 for g in groups):
        raise _Fail("диапазон дат рядом с периодичностью не поддерживается")
    els = [g[0] for g in groups]
    if dom is not None:
        if not 1 <= dom <= 31:
            raise _Fail(f"дня {dom} не существует")
        if freq != "monthly" or els:
            raise _Fail("число указано без месяца — например, «до 15 числа каждого месяца»")
        months = tuple(range(1, 13))
        return mk("recurring", start=s, end=e, frequency="monthly", months=months, day=dom)
    if freq == "yearly":
        if all(el.unit == "month" and not el.end_of for el in els):
            return mk(
                "recurring", start=s, end=e, frequency="yearly", months=_uniq(el.n for el in els)
            )
        if len(els) == 1 and els[0].unit == "date" and els[0].year is None:
            el = els[0]
            _bounds(el, 2000, False)  # validates the day (2000 is a leap year)
            return mk("recurring", start=s, end=e, frequency="yearly", months=(el.n,), day=el.day)
        raise _Fail("после «ежегодно» ожидаются месяцы или день и месяц без года")
    if els:
        raise _Fail("сроки рядом с периодичностью не поддерживаются")
    if freq == "monthly":
        return mk("recurring", start=s, end=e, frequency="monthly", months=tuple(range(1, 13)))
    if freq == "quarterly":
        return mk("recurring", start=s, end=e, frequency="quarterly", months=(3, 6, 9, 12))
    assert freq == "half_yearly"
    academic = ctx.academic
    months = tuple(sorted({_half_months(1, academic)[1], _half_months(2, academic)[1]}))
    return mk("recurring", start=s, end=e, frequency="half_yearly", months=months)


def _on_workday(
    freq: str | None,
    workday: int,
    lag: int,
    groups: list[list[_El]],
    span: tuple[date, date],
    mk: _Maker,
) -> Deadline:
    """ "ежеквартально, на 10 рабочий день": the N-th working day of each month or quarter.

    Without "следующего за отчётным", a quarterly one is due in each quarter's first month
    (the N-th working day of the quarter); with it, in the month after each quarter — for a
    calendar quarter that is the same day, reported for the quarter before.
    """
    if not 1 <= workday <= MAX_WORKDAY:
        raise _Fail(
            f"«{workday} рабочий день» — в некоторых месяцах столько рабочих дней нет, "
            f"укажите не больше {MAX_WORKDAY}"
        )
    if groups:
        raise _Fail("рабочий день рядом с датами не поддерживается — укажите даты")
    if freq not in ("monthly", "quarterly"):
        raise _Fail("для рабочего дня укажите периодичность: «ежемесячно» или «ежеквартально»")
    s, e = span
    quarters = (3, 6, 9, 12) if lag else (1, 4, 7, 10)
    months = tuple(range(1, 13)) if freq == "monthly" else quarters
    return mk(
        "recurring", start=s, end=e, frequency=freq, months=months, workday=workday, lag_months=lag
    )


# --------------------------------------------------------------------------- entry point


def parse_deadline(text: str, period: Period) -> Deadline:
    """Parse a roadmap deadline phrase; raise :class:`DeadlineParseError` if unreadable."""
    if not isinstance(text, str):
        raise DeadlineParseError(str(text), "срок должен быть текстом")
    norm = normalize(text)
    if not norm:
        raise DeadlineParseError(text.strip(), "срок не указан")
    try:
        toks = lex(norm, normalize_cased(text))
        weekdays = [t for t in toks if t.kind == "weekday"]
        toks = combine([t for t in toks if t.kind != "weekday"], period.is_academic)
        deadline = _interpret(text.strip(), toks, period)
        check_weekdays(deadline, weekdays)
        return deadline
    except _Fail as exc:
        raise DeadlineParseError(text.strip(), str(exc)) from None
