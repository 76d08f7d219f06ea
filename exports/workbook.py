"""The export workbook: from the streamed rows of :mod:`exports.data` to an xlsx.

Sheets (Russian names and headers):

* «Ответы» — one row per respondent and campaign that has a response: municipality, school,
  status, submitted at, one column per question in form order, a «Пояснение: …» column after
  every yes/no question that asks for an explanatory note on «нет», the number of documents and
  their paths inside the documents archive (see :mod:`exports.archive`).
* «Мероприятия» — repeat-group rows (the events table of ``program_report``), one per event.
* «Показатели» — per school, each indicator of the form: a percent, 1/0 or a count, or
  «нет данных» / «не применяется»; «В расчёте» says whether the response enters the figures.
* «Муниципалитеты» — per municipality, the share of ШНОР and ШНСУ from the imported list and
  each municipal indicator as a percent with its numerator, denominator and the number of
  schools without data beside it; the schools that have not sent the form; the region in the
  last row (left out when the export is limited to one municipality).
* «Прогресс» — per respondent and campaign: не начата / черновик N из M / отправлена /
  возвращена, last activity, whether a director (coordinator) account is linked.
* «Готовность» — the submitted share per municipality, with a native Excel bar chart.
* «Дорожная карта» — roadmap items × schools: выполнено / просрочено / в срок до ДД.ММ with
  the evidence, and each school's roadmap completion (see :mod:`exports.roadmap`); left out
  when no roadmap with school items reaches the export's scope.

Every sheet: row 1 is hidden and holds machine-readable column ids (question ids, indicator
ids — ``pandas.read_excel(header=0)`` gets the ids, ``header=1`` the Russian headers); row 2 is
the header; both are frozen with the identifying columns; the autofilter starts at row 2.
Dates are Excel dates in the configured time zone, numbers are numbers, percents are fractions
with a percent format. Text never becomes a formula (see :mod:`exports.xlsx`).

Only :meth:`ExportWriter.save` and the writer process touch openpyxl: everything here builds
plain rows, so big exports can hand the serialisation to a separate process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from exports.archive import ArchivePlanner, DocumentArchive
from exports.data import ExportHeader, MunicipalityInfo, ResponseInfo, SchoolInfo, TargetRow
from exports.indicators import (
    NO_DATA,
    NOT_APPLICABLE,
    SHNOR_SHARE_ID,
    SHNOR_SHARE_TITLE,
    Aggregator,
    Figure,
    MemoEngine,
    Visibility,
    is_counted,
    school_values,
    shnor_share,
)
from exports.roadmap import SHEET_ROADMAP, RoadmapChunk, RoadmapSheet
from exports.xlsx import Book, ChartSpec, ColumnSpec, ProcessBook, SheetSpec, Styled
from forms.engine import IndicatorValue, Slot
from forms.schema import Form, Question, QuestionKind, RepeatGroup
from storage.models import AttachmentStatus

SHEET_ANSWERS = "Ответы"
SHEET_EVENTS = "Мероприятия"
SHEET_INDICATORS = "Показатели"
SHEET_MUNICIPALITIES = "Муниципалитеты"
SHEET_PROGRESS = "Прогресс"
SHEET_COMPLETION = "Готовность"
ANSWERS, EVENTS, INDICATORS, MUNICIPALITIES, PROGRESS, COMPLETION, ROADMAP = range(7)

STATUS_NAMES = {"draft": "черновик", "submitted": "отправлена", "returned": "возвращена"}
NOT_STARTED = "не начата"
REGION_TOTAL = "Итого по региону"
YES, NO = "да", "нет"
DATE_FORMAT = "DD.MM.YYYY"
DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
PERCENT_FORMAT = "0.0%"
MAX_CELL_TEXT = 32_000  # Excel's limit is 32,767 characters
MAX_LISTED_SCHOOLS = 50
PROCESS_WRITER_MIN_ROWS = 1_000  # smaller exports are written in the calling thread


@dataclass
class ExportProgress:
    """Shared with the caller's thread: plain integer updates, read for progress messages."""

    total: int = 0
    done: int = 0
    cancelled: threading.Event = field(default_factory=threading.Event)


