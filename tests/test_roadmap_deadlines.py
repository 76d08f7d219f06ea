"""Deadline phrases of the seed documents and general cases."""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path

import pytest

from roadmaps.deadlines import Deadline, DeadlineParseError, Period, parse_deadline

CAL21 = Period.calendar_year(2021)
CAL23 = Period.calendar_year(2023)
AC22 = Period.academic_year(2022)  # 01.09.2022-31.08.2023
PERIODS = {"cal21": CAL21, "cal23": CAL23, "ac22": AC22}


def d(s: str) -> date:
    return date.fromisoformat(s)


# (phrase, period, kind, start, end, months, frequency, note)
# Seed 000: Kaliningrad monitoring schedule 2021; 001: Klet district order 2021
# (prose deadlines); 002: Kaliningrad "500+" roadmap 2023; 003: Chernozemelsky 2022-2023.
SEED_PHRASES = [
    # 000
    ("с 06 декабря по 30 декабря 2021 года", "cal21", "range", "2021-12-06", "2021-12-30"),
    ("До 06 декабря 2021 года", "cal21", "day", None, "2021-12-06"),
    ("До 15 декабря 2021 года", "cal21", "day", None, "2021-12-15"),
    ("До 30 декабря 2021 года", "cal21", "day", None, "2021-12-30"),
    # 001
    ("в период с 25.09.2021 по 10.12.2021г.", "cal21", "range", "2021-09-25", "2021-12-10"),
    ("в срок до 30.09.2021г.", "cal21", "day", None, "2021-09-30"),
    ("в срок до 01.12.2021г.", "cal21", "day", None, "2021-12-01"),
    ("в срок до 01.10.2021г.", "cal21", "day", None, "2021-10-01"),
    ("в срок до 10.12.2021г.", "cal21", "day", None, "2021-12-10"),
    ("до 11.12.2021г.", "cal21", "day", None, "2021-12-11"),
    ("в срок до 27.09.2021г.", "cal21", "day", None, "2021-09-27"),
    (
        "в срок до 10.10.2021г. и 20.12.2021г.",
        "cal21",
        "recurring",
        "2021-10-10",
        "2021-12-20",
        (10, 12),
        None,
        None,
    ),
    # 002
    ("До 15.02.2023", "cal23", "day", None, "2023-02-15"),
    ("01.02-15.05.2023", "cal23", "range", "2023-02-01", "2023-05-15"),
    ("01.02-20.02.2023", "cal23", "range", "2023-02-01", "2023-02-20"),
    ("28.03-18.04.2023", "cal23", "range", "2023-03-28", "2023-04-18"),
    ("15.04-15.05.2023", "cal23", "range", "2023-04-15", "2023-05-15"),
    ("15.02-20.12.2023", "cal23", "range", "2023-02-15", "2023-12-20"),
    ("01.09-31.12.2023", "cal23", "range", "2023-09-01", "2023-12-31"),
    ("30.06.2023", "cal23", "day", None, "2023-06-30"),
    ("До 01.08.2023", "cal23", "day", None, "2023-08-01"),
    ("30.11.2023", "cal23", "day", None, "2023-11-30"),
    ("До 25.12.2023", "cal23", "day", None, "2023-12-25"),
    ("До 01.12.2023", "cal23", "day", None, "2023-12-01"),
    ("01.03-01.12.2023", "cal23", "range", "2023-03-01", "2023-12-01"),
    (
        "2023 в соответствии с графиком на первое, второе полугодие",
        "cal23",
        "recurring",
        "2023-01-01",
        "2023-12-31",
        (6, 12),
        "half_yearly",
        "по графику",
    ),
    ("Август", "cal23", "month", "2023-08-01", "2023-08-31"),
    ("15.03-01.12.2023", "cal23", "range", "2023-03-15", "2023-12-01"),
    ("15.05-01.12.2023", "cal23", "range", "2023-05-15", "2023-12-01"),
    ("15.02-01.12.2023", "cal23", "range", "2023-02-15", "2023-12-01"),
    ("01.03.-20.05.2023", "cal23", "range", "2023-03-01", "2023-05-20"),
    ("24.05.-30.06.2023", "cal23", "range", "2023-05-24", "2023-06-30"),
    ("26.05.-30.06.2023", "cal23", "range", "2023-05-26", "2023-06-30"),
    ("01.03-30.12.2022", "cal23", "range", "2022-03-01", "2022-12-30"),  # sic, in seed 002
    # 003
    ("в течение 2022-2023 учебного года", "ac22", "range", "2022-09-01", "2023-08-31"),
    ("в течение 2021-2022 учебного года", "ac22", "range", "2021-09-01", "2022-08-31"),
    ("Сентябрь 2022", "ac22", "month", "2022-09-01", "2022-09-30"),
    ("Сентябрь – октябрь 2022", "ac22", "range", "2022-09-01", "2022-10-31"),
    ("В соответствии с графиком проведения", "ac22", "none", None, None, (), None, "по графику"),
    ("Ежегодно", "ac22", "recurring", "2022-09-01", "2023-08-31", (), "yearly", None),
    ("Постоянно", "ac22", "range", "2022-09-01", "2023-08-31", (), None, "постоянно"),
    ("Ежегодно, июнь", "ac22", "recurring", "2022-09-01", "2023-08-31", (6,), "yearly", None),
    ("в течение года", "ac22", "range", "2022-09-01", "2023-08-31"),
    (
        "ежегодно май сентябрь ноябрь",
        "ac22",
        "recurring",
        "2022-09-01",
        "2023-08-31",
        (5, 9, 11),
        "yearly",
        None,
    ),
    ("постоянно", "ac22", "range", "2022-09-01", "2023-08-31", (), None, "постоянно"),
    ("май", "ac22", "month", "2023-05-01", "2023-05-31"),
    ("План РМО", "ac22", "none", None, None, (), None, "по плану РМО"),
    ("Январь 2021", "ac22", "month", "2021-01-01", "2021-01-31"),
    ("Март-май, 2021", "ac22", "range", "2021-03-01", "2021-05-31"),
]

