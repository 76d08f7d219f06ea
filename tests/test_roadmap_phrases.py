"""Deadline phrases of other regions' roadmaps (issue 7, item 11): the date is read, the rest
kept as a note, and what still cannot be read is an error, never a guess."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from roadmaps.deadlines import DeadlineParseError, Period, parse_deadline

CAL24 = Period.calendar_year(2024)
AC24 = Period.academic_year(2024)  # 01.09.2024-31.08.2025


def d(s: str) -> date:
    return date.fromisoformat(s)


@pytest.mark.parametrize(
    ("phrase", "period", "kind", "end", "note"),
    [
        (
            "До 12.03.2024 (до 17:00 по местному времени)",
            CAL24,
            "day",
            "2024-03-12",
            "до 17:00 по местному времени",
        ),
        ("до 12.03.2024 до 17:00", CAL24, "day", "2024-03-12", "до 17:00"),
        ("до 12.03.2024 до 17.00", CAL24, "day", "2024-03-12", "до 17.00"),
        ("12.03.2024 (до 10.30 ч.)", CAL24, "day", "2024-03-12", "до 10.30 ч."),
        ("до 12.10", CAL24, "day", "2024-10-12", None),  # a date, not a time
        ("14.05. (вт)", CAL24, "day", "2024-05-14", None),
        ("14.05.2024 (вторник)", CAL24, "day", "2024-05-14", None),
        ("Отчёт – до 1 апреля 2025 г.", AC24, "day", "2025-04-01", "Отчёт"),
        ("Срок — 20.09.2024", CAL24, "day", "2024-09-20", None),
        ("Срок: до 20.09.2024", CAL24, "day", "2024-09-20", None),
        ("Сроки исполнения – 20.09.2024", CAL24, "day", "2024-09-20", None),
        ("в срок до 1 апреля", CAL24, "day", "2024-04-01", None),
        ("в срок до 5 мая 2024 года включительно", CAL24, "day", "2024-05-05", None),
        ("5 мая 2024** года", CAL24, "day", "2024-05-05", None),
        ("до 5 мая 2024¹", CAL24, "day", "2024-05-05", None),
        ("в течении года", CAL24, "range", "2024-12-31", None),
        ("В течении 2024 года", CAL24, "range", "2024-12-31", None),
        ("в течении учебного года", AC24, "range", "2025-08-31", None),
        ("постояно", CAL24, "range", "2024-12-31", "постоянно"),
        (
            "01.02-15.05.2024 (по согласованию с МОУО)",
            CAL24,
            "range",
            "2024-05-15",
            "по согласованию с МОУО",
        ),
        ("сентябрь – октябрь 2024 (по отдельному плану)", AC24, "range", "2024-10-31", "по плану"),
        ("по графику проведения ВПР", CAL24, "none", None, "по графику проведения ВПР"),
        ("по графику Рособрнадзора", CAL24, "none", None, "по графику Рособрнадзора"),
        ("апрель, по графику ФИС ОКО", CAL24, "month", "2024-04-30", "по графику ФИС ОКО"),
    ],
)
def test_phrases_of_other_regions(phrase, period, kind, end, note):
    dl = parse_deadline(phrase, period)
    assert dl.kind == kind
    assert dl.end == (d(end) if end else None)
    assert dl.note == note
    assert dl.source == phrase


def test_remark_in_brackets_after_a_range_is_the_note():
    dl = parse_deadline("сентябрь – октябрь 2024 (по отдельному плану)", AC24)
    assert (dl.start, dl.end) == (d("2024-09-01"), d("2024-10-31"))
    assert dl.note == "по плану"  # «по отдельному плану» is the plan note, not a remark
    dl = parse_deadline("01.02-15.05.2024 (с учётом каникул)", CAL24)
    assert (dl.start, dl.end, dl.note) == (d("2024-02-01"), d("2024-05-15"), "с учётом каникул")


def test_monthly_by_the_fifth_of_the_next_month():
    dl = parse_deadline("ежемесячно до 5 числа месяца, следующего за отчётным", CAL24)
    assert (dl.kind, dl.frequency, dl.day, dl.lag_months) == ("recurring", "monthly", 5, 1)
    due = dl.due_dates(CAL24)
    # the report for January is due on 5 February, the one for December on 5 January
    assert len(due) == 12
    assert due[0] == d("2024-02-05") and due[-1] == d("2025-01-05")
    assert "следующего за отчётным" in dl.describe()


def test_quarterly_on_the_tenth_working_day():
    dl = parse_deadline("ежеквартально, на 10 рабочий день", CAL24)
    assert (dl.kind, dl.frequency, dl.workday) == ("recurring", "quarterly", 10)
    # the 10th working day of each quarter under the Russian production calendar:
    # 1-8 January are holidays, so in January it is the 22nd
    assert dl.due_dates(CAL24) == [
        d("2024-01-22"),
        d("2024-04-12"),
        d("2024-07-12"),
        d("2024-10-14"),
    ]
    after = parse_deadline(
        "ежеквартально не позднее 10 рабочего дня месяца, следующего за отчётным кварталом", CAL24
    )
    assert after.due_dates(CAL24)[0] == d("2024-04-12")
    assert after.due_dates(CAL24)[-1] == d("2025-01-22")  # 2025: holidays until 8 January


def test_not_less_than_once_a_month_is_due_every_month():
    for phrase in ("не реже 1 раза в месяц", "Не реже одного раза в месяц"):
        dl = parse_deadline(phrase, AC24)
        due = dl.due_dates(AC24)
        assert len(due) == 12, phrase
        assert due[0] == d("2024-09-30") and due[-1] == d("2025-08-31")


@pytest.mark.parametrize(
    ("phrase", "reason_part"),
    [
        ("14.05.2024 (ср)", "вторник"),  # the weekday contradicts the date
        ("до 12.03.2024 (перенесено на 15.03.2024)", "в скобках"),  # another date: no guess
        ("Отчёт – когда-нибудь", "не удалось распознать"),
        ("по графику", None),  # still a note, not an error
        ("ежемесячно, на 25 рабочий день", "рабочих дней"),
        ("на 10 рабочий день", "периодичност"),
        ("Срок —", "не найден срок"),
    ],
)
def test_still_unreadable_is_an_error_not_a_guess(phrase, reason_part):
    if reason_part is None:
        assert parse_deadline(phrase, CAL24).kind == "none"
        return
    with pytest.raises(DeadlineParseError) as info:
        parse_deadline(phrase, CAL24)
    assert reason_part in info.value.reason


# ------------------------------------------------------------------ properties

MONTHS_GEN = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)
WEEKDAYS = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")

days_2024 = st.integers(0, 365).map(lambda n: date(2024, 1, 1) + timedelta(days=n))


def _written(day: date, style: int) -> str:
    if style == 0:
        return f"{day:%d.%m.%Y}"
    if style == 1:
        return f"{day.day} {MONTHS_GEN[day.month - 1]} {day.year} года"
    if style == 2:
        return f"{day.day} {MONTHS_GEN[day.month - 1]} {day.year}** года"
    return f"{day:%d.%m.}{day.year % 100:02d} г."


@settings(max_examples=300, deadline=None)
@given(
    day=days_2024,
    style=st.integers(0, 3),
    lead=st.sampled_from(["", "до ", "в срок до ", "Срок — ", "Отчёт – до ", "не позднее "]),
    weekday=st.booleans(),
    time=st.sampled_from(["", " (до 17:00 по местному времени)", " до 12:00"]),
)
def test_any_written_date_is_read_as_that_day(day, style, lead, weekday, time):
    phrase = lead + _written(day, style)
    if weekday:
        phrase += f" ({WEEKDAYS[day.weekday()]})"
    phrase += time
    dl = parse_deadline(phrase, CAL24)
    assert (dl.kind, dl.end) == ("day", day)


@settings(max_examples=300, deadline=None)
@given(day=days_2024, wrong=st.integers(1, 6))
def test_a_wrong_weekday_is_never_accepted(day, wrong):
    phrase = f"{day:%d.%m.%Y} ({WEEKDAYS[(day.weekday() + wrong) % 7]})"
    with pytest.raises(DeadlineParseError):
        parse_deadline(phrase, CAL24)


@settings(max_examples=500, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("до 12.03-2024()вт:*сроктечениягодмая,")), max_size=40)
)
def test_any_text_parses_or_says_why(text):
    try:
        parse_deadline(text, CAL24)
    except DeadlineParseError as exc:
        assert exc.reason


@pytest.mark.parametrize(
    ("phrase", "period", "first", "count"),
    [
        ("Не реже 1 раза в месяц в течение года", CAL24, "2024-01-31", 12),
        ("в течение года, не реже 1 раза в месяц", CAL24, "2024-01-31", 12),
        ("не реже 1 раза в месяц, в течение учебного года", AC24, "2024-09-30", 12),
        ("Не реже 1 раза в месяц с 01.09.2024", CAL24, "2024-09-30", 4),
        ("ежемесячно с 01.02 по 30.06.2024", CAL24, "2024-02-29", 5),
        ("ежемесячно в течение II полугодия", CAL24, "2024-07-31", 6),
        ("ежемесячно, до 25 числа, с 01.03.2024", CAL24, "2024-03-25", 10),
    ],
)
def test_a_frequency_recurs_in_the_span_the_phrase_gives(phrase, period, first, count):
    due = parse_deadline(phrase, period).due_dates(period)
    assert (due[0], len(due)) == (d(first), count)


def test_a_span_the_period_cannot_tell_is_an_error():
    with pytest.raises(DeadlineParseError, match="учебный год"):
        parse_deadline("не реже 1 раза в месяц, в течение учебного года", CAL24)
