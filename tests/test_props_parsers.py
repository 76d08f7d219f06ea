"""Bad input to the pure parsers, property-based (issue 11 §4): typed answers (counts, dates,
choices, texts), CLI dates, roadmap deadline phrases and button payloads either parse or say
in Russian what to do next — they never raise anything else."""

from __future__ import annotations

import re
from datetime import date

import typer
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot.cli_common import parse_day
from bot.cli_roadmap import _parse_period
from forms import engine as forms_engine
from forms.engine import FormEngine, Slot
from forms.loader import load_bundled
from forms.schema import Choice, Question, QuestionKind
from handlers import callbacks as cb
from roadmaps.deadlines import DeadlineParseError, Period, parse_deadline

CYRILLIC = re.compile(r"[а-яё]", re.IGNORECASE)

# digits of several scripts, signs, separators, spaces of several kinds, letters, emoji
NUMBERISH = st.text(
    alphabet=st.sampled_from(list("0123456789٠١٢٣٤५६¹²+-−–.,  \u00a0\u202f\t\ne_xабв🙂/:")),
    max_size=40,
)
TYPED = st.one_of(
    NUMBERISH,
    st.text(max_size=200),
    st.integers().map(str),
    st.floats().map(str),
    st.integers(0, 10**40).map(lambda n: f"{n:,}".replace(",", " ")),
)
DATEISH = st.one_of(
    st.text(alphabet=st.sampled_from(list("0123456789٠١٢-./ +")), max_size=30),
    st.tuples(st.integers(-(10**25), 10**25), st.integers(-99, 99), st.integers(-99, 99)).map(
        lambda t: f"{t[2]}.{t[1]}.{t[0]}"
    ),
    st.tuples(st.integers(0, 10**25), st.integers(0, 99), st.integers(0, 99)).map(
        lambda t: f"{t[0]}-{t[1]:02d}-{t[2]:02d}"
    ),
    st.text(max_size=40),
)

ENGINES = [FormEngine(form) for form in load_bundled().values()]
# every question of every bundled form (repeat-group "add a row?" controls included)
SLOTS = [
    (engine, question_id)
    for engine in ENGINES
    for question_id in [*engine._questions, *engine._groups]
]
FLAGS = {"shnor": True, "shnsu": True, "risk_zone": True}
CHOICE_Q = Question(
    id="pick",
    kind=QuestionKind.CHOICE,
    text="Выберите",
    choices=[Choice(id="a", text="Первый"), Choice(id="b", text="Второй")],
)


def _russian(text: str | None) -> bool:
    return bool(text) and bool(CYRILLIC.search(text or ""))


@settings(max_examples=400, deadline=None)
@given(slot=st.sampled_from(SLOTS), text=TYPED)
@example(slot=SLOTS[0], text="9" * 5000)
@example(slot=SLOTS[0], text="٣٤")
def test_a_typed_answer_to_any_question_parses_or_says_why(slot, text):
    engine, question_id = slot
    question = engine.question(question_id)
    result = engine.parse(Slot(question_id, 0), text, {}, FLAGS)
    if result.ok:
        if question.kind is QuestionKind.INTEGER:
            assert type(result.value) is int
            assert question.min_value <= result.value <= question.max_value
        if question.kind is QuestionKind.TEXT:
            assert 0 < len(result.value) <= question.max_length
    else:
        assert _russian(result.error), result.error


@settings(max_examples=300, deadline=None)
@given(text=TYPED)
def test_a_count_is_a_plain_whole_number_or_a_russian_refusal(text):
    engine, question_id = next(s for s in SLOTS if s[0].question(s[1]).kind is QuestionKind.INTEGER)
    result = engine.parse(Slot(question_id, 0), text, {}, FLAGS)
    stripped = text.strip()
    if result.ok:
        digits = re.sub(r"[\s+\-−–]", "", stripped)
        assert int(digits) == abs(result.value)
    else:
        assert _russian(result.error)


@settings(max_examples=400, deadline=None)
@given(text=DATEISH)
@example(text="31.02.2024")
@example(text="1.1.99999999999999999999")
def test_a_typed_date_is_a_real_day_in_range_or_a_russian_refusal(text):
    result = forms_engine._parse_date(text.strip())
    if result.ok:
        assert isinstance(result.value, date) and 1900 <= result.value.year <= 2100
    else:
        assert _russian(result.error)


@settings(max_examples=200, deadline=None)
@given(text=TYPED)
def test_a_choice_is_one_of_the_choices_or_a_russian_refusal(text):
    result = forms_engine._parse_choice(text.strip(), CHOICE_Q)
    assert result.value in {"a", "b"} if result.ok else _russian(result.error)


@settings(max_examples=400, deadline=None)
@given(text=DATEISH)
@example(text="1.1.99999999999999999999")
@example(text="99999999999999999999.1.1")
@example(text="1.2.3.4")
def test_a_cli_date_is_a_day_or_a_russian_error_with_exit_code_2(text):
    try:
        day = parse_day(text, "--deadline")
    except typer.Exit as exc:
        assert exc.exit_code == 2
    else:
        assert isinstance(day, date)


PHRASE_ALPHABET = list(
    "до 0123456789.,-–—()/:;«»*¹вттечениягодмаяапрельсентябрьквартал"
    "полугодиеежемесячнонереже разаIVX\n\t٣"
)


@settings(max_examples=500, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet=st.sampled_from(PHRASE_ALPHABET), max_size=60),
        st.text(max_size=80),
        st.tuples(st.integers(-(10**22), 10**22), st.integers(-50, 50), st.integers(-50, 50)).map(
            lambda t: f"до {t[2]}.{t[1]}.{t[0]}"
        ),
        st.integers(-(10**22), 10**22).map(lambda n: f"{n} раз в {n} месяцев"),
    ),
    period=st.sampled_from([Period.calendar_year(2024), Period.academic_year(2024)]),
)
@example(text="до 31.02.2024", period=Period.calendar_year(2024))
@example(text="99999999999999999999 квартал", period=Period.calendar_year(2024))
def test_any_deadline_phrase_parses_or_says_why_in_russian(text, period):
    try:
        parse_deadline(text, period)
    except DeadlineParseError as exc:
        assert _russian(exc.reason)


@settings(max_examples=500, deadline=None)
@given(raw=st.one_of(st.none(), st.text(max_size=80), st.binary(max_size=80).map(repr)))
def test_a_decoded_payload_has_only_plain_bounded_integer_args(raw):
    payload = cb.decode(raw)
    if payload is None:
        return
    assert len(raw.encode()) <= cb.MAX_PAYLOAD_BYTES
    assert cb.SEP.join((payload.action, *payload.args)) == raw
    for i in range(len(payload.args) + 2):
        value = payload.int_arg(i)
        assert value is None or 0 <= value <= cb.MAX_ID
        assert value is None or str(value) == payload.args[i].lstrip("0") or value == 0


@settings(max_examples=300, deadline=None)
@given(
    text=st.one_of(
        st.text(alphabet=st.sampled_from(list("0123456789-/ ²٣")), max_size=14),
        st.integers(-10, 10**6).map(str),
        st.integers(0, 10**5).map(lambda y: f"{y}-{y + 1}"),
        st.text(max_size=20),
    )
)
@example(text="99999")
@example(text="0")
@example(text="²")
@example(text="9999-10000")
def test_a_roadmap_period_is_a_year_or_a_russian_error_with_exit_code_2(text):
    try:
        period = _parse_period(text)
    except typer.Exit as exc:
        assert exc.exit_code == 2
    else:
        assert period.start < period.end