GENERAL = [
    # quarters
    ("I квартал", "cal23", "range", "2023-01-01", "2023-03-31"),
    ("2 кв. 2023", "cal23", "range", "2023-04-01", "2023-06-30"),
    ("в течение III квартала", "cal23", "range", "2023-07-01", "2023-09-30"),
    ("IV квартал 2022 г.", "ac22", "range", "2022-10-01", "2022-12-31"),
    ("I-II квартал 2023", "cal23", "range", "2023-01-01", "2023-06-30"),
    ("до конца I квартала", "cal23", "day", None, "2023-03-31"),
    ("I и III квартал", "cal23", "recurring", "2023-01-01", "2023-09-30", (3, 9), "quarterly"),
    # half-years: calendar halves, or school halves in an academic context
    ("1 полугодие", "cal23", "range", "2023-01-01", "2023-06-30"),
    ("II полугодие 2023", "cal23", "range", "2023-07-01", "2023-12-31"),
    ("Ⅱ полугодие 2023", "ac22", "range", "2023-07-01", "2023-12-31"),
    ("1 полугодие", "ac22", "range", "2022-09-01", "2022-12-31"),
    ("2-е полугодие", "ac22", "range", "2023-01-01", "2023-05-31"),
    ("II полугодие 2022-2023 уч.г.", "cal23", "range", "2023-01-01", "2023-05-31"),
    ("за 1 полугодие 2021 года", "cal21", "range", "2021-01-01", "2021-06-30"),
    # academic years
    ("уч. год", "ac22", "range", "2022-09-01", "2023-08-31"),
    ("учебный год", "ac22", "range", "2022-09-01", "2023-08-31"),
    ("в течение учебного года", "ac22", "range", "2022-09-01", "2023-08-31"),
    ("2022-2023 уч.г.", "cal23", "range", "2022-09-01", "2023-08-31"),
    ("2022/23 учебный год", "cal23", "range", "2022-09-01", "2023-08-31"),
    ("2022-2023", "ac22", "range", "2022-09-01", "2023-08-31"),
    ("2022-2023 гг.", "ac22", "range", "2022-01-01", "2023-12-31"),
    ("в 2023 году", "cal23", "range", "2023-01-01", "2023-12-31"),
    ("до конца учебного года", "ac22", "day", None, "2023-08-31"),
    # frequencies
    (
        "ежемесячно",
        "cal23",
        "recurring",
        "2023-01-01",
        "2023-12-31",
        tuple(range(1, 13)),
        "monthly",
    ),
    (
        "не реже 1 раза в месяц",
        "cal23",
        "recurring",
        "2023-01-01",
        "2023-12-31",
        tuple(range(1, 13)),
        "monthly",
    ),
    ("ежеквартально", "cal23", "recurring", "2023-01-01", "2023-12-31", (3, 6, 9, 12), "quarterly"),
    ("раз в квартал", "ac22", "recurring", "2022-09-01", "2023-08-31", (3, 6, 9, 12), "quarterly"),
    ("2 раза в год", "cal23", "recurring", "2023-01-01", "2023-12-31", (6, 12), "half_yearly"),
    ("раз в полугодие", "ac22", "recurring", "2022-09-01", "2023-08-31", (5, 12), "half_yearly"),
    ("Ежегодно (июнь)", "cal23", "recurring", "2023-01-01", "2023-12-31", (6,), "yearly"),
    ("ежегодно в июне", "cal23", "recurring", "2023-01-01", "2023-12-31", (6,), "yearly"),
    (
        "2023 ежемесячно",
        "ac22",
        "recurring",
        "2023-01-01",
        "2023-12-31",
        tuple(range(1, 13)),
        "monthly",
    ),
    # end of year / until a month
    ("до конца года", "cal23", "day", None, "2023-12-31"),
    ("до конца года", "ac22", "day", None, "2022-12-31"),
    ("до конца 2023 года", "ac22", "day", None, "2023-12-31"),
    ("до 1 сентября", "cal23", "day", None, "2023-09-01"),
    ("к 1 сентября", "cal23", "day", None, "2023-09-01"),
    ("до 1 сентября", "ac22", "day", None, "2022-09-01"),  # the only 1 September in period
    ("до сентября 2023", "cal23", "day", None, "2023-08-31"),
    ("в конце мая", "cal23", "day", None, "2023-05-31"),
    ("не позднее 20 мая 2023 г.", "cal23", "day", None, "2023-05-20"),
    # month ranges across years, months in different cases
    ("декабрь 2022 – январь 2023", "cal23", "range", "2022-12-01", "2023-01-31"),
    ("декабрь – январь", "ac22", "range", "2022-12-01", "2023-01-31"),
    ("сентябрь-октябрь", "ac22", "range", "2022-09-01", "2022-10-31"),
    ("в мае", "cal23", "month", "2023-05-01", "2023-05-31"),
    ("мая", "ac22", "month", "2023-05-01", "2023-05-31"),
    ("май", "cal23", "month", "2023-05-01", "2023-05-31"),
    ("декабрь", "ac22", "month", "2022-12-01", "2022-12-31"),
    ("в сентябре", "ac22", "month", "2022-09-01", "2022-09-30"),
    ("ноябрь, май", "ac22", "recurring", "2022-11-01", "2023-05-31", (11, 5)),
    ("сент. 2022", "ac22", "month", "2022-09-01", "2022-09-30"),
    # odd dashes, "по", spaces and dots, "г."/"года", two-digit years, no year
    ("01.03 — 30.05.2023", "cal23", "range", "2023-03-01", "2023-05-30"),
    ("01.03 ‐ 30.05.2023", "cal23", "range", "2023-03-01", "2023-05-30"),
    ("01.03−30.05.2023", "cal23", "range", "2023-03-01", "2023-05-30"),
    ("01.03 по 30.05.2023", "cal23", "range", "2023-03-01", "2023-05-30"),
    ("с 1 по 15 сентября", "cal23", "range", "2023-09-01", "2023-09-15"),
    ("1-15 сентября 2023", "cal23", "range", "2023-09-01", "2023-09-15"),
    ("01.12-15.01.2023", "cal23", "range", "2022-12-01", "2023-01-15"),
    (" 01 . 03 .  2023 г. ", "cal23", "day", None, "2023-03-01"),
    ("до 15.02.2023 года", "cal23", "day", None, "2023-02-15"),
    ("15.02-20.12.2023.", "cal23", "range", "2023-02-15", "2023-12-20"),
    ("15.02.23", "cal23", "day", None, "2023-02-15"),
    ("01.09.22-31.05.23", "ac22", "range", "2022-09-01", "2023-05-31"),
    ("до 25.05", "cal23", "day", None, "2023-05-25"),
    ("до 25.05", "ac22", "day", None, "2023-05-25"),
    ("до 20.10", "ac22", "day", None, "2022-10-20"),
    ("до 06 декабря", "ac22", "day", None, "2022-12-06"),
    ("с 01.09.2023", "cal23", "range", "2023-09-01", "2023-12-31"),
    ("с 01.02 до 15.05.2023", "cal23", "range", "2023-02-01", "2023-05-15"),
    ("с 1 до 15 сентября", "cal23", "range", "2023-09-01", "2023-09-15"),
    # whole period and notes
    ("весь период", "cal23", "range", "2023-01-01", "2023-12-31", (), None, "постоянно"),
    ("систематически", "cal23", "range", "2023-01-01", "2023-12-31", (), None, "постоянно"),
    ("по графику", "cal23", "none", None, None, (), None, "по графику"),
    ("согласно графику", "cal23", "none", None, None, (), None, "по графику"),
    ("по плану работы", "cal23", "none", None, None, (), None, "по плану"),
    ("по мере необходимости", "cal23", "none", None, None, (), None, "по мере необходимости"),
    ("по запросу", "cal23", "none", None, None, (), None, "по запросу"),
    ("май, по графику", "cal23", "month", "2023-05-01", "2023-05-31", (), None, "по графику"),
]