@dataclass
class WorkbookSummary:
    targets: int = 0
    responses: int = 0
    counted: int = 0
    documents: int = 0
    archived: int = 0
    missing_documents: list[str] = field(default_factory=list)
    writer_peak_rss_kb: int | None = None  # the writer process's peak, when one was used


class ExportCancelled(Exception):
    pass


def local_naive(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """Excel has no time zones: the moment in ``zone``, without tzinfo (naive = UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone).replace(tzinfo=None)


def _number(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if float(value).is_integer() else value


def _question_header(q: Question) -> str:
    return q.short or q.text


def _answer_value(q: Question, value: Any) -> Any:
    if value is None:
        return None
    kind = q.kind
    if kind is QuestionKind.YES_NO:
        return YES if value is True else NO if value is False else str(value)
    if kind is QuestionKind.CHOICE:
        return next((c.text for c in q.choices if c.id == value), str(value))
    if isinstance(value, bool):
        return YES if value else NO
    if isinstance(value, int | float | date):
        return value
    return str(value)


@dataclass(frozen=True, slots=True)
class QuestionColumn:
    question: Question
    slot: Slot
    note: bool  # followed by a «Пояснение» column


class _FormLayout:
    """Columns of «Ответы», «Мероприятия» and «Показатели» for one form (all its versions)."""

    def __init__(self, form_id: str, forms: Sequence[Form]) -> None:
        self.form_id = form_id
        self.respondent = forms[0].respondent
        self.questions: list[QuestionColumn] = []
        self.group_questions: list[tuple[RepeatGroup, Question]] = []
        self.indicators: list[tuple[str, str, str]] = []  # id, title, kind
        seen: set[str] = set()
        seen_indicators: set[str] = set()
        for form in forms:
            for _, group, q in form.iter_questions():
                if q.id in seen:
                    continue
                seen.add(q.id)
                if group is not None:
                    self.group_questions.append((group, q))
                else:
                    note = q.kind is QuestionKind.YES_NO and q.note_when_no
                    self.questions.append(QuestionColumn(q, Slot(q.id), note))
            for ind in form.indicators:
                if ind.id not in seen_indicators:  # indicator ids may equal question ids
                    seen_indicators.add(ind.id)
                    self.indicators.append((ind.id, ind.title, ind.kind))
        self.groups: dict[str, RepeatGroup] = {}
        for group, _ in self.group_questions:
            self.groups.setdefault(group.id, group)

    def visible_columns(self, visibility: Visibility) -> list[tuple[QuestionColumn, bool]]:
        """Each answer column with whether it is visible; computed once per visibility."""
        key = f"answers:{self.form_id}"
        found = visibility.derived.get(key)
        if found is None:
            found = [(c, c.slot in visibility.set) for c in self.questions]
            visibility.derived[key] = found
        return found


def _identity() -> list[ColumnSpec]:
    return [
        ColumnSpec("campaign_id", "№ анкетирования", 9),
        ColumnSpec("campaign", "Анкетирование", 28),
        ColumnSpec("municipality", "Муниципалитет", 28),
        ColumnSpec("school", "Наименование ОО", 42),
        ColumnSpec("school_code", "Код ОО", 12),
    ]


class ExportWriter:
    """Feed chunks of :class:`TargetRow` in export order, then :meth:`save`."""

    def __init__(
        self,
        header: ExportHeader,
        forms: Callable[[str, int], Form],
        path: Path,
        *,
        timezone: ZoneInfo,
        archive: DocumentArchive | None = None,
        progress: ExportProgress | None = None,
        writer_process: bool | None = None,
        today: date | None = None,
    ) -> None:
        self.header = header
        self.path = path
        self.zone = timezone
        self.planner = ArchivePlanner()
        self.archive = archive
        self.progress = progress or ExportProgress(total=header.total_targets)
        self.summary = WorkbookSummary()
        self.include_drafts = header.scope.include_drafts
        self._form = forms
        self._engines: dict[tuple[str, int], MemoEngine] = {}
        self.campaigns = {c.id: c for c in header.campaigns}
        self.municipalities = {m.id: m for m in header.municipalities}
        self.multi = len(header.campaigns) > 1

        versions: dict[str, list[Form]] = {}
        for campaign in header.campaigns:
            form = forms(campaign.form_id, campaign.form_version)
            if form not in versions.setdefault(form.id, []):
                versions[form.id].append(form)
        self.layouts = {fid: _FormLayout(fid, fs) for fid, fs in versions.items()}
        populations = {m.id: m.population for m in header.municipalities}
        self.aggregators: dict[int, Aggregator] = {}
        for campaign in header.campaigns:
            aggregator = Aggregator(
                forms(campaign.form_id, campaign.form_version), populations, self.include_drafts
            )
            if aggregator.rules:
                self.aggregators[campaign.id] = aggregator
        # (campaign, municipality) -> [targets, started, submitted, counted]
        self.completion: dict[tuple[int, int], list[int]] = {}
        # (campaign, municipality) -> ([how many], the first names) of respondents not counted
        self.not_sent: dict[tuple[int, int], tuple[list[int], list[str]]] = {}
        if today is None:
            today = datetime.now(timezone).date()
        self.roadmap = (
            RoadmapSheet(header.roadmaps, today, PERCENT_FORMAT) if header.roadmaps else None
        )

        specs = self._specs()
        if writer_process is None:
            rows = header.total_targets + header.roadmap_schools
            writer_process = rows >= PROCESS_WRITER_MIN_ROWS
        self.book: Book | ProcessBook = ProcessBook(specs, path) if writer_process else Book(specs)

    def engine(self, form_id: str, version: int) -> MemoEngine:
        key = (form_id, version)
        engine = self._engines.get(key)
        if engine is None:
            engine = MemoEngine(self._form(form_id, version))
            self._engines[key] = engine
        return engine

    # --- sheet layouts ------------------------------------------------------------------------

    def _specs(self) -> list[SheetSpec]:
        specs = [
            SheetSpec(SHEET_ANSWERS, tuple(self._answer_columns()), 4),
            SheetSpec(SHEET_EVENTS, tuple(self._event_columns()), 4),
            SheetSpec(SHEET_INDICATORS, tuple(self._indicator_columns()), 4),
            SheetSpec(SHEET_MUNICIPALITIES, tuple(self._municipality_columns()), 2),
            SheetSpec(SHEET_PROGRESS, tuple(self._progress_columns()), 4),
            SheetSpec(SHEET_COMPLETION, tuple(self._completion_columns()), 2),
        ]
        if self.roadmap is not None:
            specs.append(SheetSpec(SHEET_ROADMAP, tuple(self.roadmap.columns()), 3))
        return specs

    def _answer_columns(self) -> list[ColumnSpec]:
        columns = [
            *_identity(),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("submitted_at", "Отправлена", 17, DATETIME_FORMAT),
            ColumnSpec("updated_at", "Последнее изменение", 17, DATETIME_FORMAT),
        ]
        ids = [c.question.id for layout in self.layouts.values() for c in layout.questions]
        clashes = {i for i in ids if ids.count(i) > 1}
        self._answer_offsets: dict[str, int] = {}
        for fid, layout in self.layouts.items():
            self._answer_offsets[fid] = len(columns)
            for col in layout.questions:
                q = col.question
                key = f"{fid}.{q.id}" if q.id in clashes else q.id
                narrow = q.kind in (QuestionKind.INTEGER, QuestionKind.YES_NO, QuestionKind.DATE)
                number_format = DATE_FORMAT if q.kind is QuestionKind.DATE else None
                columns.append(
                    ColumnSpec(key, _question_header(q), 14 if narrow else 30, number_format)
                )
                if col.note:
                    columns.append(
                        ColumnSpec(f"{key}__note", f"Пояснение: {_question_header(q)}", 36)
                    )
        self._answer_tail = len(columns)
        columns += [
            ColumnSpec("documents_count", "Документов", 11),
            ColumnSpec("documents", "Документы (пути в архиве)", 60),
        ]
        return columns

    def _event_columns(self) -> list[ColumnSpec]:
        columns = [
            *_identity(),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("group", "Раздел", 18),
            ColumnSpec("row", "№ п/п", 7),
        ]
        self._event_offsets: dict[str, int] = {}
        for fid, layout in self.layouts.items():
            self._event_offsets[fid] = len(columns)
            for _, q in layout.group_questions:
                number_format = DATE_FORMAT if q.kind is QuestionKind.DATE else None
                columns.append(ColumnSpec(q.id, _question_header(q), 36, number_format))
        return columns

    def _indicator_columns(self) -> list[ColumnSpec]:
        columns = [
            *_identity(),
            ColumnSpec("shnor", "ШНОР", 7),
            ColumnSpec("shnsu", "ШНСУ", 7),
            ColumnSpec("risk_zone", "Зона риска", 8),
            ColumnSpec("status", "Статус", 12),
            ColumnSpec("counted", "В расчёте", 9),
        ]
        self._indicator_offsets: dict[str, int] = {}
        for fid, layout in self.layouts.items():
            if layout.respondent != "school" or not layout.indicators:
                continue
            self._indicator_offsets[fid] = len(columns)
            for ind_id, title, kind in layout.indicators:
                if kind == "share":
                    columns.append(ColumnSpec(ind_id, f"{title}, %", 22, PERCENT_FORMAT))
                else:
                    unit = "" if kind == "count" else ", балл"
                    columns.append(ColumnSpec(ind_id, f"{title}{unit}", 22))
        return columns

    def _municipality_columns(self) -> list[ColumnSpec]:
        columns = [
            ColumnSpec("region", "Регион", 20),
            ColumnSpec("municipality", "Муниципалитет", 30),
            ColumnSpec(SHNOR_SHARE_ID, f"{SHNOR_SHARE_TITLE}, %", 22, PERCENT_FORMAT),
            ColumnSpec(f"{SHNOR_SHARE_ID}__numerator", "ШНОР и ШНСУ", 10),
            ColumnSpec(f"{SHNOR_SHARE_ID}__denominator", "Школ всего", 10),
        ]
        for cid, aggregator in self.aggregators.items():
            prefix = f"№{cid}: " if len(self.aggregators) > 1 else ""
            school_form = aggregator.respondent == "school"
            columns += [
                ColumnSpec(f"c{cid}__targets", f"{prefix}Адресатов анкеты", 10),
                ColumnSpec(f"c{cid}__counted", f"{prefix}Анкет в расчёте", 10),
            ]
            for ind in aggregator.rules:
                key = f"c{cid}.{ind.id}" if self.multi else ind.id
                if school_form:
                    value = ColumnSpec(key, f"{prefix}{ind.title}, %", 22, PERCENT_FORMAT)
                else:  # 1/0 балл per municipality, the region row is a percent (Styled)
                    value = ColumnSpec(key, f"{prefix}{ind.title}, балл (итог — %)", 22)
                columns += [
                    value,
                    ColumnSpec(f"{key}__numerator", "Числитель", 10),
                    ColumnSpec(f"{key}__denominator", "Знаменатель", 11),
                    ColumnSpec(f"{key}__missing", "Нет данных", 9),
                ]
            if school_form:
                columns.append(
                    ColumnSpec(
                        f"c{cid}__not_sent", f"{prefix}Не отправили анкету (не в расчёте)", 50
                    )
                )
        return columns

    def _progress_columns(self) -> list[ColumnSpec]:
        return [
            *_identity(),
            ColumnSpec("state", "Состояние", 20),
            ColumnSpec("answered", "Заполнено", 10),
            ColumnSpec("questions", "Всего вопросов", 10),
            ColumnSpec("last_activity", "Последняя активность", 17, DATETIME_FORMAT),
            ColumnSpec("account_linked", "Директор (координатор) подключён к боту", 16),
        ]

    def _completion_columns(self) -> list[ColumnSpec]:
        columns = [
            ColumnSpec("region", "Регион", 20),
            ColumnSpec("municipality", "Муниципалитет", 30),
        ]
        for campaign in self.header.campaigns:
            prefix = f"№{campaign.id} «{campaign.title}»: " if self.multi else ""
            share = f"{prefix}готовность, %" if self.multi else "Готовность, %"
            columns += [
                ColumnSpec(f"c{campaign.id}__targets", f"{prefix}адресатов", 10),
                ColumnSpec(f"c{campaign.id}__started", f"{prefix}начали", 10),
                ColumnSpec(f"c{campaign.id}__submitted", f"{prefix}отправили", 10),
                ColumnSpec(f"c{campaign.id}__share", share, 12, PERCENT_FORMAT),
            ]
        return columns

    # --- rows -------------------------------------------------------------------------------

    def add(self, rows: Iterable[TargetRow]) -> None:
        progress = self.progress
        for row in rows:
            if progress.cancelled.is_set():
                raise ExportCancelled
            self._add(row)
            progress.done += 1

    def add_roadmap(self, chunk: RoadmapChunk) -> None:
        """Rows of «Дорожная карта», after the targets."""
        if self.roadmap is None:
            return
        for school in chunk.schools:
            if self.progress.cancelled.is_set():
                raise ExportCancelled
            self.book.append(ROADMAP, self.roadmap.row(school))

    def _add(self, row: TargetRow) -> None:
        campaign = self.campaigns[row.campaign_id]
        municipality = self.municipalities.get(row.municipality_id)
        if municipality is None:  # outside the scope: cannot happen with a scoped query
            return
        response = row.response
        try:
            version = response.form_version if response is not None else campaign.form_version
            engine = self.engine(campaign.form_id, version)
        except LookupError:  # a response of a form version no longer loaded
            engine = self.engine(campaign.form_id, campaign.form_version)
        school = row.school
        flags = school.flags() if school is not None else {}
        answers = response.answers if response is not None else {}
        visibility = engine.visibility(answers, flags)
        layout = self.layouts[campaign.form_id]
        status = response.status if response is not None else None
        counted = response is not None and is_counted(status, self.include_drafts)
        self.summary.targets += 1

        identity = [
            campaign.id,
            campaign.title,
            municipality.name,
            school.name if school is not None else None,
            school.code if school is not None else None,
        ]
        values: dict[str, IndicatorValue] | None = None
        if response is not None:
            self.summary.responses += 1
            self.summary.counted += counted
            self._answers_row(identity, layout, row, response, visibility, municipality)
            if layout.groups:
                self._event_rows(identity, layout, engine, response, visibility)
            if layout.indicators:
                values = school_values(engine, answers, flags)
        if school is not None and layout.indicators and layout.respondent == "school":
            self._indicator_row(identity, layout, school, status, counted, values)
        aggregator = self.aggregators.get(campaign.id)
        if aggregator is not None:
            respondent_id = school.id if school is not None else row.municipality_id
            aggregator.add(row.municipality_id, respondent_id, flags, status, values)
        self._progress_row(identity, engine, row, response, visibility)

        stats = self.completion.get((campaign.id, municipality.id))
        if stats is None:
            stats = self.completion[(campaign.id, municipality.id)] = [0, 0, 0, 0]
        stats[0] += 1
        if response is not None:
            stats[1] += 1
            stats[2] += status == "submitted"
            stats[3] += counted
        if not counted:
            count, names = self.not_sent.setdefault((campaign.id, municipality.id), ([0], []))
            count[0] += 1
            if len(names) < MAX_LISTED_SCHOOLS:
                names.append(school.name if school is not None else municipality.name)

    def _answers_row(
        self,
        identity: list[Any],
        layout: _FormLayout,
        row: TargetRow,
        response: ResponseInfo,
        visibility: Visibility,
        municipality: MunicipalityInfo,
    ) -> None:
        zone = self.zone
        values: list[Any] = [
            *identity,
            STATUS_NAMES.get(response.status, response.status),
            local_naive(response.submitted_at, zone),
            local_naive(response.updated_at, zone),
        ]
        offset = self._answer_offsets[layout.form_id]
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
            values.append(_answer_value(col.question, state.value))
            if col.note:
                values.append(state.note or None)
        if self._answer_tail > len(values):
            values.extend([None] * (self._answer_tail - len(values)))
        values.append(len(response.documents))
        values.append(self._document_paths(row.school, response, municipality))
        self.book.append(ANSWERS, values)

    def _document_paths(
        self, school: SchoolInfo | None, response: ResponseInfo, municipality: MunicipalityInfo
    ) -> str | None:
        if not response.documents:
            return None
        paths: list[str] = []
        for document in response.documents:
            self.summary.documents += 1
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
                    self.summary.archived += 1
                else:
                    self.summary.missing_documents.append(path)
                    path = f"{path} (файл не найден)"
            paths.append(path)
        text = "\n".join(paths)
        return text if len(text) <= MAX_CELL_TEXT else text[:MAX_CELL_TEXT] + "…"

    def _event_rows(
        self,
        identity: list[Any],
        layout: _FormLayout,
        engine: MemoEngine,
        response: ResponseInfo,
        visibility: Visibility,
    ) -> None:
        answers = response.answers
        offset = self._event_offsets[layout.form_id]
        status = STATUS_NAMES.get(response.status, response.status)
        for group in layout.groups.values():
            for index in range(engine.row_count(group.id, answers)):
                cells: list[Any] = []
                for g, q in layout.group_questions:
                    if g.id != group.id:
                        cells.append(None)
                        continue
                    slot = Slot(q.id, index)
                    state = answers.get(slot) if slot in visibility.set else None
                    cells.append(None if state is None else _answer_value(q, state.value))
                if all(c is None for c in cells):
                    continue
                values = [*identity, status, group.title, index + 1]
                values.extend([None] * (offset - len(values)))
                self.book.append(EVENTS, values + cells)

    def _indicator_row(
        self,
        identity: list[Any],
        layout: _FormLayout,
        school: SchoolInfo,
        status: str | None,
        counted: bool,
        values: dict[str, IndicatorValue] | None,
    ) -> None:
        row: list[Any] = [
            *identity,
            YES if school.is_shnor else NO,
            YES if school.is_shnsu else NO,
            YES if school.is_risk_zone else NO,
            STATUS_NAMES.get(status, status) if status else NOT_STARTED,
            YES if counted else NO,
        ]
        row.extend([None] * (self._indicator_offsets[layout.form_id] - len(row)))
        for ind_id, _, kind in layout.indicators:
            value = values.get(ind_id) if values is not None else None
            if value is None or (value.applicable and value.value is None):
                row.append(NO_DATA)
            elif not value.applicable:
                row.append(NOT_APPLICABLE)
            elif kind == "share":
                row.append(value.value / 100.0)
            else:
                row.append(_number(value.value))
        self.book.append(INDICATORS, row)

    def _progress_row(
        self,
        identity: list[Any],
        engine: MemoEngine,
        row: TargetRow,
        response: ResponseInfo | None,
        visibility: Visibility,
    ) -> None:
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
                state = STATUS_NAMES.get(response.status, response.status)
            last = response.updated_at or response.submitted_at or response.started_at
        self.book.append(
            PROGRESS,
            [
                *identity,
                state,
                done,
                total,
                local_naive(last, self.zone),
                YES if row.account_linked else NO,
            ],
        )

    # --- summary sheets -----------------------------------------------------------------------

    @staticmethod
    def _figure_cells(figure: Figure) -> list[Any]:
        """Value, numerator, denominator, missing: percents as fractions, «нет данных»."""
        if figure.value is None:
            value: Any = NO_DATA
        elif figure.unit == "percent":
            value = Styled(figure.fraction, PERCENT_FORMAT)
        else:
            value = _number(figure.value)
        if figure.unit == "score":
            return [value, None, None, figure.missing]
        return [value, _number(figure.numerator), _number(figure.denominator), figure.missing]

    def _write_municipalities(self) -> None:
        by_region: dict[int, list[MunicipalityInfo]] = {}
        for municipality in self.header.municipalities:
            by_region.setdefault(municipality.region_id, []).append(municipality)
            row: list[Any] = [
                municipality.region,
                municipality.name,
                *self._figure_cells(shnor_share(municipality.population))[:3],
            ]
            for cid, aggregator in self.aggregators.items():
                stats = self.completion.get((cid, municipality.id), [0, 0, 0, 0])
                row += [stats[0], stats[3]]
                figures = aggregator.municipality(municipality.id, with_ids=False)
                for ind in aggregator.rules:
                    row += self._figure_cells(figures[ind.id])
                if aggregator.respondent == "school":
                    row.append(self._names(cid, municipality.id))
            self.book.append(MUNICIPALITIES, row)
        if self.header.scope.municipality_id is not None:
            return  # a municipal coordinator's export: the region total would be their own row
        for members in by_region.values():
            ids = [m.id for m in members]
            population = members[0].population
            for member in members[1:]:
                population = population + member.population
            row = [
                members[0].region,
                REGION_TOTAL,
                *self._figure_cells(shnor_share(population))[:3],
            ]
            for cid, aggregator in self.aggregators.items():
                stats = [self.completion.get((cid, mid), [0, 0, 0, 0]) for mid in ids]
                row += [sum(s[0] for s in stats), sum(s[3] for s in stats)]
                figures = aggregator.region(ids, with_ids=False)
                for ind in aggregator.rules:
                    row += self._figure_cells(figures[ind.id])
                if aggregator.respondent == "school":
                    row.append(None)
            self.book.append(MUNICIPALITIES, row)

    def _names(self, campaign_id: int, municipality_id: int) -> str | None:
        found = self.not_sent.get((campaign_id, municipality_id))
        if not found:
            return None
        (count,), names = found
        shown = "; ".join(names)
        if count > len(names):
            shown += f"; и ещё {count - len(names)}"
        return shown

    def _write_completion(self) -> None:
        campaigns = self.header.campaigns
        for municipality in self.header.municipalities:
            row: list[Any] = [municipality.region, municipality.name]
            for campaign in campaigns:
                targets, started, submitted, _ = self.completion.get(
                    (campaign.id, municipality.id), [0, 0, 0, 0]
                )
                row += [targets, started, submitted, submitted / targets if targets else NO_DATA]
            self.book.append(COMPLETION, row)
        count = len(self.header.municipalities)
        if not count or not campaigns:
            return
        self.book.add_chart(
            ChartSpec(
                sheet=COMPLETION,
                title="Готовность по муниципалитетам: доля отправленных анкет",
                axis_title="Отправлено",
                categories_column=2,
                value_columns=tuple(6 + index * 4 for index in range(len(campaigns))),
                rows=count,
                height=min(max(8.0, 0.45 * count * len(campaigns) + 3), 150.0),
            )
        )

    def save(self) -> WorkbookSummary:
        self._write_municipalities()
        self._write_completion()
        if self.roadmap is not None:
            total = self.roadmap.total_row()
            if total is not None:
                self.book.append(ROADMAP, total)
        self.book.save(self.path)
        self.summary.writer_peak_rss_kb = self.book.peak_rss_kb
        return self.summary

    def abort(self) -> None:
        self.book.abort()


def build_workbook(
    path: Path,
    header: ExportHeader,
    forms: Callable[[str, int], Form],
    chunks: Iterable[Sequence[TargetRow] | RoadmapChunk],
    *,
    timezone: ZoneInfo,
    archive: DocumentArchive | None = None,
    progress: ExportProgress | None = None,
    writer_process: bool | None = None,
    today: date | None = None,
) -> WorkbookSummary:
    """Write the whole workbook from the header and the streamed rows. Blocking.

    ``chunks``: the targets' rows, then the roadmap sheet's :class:`RoadmapChunk` s.
    ``writer_process``: serialise in a separate process (default: for big exports).
    ``today``: the date roadmap deadlines are judged by (default: today in ``timezone``).
    """
    writer = ExportWriter(
        header,
        forms,
        path,
        timezone=timezone,
        archive=archive,
        progress=progress,
        writer_process=writer_process,
        today=today,
    )
    try:
        for chunk in chunks:
            if isinstance(chunk, RoadmapChunk):
                writer.add_roadmap(chunk)
            else:
                writer.add(chunk)
        return writer.save()
    except BaseException:
        writer.abort()
        raise
