"""Roadmap import from .xlsx and the bundled YAML roadmaps."""

from __future__ import annotations

import datetime as dt
import zipfile
from pathlib import Path

import openpyxl
import pytest

from roadmaps import importer, xlsx_table
from roadmaps.deadlines import Period
from roadmaps.importer import (
    RoadmapFormatError,
    bundled_results,
    import_xlsx,
    import_yaml,
    import_yaml_all,
    load_bundled,
)
from roadmaps.model import classify_executor, derive_level, split_executors

CAL23 = Period.calendar_year(2023)
AC22 = Period.academic_year(2022)
DATA = Path(importer.__file__).parent / "data"

KALININGRAD_HEADER = [
    "№ пп",
    "Описание действия",
    "Сроки реализации",
    "Исполнители",
    "Региональный показатель реализации",
    "Информационное сопровождение проекта",
]


def _xlsx(path: Path, rows: list[list], merges: tuple[str, ...] = ()) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Дорожная карта"
    for row in rows:
        ws.append(row)
    for rng in merges:
        ws.merge_cells(rng)
    wb.save(path)
    return path


def _import(path: Path, period: Period = CAL23, level: str = "region"):
    return import_xlsx(path, roadmap_id="t", title="Тест", period=period, level=level)


# ------------------------------------------------------------------ xlsx


def test_kaliningrad_like_table(tmp_path):
    path = _xlsx(
        tmp_path / "kal.xlsx",
        [
            ["Приложение к приказу Министерства образования Калининградской области"],
            ["План-график «дорожная карта» по оказанию адресной методической помощи"],
            [],
            KALININGRAD_HEADER,
            [1, 2, 3, 4, 5, 6],  # column numbers under the header
            ["Организационные мероприятия по сопровождению общеобразовательных организаций"],
            [
                "1.",
                "Назначение ответственных лиц",
                "До 15.02.2023",
                "Руководители школ\nМОУО\nКОИРО",
                "100% от количества школ участниц",
                "Приказы о назначении ответственных",
            ],
            ["2.", "Входной мониторинг", "01.02-15.05.2023", "Руководители школ", "100%", None],
            KALININGRAD_HEADER,  # repeated on the next printed page
            ["Аналитическая деятельность", None, None, None, None, None],
            [
                "14.",
                "Проведение анализа результатов",
                "До 01.08.2023",
                "Региональный координатор, Муниципальные координаторы",
                "100% МОУО и ОО",
                "Аналитическая справка",
            ],
            ["23.", "Единый методический день", "Август", "Муниципальные координаторы"],
            ["24.", "Дата ячейкой", dt.datetime(2023, 6, 30), "Руководители школ"],
        ],
        merges=("A6:F6", "A10:F10"),
    )
    res = _import(path)
    assert res.ok, res.problems
    assert res.problems == []
    items = res.roadmap.items
    assert [it.number for it in items] == ["1.", "2.", "14.", "23.", "24."]
    assert [it.row for it in items] == [7, 8, 11, 12, 13]
    first = items[0]
    assert (
        first.section
        == "Организационные мероприятия по сопровождению общеобразовательных организаций"
    )
    assert first.executors == ["Руководители школ", "МОУО", "КОИРО"]
    assert first.executor_roles == ["director", "municipal", "institution"]
    assert first.level == "region"
    assert first.indicator == "100% от количества школ участниц"
    assert first.evidence == "Приказы о назначении ответственных"
    assert first.deadline is not None and first.deadline.end == dt.date(2023, 2, 15)
    assert items[1].level == "school"
    assert items[1].evidence is None
    assert items[2].section == "Аналитическая деятельность"
    assert items[2].executor_roles == ["municipal", "regional"]
    assert items[3].deadline.kind == "month" and items[3].level == "municipality"
    assert items[4].deadline_text == "30.06.2023"
    assert items[4].deadline.end == dt.date(2023, 6, 30)


@pytest.mark.parametrize(
    "header",
    [
        ["№", "Мероприятие", "Сроки", "Ответственный"],
        ["№ п/п", "Наименование мероприятия", "Сроки исполнения", "Ответственные исполнители"],
        ["  № П/П ", "СОДЕРЖАНИЕ", "Дата исполнения", "исполнители"],
        [
            "№",
            "Мероприятие (содержание деятельности)",
            "Сроки исполнения",
            "Ответственный исполнитель",
        ],
        ["№", "Описание действия", "Срок", "Ответственные"],
        ["№ п/п", "Наименование мероприятия", "Сроки\nреализации", "Исполнители"],
    ],
)
def test_header_variants(tmp_path, header):
    path = _xlsx(
        tmp_path / "v.xlsx",
        [["Дорожная карта"], header, ["1", "Семинар", "Март 2023", "Отдел образования"]],
    )
    res = _import(path)
    assert res.ok, res.problems
    (item,) = res.roadmap.items
    assert (item.number, item.action, item.deadline_text) == ("1", "Семинар", "Март 2023")
    assert item.deadline.kind == "month"
    assert item.executors == ["Отдел образования"]


