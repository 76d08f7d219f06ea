"""The documents archive: Windows-safe unique names, layout, and the answers sheets' paths."""

from __future__ import annotations

import re
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
    question_label,
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
    label = "1.2 вопрос 3 «Документ»"
    paths = [
        planner.path(1, "Район", 10, "Школа", label, "scan.pdf"),
        planner.path(1, "Район", 10, "Школа", label, "SCAN.pdf"),
        planner.path(1, "Район", 10, "Школа", label, "scan.pdf"),
        planner.path(1, "Район", 10, "Школа", label, "scan"),  # no extension
        planner.path(1, "Район", 10, "Школа", label, "scan"),
        planner.path(1, "Район", 11, "Школа?", label, "scan.pdf"),  # sanitises to «Школа_»
        planner.path(1, "Район", 12, "школа", label, "scan.pdf"),  # same folder name, other case
        planner.path(1, "Район", None, None, label, "scan.pdf"),
        planner.path(2, "Район", 13, "Школа", label, "scan.pdf"),  # another «Район»
    ]
    assert paths == [
        "Район/Школа/1.2 вопрос 3 «Документ» scan.pdf",
        "Район/Школа/1.2 вопрос 3 «Документ» SCAN (2).pdf",
        "Район/Школа/1.2 вопрос 3 «Документ» scan (3).pdf",
        "Район/Школа/1.2 вопрос 3 «Документ» scan",
        "Район/Школа/1.2 вопрос 3 «Документ» scan (2)",  # the number goes last, not after «1»
        "Район/Школа_/1.2 вопрос 3 «Документ» scan.pdf",
        "Район/школа (2)/1.2 вопрос 3 «Документ» scan.pdf",
        f"Район/{MUNICIPALITY_FOLDER}/1.2 вопрос 3 «Документ» scan.pdf",
        "Район (2)/Школа/1.2 вопрос 3 «Документ» scan.pdf",
    ]
    assert len({p.casefold() for p in paths}) == len(paths)


def test_document_label_is_the_number_users_see_and_a_short_title() -> None:
    assert question_label("1.2.4", 9, "Участие в мероприятиях по профмастерству") == (
        "1.2.4 вопрос 9 «Участие в мероприятиях по профмастерству»"
    )
    long = question_label("1.2.5", 15, "Риск ликвидирован — " + "очень " * 20 + "длинно")
    assert long.startswith("1.2.5 вопрос 15 «Риск ликвидирован") and long.endswith("…»")
    assert len(long) <= 60
    assert question_label("2", None, "Мероприятия") == "2 «Мероприятия»"  # not shown to the user
    planner = ArchivePlanner()
    name = planner.path(1, "Р", 1, "Ш", long, "скан " * 30 + ".pdf").rsplit("/", 1)[1]
    assert len(name) <= FILE_LIMIT and name.startswith(long) and name.endswith(".pdf")
    odd = planner.path(1, "Р", 1, "Ш", question_label("1", 2, 'План/факт: "итоги"?'), "a.pdf")
    assert odd.rsplit("/", 1)[1] == "1 вопрос 2 «План_факт_ _итоги__» a.pdf"


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

    school = f"{MUN_A}/Школа №1"
    with zipfile.ZipFile(archive) as zf:
        names = zf.namelist()
        pd_events = (
            f"{school}/1.2.4 вопрос 9 «Участие в мероприятиях по профмастерству» pd_events.pdf"
        )
        assert zf.read(pd_events) == PDF + b"pd_events.pdf"
    internet = f"{school}/1.2.5 вопрос 15 «Риск ликвидирован — интернет»"
    assert f"{internet} договор.pdf" in names
    assert f"{internet} Договор (2).pdf" in names
    assert f"{school}/1.2.5 вопрос 16 «Риск ликвидирован — компьютерная техника» CON.pdf" in names
    assert (
        f"{MUN_B}/Школа №1/1.2.5 вопрос 12 «Программа профилактики неуспешности» "
        "failure_prevention.pdf"
    ) in names
    assert any(n.startswith(f"{MUN_A}/{MUNICIPALITY_FOLDER}/1.2.2 вопрос 1 «") for n in names), (
        names
    )
    for name in names:  # Муниципалитет/Школа/<section> вопрос <N> «<title>» <original name>
        assert name.count("/") == 2
        assert re.fullmatch(r"1\.2\.[2-5] вопрос \d+ «[^»]+» .+\.pdf", name.rsplit("/", 1)[1])
        label = name.rsplit("/", 1)[1].split("»")[0]
        assert not re.search(r"[a-z]_[a-z]", label), name  # no internal question ids
    assert result.summary.archived == len(names) == 10
    missing = f"{MUN_A}/Школа №2/1.2.5 вопрос 13 «Разработаны ИУПы» iup.pdf"
    assert result.summary.missing_documents == [missing]

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
    assert f"{missing} (файл не найден)" in listed
