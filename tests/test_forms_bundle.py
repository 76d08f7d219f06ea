"""The bundled forms in forms/data load, walk to the end and score."""

from __future__ import annotations

from typing import Any

import pytest

from forms import (
    DATA_DIR,
    AnswerState,
    Form,
    FormEngine,
    QuestionKind,
    Slot,
    form_checksum,
    latest,
    load_bundled,
)

SCHOOL_IDS = [
    "teachers_total",
    "diag_subject",
    "diag_methodological",
    "diag_psychological",
    "support_provided",
    "network_associations",
    "regional_asset",
    "iom",
    "pd_events",
    "curator_assigned",
    "quality_program",
    "failure_prevention",
    "iup",
    "tutor_support",
    "risk_internet",
    "risk_computers",
    "risk_staff",
]
COUNT_IDS = SCHOOL_IDS[1:8]
YES_NO_IDS = SCHOOL_IDS[8:]
RISK_IDS = SCHOOL_IDS[14:]


@pytest.fixture(scope="module")
def forms() -> dict[tuple[str, int], Form]:
    return load_bundled()


@pytest.fixture(scope="module")
def school(forms: dict[tuple[str, int], Form]) -> Form:
    return latest(forms, "shnor_school")


def test_every_bundled_file_loads(forms: dict[tuple[str, int], Form]) -> None:
    files = sorted(p.name for p in DATA_DIR.glob("*.yaml"))
    assert files == ["program_report.v1.yaml", "shnor_municipality.v1.yaml", "shnor_school.v1.yaml"]
    assert set(forms) == {("shnor_school", 1), ("shnor_municipality", 1), ("program_report", 1)}
    assert forms[("shnor_municipality", 1)].respondent == "municipality"
    checksums = {form_checksum(f) for f in forms.values()}
    assert len(checksums) == len(forms)


def test_school_form_has_expected_questions(school: Form) -> None:
    assert [q.id for _, _, q in school.iter_questions()] == SCHOOL_IDS
    assert [s.id for s in school.sections] == ["1.2.3", "1.2.4", "1.2.5", "1.2.5-risk"]
    engine = FormEngine(school)
    for qid in COUNT_IDS:
        q = engine.question(qid)
        assert q.kind is QuestionKind.INTEGER
        assert [(c.op, c.ref) for c in q.constraints] == [("<=", "teachers_total")]
        assert "{ref_value}" in q.constraints[0].message
    for qid in YES_NO_IDS:
        q = engine.question(qid)
        assert q.kind is QuestionKind.YES_NO
        assert q.document_when_yes and q.note_when_no, qid
    assert engine.question("curator_assigned").document_hint == "Договор о сотрудничестве"
    for qid in RISK_IDS:
        assert [c.context for c in engine.question(qid).show_if] == ["risk_zone"]
    for _, _, q in school.iter_questions():
        assert q.short, q.id


def test_school_indicators(school: Form) -> None:
    by_id = {i.id: i for i in school.indicators}
    shares = {i.numerator: i for i in school.indicators if i.kind == "share"}
    assert set(shares) == set(COUNT_IDS)
    for ind in shares.values():
        assert ind.denominator == "teachers_total"
        assert ind.municipal is not None and ind.municipal.kind == "sum_ratio"
    population = {
        i.question: i.municipal.population
        for i in school.indicators
        if i.kind == "yes_no" and i.municipal
    }
    assert population == {
        "pd_events": "shnor_shnsu",
        "curator_assigned": "shnor_shnsu",
        "quality_program": "shnor_shnsu",
        "failure_prevention": "all",
        "iup": "all",
        "tutor_support": "all",
    }
    risks = by_id["risks_eliminated"]
    assert risks.kind == "at_least"
    assert risks.questions == RISK_IDS
    assert risks.min == 2
    assert risks.municipal is not None and risks.municipal.population == "risk_zone"
    assert by_id["support_share"].municipal.population == "shnor_shnsu"
    assert by_id["diag_subject_share"].municipal.population == "all"


