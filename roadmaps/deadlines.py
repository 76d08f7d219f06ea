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
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Literal

DeadlineKind = Literal["day", "range", "month", "recurring", "none"]
Frequency = Literal["yearly", "monthly", "quarterly", "half_yearly"]

__all__ = [
    "Deadline",
    "DeadlineKind",
    "DeadlineParseError",
    "Frequency",
    "Period",
    "parse_deadline",
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
            last = _last_day(y, m)
            d = last.replace(day=min(self.day, last.day)) if self.day else last
            if lo <= d <= hi:
                out.append(d)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
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
        if self.day:
            parts.append(f"до {self.day} числа")
        if self.months and self.frequency != "monthly":
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


# --------------------------------------------------------------------------- lexer


class _Fail(Exception):
    """Internal: carries a Russian reason up to :func:`parse_deadline`."""


_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"
_ROMAN = {"\u2160": "i", "\u2161": "ii", "\u2162": "iii", "\u2163": "iv"}


def _normalize(text: str) -> str:
    s = text.replace("\u00a0", " ").replace("\u202f", " ").lower().replace("ё", "е")
    for ch in _DASHES:
        s = s.replace(ch, "-")
    for ch, rep in _ROMAN.items():
        s = s.replace(ch.lower(), rep).replace(ch, rep)
    s = s.replace("і", "i")  # Ukrainian/Belarusian "і" typed for the roman numeral I
    s = re.sub(r"<[^>]+>", " ", s)  # stray HTML from copy-paste
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" .,;:")


_B = r"(?![а-яa-z0-9])"  # end of a word
_YEAR_SUFFIX = r"(?:\s*(?P<ysuf>гг\.?|г\.?|год(?:а|у|ы|ах|ов)?)" + _B + r")?"

_MONTH_RX = [
    (1, r"январ[а-я]*|янв\.?"),
    (2, r"феврал[а-я]*|фев\.?"),
    (3, r"март[а-я]*|мар\.?"),
    (4, r"апрел[а-я]*|апр\.?"),
    (5, r"ма[йяею]"),
    (6, r"июн[а-я]*"),
    (7, r"июл[а-я]*"),
    (8, r"август[а-я]*|авг\.?"),
    (9, r"сентябр[а-я]*|сент?\.?"),
    (10, r"октябр[а-я]*|окт\.?"),
    (11, r"ноябр[а-я]*|нояб?\.?"),
    (12, r"декабр[а-я]*|дек\.?"),
]

_ORDINALS = [
    (1, r"перв(?:ое|ый|ая|ого|ом|ой|ую)"),
    (2, r"втор(?:ое|ой|ая|ого|ом|ую)"),
    (3, r"трет(?:ье|ий|ья|ьего|ьем|ьей|ью)"),
    (4, r"четверт(?:ый|ое|ая|ого|ом|ой|ую)"),
]
_ROMAN_NUM = {"i": 1, "ii": 2, "iii": 3, "iv": 4}

_UNIT_WORD = (
    r"(?P<unit>год[а-я]*|г\.?|месяц[а-я]*|мес\.?|квартал[а-я]*|кв\.?|полугоди[а-я]*|полгода)"
)
_FREQ_COUNT = {"один": 1, "одного": 1, "два": 2, "дважды": 2, "три": 3, "четыре": 4}

_ABBR = r"рмо|шмо|ммо|мо|оо|моуо|рмк|ммс|ро|иро|коиро|оу"