def _check(phrase, period_key, kind, start, end, months=(), frequency=None, note=None):
    dl = parse_deadline(phrase, PERIODS[period_key])
    assert dl.kind == kind
    assert dl.start == (d(start) if start else None)
    assert dl.end == (d(end) if end else None)
    assert dl.months == tuple(months)
    assert dl.frequency == frequency
    assert dl.note == note
    assert dl.source == phrase.strip()
    return dl


@pytest.mark.parametrize("case", SEED_PHRASES, ids=[c[0] for c in SEED_PHRASES])
def test_seed_phrases(case):
    _check(*case)


@pytest.mark.parametrize("case", GENERAL, ids=[f"{c[0]}|{c[1]}" for c in GENERAL])
def test_general_phrases(case):
    _check(*case)


def test_monthly_with_day_of_month():
    dl = parse_deadline("до 15 числа каждого месяца", AC22)
    assert (dl.kind, dl.frequency, dl.day) == ("recurring", "monthly", 15)
    due = dl.due_dates(AC22)
    assert len(due) == 12
    assert due[0] == d("2022-09-15") and due[-1] == d("2023-08-15")
    assert parse_deadline("ежемесячно до 10 числа", CAL23).due_dates(CAL23)[1] == d("2023-02-10")


def test_yearly_with_day():
    dl = parse_deadline("ежегодно до 1 сентября", CAL23)
    assert (dl.kind, dl.frequency, dl.months, dl.day) == ("recurring", "yearly", (9,), 1)
    assert dl.due_dates(CAL23) == [d("2023-09-01")]


