"""Indicator values: per school from the form's scoring rules, per municipality and region
exactly as seed 004 ("Методика расчета общего значения показателя на уровне муниципалитета")
prescribes. Pure: no database, no files.

Municipal rules (``Indicator.municipal.kind``):

* ``sum_ratio`` — Σ numerators / Σ denominators × 100 over the counted schools of the
  population ("количество педагогов ШНОР и ШНСУ муниципалитета, которым … / общее количество
  педагогов ШНОР и ШНСУ муниципалитета × 100%"). Never an average of school percentages.
* ``count_share`` — schools of the population scoring 1 / all schools of the population in the
  imported list × 100 ("количество школ муниципалитета, в которых … / общее количество школ
  муниципалитета × 100%"). A school that has not answered is in the denominator and is
  reported as missing.
* ``yes_no`` — read from the municipality's own response (``shnor_municipality``): 1 or 0
  балл. At region level: municipalities with 1 / all municipalities × 100.

Plus the list-based indicator 1.2.1: ШНОР and ШНСУ (a school with either flag) / all schools of
the municipality × 100.

Only submitted responses count unless ``include_drafts``. A zero denominator gives ``None``,
shown as «нет данных», never 0 %. Each figure carries which respondents were counted and which
are missing (ids of the respondents seen, plus the count of population schools never asked).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from forms.engine import Answers, Context, FormEngine, IndicatorValue, Slot
from forms.schema import Form, Indicator
from storage.models import SENT_STATUSES

NO_DATA = "нет данных"
NOT_APPLICABLE = "не применяется"
SHNOR_SHARE_ID = "shnor_shnsu_share"
SHNOR_SHARE_TITLE = (
    "Доля школ муниципалитета с низкими результатами обучения и/или школ, функционирующих "
    "в неблагоприятных социальных условиях, от общего количества школ муниципалитета"
)

Unit = Literal["percent", "score"]


def is_counted(status: str | None, include_drafts: bool = False) -> bool:
    """Whether a response with this status enters the figures."""
    if status is None:
        return False
    return include_drafts or status in SENT_STATUSES


def in_population(population: str, flags: Mapping[str, bool]) -> bool:
    if population == "shnor_shnsu":
        return bool(flags.get("shnor") or flags.get("shnsu"))
    if population == "risk_zone":
        return bool(flags.get("risk_zone"))
    return True


@dataclass(frozen=True, slots=True)
class Population:
    """How many schools of a municipality the imported list has, per population."""

    schools: int = 0
    shnor_shnsu: int = 0
    risk_zone: int = 0

    def size(self, population: str) -> int:
        if population == "shnor_shnsu":
            return self.shnor_shnsu
        if population == "risk_zone":
            return self.risk_zone
        return self.schools

    def __add__(self, other: Population) -> Population:
        return Population(
            self.schools + other.schools,
            self.shnor_shnsu + other.shnor_shnsu,
            self.risk_zone + other.risk_zone,
        )


@dataclass(frozen=True, slots=True)
class Figure:
    """One indicator value with what it was computed from."""

    value: float | None  # percent (0..100) or a 1/0 score; None = no data
    unit: Unit
    numerator: float | None = None
    denominator: float | None = None
    counted: int = 0  # respondents that entered the figure
    missing: int = 0  # respondents of the population without data
    counted_ids: tuple[int, ...] = ()
    missing_ids: tuple[int, ...] = ()  # the missing respondents that were asked

    @property
    def fraction(self) -> float | None:
        """The value as Excel wants a percent cell (0.5 for 50 %)."""
        if self.value is None or self.unit != "percent":
            return self.value
        return self.value / 100.0


def ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator * 100.0


def shnor_share(population: Population) -> Figure:
    """Seed 004, 1.2.1: количество ШНОР и ШНСУ / общее количество школ × 100%."""
    return Figure(
        value=ratio(population.shnor_shnsu, population.schools),
        unit="percent",
        numerator=float(population.shnor_shnsu),
        denominator=float(population.schools),
        counted=population.schools,
    )


# --- per school ------------------------------------------------------------------------------


@dataclass(eq=False)
class Visibility:
    """Visible slots for one visibility input, shared by every respondent with that input."""

    slots: tuple[Slot, ...]
    set: frozenset[Slot]
    questions: int  # visible slots that are questions, not "add another row?" controls
    derived: dict[str, Any] = field(default_factory=dict)  # callers' per-visibility caches


class MemoEngine(FormEngine):
    """A FormEngine that remembers visible slots per visibility input.

    ``slots()`` depends only on the respondent flags, the answers to questions that some
    ``show_if`` refers to and the repeat-group "add another row?" answers; everything else in
    ``answers`` cannot change which slots are visible. Exporting 40,000 responses of one form
    then computes visibility a handful of times instead of 40,000 times.
    """

    def __init__(self, form: Form, max_entries: int = 4096) -> None:
        super().__init__(form)
        keyed = {c.question for _, _, q in form.iter_questions() for c in q.show_if if c.question}
        keyed.update(item.id for s in form.sections for item in s.items if item.kind == "group")
        self._keyed = frozenset(keyed)
        self._memo: dict[tuple, Visibility] = {}
        self._max_entries = max_entries

    def visibility_key(self, answers: Answers, ctx: Context) -> tuple:
        keyed = self._keyed
        inputs = (
            tuple(
                sorted(
                    (slot, type(state.value).__name__, state.value)
                    for slot, state in answers.items()
                    if slot.question_id in keyed
                )
            )
            if keyed
            else ()
        )
        return tuple(sorted((k, bool(v)) for k, v in ctx.items())), inputs

    def visibility(self, answers: Answers, ctx: Context) -> Visibility:
        key = self.visibility_key(answers, ctx)
        found = self._memo.get(key)
        if found is None:
            slots = tuple(super().slots(answers, ctx))
            questions = sum(1 for s in slots if not self.is_group_control(s.question_id))
            found = Visibility(slots, frozenset(slots), questions)
            if len(self._memo) >= self._max_entries:
                self._memo.clear()
            self._memo[key] = found
        return found

    def slots(self, answers: Answers, ctx: Context) -> list[Slot]:
        return list(self.visibility(answers, ctx).slots)


def school_values(engine: FormEngine, answers: Answers, ctx: Context) -> dict[str, IndicatorValue]:
    """Each indicator of the form for one respondent, from the engine's scoring rules:
    1/0 (yes/no, "at least two of three"), a percent, a count; ``value`` None = no data."""
    return engine.score(answers, ctx)


# --- aggregation -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Acc:
    numerator: float = 0.0
    denominator: float = 0.0
    counted_ids: array = field(default_factory=lambda: array("q"))
    missing_ids: array = field(default_factory=lambda: array("q"))


class Aggregator:
    """Municipal and region figures of one campaign (one form), fed respondent by respondent.

    ``populations`` holds every municipality in scope with its school counts from the
    imported list: the denominators of ``count_share`` and the missing counts come from there.
    Memory is a few integers per respondent, so a 40,000-school region streams through.
    """

    def __init__(
        self,
        form: Form,
        populations: Mapping[int, Population],
        include_drafts: bool = False,
    ) -> None:
        self.form = form
        self.respondent = form.respondent
        self.populations = dict(populations)
        self.include_drafts = include_drafts
        self.rules: list[Indicator] = [
            ind
            for ind in form.indicators
            if ind.municipal is not None and self._fits(ind.municipal.kind)
        ]
        self._acc: dict[int, dict[str, _Acc]] = {}

    def _fits(self, kind: str) -> bool:
        # yes/no rules are municipal answers; shares are aggregated from schools.
        return (kind == "yes_no") == (self.respondent == "municipality")

    def _accs(self, municipality_id: int) -> dict[str, _Acc]:
        accs = self._acc.get(municipality_id)
        if accs is None:
            accs = {ind.id: _Acc() for ind in self.rules}
            self._acc[municipality_id] = accs
        return accs

    def add(
        self,
        municipality_id: int,
        respondent_id: int,
        flags: Mapping[str, bool],
        status: str | None,
        values: Mapping[str, IndicatorValue] | None,
    ) -> bool:
        """Take one respondent (a school, or the municipality itself for a municipal form).

        ``status`` is None and ``values`` None when the respondent has not started.
        Returns whether the response is counted.
        """
        counted = values is not None and is_counted(status, self.include_drafts)
        accs = self._accs(municipality_id)
        for ind in self.rules:
            rule = ind.municipal
            assert rule is not None
            if self.respondent == "school" and not in_population(rule.population, flags):
                continue
            acc = accs[ind.id]
            value = values.get(ind.id) if counted and values is not None else None
            usable = value is not None and value.applicable and value.value is not None
            if rule.kind == "sum_ratio":
                usable = usable and value.numerator is not None and value.denominator is not None
                if usable:
                    acc.numerator += value.numerator
                    acc.denominator += value.denominator
            elif usable and value.value >= 1:
                acc.numerator += 1
            (acc.counted_ids if usable else acc.missing_ids).append(respondent_id)
        return counted

    # --- results

    def municipality(self, municipality_id: int, with_ids: bool = True) -> dict[str, Figure]:
        """Figures of one municipality; ``with_ids`` lists the counted and missing ids."""
        accs = self._accs(municipality_id)
        population = self.populations.get(municipality_id, Population())
        return {ind.id: self._figure(ind, accs[ind.id], population, with_ids) for ind in self.rules}

    def _figure(self, ind: Indicator, acc: _Acc, population: Population, with_ids: bool) -> Figure:
        rule = ind.municipal
        assert rule is not None
        counted = len(acc.counted_ids)
        if rule.kind == "yes_no":
            value = (1.0 if acc.numerator else 0.0) if counted else None
            return Figure(
                value=value,
                unit="score",
                counted=counted,
                missing=0 if counted else 1,
                counted_ids=tuple(acc.counted_ids) if with_ids else (),
                missing_ids=tuple(acc.missing_ids) if with_ids else (),
            )
        size = population.size(rule.population)
        missing = max(size - counted, len(acc.missing_ids))
        if rule.kind == "sum_ratio":
            numerator, denominator = acc.numerator, acc.denominator
        else:  # count_share: the denominator is the whole population from the list
            numerator, denominator = acc.numerator, float(max(size, counted))
        return Figure(
            value=ratio(numerator, denominator),
            unit="percent",
            numerator=numerator,
            denominator=denominator,
            counted=counted,
            missing=missing,
            counted_ids=tuple(acc.counted_ids) if with_ids else (),
            missing_ids=tuple(acc.missing_ids) if with_ids else (),
        )

    def region(self, municipality_ids: Iterable[int], with_ids: bool = True) -> dict[str, Figure]:
        """Totals over municipalities, computed the same way (sums, never averages)."""
        ids = list(municipality_ids)
        figures = {mid: self.municipality(mid, with_ids) for mid in ids}
        total: dict[str, Figure] = {}
        for ind in self.rules:
            rule = ind.municipal
            assert rule is not None
            parts = [figures[mid][ind.id] for mid in ids]
            counted_ids = tuple(i for p in parts for i in p.counted_ids)
            missing_ids = tuple(i for p in parts for i in p.missing_ids)
            if rule.kind == "yes_no":
                numerator = float(sum(1 for p in parts if p.value == 1.0))
                denominator = float(len(parts))
                counted = sum(1 for p in parts if p.value is not None)
                missing = len(parts) - counted
            else:
                numerator = sum(p.numerator or 0.0 for p in parts)
                denominator = sum(p.denominator or 0.0 for p in parts)
                counted = sum(p.counted for p in parts)
                missing = sum(p.missing for p in parts)
            total[ind.id] = Figure(
                value=ratio(numerator, denominator),
                unit="percent",
                numerator=numerator,
                denominator=denominator,
                counted=counted,
                missing=missing,
                counted_ids=counted_ids,
                missing_ids=missing_ids,
            )
        return total
