"""Who a roadmap (or one of its items) applies to: all schools, ШНОР and ШНСУ, the risk zone,
or named schools.

A region's roadmap in project «500+» is for the region's ШНОР/ШНСУ, not for every school,
so that is the default of a regional roadmap; a municipal one defaults to all schools of its
municipality (a district roadmap is often about the whole district, as seed 003's first one).
An item's own ``applies_to`` replaces its roadmap's. The geography (region, municipality)
is the roadmap's scope and is applied on top of this.

Named schools are matched by their code or their name, compared without case, quotes and
extra spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

AppliesKind = Literal["all", "shnor_shnsu", "risk_zone", "schools"]

__all__ = [
    "ALL",
    "AppliesKind",
    "AppliesTo",
    "AppliesToError",
    "SchoolFacts",
    "default_for_level",
    "parse_applies_to",
]


class AppliesToError(ValueError):
    """An «applies to» value that cannot be read; the message is Russian."""


@dataclass(frozen=True, slots=True)
class SchoolFacts:
    """What the audience of an item is decided by."""

    code: str | None
    name: str
    is_shnor: bool = False
    is_shnsu: bool = False
    is_risk_zone: bool = False


def school_key(text: str) -> str:
    s = text.lower().replace("ё", "е")
    s = re.sub(r"[«»\"'“”„]", "", s)
    return re.sub(r"\s+", " ", s).strip()


class AppliesTo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AppliesKind = "all"
    schools: tuple[str, ...] = ()  # codes or names, for ``kind="schools"``

    @model_validator(mode="after")
    def _check(self) -> AppliesTo:
        if self.kind == "schools" and not self.schools:
            raise ValueError("named schools: the list is empty")
        if self.kind != "schools" and self.schools:
            raise ValueError(f"schools are listed for applies_to={self.kind}")
        return self

    def matches(self, school: SchoolFacts) -> bool:
        if self.kind == "all":
            return True
        if self.kind == "shnor_shnsu":
            return school.is_shnor or school.is_shnsu
        if self.kind == "risk_zone":
            return school.is_risk_zone
        keys = {school_key(s) for s in self.schools}
        return school_key(school.name) in keys or (
            school.code is not None and school_key(school.code) in keys
        )

    def describe(self) -> str:
        if self.kind == "all":
            return "все школы"
        if self.kind == "shnor_shnsu":
            return "ШНОР и ШНСУ"
        if self.kind == "risk_zone":
            return "школы зоны риска"
        return "школы: " + ", ".join(self.schools)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind}
        if self.schools:
            data["schools"] = list(self.schools)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> AppliesTo | None:
        return cls(**data) if data else None


ALL = AppliesTo()


def default_for_level(level: str) -> AppliesTo:
    return AppliesTo(kind="shnor_shnsu") if level == "region" else ALL


_WORDS: list[tuple[AppliesKind, re.Pattern[str]]] = [
    ("all", re.compile(r"^(?:all|все(?:\s+(?:школы|оо|образовательные\s+организации))?)$")),
    (
        "shnor_shnsu",
        re.compile(
            r"^(?:shnor_shnsu|(?:только\s+)?(?:школы\s+)?(?:шнор|шнсу|шнор\s*(?:/|\+|,|и)\s*шнсу)"
            r"(?:\s+и\s+шнсу)?|школы\s+500\+|500\+)$"
        ),
    ),
    ("risk_zone", re.compile(r"^(?:risk_zone|(?:школы\s+)?зон[аы]\s+риска)$")),
]
_NAMED = re.compile(r"^(?:schools|школы|оо)\s*:\s*(?P<list>.+)$", re.DOTALL)


def parse_applies_to(value: Any) -> AppliesTo:
    """Read a YAML value, a table cell or a CLI option.

    «все школы» / ``all``; «ШНОР/ШНСУ», «ШНОР и ШНСУ» / ``shnor_shnsu``; «зона риска» /
    ``risk_zone``; «школы: МБОУ СОШ № 1; 39-001» or a YAML list → named schools.
    """
    if isinstance(value, AppliesTo):
        return value
    if isinstance(value, dict):
        try:
            return AppliesTo(**value)
        except ValueError as exc:
            raise AppliesToError(_HINT) from exc
    if isinstance(value, list | tuple):
        names = tuple(str(v).strip() for v in value if str(v).strip())
        if not names:
            raise AppliesToError("Список школ пуст. " + _HINT)
        return AppliesTo(kind="schools", schools=names)
    if not isinstance(value, str) or not value.strip():
        raise AppliesToError("Не указано, для кого пункт. " + _HINT)
    text = re.sub(r"\s+", " ", value.lower().replace("ё", "е")).strip().rstrip(".")
    for kind, rx in _WORDS:
        if rx.match(text):
            return AppliesTo(kind=kind)
    named = _NAMED.match(value.strip())
    if named:
        return parse_applies_to([s for s in re.split(r"[;\n]", named.group("list"))])
    raise AppliesToError(f"Не понятно, для кого пункт: «{value.strip()[:80]}». " + _HINT)


_HINT = (
    "Напишите «все школы», «ШНОР/ШНСУ», «зона риска» или «школы: …» "
    "(коды или названия через точку с запятой)."
)
