"""The export workbook opened with openpyxl: sheets, values, formats, chart, guard, scoping."""

from __future__ import annotations

import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from exports.data import ExportNotAllowed, ExportScope, scope_for
from exports.service import run_export
from exports.workbook import PERCENT_FORMAT
from storage.models import Person, Role
from tests.export_fixtures import MUN_A, MUN_B, MUN_C, built_region

SHEETS = ["Ответы", "Мероприятия", "Показатели", "Муниципалитеты", "Прогресс", "Готовность"]


async def export(tmp_path: Path, factory, scope: ExportScope, **options) -> Path:
    region = built_region(factory)
    tmp_path.mkdir(parents=True, exist_ok=True)
    services = await region.open(tmp_path)
    try:
        out = tmp_path / "out.xlsx"
        await run_export(
            services.sessions,
            services.forms,
            scope,
            out,
            timezone=ZoneInfo("Europe/Moscow"),
            files=services.files,
            **options,
        )
        return out
    finally:
        await services.close()


def by_id(ws) -> tuple[list[str], list[dict]]:
    rows = list(ws.iter_rows(values_only=True))
    return list(rows[0]), [dict(zip(rows[0], row, strict=False)) for row in rows[2:]]


def cell(ws, key: str, row: int):
    """The cell of column ``key`` (hidden id row) in data row ``row`` (0-based)."""
    ids = [c.value for c in ws[1]]
    return ws.cell(row=row + 3, column=ids.index(key) + 1)


@pytest.fixture
async def everything(tmp_path, tmp_path_factory) -> Path:
    return await export(tmp_path, tmp_path_factory, ExportScope())


async def test_sheets_layout_frozen_header_filter_and_hidden_ids(everything) -> None:
    wb = load_workbook(everything)
    assert wb.sheetnames == SHEETS
    for ws in wb.worksheets:
        assert ws.row_dimensions[1].hidden, ws.title
        assert ws.freeze_panes.endswith("3"), ws.title  # the id row and the header are frozen
        assert ws.auto_filter.ref.startswith("A2:"), ws.title
        assert ws["A2"].font.b, ws.title
        widths = [d.width for d in ws.column_dimensions.values() if d.width]
        assert widths and min(widths) >= 7, ws.title
    answers = wb["Ответы"]
    assert answers["B2"].value == "Анкетирование" and answers["B1"].value == "campaign"
    headers = [c.value for c in answers[2]]
    ids = [c.value for c in answers[1]]
    assert headers[ids.index("teachers_total")] == "Педагогов всего"
    assert headers[ids.index("pd_events__note")].startswith("Пояснение:")
    # questions in form order
    assert ids.index("teachers_total") < ids.index("diag_subject") < ids.index("risk_staff")


async def test_answers_sheet_values_dates_and_documents(everything) -> None:
    wb = load_workbook(everything)
    ws = wb["Ответы"]
    _, rows = by_id(ws)
    a1 = next(r for r in rows if r["school_code"] == "A1" and r["campaign_id"] == 1)
    assert a1["municipality"] == MUN_A and a1["status"] == "отправлена"
    assert a1["submitted_at"] == datetime(2024, 5, 20, 12, 30)  # 09:30 UTC in Moscow
    assert isinstance(a1["updated_at"], datetime)
    assert (a1["teachers_total"], a1["diag_subject"], a1["support_provided"]) == (10, 5, 4)
    assert (a1["pd_events"], a1["quality_program"]) == ("да", "нет")
    assert a1["quality_program__note"].startswith("Причина")
    assert a1["risk_staff__note"] == "Вакансии пока не закрыты, объявлен набор."
    assert a1["documents_count"] == 6
    paths = a1["documents"].split("\n")
    assert f"{MUN_A}/Школа №1/pd_events_pd_events.pdf" in paths
    index = rows.index(a1)
    assert cell(ws, "submitted_at", index).number_format == "DD.MM.YYYY HH:MM"
    assert cell(ws, "teachers_total", index).data_type == "n"

    draft = next(r for r in rows if r["school_code"] == "A3")
    assert draft["status"] == "черновик" and draft["submitted_at"] is None
    assert draft["documents_count"] == 0 and draft["documents"] is None
    municipal = next(r for r in rows if r["campaign_id"] == 2 and r["municipality"] == MUN_A)
    assert municipal["school"] is None
    assert municipal["documents"].startswith(f"{MUN_A}/Документы муниципалитета/")
    # one row per respondent and campaign with a response: A1 has two (school form, report)
    assert [(r["campaign_id"], r["school_code"]) for r in rows].count((1, "A1")) == 1
    assert any(r["campaign_id"] == 3 and r["school_code"] == "A1" for r in rows)
    assert not any(r["school_code"] == "A4" for r in rows)  # not started: only in «Прогресс»


