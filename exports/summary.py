"""Summary sheets, written after every respondent: «Муниципалитеты» and «Готовность».

* «Муниципалитеты» — per municipality, the share of ШНОР and ШНСУ from the imported list and
  each municipal indicator as a percent with its numerator, denominator and the number of
  schools without data beside it; the schools that have not sent the form; the region in the
  last row (left out when the export is limited to one municipality). An indicator backed by
  a document (:mod:`exports.confirmed`) has its confirmed percent and numerator beside the
  declared ones (same denominator: only accepted «да» answers count).
* «Готовность» — the submitted share per municipality, with a native Excel bar chart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from exports.cells import PERCENT_FORMAT, number
from exports.confirmed import CONFIRMED_LABEL, confirmed_key
from exports.data import ExportHeader, MunicipalityInfo
from exports.indicators import (
    NO_DATA,
    SHNOR_SHARE_ID,
    SHNOR_SHARE_TITLE,
    Aggregator,
    Figure,
    shnor_share,
)
from exports.specs import ChartSpec, ColumnSpec, Styled

SHEET_MUNICIPALITIES = "Муниципалитеты"
SHEET_COMPLETION = "Готовность"
REGION_TOTAL = "Итого по региону"
MAX_LISTED_SCHOOLS = 50


class Tally:
    """Per campaign and municipality: targets, started, submitted, counted; who is missing."""

    def __init__(self) -> None:
        # (campaign, municipality) -> [targets, started, submitted, counted]
        self.completion: dict[tuple[int, int], list[int]] = {}
        # (campaign, municipality) -> ([how many], the first names) of respondents not counted
        self.not_sent: dict[tuple[int, int], tuple[list[int], list[str]]] = {}

    def add(
        self, campaign_id: int, municipality_id: int, status: str | None, counted: bool, name: str
    ) -> None:
        key = (campaign_id, municipality_id)
        stats = self.completion.get(key)
        if stats is None:
            stats = self.completion[key] = [0, 0, 0, 0]
        stats[0] += 1
        if status is not None:
            stats[1] += 1
            stats[2] += status == "submitted"
            stats[3] += counted
        if not counted:
            count, names = self.not_sent.setdefault(key, ([0], []))
            count[0] += 1
            if len(names) < MAX_LISTED_SCHOOLS:
                names.append(name)

    def stats(self, campaign_id: int, municipality_id: int) -> list[int]:
        return self.completion.get((campaign_id, municipality_id), [0, 0, 0, 0])

    def names(self, campaign_id: int, municipality_id: int) -> str | None:
        found = self.not_sent.get((campaign_id, municipality_id))
        if not found:
            return None
        (count,), names = found
        shown = "; ".join(names)
        if count > len(names):
            shown += f"; и ещё {count - len(names)}"
        return shown


def figure_cells(figure: Figure) -> list[Any]:
    """Value, numerator, denominator, missing: percents as fractions, «нет данных»."""
    if figure.value is None:
        value: Any = NO_DATA
    elif figure.unit == "percent":
        value = Styled(figure.fraction, PERCENT_FORMAT)
    else:
        value = number(figure.value)
    if figure.unit == "score":
        return [value, None, None, figure.missing]
    return [value, number(figure.numerator), number(figure.denominator), figure.missing]


class MunicipalitiesSheet:
    def __init__(
        self,
        header: ExportHeader,
        aggregators: Mapping[int, Aggregator],
        tally: Tally,
        confirmed: Mapping[int, tuple[Aggregator, frozenset[str]]] | None = None,
    ) -> None:
        """``confirmed``: per campaign, the aggregator of confirmed values and the ids of the
        indicators that have one."""
        self.header = header
        self.aggregators = aggregators
        self.tally = tally
        self.confirmed = dict(confirmed or {})
        self.multi = len(header.campaigns) > 1

    def _backed(self, campaign_id: int) -> frozenset[str]:
        found = self.confirmed.get(campaign_id)
        return found[1] if found is not None else frozenset()

    def _confirmed_cells(
        self, campaign_id: int, ind_id: str, figures: Mapping[str, Figure] | None
    ) -> list[Any]:
        if ind_id not in self._backed(campaign_id) or figures is None:
            return []
        return figure_cells(figures[ind_id])[:2]

    def columns(self) -> list[ColumnSpec]:
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
                if ind.id in self._backed(cid):
                    unit = "%" if school_form else "балл (итог — %)"
                    columns += [
                        ColumnSpec(
                            confirmed_key(key),
                            f"{prefix}{ind.title}, {CONFIRMED_LABEL}, {unit}",
                            22,
                            PERCENT_FORMAT if school_form else None,
                        ),
                        ColumnSpec(f"{confirmed_key(key)}__numerator", "Подтверждено", 12),
                    ]
            if school_form:
                columns.append(
                    ColumnSpec(
                        f"c{cid}__not_sent", f"{prefix}Не отправили анкету (не в расчёте)", 50
                    )
                )
        return columns

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        tally = self.tally
        by_region: dict[int, list[MunicipalityInfo]] = {}
        for municipality in self.header.municipalities:
            by_region.setdefault(municipality.region_id, []).append(municipality)
            row: list[Any] = [
                municipality.region,
                municipality.name,
                *figure_cells(shnor_share(municipality.population))[:3],
            ]
            for cid, aggregator in self.aggregators.items():
                stats = tally.stats(cid, municipality.id)
                row += [stats[0], stats[3]]
                figures = aggregator.municipality(municipality.id, with_ids=False)
                pair = self.confirmed.get(cid)
                confirmed = pair[0].municipality(municipality.id, False) if pair else None
                for ind in aggregator.rules:
                    row += figure_cells(figures[ind.id])
                    row += self._confirmed_cells(cid, ind.id, confirmed)
                if aggregator.respondent == "school":
                    row.append(tally.names(cid, municipality.id))
            out.append(row)
        if self.header.scope.municipality_id is not None:
            return out  # a municipal coordinator's export: the region total would be their own row
        for members in by_region.values():
            ids = [m.id for m in members]
            population = members[0].population
            for member in members[1:]:
                population = population + member.population
            row = [members[0].region, REGION_TOTAL, *figure_cells(shnor_share(population))[:3]]
            for cid, aggregator in self.aggregators.items():
                stats = [tally.stats(cid, mid) for mid in ids]
                row += [sum(s[0] for s in stats), sum(s[3] for s in stats)]
                figures = aggregator.region(ids, with_ids=False)
                pair = self.confirmed.get(cid)
                confirmed = pair[0].region(ids, with_ids=False) if pair else None
                for ind in aggregator.rules:
                    row += figure_cells(figures[ind.id])
                    row += self._confirmed_cells(cid, ind.id, confirmed)
                if aggregator.respondent == "school":
                    row.append(None)
            out.append(row)
        return out


class CompletionSheet:
    def __init__(self, header: ExportHeader, tally: Tally) -> None:
        self.header = header
        self.tally = tally
        self.multi = len(header.campaigns) > 1

    def columns(self) -> list[ColumnSpec]:
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

    def rows(self) -> list[list[Any]]:
        out: list[list[Any]] = []
        for municipality in self.header.municipalities:
            row: list[Any] = [municipality.region, municipality.name]
            for campaign in self.header.campaigns:
                targets, started, submitted, _ = self.tally.stats(campaign.id, municipality.id)
                row += [targets, started, submitted, submitted / targets if targets else NO_DATA]
            out.append(row)
        return out

    def chart(self, sheet: int) -> ChartSpec | None:
        campaigns = self.header.campaigns
        count = len(self.header.municipalities)
        if not count or not campaigns:
            return None
        return ChartSpec(
            sheet=sheet,
            title="Готовность по муниципалитетам: доля отправленных анкет",
            axis_title="Отправлено",
            categories_column=2,
            value_columns=tuple(6 + index * 4 for index in range(len(campaigns))),
            rows=count,
            height=min(max(8.0, 0.45 * count * len(campaigns) + 3), 150.0),
        )
