"""The .xlsx template for the schools list (``import-schools FILE --template``)."""

from __future__ import annotations

from pathlib import Path

# Example rows carry this mark in their name; the importer skips such rows.
EXAMPLE_MARK = "(пример)"

TEMPLATE_HEADERS = (
    "Муниципалитет",
    "Код ОО",
    "Наименование ОО",
    "ШНОР",
    "ШНСУ",
    "Зона риска",
    "Директор",
)
TEMPLATE_EXAMPLES = (
    (
        "Городской округ Пример",
        "39001",
        "МБОУ «Средняя школа № 1» (пример)",
        "да",
        "нет",
        "нет",
        "Иванова Анна Петровна",
    ),
    (
        "Примерный муниципальный район",
        "",
        "МКОУ «Основная школа с. Пример» (пример)",
        "нет",
        "да",
        "да",
        "",
    ),
)
TEMPLATE_HELP = (
    "Как заполнить таблицу школ",
    "",
    "1. Заполняйте только первый лист «Школы»: одна строка — одна школа.",
    "2. Удалите две строки-примера и впишите свои школы "
    f"(строки с пометкой «{EXAMPLE_MARK}» не загружаются).",
    "3. Обязательные столбцы: «Муниципалитет» и «Наименование ОО».",
    "4. «Код ОО» — необязательный, но если указан, он должен быть у каждой школы свой.",
    "5. «ШНОР», «ШНСУ», «Зона риска»: «да» или «нет» (можно «+»/«-», «1»/«0», «х»). "
    "Пустая ячейка — «нет».",
    "6. «Директор» — ФИО, необязательно.",
    "7. Сохраните файл в формате .xlsx.",
)


def write_schools_template(path: Path | str) -> Path:
    """Write an .xlsx template with the headers, two example rows and a help sheet."""
    import openpyxl  # here, not at the top: the importer needs only EXAMPLE_MARK at start
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    path = Path(path)
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Школы"
    ws.append(list(TEMPLATE_HEADERS))
    for example in TEMPLATE_EXAMPLES:
        ws.append(list(example))
    bold = Font(bold=True)
    for idx, title in enumerate(TEMPLATE_HEADERS, start=1):
        cell = ws.cell(row=1, column=idx)
        cell.font = bold
        cell.alignment = Alignment(wrap_text=True, vertical="center")
        width = {"Наименование ОО": 50, "Муниципалитет": 32, "Директор": 32}.get(title, 12)
        ws.column_dimensions[get_column_letter(idx)].width = width
    code_col = get_column_letter(TEMPLATE_HEADERS.index("Код ОО") + 1)
    for row in range(2, 2001):
        ws[f"{code_col}{row}"].number_format = "@"  # keep leading zeros in codes
    ws.freeze_panes = "A2"

    yes_no = DataValidation(type="list", formula1='"да,нет"', allow_blank=True)
    yes_no.error = "Выберите «да» или «нет»."
    yes_no.errorTitle = "Недопустимое значение"
    ws.add_data_validation(yes_no)
    for title in ("ШНОР", "ШНСУ", "Зона риска"):
        col = get_column_letter(TEMPLATE_HEADERS.index(title) + 1)
        yes_no.add(f"{col}2:{col}2000")

    help_ws = wb.create_sheet("Инструкция")
    for line in TEMPLATE_HELP:
        help_ws.append([line])
    help_ws["A1"].font = bold
    help_ws.column_dimensions["A"].width = 110

    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    return path
