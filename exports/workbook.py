"""The export workbook: from the streamed rows of :mod:`exports.data` to an xlsx.

Sheets (Russian names and headers), each built by its own module:

* one answers sheet per form with responses, «Ответы — Анкета ОО» (:mod:`exports.answers`);
* «Мероприятия», «Показатели», «Прогресс» (:mod:`exports.respondents`);
* «Муниципалитеты», «Готовность» (:mod:`exports.summary`);
* «Журнал изменений» — every audited change of a response in scope (:mod:`exports.changelog`);
* «Дорожная карта» — roadmap items × schools (:mod:`exports.roadmap`); left out when no
  roadmap with school items reaches the export's scope.

Declared and confirmed values (:mod:`exports.confirmed`): «Показатели» and «Муниципалитеты»
show, beside each indicator backed by a document, the value counting only accepted answers.

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
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from exports.answers import AnswersSheet, DocumentPaths, answer_sheet_titles
from exports.archive import DocumentArchive
from exports.cells import PERCENT_FORMAT
from exports.changelog import SHEET_CHANGELOG, ChangeChunk, ChangelogSheet
from exports.confirmed import confirmed_answers
from exports.data import ExportHeader, TargetRow
from exports.indicators import Aggregator, MemoEngine, is_counted, school_values
from exports.layout import FormLayout
from exports.respondents import (
    SHEET_EVENTS,
    SHEET_INDICATORS,
    SHEET_PROGRESS,
    EventsSheet,
    IndicatorsSheet,
    ProgressSheet,
)
from exports.roadmap import SHEET_ROADMAP, RoadmapChunk, RoadmapSheet
from exports.specs import SheetSpec
from exports.summary import (
    SHEET_COMPLETION,
    SHEET_MUNICIPALITIES,
    CompletionSheet,
    MunicipalitiesSheet,
    Tally,
)
from forms.engine import IndicatorValue
from forms.schema import Form

if TYPE_CHECKING:
    from exports.xlsx import Book, ProcessBook

__all__ = ["PERCENT_FORMAT", "ExportProgress", "WorkbookSummary", "build_workbook"]

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


@dataclass(frozen=True, slots=True)
class _Sheets:
    """Book indices of the sheets after the answers sheets."""

    events: int
    indicators: int
    municipalities: int
    progress: int
    completion: int
    changelog: int
    roadmap: int


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
        self.documents = DocumentPaths(archive)
        self.progress = progress or ExportProgress(total=header.total_targets)
        self.summary = WorkbookSummary()
        self.include_drafts = header.scope.include_drafts
        self._form = forms
        self._engines: dict[tuple[str, int], MemoEngine] = {}
        self.campaigns = {c.id: c for c in header.campaigns}
        self.municipalities = {m.id: m for m in header.municipalities}

        versions: dict[str, list[Form]] = {}
        for campaign in header.campaigns:
            form = forms(campaign.form_id, campaign.form_version)
            if form not in versions.setdefault(form.id, []):
                versions[form.id].append(form)
        self.layouts = {fid: FormLayout(fid, fs) for fid, fs in versions.items()}
        populations = {m.id: m.population for m in header.municipalities}
        self.aggregators: dict[int, Aggregator] = {}
        # campaign id -> the aggregator of confirmed values, the indicators that have one
        self.confirmed: dict[int, tuple[Aggregator, frozenset[str]]] = {}
        for campaign in header.campaigns:
            form = forms(campaign.form_id, campaign.form_version)
            aggregator = Aggregator(form, populations, self.include_drafts)
            if aggregator.rules:
                self.aggregators[campaign.id] = aggregator
                backed = self.layouts[campaign.form_id].confirmed
                if backed & {ind.id for ind in aggregator.rules}:
                    confirmed = Aggregator(form, populations, self.include_drafts)
                    self.confirmed[campaign.id] = (confirmed, backed)
        self.tally = Tally()
        if today is None:
            today = datetime.now(timezone).date()
        self.roadmap = (
            RoadmapSheet(header.roadmaps, today, PERCENT_FORMAT) if header.roadmaps else None
        )
        answered = header.forms_with_responses()
        layouts = [layout for fid, layout in self.layouts.items() if fid in answered]
        fixed = [SHEET_EVENTS, SHEET_INDICATORS, SHEET_MUNICIPALITIES, SHEET_PROGRESS]
        fixed += [SHEET_COMPLETION, SHEET_CHANGELOG, SHEET_ROADMAP]
        titles = answer_sheet_titles([_short_name(layout.form) for layout in layouts], fixed)
        # form id -> (sheet index, sheet); the other sheets follow the answers sheets
        self.answers = {
            layout.form_id: (index, AnswersSheet(layout, title, timezone))
            for index, (layout, title) in enumerate(zip(layouts, titles, strict=True))
        }
        first = len(self.answers)
        self.sheet = _Sheets(*range(first, first + 7))
        self.events = EventsSheet(self.layouts)
        self.indicators = IndicatorsSheet(self.layouts)
        self.progress_sheet = ProgressSheet(timezone)
        self.municipalities_sheet = MunicipalitiesSheet(
            header, self.aggregators, self.tally, self.confirmed
        )
        self.changelog = ChangelogSheet(self.engine, timezone)
        self.completion_sheet = CompletionSheet(header, self.tally)

        from exports.xlsx import Book, ProcessBook  # openpyxl: loaded when a workbook is made

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

    def _specs(self) -> list[SheetSpec]:
        specs = [SheetSpec(s.title, tuple(s.columns()), 4) for _, s in self.answers.values()]
        specs += [
            SheetSpec(SHEET_EVENTS, tuple(self.events.columns()), 4),
            SheetSpec(SHEET_INDICATORS, tuple(self.indicators.columns()), 4),
            SheetSpec(SHEET_MUNICIPALITIES, tuple(self.municipalities_sheet.columns()), 2),
            SheetSpec(SHEET_PROGRESS, tuple(self.progress_sheet.columns()), 4),
            SheetSpec(SHEET_COMPLETION, tuple(self.completion_sheet.columns()), 2),
            SheetSpec(SHEET_CHANGELOG, tuple(self.changelog.columns()), 1),
        ]
        if self.roadmap is not None:
            specs.append(SheetSpec(SHEET_ROADMAP, tuple(self.roadmap.columns()), 3))
        return specs

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
            self.book.append(self.sheet.roadmap, self.roadmap.row(school))

    def add_changes(self, chunk: ChangeChunk) -> None:
        """Rows of «Журнал изменений», after the targets and the roadmap."""
        for change in chunk.changes:
            if self.progress.cancelled.is_set():
                raise ExportCancelled
            self.book.append(self.sheet.changelog, self.changelog.row(change))

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

        identity: list[Any] = [
            campaign.id,
            campaign.title,
            municipality.name,
            school.name if school is not None else None,
            school.code if school is not None else None,
        ]
        values: dict[str, IndicatorValue] | None = None
        confirmed: dict[str, IndicatorValue] | None = None
        book = self.book
        if response is not None:
            self.summary.responses += 1
            self.summary.counted += counted
            answers_sheet = self.answers.get(layout.form_id)
            if answers_sheet is not None:  # None: the form's first response came after the header
                index, sheet = answers_sheet
                documents = self.documents.cell(school, response, municipality, engine, visibility)
                book.append(index, sheet.row(identity, response, visibility, documents))
            if layout.groups:
                rows = self.events.rows(identity, layout, engine, response, visibility)
                if rows:
                    book.extend(self.sheet.events, rows)
            if layout.indicators:
                values = school_values(engine, answers, flags)
                if layout.confirmed:
                    backed = layout.backed_questions
                    accepted = confirmed_answers(answers, backed, response.accepted)
                    confirmed = school_values(engine, accepted, flags)
        if school is not None and layout.indicators and layout.respondent == "school":
            book.append(
                self.sheet.indicators,
                self.indicators.row(identity, layout, school, status, counted, values, confirmed),
            )
        aggregator = self.aggregators.get(campaign.id)
        if aggregator is not None:
            respondent_id = school.id if school is not None else row.municipality_id
            aggregator.add(row.municipality_id, respondent_id, flags, status, values)
            pair = self.confirmed.get(campaign.id)
            if pair is not None:
                pair[0].add(row.municipality_id, respondent_id, flags, status, confirmed)
        book.append(
            self.sheet.progress,
            self.progress_sheet.row(identity, engine, row, response, visibility),
        )
        name = school.name if school is not None else municipality.name
        self.tally.add(campaign.id, municipality.id, status, counted, name)

    # --- the end ------------------------------------------------------------------------------

    def save(self) -> WorkbookSummary:
        book = self.book
        for values in self.municipalities_sheet.rows():
            book.append(self.sheet.municipalities, values)
        for values in self.completion_sheet.rows():
            book.append(self.sheet.completion, values)
        chart = self.completion_sheet.chart(self.sheet.completion)
        if chart is not None:
            book.add_chart(chart)
        if self.roadmap is not None:
            total = self.roadmap.total_row()
            if total is not None:
                book.append(self.sheet.roadmap, total)
        book.save(self.path)
        self.summary.documents = self.documents.documents
        self.summary.archived = self.documents.archived
        self.summary.missing_documents = self.documents.missing
        self.summary.writer_peak_rss_kb = book.peak_rss_kb
        return self.summary

    def abort(self) -> None:
        self.book.abort()


def _short_name(form: Form) -> str:
    return form.short or form.title


def build_workbook(
    path: Path,
    header: ExportHeader,
    forms: Callable[[str, int], Form],
    chunks: Iterable[Sequence[TargetRow] | RoadmapChunk | ChangeChunk],
    *,
    timezone: ZoneInfo,
    archive: DocumentArchive | None = None,
    progress: ExportProgress | None = None,
    writer_process: bool | None = None,
    today: date | None = None,
) -> WorkbookSummary:
    """Write the whole workbook from the header and the streamed rows. Blocking.

    ``chunks``: the targets' rows, then the roadmap sheet's :class:`RoadmapChunk` s, then
    the change log's :class:`ChangeChunk` s.
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
            elif isinstance(chunk, ChangeChunk):
                writer.add_changes(chunk)
            else:
                writer.add(chunk)
        return writer.save()
    except BaseException:
        writer.abort()
        raise
