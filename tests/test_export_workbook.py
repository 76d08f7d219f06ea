"""The export workbook opened with openpyxl: sheets, values, formats, chart, guard, scoping."""

from __future__ import annotations

import dataclasses
import zipfile
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook

from exports.answers import answer_sheet_titles
from exports.data import ExportNotAllowed, ExportScope, load_header, scope_for
from exports.service import run_export
from exports.workbook import PERCENT_FORMAT
from forms.loader import form_checksum, load_bundled
from storage.models import Person, Role
from tests.export_fixtures import MUN_A, MUN_B, MUN_C, built_region

SCHOOL_SHEET = "Ответы — Анкета ОО"
MUNICIPAL_SHEET = "Ответы — Анкета муниципалитета"
PROGRAM_SHEET = "Ответы — Отчёт о программе"
SHEETS = [
    SCHOOL_SHEET,
    MUNICIPAL_SHEET,
    PROGRAM_SHEET,
    "Мероприятия",
    "Показатели",
    "Муниципалитеты",
    "Прогресс",
    "Готовность",
    "Журнал изменений",
]


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
    answers = wb[SCHOOL_SHEET]
    assert answers["B2"].value == "Анкетирование" and answers["B1"].value == "campaign"
    headers = [c.value for c in answers[2]]
    ids = [c.value for c in answers[1]]
    assert headers[ids.index("teachers_total")] == "Педагогов всего"
    assert headers[ids.index("pd_events__note")].startswith("Пояснение:")
    # questions in form order
    assert ids.index("teachers_total") < ids.index("diag_subject") < ids.index("risk_staff")


async def test_answers_sheet_values_dates_and_documents(everything) -> None:
    wb = load_workbook(everything)
    ws = wb[SCHOOL_SHEET]
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
    assert (
        f"{MUN_A}/Школа №1/1.2.4 вопрос 9 «Участие в мероприятиях по профмастерству» pd_events.pdf"
    ) in paths
    index = rows.index(a1)
    assert cell(ws, "submitted_at", index).number_format == "DD.MM.YYYY HH:MM"
    assert cell(ws, "teachers_total", index).data_type == "n"

    draft = next(r for r in rows if r["school_code"] == "A3")
    assert draft["status"] == "черновик" and draft["submitted_at"] is None
    assert draft["documents_count"] == 0 and draft["documents"] is None
    # one row per respondent and campaign with a response
    assert [(r["campaign_id"], r["school_code"]) for r in rows].count((1, "A1")) == 1
    assert not any(r["school_code"] == "A4" for r in rows)  # not started: only in «Прогресс»
    _, municipal_rows = by_id(wb[MUNICIPAL_SHEET])
    municipal = next(r for r in municipal_rows if r["municipality"] == MUN_A)
    assert municipal["school"] is None
    assert municipal["documents"].startswith(f"{MUN_A}/Документы муниципалитета/")
    _, reports = by_id(wb[PROGRAM_SHEET])
    assert [(r["campaign_id"], r["school_code"]) for r in reports] == [(3, "A1")]
    assert reports[0]["program_name"] == "Программа «Успех»"


def _own_columns(form) -> list[str]:
    ids = []
    for _, group, q in form.iter_questions():
        if group is None:
            ids.append(q.id)
            if q.note_when_no:
                ids.append(f"{q.id}__note")
    return ids


async def test_one_answers_sheet_per_form_with_only_its_questions(everything) -> None:
    forms = load_bundled()
    wb = load_workbook(everything)
    identity = ["campaign_id", "campaign", "municipality", "school", "school_code"]
    head = [*identity, "status", "submitted_at", "updated_at"]
    tail = ["documents_count", "documents"]
    for title, form_id, campaign in (
        (SCHOOL_SHEET, "shnor_school", 1),
        (MUNICIPAL_SHEET, "shnor_municipality", 2),
        (PROGRAM_SHEET, "program_report", 3),
    ):
        ws = wb[title]
        assert len(title) <= 31
        ids, rows = by_id(ws)
        assert ids == [*head, *_own_columns(forms[(form_id, 1)]), *tail], title
        assert ws.row_dimensions[1].hidden, title
        assert rows and {r["campaign_id"] for r in rows} == {campaign}, title
    school_ids, _ = by_id(wb[SCHOOL_SHEET])
    assert len(school_ids) == 8 + 17 + 9 + 2  # 17 questions, 9 of them with a note
    assert "analytical_reference" not in school_ids and "program_name" not in school_ids