def walk(form: Form, ctx: dict[str, bool], replies: dict[str, str], rows: int = 1) -> Any:
    """Answers every slot in order like a user would; returns (engine, answers, steps)."""
    engine = FormEngine(form)
    answers: dict[Slot, AnswerState] = {}
    slot = engine.next_slot(None, answers, ctx)
    steps = 0
    while slot is not None:
        steps += 1
        assert steps < 500, "walk does not terminate"
        q = engine.question(slot.question_id)
        if engine.is_group_control(slot.question_id):
            text = "да" if slot.row < rows - 1 else "нет"
        else:
            text = replies.get(q.id, {"integer": "7", "yes_no": "да", "text": "Ответ"}[q.kind])
        result = engine.parse(slot, text, answers, ctx)
        assert result.ok, (slot, text, result.error)
        answers[slot] = AnswerState(result.value)
        need = engine.requirement(slot, answers)
        if need == "document":
            answers[slot] = AnswerState(result.value, documents=1)
        elif need == "note":
            answers[slot] = AnswerState(result.value, note="Причина указана")
        assert engine.is_complete(slot, answers)
        assert engine.position(slot, answers, ctx)[0] == steps
        slot = engine.next_slot(slot, answers, ctx)
    return engine, answers, steps


def test_full_walk_of_school_form_in_risk_zone(school: Form) -> None:
    ctx = {"shnor": True, "risk_zone": True}
    replies = {"teachers_total": "40", "risk_staff": "нет", "iup": "нет"}
    engine, answers, steps = walk(school, ctx, replies)
    assert steps == len(SCHOOL_IDS)
    assert engine.missing(answers, ctx) == []
    assert engine.violations(answers, ctx) == []
    assert engine.first_incomplete(answers, ctx) is None
    assert engine.progress(answers, ctx) == (steps, steps)
    scores = engine.score(answers, ctx)
    assert set(scores) == {i.id for i in school.indicators}
    assert all(v.applicable and v.value is not None for v in scores.values())
    assert scores["diag_subject_share"].value == pytest.approx(17.5)
    assert scores["iup"].value == 0.0
    assert scores["pd_events"].value == 1.0
    assert scores["risks_eliminated"].value == 1.0  # 2 of 3 risks eliminated


def test_full_walk_of_school_form_outside_risk_zone(school: Form) -> None:
    ctx = {"shnsu": True}
    engine, answers, steps = walk(school, ctx, {"teachers_total": "7"})
    assert steps == len(SCHOOL_IDS) - len(RISK_IDS)
    assert engine.missing(answers, ctx) == []
    scores = engine.score(answers, ctx)
    assert scores["risks_eliminated"].applicable is False
    assert scores["risks_eliminated"].value is None
    assert scores["iom_share"].value == pytest.approx(100.0)


def test_lowering_teachers_total_flags_all_counts(school: Form) -> None:
    ctx = {"shnor": True}
    engine, answers, _ = walk(school, ctx, {"teachers_total": "40"})
    answers[Slot("teachers_total")] = AnswerState(5)
    flagged = [s.question_id for s, _ in engine.violations(answers, ctx)]
    assert flagged == COUNT_IDS
    message = engine.violations(answers, ctx)[0][1]
    assert "(5)" in message


def test_municipality_form(forms: dict[tuple[str, int], Form]) -> None:
    form = latest(forms, "shnor_municipality")
    ids = [q.id for _, _, q in form.iter_questions()]
    assert ids == ["analytical_reference", "practices_system", "risk_resources_monitoring"]
    assert all(i.municipal and i.municipal.kind == "yes_no" for i in form.indicators)
    engine, answers, steps = walk(form, {}, {"practices_system": "нет"})
    assert steps == 3
    assert engine.missing(answers, {}) == []
    scores = engine.score(answers, {})
    assert [scores[i].value for i in ids] == [1.0, 0.0, 1.0]


def test_program_report_walk_with_three_events(forms: dict[tuple[str, int], Form]) -> None:
    form = latest(forms, "program_report")
    engine = FormEngine(form)
    assert engine.question("program_details").required is False
    assert engine.question("events").text == "Добавить ещё одно мероприятие?"
    assert engine.question("planned_dates").hint
    engine, answers, steps = walk(form, {}, {}, rows=3)
    assert engine.row_count("events", answers) == 3
    # 2 programme questions + 3 rows x (4 questions + control)
    assert steps == 2 + 3 * 5
    assert engine.missing(answers, {}) == []
    assert engine.score(answers, {}) == {}
