"""Indicators: per-school scores, municipal and region figures exactly as seed 004 prescribes."""

from __future__ import annotations

import random
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from exports.data import ExportScope
from exports.indicators import (
    NO_DATA,
    Aggregator,
    MemoEngine,
    Population,
    in_population,
    is_counted,
    shnor_share,
)
from exports.service import run_export
from forms.engine import AnswerState, FormEngine, Slot
from forms.loader import load_bundled
from tests.export_fixtures import MUN_A, MUN_B, MUN_C, built_region

FORMS = load_bundled()
SCHOOL = FORMS[("shnor_school", 1)]
MUNICIPAL = FORMS[("shnor_municipality", 1)]
PROGRAM = FORMS[("program_report", 1)]
ENGINE = FormEngine(SCHOOL)
PLAIN = {"shnor": False, "shnsu": False, "risk_zone": False}
SHNOR = {"shnor": True, "shnsu": False, "risk_zone": False}
SHNSU = {"shnor": False, "shnsu": True, "risk_zone": False}


def school_values(flags: dict[str, bool], **answers: object):
    state = {Slot(qid): AnswerState(value) for qid, value in answers.items()}
    return ENGINE.score(state, flags)


def test_population_membership_and_counted_statuses() -> None:
    assert in_population("all", PLAIN)
    assert in_population("shnor_shnsu", SHNOR) and in_population("shnor_shnsu", SHNSU)
    assert not in_population("shnor_shnsu", PLAIN)
    assert in_population("risk_zone", {"risk_zone": True})
    assert is_counted("submitted") and not is_counted("draft") and not is_counted(None)
    assert is_counted("draft", include_drafts=True) and is_counted("returned", True)


def test_sum_ratio_sums_numbers_instead_of_averaging_percentages() -> None:
    aggregator = Aggregator(SCHOOL, {1: Population(schools=3, shnor_shnsu=2)})
    aggregator.add(
        1, 11, SHNOR, "submitted", school_values(SHNOR, teachers_total=10, support_provided=4)
    )
    aggregator.add(
        1, 12, SHNSU, "submitted", school_values(SHNSU, teachers_total=30, support_provided=6)
    )
    aggregator.add(
        1, 13, PLAIN, "submitted", school_values(PLAIN, teachers_total=50, support_provided=50)
    )
    figure = aggregator.municipality(1)["support_share"]
    # (4 + 6) / (10 + 30) = 25 %, not the average of 40 % and 20 %; the plain school is outside
    assert figure.value == pytest.approx(25.0)
    assert (figure.numerator, figure.denominator) == (10.0, 40.0)
    assert figure.counted_ids == (11, 12) and figure.missing == 0
    assert figure.fraction == pytest.approx(0.25)


def test_count_share_denominator_is_the_whole_population_from_the_list() -> None:
    aggregator = Aggregator(SCHOOL, {1: Population(schools=4)})
    aggregator.add(1, 1, PLAIN, "submitted", school_values(PLAIN, failure_prevention=True))
    aggregator.add(1, 2, PLAIN, "submitted", school_values(PLAIN, failure_prevention=False))
    aggregator.add(1, 3, PLAIN, "draft", school_values(PLAIN, failure_prevention=True))
    aggregator.add(1, 4, PLAIN, None, None)  # not started
    figure = aggregator.municipality(1)["failure_prevention"]
    assert figure.value == pytest.approx(25.0)  # 1 of the 4 schools in the list
    assert (figure.numerator, figure.denominator) == (1.0, 4.0)
    assert figure.counted_ids == (1, 2)
    assert figure.missing_ids == (3, 4) and figure.missing == 2

    with_drafts = Aggregator(SCHOOL, {1: Population(schools=4)}, include_drafts=True)
    with_drafts.add(1, 3, PLAIN, "draft", school_values(PLAIN, failure_prevention=True))
    assert with_drafts.municipality(1)["failure_prevention"].value == pytest.approx(25.0)
    assert with_drafts.municipality(1)["failure_prevention"].counted_ids == (3,)


def test_zero_denominators_give_no_data_not_zero() -> None:
    aggregator = Aggregator(SCHOOL, {1: Population(schools=1), 2: Population()})
    aggregator.add(
        1, 1, PLAIN, "submitted", school_values(PLAIN, teachers_total=8, support_provided=0)
    )
    figures = aggregator.municipality(1)
    assert figures["support_share"].value is None  # no ШНОР/ШНСУ teachers at all
    assert figures["pd_events"].value is None  # no ШНОР/ШНСУ schools at all
    assert figures["risks_eliminated"].value is None
    assert aggregator.municipality(2)["failure_prevention"].value is None  # no schools
    assert shnor_share(Population()).value is None
    assert shnor_share(Population(schools=4, shnor_shnsu=1)).value == pytest.approx(25.0)