def test_other_column_order_and_optional_columns(tmp_path):
    """Seed 000 layout: executors before the date, plus indicator/evidence variants."""
    header = ["№ п/п", "Наименование задачи", "Ответственный исполнитель", "Дата исполнения"]
    header += ["Целевой показатель", "Форма отчетности"]
    path = _xlsx(
        tmp_path / "o.xlsx",
        [
            header,
            [
                "1.",
                "Разработка показателей",
                "- Калининградский областной институт развития образования",
                "До 06 декабря 2021 года",
                "100%",
                "Справка",
            ],
            [
                "2.",
                "Сбор данных",
                "- КОИРО;\n- муниципальные органы управления образованием;\n- школы",
                "До 15 декабря 2021 года",
            ],
        ],
    )
    res = _import(path, period=Period.calendar_year(2021))
    assert res.ok, res.problems
    one, two = res.roadmap.items
    assert one.executors == ["Калининградский областной институт развития образования"]
    assert one.executor_roles == ["institution"]
    assert (one.indicator, one.evidence) == ("100%", "Справка")
    assert two.executors == ["КОИРО", "муниципальные органы управления образованием", "школы"]
    assert two.executor_roles == ["director", "municipal", "institution"]
    assert two.deadline.end == dt.date(2021, 12, 15)


def test_merged_numbered_section_rows_are_joined(tmp_path):
    """Seed 003 layout: "1. …" and "1.1. …" rows in the first two cells."""
    path = _xlsx(
        tmp_path / "c.xlsx",
        [
            ["Дорожная карта по развитию системы оценки качества подготовки обучающихся"],
            [
                "№",
                "Мероприятие (содержание деятельности)",
                "Сроки исполнения",
                "Ответственный исполнитель",
            ],
            ["1.", "Механизмы управления качеством образовательных результатов", None, None],
            ["1.1.", "Система оценки качества подготовки обучающихся", None, None],
            [
                "1.1.1.",
                "Утверждение дорожной карты",
                "Сентябрь 2022",
                "Отдел образования, образовательные организации",
            ],
            [
                "1.1.2.",
                "Обновление пакета документов",
                "Сентябрь – октябрь 2022",
                "Отдел образования",
            ],
            ["1.2. Система работы со школами с низкими результатами обучения"],
            ["1.2.8", "Определение базовых школ", "май", "Отдел образования"],
        ],
        merges=("A7:D7",),
    )
    res = _import(path, period=AC22, level="municipality")
    assert res.ok, res.problems
    a, b, c = res.roadmap.items
    expected = (
        "1. Механизмы управления качеством образовательных результатов / "
        "1.1. Система оценки качества подготовки обучающихся"
    )
    assert a.section == b.section == expected
    assert c.section == "1.2. Система работы со школами с низкими результатами обучения"
    assert a.executor_roles == ["director", "municipal"] and a.level == "municipality"
    assert c.deadline.start == dt.date(2023, 5, 1)  # academic year: May of the second year


def test_bad_deadline_is_reported_with_its_row_and_item_kept(tmp_path):
    path = _xlsx(
        tmp_path / "bad.xlsx",
        [
            ["Заголовок документа"],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1", "Хорошо", "До 15.02.2023", "Руководители ОО"],
            ["2", "Плохо", "когда-нибудь потом", "Руководители ОО"],
            ["3", "Без срока", None, "Руководители ОО"],
            ["4", "Не тот год", "01.03-30.12.2022", "Руководители ОО"],
        ],
    )
    res = _import(path)
    assert not res.ok
    assert len(res.roadmap.items) == 4
    bad = res.roadmap.items[1]
    assert bad.deadline is None
    assert "не удалось распознать" in bad.deadline_error
    errors = res.errors
    assert [(p.row, p.column) for p in errors] == [(4, "Сроки"), (5, "Сроки")]
    assert "когда-нибудь потом" in errors[0].message
    assert res.roadmap.items[2].deadline_error == "срок не указан"
    (warning,) = [p for p in res.problems if p.severity == "warning"]
    assert warning.row == 6 and "не попадает в период" in warning.message
    assert res.roadmap.items[3].deadline is not None  # kept as written