def test_explicit_dates_list():
    dl = parse_deadline("в срок до 10.10.2021г. и 20.12.2021г.", CAL21)
    assert dl.dates == (d("2021-10-10"), d("2021-12-20"))
    assert dl.due_dates(CAL21) == [d("2021-10-10"), d("2021-12-20")]
    assert dl.due_dates(CAL23) == []


# ------------------------------------------------------------------ due dates


@pytest.mark.parametrize(
    ("phrase", "period_key", "expected"),
    [
        ("До 15.02.2023", "cal23", ["2023-02-15"]),
        ("01.02-15.05.2023", "cal23", ["2023-05-15"]),
        ("Август", "cal23", ["2023-08-31"]),
        ("Февраль", "cal23", ["2023-02-28"]),
        (
            "2023 в соответствии с графиком на первое, второе полугодие",
            "cal23",
            ["2023-06-30", "2023-12-31"],
        ),
        ("ежегодно май сентябрь ноябрь", "ac22", ["2022-09-30", "2022-11-30", "2023-05-31"]),
        ("Ежегодно, июнь", "ac22", ["2023-06-30"]),
        ("Ежегодно", "ac22", ["2023-08-31"]),
        ("Ежегодно", "cal23", ["2023-12-31"]),
        ("ежеквартально", "ac22", ["2022-09-30", "2022-12-31", "2023-03-31", "2023-06-30"]),
        ("Постоянно", "ac22", ["2023-08-31"]),
        ("в течение года", "cal23", ["2023-12-31"]),
        ("План РМО", "ac22", []),
        ("В соответствии с графиком проведения", "ac22", []),
    ],
)
def test_due_dates(phrase, period_key, expected):
    period = PERIODS[period_key]
    assert parse_deadline(phrase, period).due_dates(period) == [d(x) for x in expected]


