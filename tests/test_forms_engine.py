"""Tests for the pure form engine (forms.engine)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from forms import AnswerState, Form, FormEngine, IndicatorValue, Slot

TOTAL_MSG = (
    "Число не может быть больше, чем «{ref_text}» ({ref_value}). Проверьте и введите ещё раз."
)

DEMO: dict[str, Any] = {
    "id": "demo",
    "version": 1,
    "title": "Демо",
    "respondent": "school",
    "sections": [
        {
            "id": "1",
            "title": "Основное",
            "items": [
                {"id": "total", "kind": "integer", "text": "Всего педагогов", "max": 1000},
                {
                    "id": "part",
                    "kind": "integer",
                    "text": "Из них прошли диагностику",
                    "constraints": [{"op": "<=", "ref": "total", "message": TOTAL_MSG}],
                },
                {
                    "id": "has_program",
                    "kind": "yes_no",
                    "text": "Есть программа?",
                    "document_when_yes": True,
                    "note_when_no": True,
                    "document_hint": "Программа",
                },
                {
                    "id": "program_kind",
                    "kind": "choice",
                    "text": "Какая программа?",
                    "show_if": [{"question": "has_program", "equals": True}],
                    "choices": [
                        {"id": "school", "text": "Школьная"},
                        {"id": "municipal", "text": "Муниципальная"},
                    ],
                },
                {
                    "id": "program_scope",
                    "kind": "text",
                    "text": "Опишите охват",
                    "show_if": [{"question": "program_kind", "in": ["school", "municipal"]}],
                },
                {
                    "id": "risk_internet",
                    "kind": "yes_no",
                    "text": "Интернет?",
                    "show_if": [{"context": "risk_zone"}],
                },
                {
                    "id": "not_risk_note",
                    "kind": "text",
                    "text": "Для школ вне зоны риска",
                    "required": False,
                    "show_if": [{"context": "risk_zone", "equals": False}],
                },
                {
                    "id": "comment",
                    "kind": "text",
                    "text": "Комментарий",
                    "required": False,
                    "max_length": 10,
                },
                {"id": "started", "kind": "date", "text": "Дата начала", "required": False},
                {
                    "id": "scan",
                    "kind": "document",
                    "text": "Скан приказа",
                    "document_hint": "приказ об утверждении программы",
                },
            ],
        },
        {
            "id": "2",
            "title": "Мероприятия",
            "items": [
                {
                    "id": "events",
                    "kind": "group",
                    "title": "Мероприятия",
                    "add_more_text": "Добавить ещё одно мероприятие?",
                    "max_rows": 3,
                    "questions": [
                        {"id": "event_name", "kind": "text", "text": "Название"},
                        {
                            "id": "planned",
                            "kind": "integer",
                            "text": "Участников по плану",
                            "constraints": [{"op": "<=", "ref": "total", "message": TOTAL_MSG}],
                        },
                        {
                            "id": "done",
                            "kind": "integer",
                            "text": "Участников по факту",
                            "constraints": [
                                {
                                    "op": "<=",
                                    "ref": "planned",
                                    "message": "Не больше плана ({ref_value}).",
                                }
                            ],
                        },
                        {
                            "id": "why",
                            "kind": "text",
                            "text": "Почему не проведено?",
                            "show_if": [{"question": "done", "equals": 0}],
                        },
                    ],
                }
            ],
        },
    ],
    "indicators": [
        {
            "id": "part_share",
            "title": "Доля",
            "section": "1",
            "kind": "share",
            "numerator": "part",
            "denominator": "total",
            "municipal": {"kind": "sum_ratio", "formula": "Σ/Σ x 100%"},
        },
        {
            "id": "program",
            "title": "Программа",
            "section": "1",
            "kind": "yes_no",
            "question": "has_program",
            "municipal": {"kind": "count_share", "population": "shnor_shnsu", "formula": "f"},
        },
        {
            "id": "total_count",
            "title": "Всего",
            "section": "1",
            "kind": "count",
            "question": "total",
        },
        {
            "id": "two_of_two",
            "title": "Оба да",
            "section": "1",
            "kind": "at_least",
            "questions": ["has_program", "risk_internet"],
            "min": 2,
            "applies_if": [{"context": "risk_zone"}],
        },
        {
            "id": "one_of_two",
            "title": "Хотя бы один",
            "section": "1",
            "kind": "at_least",
            "questions": ["has_program", "risk_internet"],
            "min": 1,
        },
    ],
}

NO_CTX: dict[str, bool] = {}
RISK = {"risk_zone": True}


@pytest.fixture(scope="module")
def engine() -> FormEngine:
    return FormEngine(Form.model_validate(DEMO))


def ans(**values: Any) -> dict[Slot, AnswerState]:
    """ans(total=10, has_program=(True, 1)) -> answers; a tuple is (value, documents)."""
    out: dict[Slot, AnswerState] = {}
    for key, v in values.items():
        qid, _, row = key.partition("__")
        if isinstance(v, AnswerState):
            state = v
        elif isinstance(v, tuple):
            state = AnswerState(v[0], documents=v[1])
        else:
            state = AnswerState(v)
        out[Slot(qid, int(row or 0))] = state
    return out


def ids(slots: list[Slot]) -> list[str]:
    return [f"{s.question_id}#{s.row}" if s.row else s.question_id for s in slots]


# --- parsing: integer --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        (" 12 ", 12),
        ("012", 12),
        ("0", 0),
        ("-0", 0),
        ("+5", 5),
        ("1000", 1000),
        ("1 000", 1000),
    ],
)
def test_integer_accepts(engine: FormEngine, text: str, expected: int) -> None:
    result = engine.parse(Slot("total"), text, {}, NO_CTX)
    assert result.ok, result.error
    assert result.value == expected
    assert result.error is None


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("-1", "отрицательным"),
        ("−7", "отрицательным"),
        ("-" + "9" * 40, "отрицательным"),
        ("-2,5", "целое"),
        ("12.", "целое"),
        ("1 2", "цифрами"),
        ("12.5", "целое"),
        ("12,5", "целое"),
        ("двенадцать", "целое"),
        ("abc", "цифрами"),
        ("", "цифрами"),
        ("   ", "цифрами"),
        ("1001", "больше 1000"),
        ("9" * 40, "больше"),
        ("12 человек", "цифрами"),
    ],
)
def test_integer_rejects(engine: FormEngine, text: str, fragment: str) -> None:
    result = engine.parse(Slot("total"), text, {}, NO_CTX)
    assert not result.ok
    assert result.value is None
    assert fragment in (result.error or "")


def test_integer_default_max_rejects_absurd_size(engine: FormEngine) -> None:
    assert engine.parse(Slot("part"), "100000", {}, NO_CTX).ok
    result = engine.parse(Slot("part"), "100001", {}, NO_CTX)
    assert not result.ok
    assert "Слишком большое число" in (result.error or "")


def test_integer_below_explicit_min() -> None:
    data = {
        **DEMO,
        "sections": [
            {
                "id": "1",
                "title": "S",
                "items": [{"id": "n", "kind": "integer", "text": "N", "min": 1, "max": 5}],
            }
        ],
        "indicators": [],
    }
    engine = FormEngine(Form.model_validate(data))
    result = engine.parse(Slot("n"), "0", {}, NO_CTX)
    assert not result.ok
    assert "не меньше 1" in (result.error or "")
    negative = engine.parse(Slot("n"), "-3", {}, NO_CTX)
    assert "от 1 до 5" in (negative.error or "")


def test_integer_negative_allowed_when_min_is_negative() -> None:
    data = {
        **DEMO,
        "sections": [
            {
                "id": "1",
                "title": "S",
                "items": [{"id": "delta", "kind": "integer", "text": "D", "min": -5, "max": 5}],
            }
        ],
        "indicators": [],
    }
    engine = FormEngine(Form.model_validate(data))
    assert engine.parse(Slot("delta"), "-5", {}, NO_CTX).value == -5
    below = engine.parse(Slot("delta"), "-6", {}, NO_CTX)
    assert "не меньше -5" in (below.error or "")


def test_constraint_against_earlier_answer(engine: FormEngine) -> None:
    answers = ans(total=10)
    bad = engine.parse(Slot("part"), "11", answers, NO_CTX)
    assert not bad.ok
    assert bad.error == (
        "Число не может быть больше, чем «Всего педагогов» (10). Проверьте и введите ещё раз."
    )
    assert engine.parse(Slot("part"), "10", answers, NO_CTX).value == 10


def test_constraint_skipped_when_ref_unanswered(engine: FormEngine) -> None:
    assert engine.parse(Slot("part"), "11", {}, NO_CTX).ok
    assert engine.parse(Slot("part"), "11", ans(total=None), NO_CTX).ok


def test_constraint_in_group_uses_same_row_and_outer_row_zero(engine: FormEngine) -> None:
    answers = ans(total=50, planned=5, events=True, planned__1=20)
    row0 = engine.parse(Slot("done", 0), "6", answers, NO_CTX)
    assert not row0.ok
    assert "(5)" in (row0.error or "")
    assert engine.parse(Slot("done", 1), "6", answers, NO_CTX).ok  # row 1 planned 20
    over_total = engine.parse(Slot("planned", 1), "51", answers, NO_CTX)
    assert not over_total.ok
    assert "(50)" in (over_total.error or "")


# --- parsing: other kinds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("да", True),
        ("Да", True),
        ("  ДА ", True),
        ("д", True),
        ("yes", True),
        ("нет", False),
        ("НЕТ", False),
        ("н", False),
        ("No", False),
    ],
)
def test_yes_no_accepts(engine: FormEngine, text: str, expected: bool) -> None:
    result = engine.parse(Slot("has_program"), text, {}, NO_CTX)
    assert result.ok
    assert result.value is expected


@pytest.mark.parametrize("text", ["может быть", "", "1", "дааа"])
def test_yes_no_rejects(engine: FormEngine, text: str) -> None:
    result = engine.parse(Slot("has_program"), text, {}, NO_CTX)
    assert not result.ok
    assert "«да»" in (result.error or "")
    assert "«нет»" in (result.error or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("school", "school"),
        ("municipal", "municipal"),
        ("Школьная", "school"),
        (" муниципальная ", "municipal"),
        ("1", "school"),
        ("2", "municipal"),
        ("2.", "municipal"),
    ],
)
def test_choice_accepts(engine: FormEngine, text: str, expected: str) -> None:
    result = engine.parse(Slot("program_kind"), text, {}, NO_CTX)
    assert result.ok
    assert result.value == expected


@pytest.mark.parametrize("text", ["3", "0", "²", "региональная", ""])
def test_choice_rejects(engine: FormEngine, text: str) -> None:
    result = engine.parse(Slot("program_kind"), text, {}, NO_CTX)
    assert not result.ok
    assert "от 1 до 2" in (result.error or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15.10.2021", dt.date(2021, 10, 15)),
        ("5.1.2021", dt.date(2021, 1, 5)),
        (" 2021-10-15 ", dt.date(2021, 10, 15)),
        ("29.02.2024", dt.date(2024, 2, 29)),
    ],
)
def test_date_accepts(engine: FormEngine, text: str, expected: dt.date) -> None:
    result = engine.parse(Slot("started"), text, {}, NO_CTX)
    assert result.ok
    assert result.value == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("31.02.2023", "нет в календаре"),
        ("29.02.2023", "нет в календаре"),
        ("2023-13-01", "нет в календаре"),
        ("завтра", "ДД.ММ.ГГГГ"),
        ("15/10/2021", "ДД.ММ.ГГГГ"),
        ("15.10.21", "ДД.ММ.ГГГГ"),
        ("01.01.1800", "год"),
    ],
)
def test_date_rejects(engine: FormEngine, text: str, fragment: str) -> None:
    result = engine.parse(Slot("started"), text, {}, NO_CTX)
    assert not result.ok
    assert fragment in (result.error or "")
    assert "15.10.2021" in (result.error or "")


def test_text_parsing(engine: FormEngine) -> None:
    assert engine.parse(Slot("comment"), "  привет  ", {}, NO_CTX).value == "привет"
    empty = engine.parse(Slot("comment"), "   ", {}, NO_CTX)
    assert not empty.ok
    assert "пустым" in (empty.error or "")
    too_long = engine.parse(Slot("comment"), "а" * 11, {}, NO_CTX)
    assert not too_long.ok
    assert "не больше 10" in (too_long.error or "")
    assert engine.parse(Slot("comment"), "а" * 10, {}, NO_CTX).ok


def test_document_never_accepts_text(engine: FormEngine) -> None:
    result = engine.parse(Slot("scan"), "вот документ", {}, NO_CTX)
    assert not result.ok
    assert "файл" in (result.error or "")
    assert "приказ об утверждении программы" in (result.error or "")


def test_group_control_parses_yes_no(engine: FormEngine) -> None:
    assert engine.is_group_control("events")
    assert not engine.is_group_control("event_name")
    control = engine.question("events")
    assert control.kind == "yes_no"
    assert control.text == "Добавить ещё одно мероприятие?"
    assert engine.parse(Slot("events", 2), "да", {}, NO_CTX).value is True


# --- structure ----------------------------------------------------------------------------


def test_structure_lookups(engine: FormEngine) -> None:
    assert engine.section_of("part").id == "1"
    assert engine.section_of("done").id == "2"
    assert engine.section_of("events").id == "2"
    group = engine.group_of("done")
    assert group is not None
    assert group.id == "events"
    assert engine.group_of("events") is group
    assert engine.group_of("total") is None
    with pytest.raises(KeyError):
        engine.question("nope")


# --- visibility ----------------------------------------------------------------------------

BASE_ORDER = ["total", "part", "has_program"]
TAIL = ["comment", "started", "scan", "event_name", "planned", "done", "events"]


def test_slots_default_order(engine: FormEngine) -> None:
    assert ids(engine.slots({}, NO_CTX)) == [*BASE_ORDER, "not_risk_note", *TAIL]


def test_question_condition(engine: FormEngine) -> None:
    shown = ids(engine.slots(ans(has_program=True), NO_CTX))
    assert shown[:4] == [*BASE_ORDER, "program_kind"]
    assert "program_scope" not in shown  # program_kind unanswered -> condition false
    shown = ids(engine.slots(ans(has_program=True, program_kind="municipal"), NO_CTX))
    assert shown[3:5] == ["program_kind", "program_scope"]
    assert "program_kind" not in ids(engine.slots(ans(has_program=False), NO_CTX))


def test_hidden_answer_does_not_drive_conditions(engine: FormEngine) -> None:
    # program_kind is answered but hidden (has_program=no), so program_scope stays hidden.
    shown = ids(engine.slots(ans(has_program=False, program_kind="school"), NO_CTX))
    assert "program_scope" not in shown


def test_context_condition(engine: FormEngine) -> None:
    risk = ids(engine.slots({}, RISK))
    assert "risk_internet" in risk
    assert "not_risk_note" not in risk
    plain = ids(engine.slots({}, {"risk_zone": False, "shnor": True}))
    assert "risk_internet" not in plain
    assert "not_risk_note" in plain


# --- repeat groups -------------------------------------------------------------------------


def test_row_count(engine: FormEngine) -> None:
    assert engine.row_count("events", {}) == 1
    assert engine.row_count("events", ans(events=False)) == 1
    assert engine.row_count("events", ans(events=True)) == 2
    assert engine.row_count("events", ans(events=True, events__1=False)) == 2
    assert engine.row_count("events", ans(events=True, events__2=True)) == 2  # not consecutive
    all_yes = ans(events=True, events__1=True, events__2=True, events__3=True)
    assert engine.row_count("events", all_yes) == 3  # capped at max_rows


def test_group_slots_with_controls_and_max_rows(engine: FormEngine) -> None:
    two = ids(engine.slots(ans(events=True), NO_CTX))
    assert two[-8:] == [
        "event_name",
        "planned",
        "done",
        "events",
        "event_name#1",
        "planned#1",
        "done#1",
        "events#1",
    ]
    three = ids(engine.slots(ans(events=True, events__1=True), NO_CTX))
    assert three[-4:] == ["events#1", "event_name#2", "planned#2", "done#2"]  # no control on row 3


def test_group_show_if_uses_same_row(engine: FormEngine) -> None:
    shown = ids(engine.slots(ans(done=3, events=True, done__1=0), NO_CTX))
    assert "why" not in shown
    assert "why#1" in shown
    assert shown.index("why#1") == shown.index("done#1") + 1


# --- completeness --------------------------------------------------------------------------


def test_requirement_and_is_complete_for_document(engine: FormEngine) -> None:
    slot = Slot("has_program")
    assert engine.requirement(slot, {}) is None
    assert not engine.is_complete(slot, {})
    no_doc = ans(has_program=True)
    assert engine.requirement(slot, no_doc) == "document"
    assert not engine.is_complete(slot, no_doc)
    with_doc = ans(has_program=(True, 1))
    assert engine.requirement(slot, with_doc) is None
    assert engine.is_complete(slot, with_doc)


def test_requirement_and_is_complete_for_note(engine: FormEngine) -> None:
    slot = Slot("has_program")
    assert engine.requirement(slot, ans(has_program=False)) == "note"
    blank = ans(has_program=AnswerState(False, note="   "))
    assert engine.requirement(slot, blank) == "note"
    noted = ans(has_program=AnswerState(False, note="Программа в разработке"))
    assert engine.requirement(slot, noted) is None
    assert engine.is_complete(slot, noted)


def test_is_complete_other_kinds(engine: FormEngine) -> None:
    assert engine.is_complete(Slot("comment"), ans(comment=None))  # skipped optional
    assert not engine.is_complete(Slot("total"), ans(total=None))  # required cannot be skipped
    assert engine.is_complete(Slot("total"), ans(total=0))
    assert engine.requirement(Slot("total"), ans(total=0)) is None
    assert not engine.is_complete(Slot("scan"), ans(scan=0))
    assert engine.requirement(Slot("scan"), ans(scan=0)) == "document"
    assert engine.is_complete(Slot("scan"), ans(scan=(2, 2)))
    assert engine.is_complete(Slot("events"), ans(events=False))


# --- navigation ----------------------------------------------------------------------------


def test_next_and_prev(engine: FormEngine) -> None:
    assert engine.next_slot(None, {}, NO_CTX) == Slot("total")
    assert engine.next_slot(Slot("total"), {}, NO_CTX) == Slot("part")
    assert engine.next_slot(Slot("has_program"), ans(has_program=True), NO_CTX) == Slot(
        "program_kind"
    )
    assert engine.next_slot(Slot("has_program"), ans(has_program=False), NO_CTX) == Slot(
        "not_risk_note"
    )
    assert engine.next_slot(Slot("events"), ans(events=False), NO_CTX) is None
    assert engine.next_slot(Slot("events"), ans(events=True), NO_CTX) == Slot("event_name", 1)
    assert engine.prev_slot(Slot("total"), {}, NO_CTX) is None
    assert engine.prev_slot(Slot("part"), {}, NO_CTX) == Slot("total")
    assert engine.prev_slot(Slot("event_name", 1), ans(events=True), NO_CTX) == Slot("events", 0)


def test_next_from_slot_that_became_hidden(engine: FormEngine) -> None:
    # The user was on program_kind, went back and answered "no": continue after it.
    answers = ans(has_program=False)
    assert engine.next_slot(Slot("program_kind"), answers, NO_CTX) == Slot("not_risk_note")
    assert engine.prev_slot(Slot("program_kind"), answers, NO_CTX) == Slot("has_program")


def test_empty_form_navigation() -> None:
    data = {
        **DEMO,
        "sections": [
            {
                "id": "1",
                "title": "S",
                "items": [
                    {
                        "id": "only_risk",
                        "kind": "yes_no",
                        "text": "?",
                        "show_if": [{"context": "risk_zone"}],
                    }
                ],
            }
        ],
        "indicators": [],
    }
    engine = FormEngine(Form.model_validate(data))
    assert engine.next_slot(None, {}, NO_CTX) is None
    assert engine.first_incomplete({}, NO_CTX) is None
    assert engine.progress({}, NO_CTX) == (0, 0)
    assert engine.position(Slot("only_risk"), {}, NO_CTX) == (0, 0)


def test_first_incomplete_position_progress(engine: FormEngine) -> None:
    assert engine.first_incomplete({}, NO_CTX) == Slot("total")
    answers = ans(total=10, part=5, has_program=True)
    assert engine.first_incomplete(answers, NO_CTX) == Slot("has_program")  # document missing
    answers = ans(total=10, part=5, has_program=(True, 1))
    assert engine.first_incomplete(answers, NO_CTX) == Slot("program_kind")
    total = len(engine.slots(answers, NO_CTX))
    assert engine.position(Slot("total"), answers, NO_CTX) == (1, total)
    assert engine.position(Slot("program_kind"), answers, NO_CTX) == (4, total)
    assert engine.progress(answers, NO_CTX) == (3, total)
    # A hidden slot reports the position of the next visible one.
    assert engine.position(Slot("risk_internet"), answers, NO_CTX)[0] == 5


# --- whole-form checks ---------------------------------------------------------------------


def test_violations_after_lowering_total(engine: FormEngine) -> None:
    answers = ans(total=10, part=8, planned=9, done=9)
    assert engine.violations(answers, NO_CTX) == []
    answers[Slot("total")] = AnswerState(5)
    found = engine.violations(answers, NO_CTX)
    assert [s for s, _ in found] == [Slot("part"), Slot("planned")]
    assert "(5)" in found[0][1]
    answers[Slot("planned")] = AnswerState(4)
    assert [s for s, _ in engine.violations(answers, NO_CTX)] == [Slot("part"), Slot("done")]


def test_conflicts_name_the_answer_they_contradict(engine: FormEngine) -> None:
    answers = ans(total=5, part=8, planned=9, done=3)
    found = engine.conflicts(answers, NO_CTX)
    assert [(c.slot, c.ref) for c in found] == [
        (Slot("part"), Slot("total")),
        (Slot("planned"), Slot("total")),
    ]
    answers[Slot("total")] = AnswerState(5000)  # out of its own range: no other answer to blame
    assert [(c.slot, c.ref) for c in engine.conflicts(answers, NO_CTX)] == [(Slot("total"), None)]


def test_blocking_lists_gaps_and_conflicts_in_form_order(engine: FormEngine) -> None:
    answers = ans(total=5, part=8)
    blocking = engine.blocking(answers, NO_CTX)
    assert blocking[:2] == [Slot("part"), Slot("has_program")]
    assert set(engine.missing(answers, NO_CTX)) <= set(blocking)


def test_following_goes_forward_then_wraps(engine: FormEngine) -> None:
    todo = [Slot("total"), Slot("has_program"), Slot("program_kind")]
    assert engine.following(Slot("part"), todo) == Slot("has_program")
    assert engine.following(Slot("program_kind"), todo) == Slot("total")
    assert engine.following(Slot("total"), [Slot("total")]) is None
    assert engine.following(Slot("total"), []) is None


def test_violations_ignore_hidden_slots(engine: FormEngine) -> None:
    # Row 1 is answered but hidden (control row 0 says "no").
    answers = ans(total=5, events=False, planned__1=50)
    assert engine.violations(answers, NO_CTX) == []


def test_missing(engine: FormEngine) -> None:
    answers = ans(
        total=10,
        part=5,
        has_program=True,  # document missing
        program_kind="school",
        program_scope="весь район",
        scan=(1, 1),
        event_name="Семинар",
        planned=10,
        done=10,
        events=False,
    )
    # comment, started and not_risk_note are optional and unanswered: not missing.
    assert engine.missing(answers, NO_CTX) == [Slot("has_program")]
    answers[Slot("has_program")] = AnswerState(True, documents=1)
    assert engine.missing(answers, NO_CTX) == []
    assert engine.missing(answers, RISK) == [Slot("risk_internet")]
    assert Slot("total") in engine.missing({}, NO_CTX)
    assert Slot("comment") not in engine.missing({}, NO_CTX)


# --- scoring -------------------------------------------------------------------------------


def test_score_share_yes_no_count(engine: FormEngine) -> None:
    scores = engine.score(ans(total=10, part=8, has_program=True), NO_CTX)
    assert scores["part_share"] == IndicatorValue("part_share", True, 80.0, 8.0, 10.0)
    assert scores["program"].value == 1.0
    assert scores["total_count"].value == 10.0
    assert engine.score(ans(has_program=False), NO_CTX)["program"].value == 0.0


def test_score_zero_denominator_and_unanswered(engine: FormEngine) -> None:
    zero = engine.score(ans(total=0, part=0), NO_CTX)["part_share"]
    assert zero.applicable
    assert zero.value is None
    assert zero.denominator == 0.0
    empty = engine.score({}, NO_CTX)
    assert empty["part_share"].value is None
    assert empty["program"].value is None
    assert empty["total_count"].value is None


def test_score_at_least_and_applies_if(engine: FormEngine) -> None:
    both = ans(has_program=True, risk_internet=True)
    scores = engine.score(both, RISK)
    assert scores["two_of_two"] == IndicatorValue("two_of_two", True, 1.0, 2.0, 2.0)
    assert scores["one_of_two"].value == 1.0
    one = engine.score(ans(has_program=True, risk_internet=False), RISK)
    assert one["two_of_two"].value == 0.0
    assert engine.score(ans(has_program=False), RISK)["two_of_two"].value == 0.0  # can't reach 2
    assert engine.score(ans(has_program=True), RISK)["two_of_two"].value is None  # undecided
    # Outside the risk zone: not applicable, and the hidden risk answer is ignored.
    outside = engine.score(both, NO_CTX)
    assert outside["two_of_two"] == IndicatorValue("two_of_two", False, None)
    assert outside["one_of_two"].numerator == 1.0