def test_missing_required_column_imports_nothing(tmp_path):
    path = _xlsx(
        tmp_path / "m.xlsx",
        [
            ["№", "Мероприятие", "Ответственный", "Результат"],
            ["1", "Семинар", "Отдел образования", "Справка"],
        ],
    )
    res = _import(path)
    assert res.roadmap.items == []
    (problem,) = res.problems
    assert problem.row == 1 and problem.column == "Сроки"
    assert "«Сроки исполнения»" in problem.message and "«Дата исполнения»" in problem.message


def test_no_header_at_all(tmp_path):
    path = _xlsx(tmp_path / "n.xlsx", [["просто"], ["какой-то", "текст"]])
    res = _import(path)
    assert res.roadmap.items == []
    (problem,) = res.problems
    assert problem.row == 0 and "Не найдена строка заголовков" in problem.message
    assert "«Мероприятие»" in problem.message


def test_header_found_on_second_sheet(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.append(["Титульный лист"])
    ws = wb.create_sheet("План")
    ws.append(["№", "Мероприятие", "Сроки", "Ответственный"])
    ws.append(["1", "Семинар", "май", "Директор"])
    wb.save(tmp_path / "s.xlsx")
    res = _import(tmp_path / "s.xlsx")
    assert res.ok and len(res.roadmap.items) == 1
    assert res.roadmap.items[0].executor_roles == ["director"]


def test_missing_action_row_is_reported(tmp_path):
    path = _xlsx(
        tmp_path / "a.xlsx",
        [["№", "Мероприятие", "Сроки", "Ответственный"], ["1", None, "май", "Директор"]],
    )
    res = _import(path)
    assert res.roadmap.items == []
    assert [(p.row, p.column) for p in res.problems] == [(2, "Мероприятие")]


# ------------------------------------------------------------------ rejected files


def _single_problem(path: Path) -> str:
    res = _import(path)
    assert res.roadmap.items == []
    (problem,) = res.problems
    assert problem.row == 0 and problem.severity == "error"
    return problem.message


def test_not_an_xlsx(tmp_path):
    text = tmp_path / "roadmap.xlsx"
    text.write_text("№;Мероприятие;Сроки\n1;Семинар;май\n", encoding="utf-8")
    assert "не является таблицей Excel" in _single_problem(text)


def test_old_xls_is_rejected_with_advice(tmp_path):
    xls = tmp_path / "old.xls"
    xls.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 512)
    assert ".xlsx" in _single_problem(xls)


def test_other_zip_is_rejected(tmp_path):
    docx = tmp_path / "doc.xlsx"
    with zipfile.ZipFile(docx, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<document/>")
    assert "не является таблицей Excel" in _single_problem(docx)


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "e.xlsx"
    empty.write_bytes(b"")
    assert "пустой" in _single_problem(empty)
    assert "не найден" in _single_problem(tmp_path / "nope.xlsx")


def _fake_xlsx_with(tmp_path: Path, payload_size: int) -> Path:
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"\0" * payload_size)
    return bomb


def test_zip_bomb_compression_ratio(tmp_path):
    bomb = _fake_xlsx_with(tmp_path, 8 * 2**20)  # 8 MB of zeros pack into a few KB
    assert "zip-бомб" in _single_problem(bomb)


def test_zip_bomb_total_size(tmp_path, monkeypatch):
    monkeypatch.setattr(xlsx_table, "MAX_UNCOMPRESSED_BYTES", 2**20)
    bomb = _fake_xlsx_with(tmp_path, 2 * 2**20)
    assert "после распаковки больше" in _single_problem(bomb)


def test_broken_xlsx_content(tmp_path):
    broken = tmp_path / "broken.xlsx"
    with zipfile.ZipFile(broken, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "not xml at all")
    assert "Не удалось прочитать таблицу" in _single_problem(broken)


# ------------------------------------------------------------------ bundled YAML