# (kind, regex). Tried in order at each position; the first match wins.
_LEXICON: list[tuple[str, str]] = [
    # "2022-2023 уч.г.", "2022/23 учебного года"
    (
        "acyear",
        r"(?P<y1>(?:19|20)\d\d)\s*[-/]\s*(?P<y2>(?:19|20)?\d\d)\s*(?:гг?\.?\s*)?"
        r"уч(?:ебн[а-я]*)?\.?\s*(?:год[а-я]*|гг?\.?)" + _B,
    ),
    ("acyearword", r"уч(?:ебн[а-я]*)?\.?\s*(?:год[а-я]*|гг?\.?)" + _B),
    (
        "numdate",
        r"(?P<d>\d{1,2})\s*[./]\s*(?P<m>\d{1,2})(?:\s*[./]\s*(?P<y>\d{4}|\d\d)(?!\d))?\.?"
        + _YEAR_SUFFIX,
    ),
    ("year", r"(?P<y>(?:19|20)\d\d)(?!\d)" + _YEAR_SUFFIX),
    (
        "freq",
        r"(?:(?:не\s+)?(?:реже|чаще)\s+)?"
        r"(?:(?P<n>\d+|один|одного|два|три|четыре)\s*раза?|(?P<n2>дважды)|раз)"
        r"\s+(?:в|за)\s+" + _UNIT_WORD + _B,
    ),
    ("weekly", r"еженедельн[а-я]*|кажд(?:ую|ая|ой)\s+недел[а-я]*|раз\s+в\s+недел[а-я]*"),
    ("yearly", r"ежегодн[а-я]*"),
    ("monthly", r"ежемесячн[а-я]*"),
    ("quarterly", r"ежеквартальн[а-я]*"),
    ("term", r"четверт(?:ь|и|ью|ей|ям|ях)" + _B),
    (
        "schedule",
        r"(?:(?:в\s+)?соответстви[иея]\s+с|согласно|по)\s+"
        r"(?:(?:утвержденн|отдельн|установленн)[а-я]*\s+)?(?:график[а-я]*|расписани[а-я]*)"
        r"(?:\s+(?:проведения|работы|мероприятий))?" + _B,
    ),
    ("schedule", r"график[а-я]*(?:\s+(?:проведения|работы|мероприятий))?" + _B),
    (
        "plan",
        r"(?:(?:(?:в\s+)?соответстви[иея]\s+с|согласно|по)\s+)?план(?:у|ом|а)?"
        r"(?:\s+(?:работы|мероприятий))?(?:\s+(?P<obj>" + _ABBR + r"))?" + _B,
    ),
    ("asneeded", r"по\s+мере\s+необходимости|по\s+необходимости"),
    ("onrequest", r"по\s+запросу" + _B),
    (
        "always",
        r"постоянн[а-я]*|систематическ[а-я]*|на\s+постоянной\s+основе|"
        r"в\s+течение\s+всего\s+периода|весь\s+период",
    ),
    ("during", r"в\s+течени[ея]|на\s+протяжении|в\s+ходе|весь|всего|всей"),
    ("until", r"(?:в\s+срок\s+)?до" + _B + r"|не\s+позднее|не\s+позже|к" + _B),
    ("end", r"(?:к\s+)?конц[аеу]|окончани[яе]|завершени[яе]"),
    ("from", r"начиная\s+с|с" + _B + r"|со" + _B),
    ("to", r"по" + _B + r"|-|/"),
    ("and", r"и" + _B + r"|,|;|а\s+также"),
    ("each", r"кажд[а-я]*"),
    ("dayword", r"числ[а-я]*" + _B),
    ("yearword", r"(?:календарн[а-я]*\s+|текущ[а-я]*\s+)?год[а-я]*" + _B + r"|г\.?" + _B),
    ("quarterword", r"квартал[а-я]*|кв\.?" + _B),
    ("halfword", r"полугоди[а-я]*|полгода|п/г|пг\.?" + _B),
    ("monthword", r"месяц[а-я]*|мес\.?" + _B),
    *(("month", f"(?:{rx})" + _B) for _, rx in _MONTH_RX),
    *(("ord", f"(?:{rx})" + _B) for _, rx in _ORDINALS),
    ("roman", r"(?:iii|ii|iv|i)" + _B),
    ("num", r"(?P<n>\d{1,2})(?:\s*-?\s*(?:го|е|ое|ой|ый|й))?" + _B),
    (
        "filler",
        r"(?:в|во|на|за|срок[а-я]*|период[а-я]*|соответственно|включительно|"
        r"текущ[а-я]*|т\.\s*г|не\s+реже|не)" + _B + r"|[.()«»\"']",
    ),
]
_LEX = [(kind, re.compile(rx)) for kind, rx in _LEXICON]
_MONTH_LEX = [(num, re.compile(f"(?:{rx})" + _B)) for num, rx in _MONTH_RX]
_ORD_LEX = [(num, re.compile(f"(?:{rx})" + _B)) for num, rx in _ORDINALS]


@dataclass
class _Tok:
    kind: str
    text: str
    value: Any = None


def _year2(s: str) -> int:
    y = int(s)
    return 2000 + y if y < 100 else y


def _match_at(s: str, pos: int) -> tuple[str, re.Match[str]]:
    for kind, rx in _LEX:
        m = rx.match(s, pos)
        if m and m.end() > pos:
            return kind, m
    word = re.match(r"[^\s,;.]+", s[pos:])
    raise _Fail(f"не удалось распознать «{word.group() if word else s[pos]}»")


