"""Cell values that Excel must never run as formulas (OWASP formula injection)."""

from __future__ import annotations

from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def is_risky(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def text_cell(sheet: WriteOnlyWorksheet, value: Any) -> Any:
    """The value itself, or for a formula-like string a cell forced to the string type."""
    if not is_risky(value):
        return value
    cell = WriteOnlyCell(sheet, value=value)
    cell.data_type = "s"
    return cell
