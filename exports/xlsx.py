"""Streaming xlsx writing from plain rows, in this thread or in a separate writer process.

Rows are lists of plain values (str, int, float, date, datetime, None); a column may declare a
number format, applied to its non-text values. :class:`Styled` overrides the format of a single
cell. Every text value beginning with ``=``, ``+``, ``-``, ``@``, tab or CR is written as a
string cell, never a formula (:mod:`exports.safe`).

:class:`Book` writes with openpyxl in write-only mode. :class:`ProcessBook` has the same
interface and forwards batches of rows over a pipe to a :class:`Book` in a child process: the
serialisation (most of an export's time) then runs in parallel with reading the database and
computing the indicators, instead of taking turns with them under the GIL.

Shared layout: row 1 holds the column keys and is hidden; row 2 is the header (bold, wrapped);
both rows and the first ``frozen_columns`` columns are frozen; the autofilter covers the header
and the data.

This module imports only openpyxl, :mod:`exports.safe` and :mod:`exports.specs`, so the writer
process starts fast.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import resource
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from exports.safe import FORMULA_TRIGGERS, text_cell
from exports.specs import ChartSpec, ColumnSpec, SheetSpec, Styled

__all__ = ["Book", "ChartSpec", "ColumnSpec", "ProcessBook", "SheetSpec", "Styled", "WriterError"]

HEADER_FONT = Font(bold=True)
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
HEADER_ALIGNMENT = Alignment(wrap_text=True, vertical="top")
BATCH_ROWS = 256
OUTBOX_BATCHES = 24  # at most ~8 MB of rows waiting for the writer process
JOIN_TIMEOUT = 10.0


class WriterError(RuntimeError):
    """The writer process failed; the message carries its traceback."""


class _Sheet:
    def __init__(self, workbook: Workbook, spec: SheetSpec) -> None:
        ws = workbook.create_sheet(spec.title)
        self.ws = ws
        self.spec = spec
        self.formats = [
            (index, c.number_format) for index, c in enumerate(spec.columns) if c.number_format
        ]
        for index, column in enumerate(spec.columns, start=1):
            ws.column_dimensions[get_column_letter(index)].width = column.width
        ws.row_dimensions[1].hidden = True
        lines = max((len(c.header) / max(c.width - 1, 1) for c in spec.columns), default=1)
        ws.row_dimensions[2].height = min(15 * (int(lines) + 1), 200)
        ws.freeze_panes = f"{get_column_letter(spec.frozen_columns + 1)}3"
        ws.append([self._text(c.key) for c in spec.columns])
        ws.append([self._header(c.header) for c in spec.columns])
        self.rows = 2

    def _text(self, value: str) -> WriteOnlyCell:
        cell = WriteOnlyCell(self.ws, value=value)
        cell.data_type = "s"  # a header is never a formula, whatever a form says
        return cell

    def _header(self, value: str) -> WriteOnlyCell:
        cell = self._text(value)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = HEADER_ALIGNMENT
        return cell

    def append(self, row: list[Any]) -> None:
        ws = self.ws
        for index, number_format in self.formats:
            value = row[index]
            if value is not None and value.__class__ is not str and value.__class__ is not Styled:
                cell = WriteOnlyCell(ws, value=value)
                cell.number_format = number_format
                row[index] = cell
        for index, value in enumerate(row):
            kind = value.__class__
            if kind is str:
                if value.startswith(FORMULA_TRIGGERS):  # is_risky(), without a call per cell
                    row[index] = text_cell(ws, value)
            elif kind is Styled:
                cell = WriteOnlyCell(ws, value=value.value)
                if isinstance(value.value, str):
                    cell.data_type = "s"
                elif value.number_format:
                    cell.number_format = value.number_format
                row[index] = cell
        ws.append(row)
        self.rows += 1

    def finish(self) -> None:
        last = get_column_letter(max(len(self.spec.columns), 1))
        self.ws.auto_filter.ref = f"A2:{last}{self.rows}"


class Book:
    """Sheets written in this thread."""

    peak_rss_kb: int | None = None  # only known for a writer process

    def __init__(self, specs: Sequence[SheetSpec]) -> None:
        self.workbook = Workbook(write_only=True)
        self.sheets = [_Sheet(self.workbook, spec) for spec in specs]
        self.charts: list[ChartSpec] = []

    def append(self, sheet: int, row: list[Any]) -> None:
        self.sheets[sheet].append(row)

    def extend(self, sheet: int, rows: list[list[Any]]) -> None:
        target = self.sheets[sheet]
        for row in rows:
            target.append(row)

    def add_chart(self, spec: ChartSpec) -> None:
        self.charts.append(spec)

    def _chart(self, spec: ChartSpec) -> None:
        ws = self.sheets[spec.sheet].ws
        chart = BarChart()
        chart.type = "bar"
        chart.style = 10
        chart.title = spec.title
        chart.y_axis.title = spec.axis_title
        chart.y_axis.number_format = "0%"
        chart.y_axis.scaling.min = 0
        chart.y_axis.scaling.max = 1
        chart.x_axis.scaling.orientation = "maxMin"  # the first row on top
        chart.x_axis.delete = False
        chart.y_axis.delete = False
        last = 2 + spec.rows
        for column in spec.value_columns:
            chart.add_data(
                Reference(ws, min_col=column, min_row=2, max_row=last), titles_from_data=True
            )
        chart.set_categories(Reference(ws, min_col=spec.categories_column, min_row=3, max_row=last))
        chart.width = spec.width
        chart.height = spec.height
        if len(spec.value_columns) == 1:
            chart.legend = None
        ws.add_chart(chart, f"{get_column_letter(len(self.sheets[spec.sheet].spec.columns) + 2)}3")

    def save(self, path: Path) -> None:
        for sheet in self.sheets:
            sheet.finish()
        for spec in self.charts:
            self._chart(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.workbook.save(path)

    def abort(self) -> None:
        """Drop the temporary files of the unsaved sheets."""
        for sheet in self.sheets:
            with contextlib.suppress(Exception):  # already closed
                sheet.ws.close()
            out = getattr(getattr(sheet.ws, "_writer", None), "out", None)
            if isinstance(out, str):
                Path(out).unlink(missing_ok=True)


def peak_rss_kb() -> int:
    """This process's peak resident memory, KiB.

    ``VmHWM`` belongs to the current address space; ``ru_maxrss`` survives ``exec`` on Linux and
    would report the parent's size at the moment the writer process was spawned.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _serve(conn, specs: Sequence[SheetSpec], path: str) -> None:
    """The writer process: rows in, a saved workbook out."""
    try:
        book = Book(specs)
        while True:
            message = conn.recv()
            kind = message[0]
            if kind == "rows":
                book.extend(message[1], message[2])
            elif kind == "chart":
                book.add_chart(message[1])
            elif kind == "save":
                book.save(Path(path))
                conn.send(("ok", peak_rss_kb()))
                return
            else:
                return
    except EOFError:  # the exporter went away: nothing to save
        return
    except BaseException:
        with contextlib.suppress(BrokenPipeError, OSError):
            conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


