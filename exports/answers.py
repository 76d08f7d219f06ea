"""The answers sheets, one per form («Ответы — Анкета ОО»): a row per respondent and campaign
that has a response, with only that form's questions. A form without any response in the
export's scope gets no sheet.

Columns: municipality, school, status, submitted at, one column per question in form order, a
«Пояснение: …» column after every yes/no question that asks for an explanatory note on «нет»,
the number of documents and their paths inside the documents archive (see
:mod:`exports.archive`; the paths are planned whether or not a ZIP is written, so the sheets and
the archive always agree).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo

from exports.archive import ArchivePlanner, DocumentArchive, question_label
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
from exports.indicators import MemoEngine, Visibility
from exports.layout import FormLayout
from exports.specs import ColumnSpec
from forms.engine import Slot
from forms.schema import QuestionKind
from storage.models import AttachmentStatus

SHEET_ANSWERS = "Ответы"
SHEET_TITLE_LIMIT = 31  # Excel's
SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def answer_sheet_titles(names: Sequence[str], taken: Iterable[str] = ()) -> list[str]:
    """«Ответы — <name>» per form: within Excel's 31 characters, without the characters Excel
    refuses in a sheet name, unique case-insensitively (also against ``taken``)."""
    used = {t.casefold() for t in taken}
    titles: list[str] = []
    for name in names:
        cleaned = " ".join(SHEET_FORBIDDEN.sub(" ", name).split()).strip("'").strip()
        wanted = f"{SHEET_ANSWERS} — {cleaned}" if cleaned else SHEET_ANSWERS
        title = _fit(wanted, "")
        number = 1
        while title.casefold() in used:
            number += 1
            title = _fit(wanted, f" ({number})")
        used.add(title.casefold())
        titles.append(title)
    return titles


def _fit(title: str, suffix: str) -> str:
    room = SHEET_TITLE_LIMIT - len(suffix)
    if len(title) > room:
        title = title[: room - 1].rstrip(" '—") + "…"
    return title + suffix


class DocumentPaths:
    """Plans each document's path in the archive and adds the file when a ZIP is written."""

    def __init__(self, archive: DocumentArchive | None) -> None:
        self.planner = ArchivePlanner()
        self.archive = archive
        self.documents = 0
        self.archived = 0
        self.missing: list[str] = []

    def cell(
        self,
        school: SchoolInfo | None,
        response: ResponseInfo,
        municipality: MunicipalityInfo,
        engine: MemoEngine,
        visibility: Visibility,
    ) -> str | None:
        if not response.documents:
            return None
        labels = document_labels(engine, visibility)
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
                labels.get(Slot(document.question_id, document.row))
                or _hidden_label(engine, document.question_id),
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


def document_labels(engine: MemoEngine, visibility: Visibility) -> dict[Slot, str]:
    """Each visible slot's «1.2.4 вопрос 9 «…»», numbered as the director saw it in the walk
    and on the review screen; computed once per visibility."""
    labels = visibility.derived.get("document_labels")
    if labels is None:
        labels = {}
        for index, slot in enumerate(visibility.slots, start=1):
            q = engine.question(slot.question_id)
            section = engine.section_of(slot.question_id)
            labels[slot] = question_label(section.shown_number, index, question_header(q))
        visibility.derived["document_labels"] = labels
    return labels


def _hidden_label(engine: MemoEngine, question_id: str) -> str:
    """A document of a question this respondent is no longer shown: no number to give."""
    try:
        q = engine.question(question_id)
        number = engine.section_of(question_id).shown_number
    except KeyError:  # not in this form version
        return question_id
    return question_label(number, None, question_header(q))


class AnswersSheet:
    """Columns and rows of one form's answers sheet (all the form's versions)."""

    def __init__(self, layout: FormLayout, title: str, zone: ZoneInfo) -> None:
        self.layout = layout
        self.title = title
        self.zone = zone

    def columns(self) -> list[ColumnSpec]:
        columns = [
            *identity_columns(),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("submitted_at", "Отправлена", 17, DATETIME_FORMAT),
            ColumnSpec("updated_at", "Последнее изменение", 17, DATETIME_FORMAT),
        ]
        for col in self.layout.questions:
            q = col.question
            narrow = q.kind in (QuestionKind.INTEGER, QuestionKind.YES_NO, QuestionKind.DATE)
            number_format = DATE_FORMAT if q.kind is QuestionKind.DATE else None
            columns.append(
                ColumnSpec(q.id, question_header(q), 14 if narrow else 30, number_format)
            )
            if col.note:
                columns.append(ColumnSpec(f"{q.id}__note", f"Пояснение: {question_header(q)}", 36))
        columns += [
            ColumnSpec("documents_count", "Документов", 11),
            ColumnSpec("documents", "Документы (пути в архиве)", 60),
        ]
        return columns

    def row(
        self,
        identity: list[Any],
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
        answers = response.answers
        for col, visible in self.layout.visible_columns(visibility):
            state = answers.get(col.slot) if visible else None
            if state is None:
                values.append(None)
                if col.note:
                    values.append(None)
                continue
            values.append(answer_value(col.question, state.value))
            if col.note:
                values.append(state.note or None)
        values.append(len(response.documents))
        values.append(documents)
        return values