def test_monthly_due_dates_cover_period():
    due = parse_deadline("ежемесячно", AC22).due_dates(AC22)
    assert len(due) == 12
    assert due[0] == d("2022-09-30") and due[5] == d("2023-02-28") and due[-1] == d("2023-08-31")
    # limited by ``within``
    half = Period(d("2023-01-01"), d("2023-03-31"))
    assert parse_deadline("ежемесячно", AC22).due_dates(half) == [
        d("2023-01-31"),
        d("2023-02-28"),
        d("2023-03-31"),
    ]


# ------------------------------------------------------------------ academic-year inference


@pytest.mark.parametrize(
    ("phrase", "start", "end"),
    [
        ("Сентябрь", "2022-09-01", "2022-09-30"),
        ("октябрь", "2022-10-01", "2022-10-31"),
        ("Январь", "2023-01-01", "2023-01-31"),
        ("Август", "2023-08-01", "2023-08-31"),
        ("ноябрь – февраль", "2022-11-01", "2023-02-28"),
        ("I квартал", "2023-01-01", "2023-03-31"),
        ("IV квартал", "2022-10-01", "2022-12-31"),
        ("III квартал", "2023-07-01", "2023-09-30"),  # overlaps Jul-Aug 2023 more than Sep 2022
    ],
)
def test_academic_year_inference(phrase, start, end):
    dl = parse_deadline(phrase, AC22)
    assert (dl.start, dl.end) == (d(start), d(end))


def test_calendar_vs_academic_period_for_same_phrase():
    assert parse_deadline("декабрь", CAL23).start == d("2023-12-01")
    assert parse_deadline("декабрь", AC22).start == d("2022-12-01")
    assert parse_deadline("до 20.10", CAL23).end == d("2023-10-20")
    assert parse_deadline("до 20.10", AC22).end == d("2022-10-20")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("phrase", "period_key", "reason_part"),
    [
        ("", "cal23", "не указан"),
        ("   ", "cal23", "не указан"),
        ("когда-нибудь", "cal23", "не удалось распознать"),
        ("abc", "cal23", "не удалось распознать"),
        ("31.02.2023", "cal23", "не существует"),
        ("01.13.2023", "cal23", "месяца 13"),
        ("5 квартал", "cal23", "кварталов всего четыре"),
        ("3 полугодие", "cal23", "полугодий всего два"),
        ("I четверть", "ac22", "четвертей"),
        ("еженедельно", "cal23", "еженедельная"),
        ("до 15 числа", "cal23", "число указано без месяца"),
        ("в течение учебного года", "cal23", "учебный год"),
        ("декабрь - январь", "cal23", "укажите год"),
        ("01.09.2023 - 30.06.2023", "cal23", "позже окончания"),
        ("ноябрь -", "cal23", "диапазон не закончен"),
        ("2022 - 2024 уч.г.", "cal23", "соседних лет"),
        ("до 01.02-15.05.2023", "cal23", "«до» перед диапазоном"),
        ("15", "cal23", "число"),
        ("2022, 2023", "cal23", "несколько разных лет"),
        ("ежемесячно, ежегодно", "cal23", "несколько разных периодичностей"),
        ("сентябрь до", "cal23", "после «до» не указана дата"),
        ("до", "cal23", "после «до» не указана дата"),
        ("15.05.2023 с", "cal23", "после «с» не указана дата"),
        ("до 01.02.2025", "cal23", None),  # parses: explicit years are never questioned
    ],
)
def test_unreadable_phrases_raise_with_reason(phrase, period_key, reason_part):
    if reason_part is None:
        assert parse_deadline(phrase, PERIODS[period_key]).end == d("2025-02-01")
        return
    with pytest.raises(DeadlineParseError) as info:
        parse_deadline(phrase, PERIODS[period_key])
    assert reason_part in info.value.reason
    assert info.value.text == phrase.strip()
    assert "Не удалось разобрать срок" in str(info.value)