def test_risk_indicator_needs_two_of_three_and_counts_risk_zone_schools_only() -> None:
    risk = {"shnor": False, "shnsu": False, "risk_zone": True}
    aggregator = Aggregator(SCHOOL, {1: Population(schools=3, risk_zone=2)})
    two = school_values(risk, risk_internet=True, risk_computers=True, risk_staff=False)
    one = school_values(risk, risk_internet=True, risk_computers=False, risk_staff=False)
    assert two["risks_eliminated"].value == 1.0 and one["risks_eliminated"].value == 0.0
    aggregator.add(1, 1, risk, "submitted", two)
    aggregator.add(1, 2, risk, "submitted", one)
    aggregator.add(1, 3, PLAIN, "submitted", school_values(PLAIN))
    figure = aggregator.municipality(1)["risks_eliminated"]
    assert (figure.numerator, figure.denominator, figure.value) == (1.0, 2.0, 50.0)


def test_region_totals_are_sums_over_municipalities() -> None:
    aggregator = Aggregator(SCHOOL, {1: Population(schools=2), 2: Population(schools=3)})
    aggregator.add(
        1, 1, PLAIN, "submitted", school_values(PLAIN, teachers_total=10, diag_subject=5)
    )
    aggregator.add(
        1, 2, PLAIN, "submitted", school_values(PLAIN, teachers_total=10, diag_subject=5)
    )
    aggregator.add(
        2, 3, PLAIN, "submitted", school_values(PLAIN, teachers_total=80, diag_subject=0)
    )
    region = aggregator.region([1, 2])
    assert region["diag_subject_share"].value == pytest.approx(10 / 100 * 100)
    assert (region["diag_subject_share"].numerator, region["diag_subject_share"].denominator) == (
        10.0,
        100.0,
    )
    assert region["diag_subject_share"].missing == 2  # one school of each list never answered


def test_municipal_yes_no_and_its_region_share() -> None:
    engine = FormEngine(MUNICIPAL)
    aggregator = Aggregator(MUNICIPAL, {1: Population(), 2: Population(), 3: Population()})
    answered = engine.score({Slot("analytical_reference"): AnswerState(True)}, {})
    declined = engine.score({Slot("analytical_reference"): AnswerState(False)}, {})
    aggregator.add(1, 1, {}, "submitted", answered)
    aggregator.add(2, 2, {}, "submitted", declined)
    aggregator.add(3, 3, {}, "draft", answered)
    assert aggregator.municipality(1)["analytical_reference"].value == 1.0
    assert aggregator.municipality(1)["analytical_reference"].unit == "score"
    assert aggregator.municipality(2)["analytical_reference"].value == 0.0
    assert aggregator.municipality(3)["analytical_reference"].value is None  # a draft
    region = aggregator.region([1, 2, 3])["analytical_reference"]
    assert (region.numerator, region.denominator) == (1.0, 3.0)
    assert region.value == pytest.approx(100 / 3) and region.missing == 1


@pytest.mark.parametrize("form", [SCHOOL, MUNICIPAL, PROGRAM], ids=lambda f: f.id)
def test_memo_engine_matches_the_engine(form) -> None:
    plain, memo = FormEngine(form), MemoEngine(form)
    rng = random.Random(4)
    questions = [q for _, _, q in form.iter_questions()]
    groups = [item.id for s in form.sections for item in s.items if item.kind == "group"]
    for _ in range(300):
        flags = {k: rng.random() < 0.5 for k in ("shnor", "shnsu", "risk_zone")}
        answers = {}
        for q in questions:
            if rng.random() < 0.7:
                value = {"yes_no": rng.random() < 0.5, "integer": rng.randint(0, 40)}.get(
                    q.kind, "текст"
                )
                answers[Slot(q.id, rng.randint(0, 2) if q.id.startswith("event") else 0)] = (
                    AnswerState(value)
                )
        for group in groups:
            for row in range(rng.randint(0, 3)):
                answers[Slot(group, row)] = AnswerState(rng.random() < 0.7)
        assert memo.slots(answers, flags) == plain.slots(answers, flags)
        assert memo.score(answers, flags) == plain.score(answers, flags)
        assert memo.progress(answers, flags) == plain.progress(answers, flags)


# --- the fixture region, through the real export ----------------------------------------------


