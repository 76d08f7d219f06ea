"""The grammar of deadline phrases: normalisation, the lexicon and the lexer.

See :mod:`roadmaps.deadlines` for the decisions; this module only turns a phrase into
tokens and glues numbers, month names and years into time elements (``_El``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from roadmaps.deadline_types import MONTH_NAMES, Deadline, _fmt

# --------------------------------------------------------------------------- lexer


class _Fail(Exception):
    """Internal: carries a Russian reason up to :func:`parse_deadline`."""


_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58\ufe63\uff0d"
_ROMAN = {"\u2160": "i", "\u2161": "ii", "\u2162": "iii", "\u2163": "iv"}


_FOOTNOTES = re.compile(r"\*+|[\u00b9\u00b2\u00b3\u2070-\u2079]+")


def normalize_cased(text: str) -> str:
    """The phrase cleaned as :func:`normalize` does, but with its letters' case kept."""
    s = text.replace("\u00a0", " ").replace("\u202f", " ")
    for ch in _DASHES:
        s = s.replace(ch, "-")
    for ch, rep in _ROMAN.items():
        s = s.replace(ch.lower(), rep).replace(ch, rep)
    s = s.replace("і", "i")  # Ukrainian/Belarusian "і" typed for the roman numeral I
    s = re.sub(r"<[^>]+>", " ", s)  # stray HTML from copy-paste
    s = _FOOTNOTES.sub("", s)  # footnote marks: "5 мая 2024** года", "2024¹"
    s = re.sub(r"\s+", " ", s).strip()
    return s.strip(" .,;:")


def normalize(text: str) -> str:
    return normalize_cased(text).lower().replace("ё", "е")


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
    # a time of day: "до 17:00 по местному времени", "12:00 мск"
    (
        "time",
        r"(?:(?:до|в|к|не\s+позднее)\s+)?"
        # "17:00", or "17.00" whose minutes cannot be a month ("12.10" is 12 October)
        r"(?:\d{1,2}:\d{2}|\d{1,2}\.(?:00|1[3-9]|[2-5]\d)(?=\s*(?:ч|час|по\s|мск|\)|$)))(?!\d)"
        r"(?:\s*(?:ч\.?|час[а-я]*))?"
        r"(?:\s+(?:по\s+)?(?:местному|московскому)\s+времени|\s+мск\.?)?",
    ),
    # "10 рабочий день", "не позднее 5-го рабочего дня"
    (
        "workday",
        r"(?P<n>\d{1,2})(?:\s*-?\s*(?:го|й|ый|ой))?\s+рабоч[а-я]*\s+(?:день|дня|дню|днем|дне)" + _B,
    ),
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
    # "месяца, следующего за отчётным (кварталом)": due in the month after the reported one
    (
        "lag",
        r"(?:(?:месяц|квартал)[а-я]*\s*,?\s*)?следующ[а-я]*\s+за\s+отчетн[а-я]*"
        r"(?:\s+(?:месяц|квартал|период)[а-я]*)?",
    ),
    ("weekly", r"еженедельн[а-я]*|кажд(?:ую|ая|ой)\s+недел[а-я]*|раз\s+в\s+недел[а-я]*"),
    ("yearly", r"ежегодн[а-я]*"),
    ("monthly", r"ежемес[яе]чн[а-я]*"),
    ("quarterly", r"ежеквартальн[а-я]*"),
    ("term", r"четверт(?:ь|и|ью|ей|ям|ях)" + _B),
    (
        "schedule",
        r"(?:(?:в\s+)?соответстви[иея]\s+с|согласно|по)\s+"
        r"(?:(?:утвержденн|отдельн|установленн)[а-я]*\s+)?(?P<sched>график[а-я]*|расписани[а-я]*)"
        r"(?P<what>\s+(?:проведения|работы|мероприятий))?" + _B,
    ),
    ("schedule", r"(?P<sched>график[а-я]*)(?P<what>\s+(?:проведения|работы|мероприятий))?" + _B),
    (
        "plan",
        r"(?:(?:(?:в\s+)?соответстви[иея]\s+с|согласно|по)\s+)?"
        r"(?:(?:утвержденн|отдельн|установленн)[а-я]*\s+)?план(?:у|ом|а)?"
        r"(?:\s+(?:работы|мероприятий))?(?:\s+(?P<obj>" + _ABBR + r"))?" + _B,
    ),
    ("asneeded", r"по\s+мере\s+необходимости|по\s+необходимости"),
    ("onrequest", r"по\s+запросу" + _B),
    ("agreed", r"по\s+согласовани[юя]" + _B),
    (
        "always",
        r"постоян+[а-я]*|систематическ[а-я]*|на\s+постоян+ой\s+основе|"
        r"в\s+течени[еи]\s+всего\s+периода|весь\s+период",
    ),
    ("during", r"в\s+течени[еяи]|на\s+протяжении|в\s+ходе|весь|всего|всей"),
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
        r"(?:в|во|на|за|срок[а-я]*|период[а-я]*|соответственно|включительно|дат[аы]|"
        r"исполнени[а-я]*|реализаци[а-я]*|выполнени[а-я]*|"
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