async def test_events_sheet_one_row_per_event(everything) -> None:
    _, rows = by_id(load_workbook(everything)["Мероприятия"])
    assert [(r["school_code"], r["row"], r["event_name"]) for r in rows] == [
        ("A1", 1, "Семинар «Формирующее оценивание»"),
        ("A1", 2, '=HYPERLINK("http://x")'),
    ]
    assert rows[1]["actual_dates"] == "не проведено" and rows[1]["result"] == "@перенос"


async def test_indicator_sheet_per_school(everything) -> None:
    ws = load_workbook(everything)["Показатели"]
    ids, rows = by_id(ws)
    assert "support_share" in ids and "pd_events" in ids and "risks_eliminated" in ids
    a1 = next(r for r in rows if r["school_code"] == "A1")
    assert (a1["shnor"], a1["risk_zone"], a1["counted"]) == ("да", "да", "да")
    assert a1["support_share"] == pytest.approx(0.4)
    assert cell(ws, "support_share", rows.index(a1)).number_format == PERCENT_FORMAT
    assert (a1["pd_events"], a1["quality_program"], a1["risks_eliminated"]) == (1, 0, 1)
    a2 = next(r for r in rows if r["school_code"] == "A2")
    assert a2["risks_eliminated"] == "не применяется"
    a4 = next(r for r in rows if r["school_code"] == "A4")
    assert (a4["status"], a4["counted"], a4["support_share"]) == ("не начата", "нет", "нет данных")
    a3 = next(r for r in rows if r["school_code"] == "A3")
    assert (a3["status"], a3["counted"], a3["diag_subject_share"]) == ("черновик", "нет", 1)


async def test_municipalities_percent_formats_and_region_row(everything) -> None:
    ws = load_workbook(everything)["Муниципалитеты"]
    _, rows = by_id(ws)
    assert [r["municipality"] for r in rows] == [MUN_A, MUN_B, MUN_C, "Итого по региону"]
    for key in ("shnor_shnsu_share", "c1.support_share", "c1.failure_prevention"):
        assert cell(ws, key, 0).number_format == PERCENT_FORMAT
        assert cell(ws, key, 3).number_format == PERCENT_FORMAT  # the region row too
    assert cell(ws, "c2.analytical_reference", 0).value == 1  # a 1/0 балл per municipality
    assert cell(ws, "c2.analytical_reference", 3).number_format == PERCENT_FORMAT
    assert cell(ws, "c1.support_share", 1).value == "нет данных"


async def test_progress_sheet_and_completion_chart(everything) -> None:
    wb = load_workbook(everything)
    _, rows = by_id(wb["Прогресс"])
    state = {(r["campaign_id"], r["school_code"] or r["municipality"]): r for r in rows}
    assert state[(1, "A1")]["state"] == "отправлена"
    assert state[(1, "A1")]["account_linked"] == "да"
    assert state[(1, "A2")]["account_linked"] == "нет"
    assert state[(1, "A3")]["state"] == "черновик 2 из 14"
    assert state[(1, "A4")]["state"] == "не начата" and state[(1, "A4")]["last_activity"] is None
    assert state[(2, MUN_B)]["state"] == "черновик 0 из 3"
    assert state[(2, MUN_C)]["state"] == "не начата"
    assert isinstance(state[(1, "A1")]["last_activity"], datetime)

    ws = wb["Готовность"]
    _, completion = by_id(ws)
    a = next(r for r in completion if r["municipality"] == MUN_A)
    assert (a["c1__targets"], a["c1__started"], a["c1__submitted"]) == (4, 3, 2)
    assert a["c1__share"] == 0.5
    assert cell(ws, "c1__share", 0).number_format == PERCENT_FORMAT
    charts = ws._charts
    assert len(charts) == 1
    assert charts[0].tagname == "barChart" and charts[0].type == "bar"
    assert len(charts[0].series) == 3  # one per campaign
    with zipfile.ZipFile(everything) as archive:
        assert any(name.startswith("xl/charts/chart") for name in archive.namelist())