def test_bundled_roadmaps_load_and_every_deadline_parses():
    results = bundled_results()
    assert sorted(r.roadmap.id for r in results) == [
        "chernozemelsky_2022_2023_oko",
        "chernozemelsky_2022_2023_shnor",
        "kaliningrad_2023",
    ]
    for res in results:
        assert res.ok, res.errors
        for item in res.roadmap.items:
            assert item.deadline is not None, (res.roadmap.id, item.number, item.deadline_error)
            assert item.deadline_error is None
            assert item.action and item.deadline_text and item.executors
            assert item.executor_roles, (res.roadmap.id, item.number, item.executors)
    roadmaps = load_bundled()
    assert len(roadmaps) == 3
    assert sum(len(r.items) for r in roadmaps) == 60


def test_kaliningrad_bundle():
    res = import_yaml(DATA / "kaliningrad_2023.yaml")
    rm = res.roadmap
    assert rm.level == "region" and rm.region == "Калининградская область"
    assert rm.period == CAL23
    assert len(rm.items) == 32
    assert [it.number for it in rm.items] == [str(n) for n in range(1, 33)]
    assert [it.row for it in rm.items] == list(range(1, 33))
    # the year "2022" of items 30-32 is kept as written and reported as a warning
    assert [(p.row, p.severity) for p in res.problems] == [
        (30, "warning"),
        (31, "warning"),
        (32, "warning"),
    ]
    assert rm.item("30").deadline.start == dt.date(2022, 3, 1)
    assert [m.model_dump() for m in rm.milestones] == [
        {
            "date": dt.date(2023, 6, 30),
            "min_percent": 30,
            "max_percent": 40,
            "text": "Исполнение дорожной карты не менее 30-40%",
            "item_number": "10",
        },
        {
            "date": dt.date(2023, 11, 30),
            "min_percent": 80,
            "max_percent": 90,
            "text": "Исполнение дорожной карты не менее 80-90%",
            "item_number": "12",
        },
    ]
    item19 = rm.item("19")
    assert item19.deadline.due_dates(rm.period) == [dt.date(2023, 6, 30), dt.date(2023, 12, 31)]
    assert item19.deadline.note == "по графику"
    assert rm.item("1").executor_roles == ["director", "municipal", "institution"]
    assert rm.item("2").level == "school"
    assert rm.item("6").level == "municipality"  # "Руководители МОУ" is not classified
    assert rm.item("14").section == "Аналитическая деятельность"
    assert rm.item("7").evidence is None and rm.item("7").indicator == "не реже 1 раза в месяц"
    assert {it.section for it in rm.items} == {
        "Организационные мероприятия по сопровождению общеобразовательных организаций",
        "Аналитическая деятельность",
        "Адресная методическая поддержка общеобразовательных организаций",
        "Поддержка и сопровождение обучающихся общеобразовательных организаций",
        "Информационно сопровождение школ с низкими образовательными результатами",
    }
    due_by_july = {it.number for it in rm.items_due(dt.date(2023, 7, 1))}
    assert {"1", "2", "10"} <= due_by_july and "12" not in due_by_july


def test_chernozemelsky_bundle():
    with pytest.raises(RoadmapFormatError, match="2 дорожных карт"):
        import_yaml(DATA / "chernozemelsky_2022_2023.yaml")
    oko, shnor = import_yaml_all(DATA / "chernozemelsky_2022_2023.yaml")
    assert oko.problems == []
    assert len(oko.roadmap.items) == 17 and len(shnor.roadmap.items) == 11
    for rm in (oko.roadmap, shnor.roadmap):
        assert rm.period == AC22 and rm.level == "municipality"
    assert [(p.row, p.severity) for p in shnor.problems] == [(10, "warning"), (11, "warning")]
    s = shnor.roadmap
    assert s.item("1.2.2").deadline.months == (5, 9, 11)
    assert s.item("1.2.3").deadline.note == "постоянно"
    assert s.item("1.2.8").deadline.start == dt.date(2023, 5, 1)
    assert s.item("1.2.9").deadline.kind == "none"
    assert oko.roadmap.item("1.1.3.").level == "school"
    assert "5. Аналитический отчет" in oko.roadmap.item("1.1.6.").action


