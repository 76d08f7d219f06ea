"""Per-respondent sheets besides the answers: «Мероприятия», «Показатели», «Прогресс».

* «Мероприятия» — repeat-group rows (the events table of ``program_report``), one per event.
* «Показатели» — per school, each indicator of the form: a percent, 1/0 or a count, or
  «нет данных» / «не применяется»; «В расчёте» says whether the response enters the figures.
  Beside each indicator backed by a document, its confirmed value, «…, подтверждено»
  (:mod:`exports.confirmed`: only answers the coordinator accepted count).
* «Прогресс» — per respondent and campaign: не начата / черновик N из M / отправлена /
  возвращена, last activity, whether a director (coordinator) account is linked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from exports.cells import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    NO,
    NOT_STARTED,
    PERCENT_FORMAT,
    YES,
    answer_value,
    identity_columns,
    local_naive,
    number,
    question_header,
    status_name,
)
from exports.confirmed import CONFIRMED_LABEL, confirmed_key
from exports.data import ResponseInfo, SchoolInfo, TargetRow
from exports.indicators import NO_DATA, NOT_APPLICABLE, MemoEngine, Visibility
from exports.layout import FormLayout
from exports.specs import ColumnSpec
from forms.engine import IndicatorValue, Slot
from forms.schema import QuestionKind

SHEET_EVENTS = "Мероприятия"
SHEET_INDICATORS = "Показатели"
SHEET_PROGRESS = "Прогресс"


class EventsSheet:
    def __init__(self, layouts: Mapping[str, FormLayout]) -> None:
        self.layouts = layouts
        self.offsets: dict[str, int] = {}

    def columns(self) -> list[ColumnSpec]:
        columns = [
            *identity_columns(),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("group", "Раздел", 18),
            ColumnSpec("row", "№ п/п", 7),
        ]
        for fid, layout in self.layouts.items():
            self.offsets[fid] = len(columns)
            for _, q in layout.group_questions:
                number_format = DATE_FORMAT if q.kind is QuestionKind.DATE else None
                columns.append(ColumnSpec(q.id, question_header(q), 36, number_format))
        return columns

    def rows(
        self,
        identity: list[Any],
        layout: FormLayout,
        engine: MemoEngine,
        response: ResponseInfo,
        visibility: Visibility,
    ) -> list[list[Any]]:
        answers = response.answers
        offset = self.offsets[layout.form_id]
        status = status_name(response.status)
        out: list[list[Any]] = []
        for group in layout.groups.values():
            for index in range(engine.row_count(group.id, answers)):
                cells: list[Any] = []
                for g, q in layout.group_questions:
                    if g.id != group.id:
                        cells.append(None)
                        continue
                    slot = Slot(q.id, index)
                    state = answers.get(slot) if slot in visibility.set else None
                    cells.append(None if state is None else answer_value(q, state.value))
                if all(c is None for c in cells):
                    continue
                values = [*identity, status, group.title, index + 1]
                values.extend([None] * (offset - len(values)))
                out.append(values + cells)
        return out


class IndicatorsSheet:
    def __init__(self, layouts: Mapping[str, FormLayout]) -> None:
        self.layouts = layouts
        self.offsets: dict[str, int] = {}

    def columns(self) -> list[ColumnSpec]:
        columns = [
            *identity_columns(),
            ColumnSpec("shnor", "ШНОР", 7),
            ColumnSpec("shnsu", "ШНСУ", 7),
            ColumnSpec("risk_zone", "Зона риска", 8),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("counted", "В расчёте", 9),
        ]
        for fid, layout in self.layouts.items():
            if layout.respondent != "school" or not layout.indicators:
                continue
            self.offsets[fid] = len(columns)
            for ind_id, title, kind in layout.indicators:
                if kind == "share":
                    columns.append(ColumnSpec(ind_id, f"{title}, %", 22, PERCENT_FORMAT))
                else:
                    unit = "" if kind == "count" else ", балл"
                    columns.append(ColumnSpec(ind_id, f"{title}{unit}", 22))
                if ind_id in layout.confirmed:
                    columns.append(
                        ColumnSpec(confirmed_key(ind_id), f"{title}, {CONFIRMED_LABEL}, балл", 16)
                    )
        return columns

    def row(
        self,
        identity: list[Any],
        layout: FormLayout,
        school: SchoolInfo,
        status: str | None,
        counted: bool,
        values: dict[str, IndicatorValue] | None,
        confirmed: dict[str, IndicatorValue] | None = None,
    ) -> list[Any]:
        """``confirmed``: the values from the accepted answers only (None: as declared)."""
        row: list[Any] = [
            *identity,
            YES if school.is_shnor else NO,
            YES if school.is_shnsu else NO,
            YES if school.is_risk_zone else NO,
            status_name(status) if status else NOT_STARTED,
            YES if counted else NO,
        ]
        row.extend([None] * (self.offsets[layout.form_id] - len(row)))
        for ind_id, _, kind in layout.indicators:
            value = values.get(ind_id) if values is not None else None
            row.append(_indicator_cell(value, kind))
            if ind_id in layout.confirmed:
                source = confirmed if confirmed is not None else values
                row.append(_indicator_cell(source.get(ind_id) if source else None, kind))
        return row


def _indicator_cell(value: IndicatorValue | None, kind: str) -> Any:
    if value is None or (value.applicable and value.value is None):
        return NO_DATA
    if not value.applicable:
        return NOT_APPLICABLE
    if kind == "share":
        return value.value / 100.0
    return number(value.value)


class ProgressSheet:
    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone

    @staticmethod
    def columns() -> list[ColumnSpec]:
        return [
            *identity_columns(),
            ColumnSpec("state", "Состояние", 20),
            ColumnSpec("answered", "Заполнено", 10),
            ColumnSpec("questions", "Всего вопросов", 10),
            ColumnSpec("last_activity", "Последняя активность", 17, DATETIME_FORMAT),
            ColumnSpec("account_linked", "Директор (координатор) подключён к боту", 16),
        ]

    def row(
        self,
        identity: list[Any],
        engine: MemoEngine,
        row: TargetRow,
        response: ResponseInfo | None,
        visibility: Visibility,
    ) -> list[Any]:
        total = visibility.questions
        if response is None:
            state, done, last = NOT_STARTED, 0, None
        else:
            answers = response.answers
            done = sum(
                1
                for s in visibility.slots
                if not engine.is_group_control(s.question_id) and engine.is_complete(s, answers)
            )
            if response.status == "draft":
                state = f"черновик {done} из {total}"
            else:
                state = status_name(response.status)
            last = response.updated_at or response.submitted_at or response.started_at
        return [
            *identity,
            state,
            done,
            total,
            local_naive(last, self.zone),
            YES if row.account_linked else NO,
        ]