def test_answer_sheet_titles_fit_excel_and_are_unique() -> None:
    names = [
        "Анкета ОО",
        "анкета оо",  # Excel compares sheet names case-insensitively
        "Отчёт [2024]: план/факт?*\\",
        "Мероприятия",
        "Очень длинное название формы, которое никак не помещается",
        "Очень длинное название формы, которое никак не помещается",
        "Итоги'",
        "   ",
    ]
    titles = answer_sheet_titles(names, taken=["Ответы — Мероприятия", "Показатели"])
    assert titles[:4] == [
        "Ответы — Анкета ОО",
        "Ответы — анкета оо (2)",
        "Ответы — Отчёт 2024 план факт",
        "Ответы — Мероприятия (2)",
    ]
    assert titles[4].startswith("Ответы — Очень длинное") and titles[4].endswith("…")
    assert titles[5].endswith(" (2)") and titles[6] == "Ответы — Итоги"
    assert titles[7] == "Ответы"
    assert len({t.casefold() for t in titles}) == len(titles)
    for title in titles:
        assert 1 <= len(title) <= 31, title
        assert not set(title) & set("[]:*?/\\"), title
        assert not title.endswith("'"), title


async def test_forms_without_a_response_get_no_answers_sheet(tmp_path, tmp_path_factory):
    region = built_region(tmp_path_factory)
    out = await export(
        tmp_path, tmp_path_factory, ExportScope(municipality_id=region.municipalities[MUN_B])
    )
    wb = load_workbook(out)
    assert wb.sheetnames == [s for s in SHEETS if s != PROGRAM_SHEET]  # B1 sent no report
    _, progress = by_id(wb["Прогресс"])
    states = {(r["campaign"], r["state"]) for r in progress}
    assert ("Отчёт о программе 2024", "не начата") in states


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
    assert {r["school_code"] for r in by_id(wb[SCHOOL_SHEET])[1]} == {"B1"}
    assert {r["school_code"] for r in by_id(wb[MUNICIPAL_SHEET])[1]} == {None}
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
        wb = load_workbook(path)
        assert wb.sheetnames == [SCHOOL_SHEET, *SHEETS[3:]]
        _, rows = by_id(wb[SCHOOL_SHEET])
        assert {r["campaign_id"] for r in rows} == {region.school_campaign}
    first, second = load_workbook(threaded), load_workbook(separate)
    for title in first.sheetnames:
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


def test_a_forms_short_name_is_not_part_of_its_checksum() -> None:
    form = load_bundled()[("shnor_school", 1)]
    assert form.short == "Анкета ОО"
    renamed = form.model_copy(update={"short": "Другое имя"})
    assert form_checksum(renamed) == form_checksum(form)  # a rename needs no new version
    assert form_checksum(form.model_copy(update={"title": "Другое"})) != form_checksum(form)


async def test_a_form_answered_after_the_header_was_read_still_exports(
    tmp_path, tmp_path_factory
) -> None:
    region = built_region(tmp_path_factory)
    services = await region.open(tmp_path)
    out = tmp_path / "late.xlsx"
    try:
        async with services.sessions() as session:
            header = await load_header(session, ExportScope())
        # as if every response had come in between reading the header and the rows
        late = dataclasses.replace(header, responses={})
        for writer_process in (False, True):
            await run_export(
                services.sessions,
                services.forms,
                ExportScope(),
                out,
                timezone=ZoneInfo("Europe/Moscow"),
                files=services.files,
                header=late,
                writer_process=writer_process,
            )
            wb = load_workbook(out)
            assert not [t for t in wb.sheetnames if t.startswith("Ответы")]
            _, progress = by_id(wb["Прогресс"])
            assert {r["state"] for r in progress} >= {"отправлена", "черновик 2 из 14"}
    finally:
        await services.close()