def test_yaml_with_bad_deadline_reports_row(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(
        """
id: test
title: Тест
level: school
period: {start: 2023-01-01, end: 2023-12-31}
items:
  - {number: "1", action: Первое, deadline: май, executors: Директор}
  - {number: "2", action: Второе, deadline: когда-нибудь, executors: [Учителя]}
""",
        encoding="utf-8",
    )
    res = import_yaml(path)
    assert [(p.row, p.severity) for p in res.problems] == [(2, "error")]
    assert res.roadmap.items[1].deadline is None
    assert res.roadmap.items[0].executors == ["Директор"]


def test_yaml_format_errors(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("id: x\ntitle: y\n", encoding="utf-8")
    with pytest.raises(RoadmapFormatError):
        import_yaml(path)
    path.write_text("id: x\nfoo: 1\n", encoding="utf-8")
    with pytest.raises(RoadmapFormatError, match="неизвестные поля"):
        import_yaml(path)


def test_roadmap_json_round_trip():
    from roadmaps.model import Roadmap

    rm = load_bundled()[-1]
    again = Roadmap.model_validate_json(rm.model_dump_json())
    assert again == rm


# ------------------------------------------------------------------ executor classifier


@pytest.mark.parametrize(
    ("text", "roles"),
    [
        ("Руководители школ", ["director"]),
        ("Руководители ОО", ["director"]),
        ("директора", ["director"]),
        ("Учителя школ", ["director"]),
        ("образовательные организации", ["director"]),
        ("МБОУ «СОШ №1»", ["director"]),
        ("Муниципальное бюджетное общеобразовательное учреждение «Лицей»", ["director"]),
        ("Муниципальные координаторы", ["municipal"]),
        ("МОУО", ["municipal"]),
        ("Отдел образования", ["municipal"]),
        ("МКУ «Центр обеспечения деятельности образовательных организаций»", ["municipal"]),
        ("Региональный координатор", ["regional"]),
        ("Министерство образования Калининградской области", ["regional"]),
        ("КОИРО", ["institution"]),
        ("Калининградский областной институт развития образования", ["institution"]),
        ("Кафедра общего образования", ["institution"]),
        ("ГБУ КО НОО «Центр развития»", ["institution"]),
        ("Детский технопарк «Кванториум»", ["institution"]),
        ("ОЦДиК", ["institution"]),
        ("Руководители школ МОУО КОИРО", ["director", "municipal", "institution"]),
        ("Руководители МОУ", []),
    ],
)
def test_classify_executor(text, roles):
    assert classify_executor(text) == roles


def test_derive_level_and_split():
    assert derive_level(["director", "institution"], "school") == "region"
    assert derive_level(["director", "municipal"], "region") == "municipality"
    assert derive_level(["director"], "region") == "school"
    assert derive_level([], "municipality") == "municipality"
    assert split_executors("Отдел образования, образовательные организации") == [
        "Отдел образования",
        "образовательные организации",
    ]
    assert split_executors("ГБУ «Центр развития, одарённых»;\n- Руководители школ.") == [
        "ГБУ «Центр развития, одарённых»",
        "Руководители школ",
    ]
    assert split_executors(None) == [] and split_executors(" ; ") == []


def test_item_numbers_are_made_unique(tmp_path):
    path = _xlsx(
        tmp_path / "u.xlsx",
        [
            ["№ п/п", "Мероприятие", "Сроки", "Ответственный"],
            ["1", "Первое", "май", "Директор"],
            ["1", "Повтор", "июнь", "Директор"],
            [None, "Без номера", "июль", "Директор"],
        ],
    )
    res = _import(path)
    assert res.ok
    assert [it.number for it in res.roadmap.items] == ["1", "1 (стр. 3)", "стр. 4"]
    assert [(p.row, p.column, p.severity) for p in res.problems] == [
        (3, "№ п/п", "warning"),
        (4, "№ п/п", "warning"),
    ]


def test_without_number_column_items_are_numbered(tmp_path):
    path = _xlsx(
        tmp_path / "nn.xlsx",
        [
            ["Мероприятие", "Сроки", "Ответственный"],
            ["А", "май", "Директор"],
            ["Б", "июнь", "Директор"],
        ],
    )
    res = _import(path)
    assert res.problems == []
    assert [it.number for it in res.roadmap.items] == ["1", "2"]


# ------------------------------------------------------------------ header above the data (item 12)


def test_data_row_with_srok_is_not_taken_for_a_repeated_header(tmp_path):
    path = _xlsx(
        tmp_path / "srok.xlsx",
        [
            ["Дорожная карта на 2024 год"],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1.", "Проведение мероприятия для директоров", "Срок — 20.09.2024", "Директор школы"],
            ["2.", "Совещание", "Срок: до 01.10.2024", "Ответственный: директор школы"],
        ],
    )
    res = _import(path, Period.calendar_year(2024))
    assert [it.number for it in res.roadmap.items] == ["1.", "2."]
    assert res.roadmap.items[0].deadline.end == dt.date(2024, 9, 20)
    assert res.roadmap.items[1].deadline.end == dt.date(2024, 10, 1)
    assert res.ok


def test_data_row_below_an_unknown_header_is_not_the_header(tmp_path):
    path = _xlsx(
        tmp_path / "unknown.xlsx",
        [
            ["Дорожная карта на 2024 год"],
            ["№", "Содержание работы", "Когда", "Кто"],
            ["1.", "Проведение мероприятия", "Срок — 20.09.2024", "Ответственный: директор"],
        ],
    )
    res = _import(path, Period.calendar_year(2024))
    assert res.roadmap.items == []
    (problem,) = res.problems  # the data row is not taken for a header missing nothing
    assert "Не найдена строка заголовков" in problem.message and "«Сроки»" in problem.message


def test_header_without_items_says_why(tmp_path):
    path = _xlsx(
        tmp_path / "empty.xlsx",
        [["Дорожная карта на 2024 год"], ["№", "Мероприятие", "Сроки", "Ответственный"], [1, 2, 3]],
    )
    res = _import(path, Period.calendar_year(2024))
    assert res.roadmap.items == []
    (problem,) = res.errors
    assert problem.row == 2 and "нет ни одной строки с мероприятием" in problem.message


# ------------------------------------------------------------------ period from the title (13)


@pytest.mark.parametrize(
    ("title", "period"),
    [
        ("План-график «дорожная карта» на 2024 год", Period.calendar_year(2024)),
        ("Дорожная карта на 2024/2025 учебный год", Period.academic_year(2024)),
        ("Дорожная карта в 2022-2023 учебном году", Period.academic_year(2022)),
        ("План мероприятий по поддержке школ в 2023 году", Period.calendar_year(2023)),
        ("Дорожная карта на 2024–2025 годы", Period(dt.date(2024, 1, 1), dt.date(2025, 12, 31))),
        (  # seed 003: the report is "в", the roadmap "на"
            "Об утверждении отчета в 2021-2022 учебном году "
            "и дорожных карт на 2022-2023 учебный год",
            Period.academic_year(2022),
        ),
    ],
)
def test_period_and_title_are_read_from_the_title_row(tmp_path, title, period):
    path = _xlsx(
        tmp_path / "t.xlsx",
        [
            ["Приложение к приказу от 13.01.2023 № 28/1"],
            [title],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1.", "Совещание", "ежегодно", "Директор школы"],
        ],
    )
    res = import_xlsx(path, roadmap_id="t", title=None, period=None, level="region")
    assert res.roadmap.period == period
    assert res.roadmap.title == title
    assert res.period_from_title


def test_no_period_in_the_title_asks_for_it(tmp_path):
    path = _xlsx(
        tmp_path / "t.xlsx",
        [
            ["Дорожная карта"],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1.", "А", "май", "О"],
        ],
    )
    with pytest.raises(importer.PeriodNotFound, match="--period"):
        import_xlsx(path, roadmap_id="t", title=None, period=None, level="region")
    two = _xlsx(
        tmp_path / "two.xlsx",
        [
            ["Дорожная карта на 2023 год и на 2024 год"],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1.", "А", "май", "ОО"],
        ],
    )
    with pytest.raises(importer.PeriodNotFound, match="несколько"):
        import_xlsx(two, roadmap_id="t", title=None, period=None, level="region")


def test_once_a_month_from_xlsx_is_due_every_month(tmp_path):
    path = _xlsx(
        tmp_path / "m.xlsx",
        [
            ["Дорожная карта на 2024/2025 учебный год"],
            ["№", "Мероприятие", "Сроки", "Ответственный"],
            ["1.", "Мониторинг посещаемости", "Не реже 1 раза в месяц", "Директор школы"],
        ],
    )
    res = import_xlsx(path, roadmap_id="t", title=None, period=None, level="region")
    (item,) = res.roadmap.items
    due = item.due_dates(res.roadmap.period)
    assert len(due) == 12 and due[0] == dt.date(2024, 9, 30) and due[-1] == dt.date(2025, 8, 31)


def test_labelled_cells_of_a_row_without_number_or_date_are_data(tmp_path):
    path = _xlsx(
        tmp_path / "labels.xlsx",
        [
            ["Дорожная карта на 2024 год"],
            ["Содержание", "Когда", "Кто"],  # a header the importer does not know
            ["Мероприятие: семинар", "Срок — в течение года", "Ответственный: директор"],
        ],
    )
    res = _import(path, Period.calendar_year(2024))
    (problem,) = res.problems
    assert "Не найдена строка заголовков" in problem.message
