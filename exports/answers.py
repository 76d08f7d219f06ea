"""The «Ответы» sheet: one row per respondent and campaign that has a response.

Municipality, school, status, submitted at, one column per question in form order, a
«Пояснение: …» column after every yes/no question that asks for an explanatory note on «нет»,
the number of documents and their paths inside the documents archive (see
:mod:`exports.archive`; the paths are planned whether or not a ZIP is written, so the sheet and
the archive always agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from exports.archive import ArchivePlanner, DocumentArchive
from exports.cells import (
    DATE_FORMAT,
    DATETIME_FORMAT,
    MAX_CELL_TEXT,
    answer_value,
    identity_columns,
    local_naive,
    question_header,
    status_name,
)
from exports.data import MunicipalityInfo, ResponseInfo, SchoolInfo
from exports.indicators import Visibility
from exports.layout import FormLayout
from exports.xlsx import ColumnSpec
from forms.schema import QuestionKind
from storage.models import AttachmentStatus

SHEET_ANSWERS = "Ответы"


class DocumentPaths:
    """Plans each document's path in the archive and adds the file when a ZIP is written."""

    def __init__(self, archive: DocumentArchive | None) -> None:
        self.planner = ArchivePlanner()
        self.archive = archive
        self.documents = 0
        self.archived = 0
        self.missing: list[str] = []

    def cell(
        self, school: SchoolInfo | None, response: ResponseInfo, municipality: MunicipalityInfo
    ) -> str | None:
        if not response.documents:
            return None
        paths: list[str] = []
        for document in response.documents:
            self.documents += 1
            if document.status != AttachmentStatus.STORED or document.storage_path is None:
                paths.append(f"(ещё не загружен) {document.original_name}")
                continue
            path = self.planner.path(
                municipality.id,
                municipality.name,
                school.id if school is not None else None,
                school.name if school is not None else None,
                document.question_id,
                document.original_name,
            )
            if self.archive is not None:
                if self.archive.add(path, document.storage_path):
                    self.archived += 1
                else:
                    self.missing.append(path)
                    path = f"{path} (файл не найден)"
            paths.append(path)
        text = "\n".join(paths)
        return text if len(text) <= MAX_CELL_TEXT else text[:MAX_CELL_TEXT] + "…"


class AnswersSheet:
    """Columns and rows of «Ответы»: every form's questions side by side."""

    def __init__(self, layouts: Mapping[str, FormLayout], zone: ZoneInfo) -> None:
        self.layouts = layouts
        self.zone = zone
        self.offsets: dict[str, int] = {}
        self.tail = 0

    def columns(self) -> list[ColumnSpec]:
        columns = [
            *identity_columns(),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("submitted_at", "Отправлена", 17, DATETIME_FORMAT),
            ColumnSpec("updated_at", "Последнее изменение", 17, DATETIME_FORMAT),
        ]
        ids = [c.question.id for layout in self.layouts.values() for c in layout.questions]
        clashes = {i for i in ids if ids.count(i) > 1}
        for fid, layout in self.layouts.items():
            self.offsets[fid] = len(columns)
            for col in layout.questions:
                q = col.question
                key = f"{fid}.{q.id}" if q.id in clashes else q.id
                narrow = q.kind in (QuestionKind.INTEGER, QuestionKind.YES_NO, QuestionKind.DATE)
                number_format = DATE_FORMAT if q.kind is QuestionKind.DATE else None
                columns.append(
                    ColumnSpec(key, question_header(q), 14 if narrow else 30, number_format)
                )
                if col.note:
                    columns.append(
                        ColumnSpec(f"{key}__note", f"Пояснение: {question_header(q)}", 36)
                    )
        self.tail = len(columns)
        columns += [
            ColumnSpec("documents_count", "Документов", 11),
            ColumnSpec("documents", "Документы (пути в архиве)", 60),
        ]
        return columns

    def row(
        self,
        identity: list[Any],
        layout: FormLayout,
        response: ResponseInfo,
        visibility: Visibility,
        documents: str | None,
    ) -> list[Any]:
        zone = self.zone
        values: list[Any] = [
            *identity,
            status_name(response.status),
            local_naive(response.submitted_at, zone),
            local_naive(response.updated_at, zone),
        ]
        offset = self.offsets[layout.form_id]
        if offset > len(values):
            values.extend([None] * (offset - len(values)))
        answers = response.answers
        for col, visible in layout.visible_columns(visibility):
            state = answers.get(col.slot) if visible else None
            if state is None:
                values.append(None)
                if col.note:
                    values.append(None)
                continue
            values.append(answer_value(col.question, state.value))
            if col.note:
                values.append(state.note or None)
        if self.tail > len(values):
            values.extend([None] * (self.tail - len(values)))
        values.append(len(response.documents))
        values.append(documents)
        return values