def _lex(s: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(s):
        if s[pos] == " ":
            pos += 1
            continue
        kind, m = _match_at(s, pos)
        pos = m.end()
        gd = m.groupdict()
        text = m.group()
        if kind == "filler":
            continue
        value: Any = None
        if kind == "numdate":
            value = (int(gd["d"]), int(gd["m"]), _year2(gd["y"]) if gd["y"] else None)
        elif kind == "year":
            suf = (gd.get("ysuf") or "").rstrip(".")
            value = (int(gd["y"]), suf in ("гг", "годы", "годах", "годов"))
        elif kind == "acyear":
            y1, y2 = int(gd["y1"]), _year2(gd["y2"])
            if y2 != y1 + 1:
                raise _Fail(f"учебный год «{text}» должен состоять из двух соседних лет")
            value = y1
        elif kind == "num":
            value = int(gd["n"])
        elif kind == "roman":
            value = _ROMAN_NUM[text.strip()]
        elif kind == "ord":
            value = next(n for n, rx in _ORD_LEX if rx.match(text))
        elif kind == "month":
            value = next(n for n, rx in _MONTH_LEX if rx.match(text))
        elif kind == "plan":
            value = gd.get("obj")
        elif kind == "freq":
            value = _freq_from_count(gd.get("n") or gd.get("n2"), gd["unit"], text)
        toks.append(_Tok(kind, text, value))
    return toks


def _freq_from_count(n: str | None, unit: str, text: str) -> str:
    """ "2 раза в год" → half_yearly, "раз в месяц" → monthly, ..."""
    count = 1 if n is None else _FREQ_COUNT.get(n) or int(n)
    per_year = {"г": 1, "м": 12, "к": 4, "п": 2}[unit[0]]
    total = per_year * count
    freq = {1: "yearly", 2: "half_yearly", 4: "quarterly", 12: "monthly"}.get(total)
    if freq is None:
        raise _Fail(f"периодичность «{text}» не поддерживается")
    return freq


# --------------------------------------------------------------------------- elements

Unit = Literal["date", "month", "quarter", "half", "year", "acyear", "thisyear", "thisacyear"]


@dataclass
class _El:
    unit: Unit
    n: int = 0  # month / quarter / half number; day for "date" is in ``day``
    day: int | None = None
    year: int | None = None
    end_of: bool = False  # "конец ..."
    plural_year: bool = False  # "2022-2023 гг."

    def label(self) -> str:
        return {
            "date": f"{self.day:02d}.{self.n:02d}" if self.day else "дата",
            "month": MONTH_NAMES[self.n - 1] if self.n else "месяц",
            "quarter": f"{self.n} квартал",
            "half": f"{self.n} полугодие",
            "year": f"{self.year} год",
            "acyear": f"{self.year}-{(self.year or 0) + 1} учебный год",
            "thisyear": "год",
            "thisacyear": "учебный год",
        }[self.unit]


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


def _validate(el: _El) -> None:
    if el.unit == "quarter" and not 1 <= el.n <= 4:
        raise _Fail(f"кварталов всего четыре, а указан {el.n}-й")
    if el.unit == "half" and el.n not in (1, 2):
        raise _Fail(f"полугодий всего два, а указано {el.n}-е")
    if el.unit == "date":
        assert el.day is not None
        if not 1 <= el.n <= 12:
            raise _Fail(f"месяца {el.n} не существует")
        if not 1 <= el.day <= 31:
            raise _Fail(f"дня {el.day} не существует")


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


# --------------------------------------------------------------------------- combine


def _combine(toks: list[_Tok], period: Period) -> list[_Tok]:
    """Glue numbers, month names and years into ``el`` tokens (value: :class:`_El`)."""
    out: list[_Tok] = []
    i = 0

    def take_year(j: int) -> tuple[int | None, bool, int]:
        if j < len(toks) and toks[j].kind == "year":
            y, plural = toks[j].value
            return y, plural, j + 1
        return None, False, j

    while i < len(toks):
        t = toks[i]
        if t.kind == "numdate":
            d, m, y = t.value
            el = _El("date", n=m, day=d, year=y)
            _validate(el)
            if y is None:
                el.year, _, i2 = take_year(i + 1)
            else:
                i2 = i + 1
            out.append(_Tok("el", t.text, el))
            i = i2
            continue
        if t.kind in ("num", "ord", "roman"):
            # a run "1, 2 и 3" / "I-II" followed by what the numbers count
            nums = [t.value]
            seps: list[_Tok] = []
            j = i + 1
            # "с 1 до 15 сентября": after "с", "до" separates the ends of a range
            seps_ok = ("and", "to", "until") if i and toks[i - 1].kind == "from" else ("and", "to")
            while (
                j + 1 < len(toks)
                and toks[j].kind in seps_ok
                and toks[j + 1].kind in ("num", "ord", "roman")
            ):
                sep = toks[j]
                seps.append(_Tok("to", sep.text) if sep.kind == "until" else sep)
                nums.append(toks[j + 1].value)
                j += 2
            unit_tok = toks[j] if j < len(toks) else None
            kind = unit_tok.kind if unit_tok else None
            if kind == "month":
                els = [_El("date", n=unit_tok.value, day=n) for n in nums]
            elif kind == "quarterword":
                els = [_El("quarter", n=n) for n in nums]
            elif kind == "halfword":
                els = [_El("half", n=n) for n in nums]
            elif kind == "term":
                raise _Fail(_TERM_REASON)
            elif kind == "dayword" and len(nums) == 1:
                out.append(_Tok("dom", t.text, nums[0]))
                i = j + 1
                continue
            else:
                raise _Fail(f"не понятно, к чему относится число «{t.text}»")
            year, plural, j = take_year(j + 1)
            for n, el in enumerate(els):
                el.year = year
                _validate(el)
                if n:
                    out.append(seps[n - 1])
                out.append(_Tok("el", t.text, el))
            i = j
            continue
        if t.kind == "month":
            year, _, j = take_year(i + 1)
            out.append(_Tok("el", t.text, _El("month", n=t.value, year=year)))
            i = j
            continue
        if t.kind == "year":
            y, plural = t.value
            # "2022-2023" (consecutive, no "гг.") in an academic roadmap → academic year
            if (
                i + 2 < len(toks)
                and toks[i + 1].kind == "to"
                and toks[i + 2].kind == "year"
                and toks[i + 2].value[0] == y + 1
                and not (plural or toks[i + 2].value[1])
                and period.is_academic
            ):
                out.append(_Tok("el", t.text, _El("acyear", year=y)))
                i += 3
                continue
            out.append(_Tok("el", t.text, _El("year", year=y, plural_year=plural)))
            i += 1
            continue
        if t.kind == "acyear":
            out.append(_Tok("el", t.text, _El("acyear", year=t.value)))
            i += 1
            continue
        if t.kind == "yearword":
            out.append(_Tok("el", t.text, _El("thisyear")))
            i += 1
            continue
        if t.kind == "acyearword":
            out.append(_Tok("el", t.text, _El("thisacyear")))
            i += 1
            continue
        if t.kind == "each" and i + 1 < len(toks):
            nxt = toks[i + 1].kind
            freq = {
                "monthword": "monthly",
                "quarterword": "quarterly",
                "halfword": "half_yearly",
                "yearword": "yearly",
            }.get(nxt)
            if freq:
                out.append(_Tok("freq", t.text + " " + toks[i + 1].text, freq))
                i += 2
                continue
        if t.kind in ("quarterword", "halfword", "monthword", "dayword", "each"):
            raise _Fail(f"не понятно, какой именно «{t.text}»")
        out.append(t)
        i += 1
    return out


# --------------------------------------------------------------------------- interpret


_NOTE_KINDS = {"schedule", "plan", "asneeded", "onrequest"}
_TERM_REASON = "сроки учебных четвертей зависят от календарного графика школы — укажите даты"


def _note_for(t: _Tok) -> str:
    if t.kind == "schedule":
        return "по графику"
    if t.kind == "plan":
        return "по плану" + (f" {t.value.upper()}" if t.value else "")
    if t.kind == "asneeded":
        return "по мере необходимости"
    return "по запросу"


def _interpret(text: str, toks: list[_Tok], period: Period) -> Deadline:
    notes: list[str] = []
    freqs: list[str] = []
    flags: set[str] = set()
    dom: int | None = None
    seq: list[_Tok] = []  # elements and connectors, in order
    dangling: _Tok | None = None  # "до"/"с"/"конец" still waiting for its date
    for t in toks:
        if t.kind in ("el", "dom"):
            dangling = None
        elif t.kind in ("until", "from", "end"):
            dangling = t
        if t.kind == "until" and "from" in flags and seq and seq[-1].kind == "el":
            seq.append(_Tok("to", t.text))  # "с 01.02 до 15.05.2023"
            continue
        if t.kind in _NOTE_KINDS:
            notes.append(_note_for(t))
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
    if len(groups) > 1 or freq or "always" in flags or dom is not None:
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

    if freq is not None or dom is not None:
        return _recurring(freq, dom, groups, ctx, span(), mk)

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


# --------------------------------------------------------------------------- entry point


def parse_deadline(text: str, period: Period) -> Deadline:
    """Parse a roadmap deadline phrase; raise :class:`DeadlineParseError` if unreadable."""
    if not isinstance(text, str):
        raise DeadlineParseError(str(text), "срок должен быть текстом")
    norm = _normalize(text)
    if not norm:
        raise DeadlineParseError(text.strip(), "срок не указан")
    try:
        toks = _combine(_lex(norm), period)
        return _interpret(text.strip(), toks, period)
    except _Fail as exc:
        raise DeadlineParseError(text.strip(), str(exc)) from None
