"""The export's «Дорожная карта» sheet: items × schools, states, evidence, completion, scope."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

from openpyxl import load_workbook
from sqlalchemy import select

from exports.data import ExportScope
from exports.roadmap import SHEET_ROADMAP, item_state
from exports.service import run_export
from exports.workbook import PERCENT_FORMAT
from roadmaps.audience import ALL, AppliesTo
from storage import roadmaps_db as rdb
from storage.models import Roadmap, respondent_key
from storage.roadmaps_save import save_roadmap
from tests.export_fixtures import MUN_A, MUN_B, REGION, built_region
from tests.reminder_helpers import roadmap

TODAY = date(2023, 7, 1)
INJECTION = '=HYPERLINK("http://evil.example","нажми")'
REGIONAL = "test_2023"
DISTRICT = "district_b_2023"


async def _load_roadmaps(services, schools: dict[str, int], shnor_only: bool = False) -> None:
    regional = roadmap(
        [
            ("1", "Назначить ответственных", "До 15.02.2023", ["director"]),
            ("2", "Провести диагностику", "30.06.2023", ["director", "municipal"]),
            ("3", "Мониторинг", "ежегодно май сентябрь", ["director"]),  # 31.05 and 30.09
            ("4", "Региональное совещание", "До 01.12.2023", ["regional"]),  # not a school's
            ("5", "Отчёт за год", "До 01.12.2023", ["director"]),
        ],
        key=REGIONAL,
        region=REGION,
    )
    if shnor_only:  # the region's ШНОР/ШНСУ (the default), item 5 for the risk zone only
        items = [
            i.model_copy(update={"applies_to": AppliesTo(kind="risk_zone")})
            if i.number == "5"
            else i
            for i in regional.items
        ]
        regional = regional.model_copy(update={"items": items})
    else:
        regional = regional.model_copy(update={"applies_to": ALL})
    district = roadmap(
        [("1", "Семинар района", "До 01.03.2023", ["director"])], key=DISTRICT, region=REGION
    ).model_copy(update={"title": "Районная карта", "milestones": [], "applies_to": ALL})
    async with services.sessions() as session:
        await save_roadmap(session, regional)
        await save_roadmap(session, district, municipality=MUN_B)
        await session.flush()
        items = {}
        for row in await session.scalars(select(Roadmap)):
            for item in await rdb.items_of(session, [row.id]):
                items[(row.key, item.number)] = item
        a1 = respondent_key(schools["A1"], None)
        await rdb.mark_done(
            session, items[(REGIONAL, "1")], a1, date(2023, 2, 15), None, evidence_name=INJECTION
        )
        await rdb.mark_done(
            session,
            items[(REGIONAL, "3")],
            a1,
            date(2023, 5, 31),
            None,
            evidence_name="Справка.pdf",
            note="мониторинг проведён",
        )
        b1 = respondent_key(schools["B1"], None)
        await rdb.mark_done(
            session, items[(DISTRICT, "1")], b1, date(2023, 3, 1), None, note="Протокол №2"
        )
        await session.commit()


async def export(
    tmp_path: Path,
    factory,
    scope: ExportScope,
    *,
    roadmaps: bool = True,
    shnor_only: bool = False,
    **options,
) -> Path:
    region = built_region(factory)
    tmp_path.mkdir(parents=True, exist_ok=True)
    services = await region.open(tmp_path)
    try:
        if roadmaps:
            await _load_roadmaps(services, region.schools, shnor_only)
        out = tmp_path / "out.xlsx"
        await run_export(
            services.sessions,
            services.forms,
            scope,
            out,
            timezone=ZoneInfo("Europe/Moscow"),
            today=TODAY,
            **options,
        )
        if roadmaps:  # the sheet agrees with the chat's progress figures
            async with services.sessions() as session:
                row = await session.scalar(select(Roadmap).where(Roadmap.key == REGIONAL))
                progress = await rdb.school_progress(session, row, TODAY)
            a1 = progress[region.schools["A1"]]
            assert (a1.done, a1.total, a1.overdue) == (2, 5, 1)
        return out
    finally:
        await services.close()


def rows_by_id(ws) -> tuple[list[str], list[str], list[dict]]:
    rows = list(ws.iter_rows(values_only=True))
    ids = list(rows[0])
    return ids, list(rows[1]), [dict(zip(ids, row, strict=False)) for row in rows[2:]]


def by_school(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["municipality"], r["school"]): r for r in rows}


async def test_sheet_header_states_evidence_and_completion(tmp_path, tmp_path_factory) -> None:
    out = await export(tmp_path, tmp_path_factory, ExportScope(), writer_process=False)
    wb = load_workbook(out)
    assert wb.sheetnames[-1] == SHEET_ROADMAP
    ws = wb[SHEET_ROADMAP]
    assert ws.row_dimensions[1].hidden and ws.freeze_panes == "D3"
    assert ws.auto_filter.ref.startswith("A2:")
    ids, headers, rows = rows_by_id(ws)
    header = dict(zip(ids, headers, strict=True))
    assert ids[:3] == ["municipality", "school", "school_code"]
    assert header["school"] == "Наименование ОО"
    assert header[f"{REGIONAL}.1"].endswith("п. 1. Назначить ответственных (До 15.02.2023)")
    assert header[f"{REGIONAL}.1__evidence"].endswith("п. 1: подтверждение")
    assert "Исполнение дорожной карты, %" in header[f"{REGIONAL}__percent"]
    assert "к 30.06.2023" in header[f"{REGIONAL}__milestone"]
    assert f"{REGIONAL}.4" not in ids  # a regional item is no school's
    assert f"{DISTRICT}__milestone" not in ids  # no milestones in that roadmap

    schools = by_school(rows)
    a1 = schools[(MUN_A, "Школа №1")]
    assert a1[f"{REGIONAL}.1"] == "выполнено"
    assert a1[f"{REGIONAL}.1__evidence"] == INJECTION
    assert a1[f"{REGIONAL}.2"] == "просрочено" and a1[f"{REGIONAL}.2__evidence"] is None
    assert a1[f"{REGIONAL}.3"] == "в срок до 30.09"  # May reported, September to come
    assert a1[f"{REGIONAL}.3__evidence"] == "31.05: Справка.pdf — мониторинг проведён"
    assert a1[f"{REGIONAL}.5"] == "в срок до 01.12"
    assert a1[f"{REGIONAL}__percent"] == 0.4  # 2 of 5 occurrences, as progress_of counts
    assert (a1[f"{REGIONAL}__done"], a1[f"{REGIONAL}__total"]) == (2, 5)
    assert a1[f"{REGIONAL}__overdue"] == 1
    assert a1[f"{REGIONAL}__milestone"] == "да"  # 40% ≥ 30% by 30.06
    # the district roadmap covers only Борисовский район: empty for Алексеевский schools
    assert a1[f"{DISTRICT}.1"] is None and a1[f"{DISTRICT}__percent"] is None

    a2 = schools[(MUN_A, "Школа №2")]
    assert [a2[f"{REGIONAL}.{n}"] for n in "1235"] == [
        "просрочено",
        "просрочено",
        "просрочено",
        "в срок до 01.12",
    ]
    assert a2[f"{REGIONAL}__percent"] == 0 and a2[f"{REGIONAL}__overdue"] == 3
    assert a2[f"{REGIONAL}__milestone"] == "нет"

    b1 = schools[(MUN_B, "Школа №1")]
    assert b1[f"{DISTRICT}.1"] == "выполнено"
    assert b1[f"{DISTRICT}.1__evidence"] == "Протокол №2"
    assert b1[f"{DISTRICT}__percent"] == 1
    assert b1[f"{REGIONAL}.1"] == "просрочено"  # the regional roadmap covers B1 too

    # every school of the region, ordered by municipality then name, and the total row last
    assert [(r["municipality"], r["school_code"]) for r in rows] == [
        (MUN_A, "A3"),  # «=Школа №3» sorts first
        (MUN_A, "A1"),
        (MUN_A, "A2"),
        (MUN_A, "A4"),
        (MUN_B, "B1"),
        ("Итого", None),
    ]
    total = rows[-1]
    assert total["school"] == "школ: 5"
    assert total[f"{REGIONAL}__done"] == 2 and total[f"{REGIONAL}__total"] == 25
    assert total[f"{REGIONAL}.1"] == "выполнено в 1 из 5"
    assert total[f"{DISTRICT}.1"] == "выполнено в 1 из 1"

    # formats: the percent column, text guarded against formulas
    a1_row = 4
    percent = ws.cell(row=a1_row, column=ids.index(f"{REGIONAL}__percent") + 1)
    assert percent.number_format == PERCENT_FORMAT and percent.value == 0.4
    evidence = ws.cell(row=a1_row, column=ids.index(f"{REGIONAL}.1__evidence") + 1)
    assert evidence.data_type == "s" and evidence.value == INJECTION
    risky_name = ws.cell(row=3, column=2)  # «=Школа №3»
    assert risky_name.value == "=Школа №3" and risky_name.data_type == "s"


async def test_municipal_coordinator_sees_only_their_schools(tmp_path, tmp_path_factory) -> None:
    region = built_region(tmp_path_factory)
    scope = ExportScope(municipality_id=region.municipalities[MUN_A])
    out = await export(tmp_path, tmp_path_factory, scope, writer_process=True)
    ids, _, rows = rows_by_id(load_workbook(out)[SHEET_ROADMAP])
    assert {r["municipality"] for r in rows} == {MUN_A, "Итого"}
    assert len(rows) == 5 and rows[-1]["school"] == "школ: 4"
    assert not any(i.startswith(DISTRICT) for i in ids)  # Борисовский's own roadmap
    a1 = by_school(rows)[(MUN_A, "Школа №1")]
    assert a1[f"{REGIONAL}.1__evidence"] == INJECTION and a1[f"{REGIONAL}__percent"] == 0.4

    other = ExportScope(municipality_id=region.municipalities[MUN_B])
    out = await export(tmp_path / "b", tmp_path_factory, other, writer_process=False)
    ids, _, rows = rows_by_id(load_workbook(out)[SHEET_ROADMAP])
    assert [r["school_code"] for r in rows] == ["B1", None]
    assert f"{DISTRICT}.1" in ids


async def test_sheet_honours_applies_to(tmp_path, tmp_path_factory) -> None:
    """A ШНОР/ШНСУ roadmap: only A1 (ШНОР) and A2 (ШНСУ) get its columns, B1 (plain) keeps
    the district roadmap's; item 5 is for the risk zone (A1) only."""
    out = await export(
        tmp_path, tmp_path_factory, ExportScope(), shnor_only=True, writer_process=False
    )
    _ids, _, rows = rows_by_id(load_workbook(out)[SHEET_ROADMAP])
    assert [r["school_code"] for r in rows] == ["A1", "A2", "B1", None]
    schools = by_school(rows)
    a1, a2 = schools[(MUN_A, "Школа №1")], schools[(MUN_A, "Школа №2")]
    b1 = schools[(MUN_B, "Школа №1")]
    assert a1[f"{REGIONAL}.5"] == "в срок до 01.12" and a1[f"{REGIONAL}__total"] == 5
    assert a2[f"{REGIONAL}.5"] is None and a2[f"{REGIONAL}__total"] == 4
    assert b1[f"{REGIONAL}.1"] is None and b1[f"{REGIONAL}__percent"] is None
    assert b1[f"{DISTRICT}.1"] == "выполнено"
    total = rows[-1]
    assert total[f"{REGIONAL}.5"] == "выполнено в 0 из 1"
    assert total[f"{REGIONAL}.1"] == "выполнено в 1 из 2"


async def test_no_roadmap_no_sheet(tmp_path, tmp_path_factory) -> None:
    out = await export(tmp_path, tmp_path_factory, ExportScope(), roadmaps=False)
    assert SHEET_ROADMAP not in load_workbook(out).sheetnames


def test_item_state_rules() -> None:
    days = (date(2023, 5, 31), date(2023, 9, 30))
    assert item_state(days, set(days), TODAY) == "выполнено"
    assert item_state(days, {days[0]}, TODAY) == "в срок до 30.09"
    assert item_state(days, {days[1]}, TODAY) == "просрочено"
    assert item_state(days, set(), date(2023, 5, 31)) == "в срок до 31.05"  # the day itself
    assert item_state(days, set(), date(2023, 6, 1)) == "просрочено"