_WEEKDAY_NAMES = r"понедельник|вторник|среда|четверг|пятница|суббота|воскресенье"
_WEEKDAY_PAREN = re.compile(r"\(\s*(?P<w>пн|вт|ср|чт|пт|сб|вс|" + _WEEKDAY_NAMES + r")\.?\s*\)")
_WEEKDAY_WORD = re.compile(r"(?P<w>" + _WEEKDAY_NAMES + r")" + _B)
_WEEKDAY_INDEX = {"пн": 0, "по": 0, "вт": 1, "ср": 2, "чт": 3, "че": 3, "пт": 4, "пя": 4}
_WEEKDAY_INDEX |= {"сб": 5, "су": 5, "вс": 6, "во": 6}
WEEKDAY_NAMES = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
# "Отчёт – до 1 апреля", "Срок: 20.09.2024": words, then a dash or a colon
_LABEL = re.compile(r"(?P<label>[^\d()\-:,;]+?)\s*[-:]\s*")
_WORD = re.compile(r"[^\s,;()]+")
_TEMPORAL = re.compile(r"\d|(?<![а-яa-z])(?:" + "|".join(rx for _, rx in _MONTH_RX) + r")" + _B)
_ABSORBING = {"schedule", "plan", "agreed"}


def lex(s: str, cased: str | None = None) -> list[_Tok]:
    """Tokens of a normalised phrase; ``cased`` (same text, case kept) is quoted in notes."""
    if cased is None or len(cased) != len(s):
        cased = s
    toks: list[_Tok] = []
    pos = 0
    label = _LABEL.match(s)
    if label and _is_label(label.group("label")):
        text = cased[label.start("label") : label.end("label")].strip()
        if _words_only(label.group("label")):
            toks.append(_Tok("label", text, text))
        pos = label.end()
    while pos < len(s):
        if s[pos] == " ":
            pos += 1
            continue
        wd = _WEEKDAY_PAREN.match(s, pos) or _WEEKDAY_WORD.match(s, pos)
        if wd:
            toks.append(_Tok("weekday", wd.group(), _WEEKDAY_INDEX[wd.group("w")[:2]]))
            pos = wd.end()
            continue
        if s[pos] == "(":
            close = s.find(")", pos)
            close = len(s) if close < 0 else close
            toks.extend(_bracketed(s[pos + 1 : close], cased[pos + 1 : close]))
            pos = close + 1
            continue
        kind, m = _match_at(s, pos)
        pos = m.end()
        gd = m.groupdict()
        text = m.group()
        if kind == "filler":
            continue
        value: Any = None
        if kind in _ABSORBING:
            end = _absorb(s, pos)
            value = _note_of(kind, m, cased, end)
            pos = end
        elif kind == "numdate":
            value = (int(gd["d"]), int(gd["m"]), _year2(gd["y"]) if gd["y"] else None)
        elif kind == "year":
            suf = (gd.get("ysuf") or "").rstrip(".")
            value = (int(gd["y"]), suf in ("гг", "годы", "годах", "годов"))
        elif kind == "acyear":
            y1, y2 = int(gd["y1"]), _year2(gd["y2"])
            if y2 != y1 + 1:
                raise _Fail(f"учебный год «{text}» должен состоять из двух соседних лет")
            value = y1
        elif kind in ("num", "workday"):
            value = int(gd["n"])
        elif kind == "roman":
            value = _ROMAN_NUM[text.strip()]
        elif kind == "ord":
            value = next(n for n, rx in _ORD_LEX if rx.match(text))
        elif kind == "month":
            value = next(n for n, rx in _MONTH_LEX if rx.match(text))
        elif kind == "freq":
            value = _freq_from_count(gd.get("n") or gd.get("n2"), gd["unit"], text)
        elif kind == "time":
            value = cased[m.start() : m.end()]
        toks.append(_Tok(kind, text, value))
    return toks