async def test_formula_injection_guard(everything) -> None:
    wb = load_workbook(everything)
    events = wb["Мероприятия"]
    formula = events["I4"]
    assert formula.value == '=HYPERLINK("http://x")'
    assert formula.data_type == "s"  # a string, never a formula
    assert events["L3"].value == "+ 12 учителей" and events["L3"].data_type == "s"
    _, indicators = by_id(wb["Показатели"])
    assert any(r["school"] == "=Школа №3" for r in indicators)
    with zipfile.ZipFile(everything) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        for name in sheets:
            assert b"<f>" not in archive.read(name), name


async def test_municipal_coordinator_sees_only_their_municipality(tmp_path, tmp_path_factory):
    region = built_region(tmp_path_factory)
    coordinator = Person(role=Role.MUNICIPAL, municipality_id=region.municipalities[MUN_B])
    out = await export(tmp_path, tmp_path_factory, scope_for(coordinator))
    wb = load_workbook(out)
    for ws in wb.worksheets:
        _, rows = by_id(ws)
        for row in rows:
            assert row["municipality"] == MUN_B, (ws.title, row)
    _, answers = by_id(wb["Ответы"])
    assert {r["school_code"] for r in answers} == {"B1", None}
    assert "Итого по региону" not in str(
        [r["municipality"] for r in by_id(wb["Муниципалитеты"])[1]]
    )
    text = "".join(str(c.value) for ws in wb.worksheets for row in ws.iter_rows() for c in row)
    assert "Школа №2" not in text and MUN_A not in text


def test_scopes_by_role() -> None:
    assert scope_for(Person(role=Role.ADMIN)).municipality_id is None
    assert scope_for(Person(role=Role.REGIONAL, region_id=1)).municipality_id is None
    assert scope_for(Person(role=Role.MUNICIPAL, municipality_id=7)).municipality_id == 7
    with pytest.raises(ExportNotAllowed):
        scope_for(Person(role=Role.DIRECTOR, school_id=1))
    with pytest.raises(ExportNotAllowed):
        scope_for(Person(role=Role.MUNICIPAL, municipality_id=None))


async def test_one_campaign_and_the_writer_process(tmp_path, tmp_path_factory) -> None:
    region = built_region(tmp_path_factory)
    scope = ExportScope(campaign_ids=(region.school_campaign,))
    threaded = await export(tmp_path / "t", tmp_path_factory, scope, writer_process=False)
    separate = await export(tmp_path / "p", tmp_path_factory, scope, writer_process=True)
    for path in (threaded, separate):
        _, rows = by_id(load_workbook(path)["Ответы"])
        assert {r["campaign_id"] for r in rows} == {region.school_campaign}
        assert "analytical_reference" not in by_id(load_workbook(path)["Ответы"])[0]
    first, second = load_workbook(threaded), load_workbook(separate)
    for title in SHEETS:
        assert [[c.value for c in r] for r in first[title].iter_rows()] == [
            [c.value for c in r] for r in second[title].iter_rows()
        ], title


async def test_a_failure_while_loading_leaves_no_file_and_no_writer(
    tmp_path, tmp_path_factory, monkeypatch
) -> None:
    import multiprocessing

    import exports.service as service

    real = service.iter_targets

    async def failing(*args, **kwargs):
        async for chunk in real(*args, **kwargs):
            yield chunk
            raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "iter_targets", failing)
    region = built_region(tmp_path_factory)
    services = await region.open(tmp_path)
    out, documents = tmp_path / "out.xlsx", tmp_path / "docs.zip"
    try:
        with pytest.raises(RuntimeError, match="went away"):
            await run_export(
                services.sessions,
                services.forms,
                ExportScope(),
                out,
                timezone=ZoneInfo("Europe/Moscow"),
                files=services.files,
                documents=documents,
                chunk_size=2,
                writer_process=True,
            )
    finally:
        await services.close()
    assert not out.exists() and not documents.exists()
    assert multiprocessing.active_children() == []
