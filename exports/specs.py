"""What a sheet looks like, as plain data: columns, sheets, charts and a styled cell.

Kept apart from :mod:`exports.xlsx` so that the sheet builders (and the bot, which imports
them at start) do not load openpyxl until a workbook is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    key: str  # machine-readable id, hidden row 1
    header: str  # Russian, row 2
    width: float = 14
    number_format: str | None = None  # for the column's numbers and dates


@dataclass(frozen=True, slots=True)
class SheetSpec:
    title: str
    columns: tuple[ColumnSpec, ...]
    frozen_columns: int = 0


@dataclass(frozen=True, slots=True)
class ChartSpec:
    """A horizontal bar chart over a sheet's rows 3.. (categories and value columns 1-based)."""

    sheet: int
    title: str
    axis_title: str
    categories_column: int
    value_columns: tuple[int, ...]
    rows: int
    width: float = 24
    height: float = 8


class Styled:
    """One cell with its own number format (``None``: General), whatever its column says."""

    __slots__ = ("number_format", "value")

    def __init__(self, value: Any, number_format: str | None) -> None:
        self.value = value
        self.number_format = number_format

    def __reduce__(self):
        return Styled, (self.value, self.number_format)