def sheet_rows(path: Path, title: str) -> list[dict[str, object]]:
    """Data rows keyed by the hidden id row."""
    ws = load_workbook(path)[title]
    rows = list(ws.iter_rows(values_only=True))
    ids = rows[0]
    return [dict(zip(ids, row, strict=False)) for row in rows[2:]]


async def export_municipalities(tmp_path: Path, factory, **scope) -> dict[str, dict]:
    region = built_region(factory)
    services = await region.open(tmp_path)
    try:
        out = tmp_path / "out.xlsx"
        campaigns = (region.school_campaign, region.municipal_campaign)
        await run_export(
            services.sessions,
            services.forms,
            ExportScope(campaign_ids=campaigns, **scope),
            out,
            timezone=ZoneInfo("Europe/Moscow"),
        )
    finally:
        await services.close()
    return {row["municipality"]: row for row in sheet_rows(out, "Муниципалитеты")}


async def test_fixture_region_figures_by_hand(tmp_path, tmp_path_factory) -> None:
    rows = await export_municipalities(tmp_path, tmp_path_factory)
    a, b, c = rows[MUN_A], rows[MUN_B], rows[MUN_C]
    total = rows["Итого по региону"]
    assert list(rows) == [MUN_A, MUN_B, MUN_C, "Итого по региону"]  # the region is last

    # 1.2.1 from the imported list: 2 of A's 4 schools are ШНОР/ШНСУ, none of B's 1, C has none
    assert (a["shnor_shnsu_share"], a["shnor_shnsu_share__numerator"]) == (0.5, 2)
    assert a["shnor_shnsu_share__denominator"] == 4
    assert b["shnor_shnsu_share"] == 0
    assert c["shnor_shnsu_share"] == NO_DATA
    assert total["shnor_shnsu_share"] == pytest.approx(2 / 5)

    # sum_ratio, all schools: A = (5 + 15) / (10 + 30); the draft A3 and A4 are missing
    key = "c1.diag_subject_share"
    assert (a[key], a[f"{key}__numerator"], a[f"{key}__denominator"]) == (0.5, 20, 40)
    assert a[f"{key}__missing"] == 2
    assert b[key] == pytest.approx(2 / 8)
    assert total[key] == pytest.approx(22 / 48)
    assert (total[f"{key}__numerator"], total[f"{key}__denominator"]) == (22, 48)

    # sum_ratio over ШНОР/ШНСУ: 10 / 40 = 25 % (the average of 40 % and 20 % would be 30 %)
    assert a["c1.support_share"] == pytest.approx(0.25)
    assert b["c1.support_share"] == NO_DATA  # zero denominator: no ШНОР/ШНСУ teachers
    assert c["c1.support_share"] == NO_DATA
    assert total["c1.support_share"] == pytest.approx(0.25)

    # count_share over ШНОР/ШНСУ: A1 yes, A2 no
    assert (a["c1.pd_events"], a["c1.pd_events__numerator"], a["c1.pd_events__denominator"]) == (
        0.5,
        1,
        2,
    )
    assert b["c1.pd_events"] == NO_DATA

    # count_share over all schools of the list: A 1 of 4, B 1 of 1, region 2 of 5
    assert (a["c1.failure_prevention"], a["c1.failure_prevention__denominator"]) == (0.25, 4)
    assert b["c1.failure_prevention"] == 1
    assert total["c1.failure_prevention"] == pytest.approx(0.4)
    assert a["c1.risks_eliminated"] == 1  # A1 eliminated 2 of 3 risks

    # counted and missing next to the figures
    assert (a["c1__targets"], a["c1__counted"]) == (4, 2)
    assert a["c1__not_sent"] == "=Школа №3; Школа №4"

    # municipal yes/no: A answered, B only a draft, C nothing; region = share of municipalities
    assert (a["c2.analytical_reference"], a["c2.practices_system"]) == (1, 0)
    assert b["c2.analytical_reference"] == NO_DATA
    assert c["c2.analytical_reference"] == NO_DATA
    assert total["c2.analytical_reference"] == pytest.approx(1 / 3)
    assert total["c2.analytical_reference__denominator"] == 3


async def test_fixture_region_with_drafts(tmp_path, tmp_path_factory) -> None:
    rows = await export_municipalities(tmp_path, tmp_path_factory, include_drafts=True)
    a, b = rows[MUN_A], rows[MUN_B]
    # the draft A3 (20 of 20) now counts: (5 + 15 + 20) / (10 + 30 + 20)
    assert a["c1.diag_subject_share"] == pytest.approx(40 / 60)
    assert a["c1__counted"] == 3
    assert b["c2.analytical_reference"] == 1  # B's draft says yes