def test_month_outside_short_period_is_an_error():
    short = Period(d("2023-09-01"), d("2023-12-31"))
    with pytest.raises(DeadlineParseError, match="не попадает в период"):
        parse_deadline("май", short)


# ------------------------------------------------------------------ serialisation, period


def test_to_json_round_trip():
    for phrase, period in [
        ("ежегодно май сентябрь ноябрь", AC22),
        ("в срок до 10.10.2021г. и 20.12.2021г.", CAL21),
        ("до 15 числа каждого месяца", CAL23),
        ("План РМО", AC22),
    ]:
        dl = parse_deadline(phrase, period)
        data = dl.to_json()
        assert data["source"] == phrase
        assert Deadline.from_json(data) == dl
    data = parse_deadline("01.02-15.05.2023", CAL23).to_json()
    assert data == {
        "kind": "range",
        "start": "2023-02-01",
        "end": "2023-05-15",
        "months": [],
        "frequency": None,
        "note": None,
        "day": None,
        "dates": [],
        "source": "01.02-15.05.2023",
    }


def test_describe_is_russian():
    assert parse_deadline("До 15.02.2023", CAL23).describe() == "до 15.02.2023"
    assert parse_deadline("Август", CAL23).describe() == "август 2023"
    assert parse_deadline("План РМО", AC22).describe() == "По плану РМО"
    assert (
        "май, сентябрь, ноябрь" in parse_deadline("ежегодно май сентябрь ноябрь", AC22).describe()
    )


def test_period():
    assert AC22.is_academic and not CAL23.is_academic
    assert Period(d("2022-09-01"), d("2023-08-31")) == AC22
    with pytest.raises(ValueError):
        Period(d("2023-02-01"), d("2023-01-01"))


# ------------------------------------------------------------------ completeness vs. seeds

SEEDS_DIR = Path(os.environ.get("SHNOR_SEEDS_DIR", "/work/shared/seeds"))
_PROSE = re.compile(
    r"(?:(?:в период|в срок)\s+)?(?:до|с)\s+\d{1,2}"
    r"(?:\.\d{2}\.\d{4}(?:\s*г\.?)?|\s+[а-я]+\s+(?:по\s+\d{1,2}\s+[а-я]+\s+)?\d{4}\s+года)"
    r"(?:\s+(?:по|и)\s+\d{2}\.\d{2}\.\d{4}\s*г\.?)?"
    r"|в течение\s+\d{4}-\d{4}\s+учебного года",
    re.IGNORECASE,
)


def _seed_phrases(path: Path) -> list[str]:
    """Deadline cells of the seed tables (tab-separated) and deadlines in the prose."""
    out: list[str] = []
    col: int | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = line.split("\t")
        if len(cells) >= 3:
            header = [i for i, c in enumerate(cells) if re.search(r"срок|дата исполнения", c, re.I)]
            if header:
                col = header[0]
                continue
            if col is not None and col < len(cells):
                cell = cells[col].strip()
                if cell and cell.lower() not in ("план", "факт"):  # plan/fact sub-header
                    out.append(cell)
        out.extend(m.group().strip() for m in _PROSE.finditer(line))
    return out


@pytest.mark.skipif(not SEEDS_DIR.is_dir(), reason="seed documents are not available")
def test_every_seed_phrase_is_covered():
    files = sorted(SEEDS_DIR.glob("00[0-3]_*.txt"))
    assert len(files) == 4
    found = {p for f in files for p in _seed_phrases(f)}
    covered = {c[0] for c in SEED_PHRASES}
    assert len(found) >= 45
    assert found <= covered, sorted(found - covered)