class ProcessBook:
    """Same interface as :class:`Book`; the rows are written by a child process.

    Batches go through a bounded outbox to a sender thread that feeds the pipe, so producing
    rows never waits for the child to finish reading the previous batch (a pipe holds only
    64 KiB): producing and writing overlap instead of taking turns.
    """

    def __init__(self, specs: Sequence[SheetSpec], path: Path) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, tuple(specs), str(path)), name="xlsx-writer", daemon=True
        )
        self._process.start()
        child.close()
        self._buffers: list[list[list[Any]]] = [[] for _ in specs]
        self._outbox: queue.Queue = queue.Queue(maxsize=OUTBOX_BATCHES)
        self._error: BaseException | None = None
        self._sender = threading.Thread(target=self._pump, name="xlsx-writer-feed", daemon=True)
        self._sender.start()
        self.peak_rss_kb: int | None = None

    def _pump(self) -> None:
        while True:
            message = self._outbox.get()
            if message is None:
                return
            try:
                self._conn.send(message)
            except BaseException as exc:  # the child died: remember, keep draining
                self._error = exc

    def append(self, sheet: int, row: list[Any]) -> None:
        buffer = self._buffers[sheet]
        buffer.append(row)
        if len(buffer) >= BATCH_ROWS:
            self._send(("rows", sheet, buffer))
            self._buffers[sheet] = []

    def extend(self, sheet: int, rows: list[list[Any]]) -> None:
        for row in rows:
            self.append(sheet, row)

    def add_chart(self, spec: ChartSpec) -> None:
        self._send(("chart", spec))

    def _send(self, message: tuple | None) -> None:
        if self._error is not None:
            raise WriterError(self._failure() or "the xlsx writer process stopped") from self._error
        while True:
            try:
                self._outbox.put(message, timeout=1.0)
                return
            except queue.Full:
                if not self._process.is_alive():
                    raise WriterError(
                        self._failure() or "the xlsx writer process stopped"
                    ) from None

    def _failure(self) -> str | None:
        try:
            if self._conn.poll(0.5):
                kind, detail = self._conn.recv()
                if kind == "error":
                    return detail
        except (EOFError, OSError):
            pass
        return None

    def save(self, path: Path) -> None:
        try:
            for sheet, rows in enumerate(self._buffers):
                if rows:
                    self._send(("rows", sheet, rows))
            self._buffers = [[] for _ in self._buffers]
            self._send(("save",))
            self._send(None)
            self._sender.join()
            if self._error is not None:
                raise WriterError(self._failure() or "the xlsx writer process stopped")
            try:
                kind, detail = self._conn.recv()
            except EOFError as exc:
                raise WriterError("the xlsx writer process stopped") from exc
        finally:
            self._close()
        if kind != "ok":
            raise WriterError(detail)
        self.peak_rss_kb = detail

    def abort(self) -> None:
        with contextlib.suppress(queue.Empty):
            while True:  # make room: the child is told to stop, the rest is not needed
                self._outbox.get_nowait()
        self._outbox.put(("abort",))
        self._outbox.put(None)
        self._sender.join(JOIN_TIMEOUT)
        self._close()

    def _close(self) -> None:
        self._conn.close()
        self._process.join(JOIN_TIMEOUT)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()
