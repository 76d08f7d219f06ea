"""The documents archive: Windows-safe unique names, layout, and the answers sheets' paths."""

from __future__ import annotations

import zipfile
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from exports.archive import (
    FILE_LIMIT,
    FOLDER_LIMIT,
    MUNICIPALITY_FOLDER,
    ArchivePlanner,
    safe_name,
    shorten_middle,
)
from exports.data import ExportScope
from exports.service import run_export
from storage.models import Attachment
from tests.export_fixtures import MUN_A, MUN_B, PDF, built_region


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Приказ №5.pdf", "Приказ №5.pdf"),
        ('a<b>:c"d/e\\f|g?h*i.pdf', "a_b__c_d_e_f_g_h_i.pdf"),
        ("tab\there\x01.docx", "tab_here_.docx"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("LPT1.pdf", "_LPT1.pdf"),
        ("Com9 .pdf", "_Com9.pdf"),
        ("report. . .", "report"),
        ("  spaced   name  .pdf ", "spaced name.pdf"),
        ("...", "_"),
        ("", "_"),
    ],
)
def test_safe_name(name: str, expected: str) -> None:
    assert safe_name(name, FILE_LIMIT) == expected


def test_long_names_keep_the_extension_and_the_distinguishing_end() -> None:
    long_file = safe_name("скан " * 40 + ".pdf", FILE_LIMIT)
    assert len(long_file) <= FILE_LIMIT and long_file.endswith(".pdf")
    school = (
        "Муниципальное бюджетное общеобразовательное учреждение "
        "«Средняя общеобразовательная школа №12» с. Ивановка"
    )
    folder = safe_name(school, FOLDER_LIMIT, is_file=False)
    assert len(folder) <= FOLDER_LIMIT
    assert folder.startswith("Муниципальное") and folder.endswith("№12» с. Ивановка")
    assert shorten_middle("abc", 10) == "abc"


def test_planner_makes_names_unique_per_folder_case_insensitively() -> None:
    planner = ArchivePlanner()
    paths = [
        planner.path(1, "Район", 10, "Школа", "q", "scan.pdf"),
        planner.path(1, "Район", 10, "Школа", "q", "SCAN.pdf"),
        planner.path(1, "Район", 10, "Школа", "q", "scan.pdf"),
        planner.path(1, "Район", 11, "Школа?", "q", "scan.pdf"),  # sanitises to «Школа_»
        planner.path(1, "Район", 12, "школа", "q", "scan.pdf"),  # same folder name, other case
        planner.path(1, "Район", None, None, "q", "scan.pdf"),
        planner.path(2, "Район", 13, "Школа", "q", "scan.pdf"),  # another «Район»
    ]
    assert paths == [
        "Район/Школа/q_scan.pdf",
        "Район/Школа/q_SCAN (2).pdf",
        "Район/Школа/q_scan (3).pdf",
        "Район/Школа_/q_scan.pdf",
        "Район/школа (2)/q_scan.pdf",
        f"Район/{MUNICIPALITY_FOLDER}/q_scan.pdf",
        "Район (2)/Школа/q_scan.pdf",
    ]
    assert len({p.casefold() for p in paths}) == len(paths)


async def test_archive_layout_matches_the_answers_sheet(tmp_path, tmp_path_factory) -> None:
    region = built_region(tmp_path_factory)
    services = await region.open(tmp_path)
    try:
        async with services.sessions() as session:  # one document lost from the disk
            lost = await session.scalar(
                select(Attachment).where(Attachment.question_id == "iup").limit(1)
            )
            lost.storage_path = "00/00/missing.pdf"
            await session.commit()
        workbook, archive = tmp_path / "out.xlsx", tmp_path / "docs.zip"
        result = await run_export(
            services.sessions,
            services.forms,
            ExportScope(),
            workbook,
            timezone=ZoneInfo("Europe/Moscow"),
            files=services.files,
            documents=archive,
        )
    finally:
        await services.close()

    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        assert zf.read(f"{MUN_A}/Школа №1/pd_events_pd_events.pdf") == PDF + b"pd_events.pdf"
    assert f"{MUN_A}/Школа №1/risk_internet_договор.pdf" in names
    assert f"{MUN_A}/Школа №1/risk_internet_Договор (2).pdf" in names
    assert f"{MUN_A}/Школа №1/risk_computers_CON.pdf" in names
    assert f"{MUN_B}/Школа №1/failure_prevention_failure_prevention.pdf" in names
    assert f"{MUN_A}/{MUNICIPALITY_FOLDER}/analytical_reference_analytical_reference.pdf" in names
    for name in names:  # Муниципалитет/Школа/<question id>_<original name>
        assert name.count("/") == 2
        assert name.rsplit("/", 1)[1].split("_")[0] in {
            "pd",
            "curator",
            "quality",
            "failure",
            "iup",
            "risk",
            "analytical",
        }
    assert result.summary.archived == len(names) == 10
    assert result.summary.missing_documents == [f"{MUN_A}/Школа №2/iup_iup.pdf"]

    listed = []
    sheets = [ws for ws in load_workbook(workbook) if ws.title.startswith("Ответы — ")]
    assert len(sheets) == 3
    for ws in sheets:
        rows = list(ws.iter_rows(values_only=True))
        ids = rows[0]
        for row in rows[2:]:
            paths = row[ids.index("documents")]
            if paths:
                listed += paths.split("\n")
    assert sorted(p for p in listed if "не найден" not in p) == sorted(names)
    assert f"{MUN_A}/Школа №2/iup_iup.pdf (файл не найден)" in listed