def _is_label(text: str) -> bool:
    """A leading label says nothing about time: lexing it fails or gives only fillers."""
    try:
        return not lex(text)
    except _Fail:
        return not _TEMPORAL.search(text)


def _words_only(text: str) -> bool:
    """The label has words of its own (not just «Срок», «Сроки исполнения»)."""
    try:
        lex(text)
    except _Fail:
        return True
    return False


def _bracketed(inner: str, cased: str) -> list[_Tok]:
    """A parenthetical: its tokens ("(июнь)", "(до 17:00)"), or a remark kept as the note.

    A remark that mentions a date or a month is an error, not a note: it may change the
    deadline ("перенесено на 15.03"), and guessing is worse than asking.
    """
    try:
        return lex(inner, cased)
    except _Fail:
        if _TEMPORAL.search(inner):
            raise _Fail(f"в скобках указан другой срок или условие: «{cased.strip()}»") from None
    text = cased.strip(" .,;:")
    return [_Tok("remark", text, text)] if text else []


def _absorb(s: str, pos: int) -> int:
    """End of the words after «по графику» that name whose schedule it is ("... ВПР")."""
    end = p = pos
    while True:
        while p < len(s) and s[p] == " ":
            p += 1
        if p >= len(s) or s[p] in ",;()":
            return end
        try:
            kind, m = _match_at(s, p)
        except _Fail:
            w = _WORD.match(s, p)
            assert w is not None
            p = end = w.end()
            continue
        if kind in ("filler", "from", "and") and m.group() not in (",", ";"):
            p = m.end()  # tentatively: "с", "и", "на" count only before an unknown word
            continue
        return end


def _note_of(kind: str, m: re.Match[str], cased: str, end: int) -> str:
    rest = cased[m.end() : end].strip()
    if kind == "agreed":
        base = "по согласованию"
        rest = cased[m.end() : end].strip()
    elif kind == "plan":
        obj = m.groupdict().get("obj")
        base = "по плану" + (f" {obj.upper()}" if obj else "")
    else:
        word = "по расписанию" if (m.group("sched") or "").startswith("расп") else "по графику"
        what = m.group("what") or ""
        base = word + (cased[m.start("what") : m.end("what")] if what and rest else "")
    return f"{base} {rest}" if rest else base


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


_TERM_REASON = "сроки учебных четвертей зависят от календарного графика школы — укажите даты"


# --------------------------------------------------------------------------- combine


def combine(toks: list[_Tok], academic: bool) -> list[_Tok]:
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
                and academic
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


def check_weekdays(dl: Deadline, weekdays: list[_Tok]) -> None:
    """A weekday written next to a date must be that date's weekday."""
    if not weekdays:
        return
    if dl.kind == "day":
        dates = [dl.end]
    elif dl.kind == "range":
        dates = [dl.start, dl.end] if len(weekdays) == 2 else [dl.start]
    else:
        dates = list(dl.dates)
    if len(dates) != len(weekdays):
        raise _Fail("не понятно, к какой дате относится день недели")
    for day, t in zip(dates, weekdays, strict=True):
        assert day is not None
        if day.weekday() != t.value:
            written = t.text.strip("() ")
            raise _Fail(f"{_fmt(day)} — это {WEEKDAY_NAMES[day.weekday()]}, а указано «{written}»")
