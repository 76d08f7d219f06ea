"""Roadmap data model and the executor → role classifier.

Executor roles are derived from the free-text "Исполнители" column by keywords
(lower-cased, "ё" → "е"). Each executor string may yield several roles, e.g.
"Руководители школ МОУО КОИРО" → director, municipal, institution:

* ``institution`` — regional support organisations: КОИРО / ИРО / "институт развития",
  кафедры, ЦППМ(С), ОЦДиК, "Кванториум" / технопарк, академия, РЦОИ/РЦОКО, ЦНППМ,
  "центр развития", "центр диагностики";
* ``regional`` — министерство / департамент / правительство, "региональный"
  (координатор, оператор), минобр/минпрос;
* ``municipal`` — "муниципальн..." (except "муниципальное бюджетное общеобразовательное
  учреждение", which is a school), МОУО, отдел/управление/комитет образования, органы
  местного самоуправления, МКУ, РМО/РМК/ММС/ИМЦ, "районн...";
* ``director`` — руководители школ/ОО, директор(а), "школ...", ОО, учителя, педагоги,
  классные руководители, заместители директора, МБОУ/МКОУ/МАОУ/ГБОУ, СОШ/ООШ, лицей,
  гимназия.

Weak keywords — a bare "центр"/ГБУ/ГАУ (institution) and "образовательн..." (director,
as in "образовательные организации") — count only when no strong keyword matched, so
"МКУ «Центр обеспечения деятельности образовательных организаций»" is municipal only.
"МОУ" alone is deliberately not classified: in the seeds it stands for the municipal
education authority (a typo of МОУО) while it usually means a municipal school.

An item's ``level`` is the highest level among its roles (region > municipality >
school); items whose executors are not recognised inherit the roadmap's level.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from roadmaps.audience import AppliesTo, default_for_level
from roadmaps.deadlines import Deadline, Period

ExecutorRole = Literal["director", "municipal", "regional", "institution"]
Level = Literal["region", "municipality", "school"]

ROLE_ORDER: tuple[ExecutorRole, ...] = ("director", "municipal", "regional", "institution")

_W = r"[а-яa-z0-9]*"  # rest of a word
_STRONG: dict[ExecutorRole, list[str]] = {
    "institution": [
        r"коиро",
        r"\bиро\b",
        r"институт" + _W + r" развития",
        r"кафедр",
        r"цппм",
        r"оцдик",
        r"\bцдик\b",
        r"кванториум",
        r"технопарк",
        r"академи",
        r"\bрцои\b",
        r"\bрцоко\b",
        r"цнппм",
        r"центр" + _W + r" развития",
        r"центр" + _W + r" диагностики",
    ],
    "regional": [
        r"министерств",
        r"департамент",
        r"правительств",
        r"региональн",
        r"минобр",
        r"минпрос",
    ],
    "municipal": [
        r"муниципальн"
        + _W
        + r"\b(?!\s+(?:бюджетн|казенн|автономн)"
        + _W
        + r"\s+(?:обще)?образовательн)",
        r"\bмоуо\b",
        r"отдел" + _W + r" образовани",
        r"управлени" + _W + r" образовани",
        r"комитет" + _W + r" (?:по )?образовани",
        r"местного самоуправления",
        r"\bмку\b",
        r"\bрмо\b",
        r"\bрмк\b",
        r"\bммс\b",
        r"\bимц\b",
        r"районн",
    ],
    "director": [
        r"школ",
        r"\bоо\b",
        r"директор",
        r"учител",
        r"педагог",
        r"классн" + _W + r" руковод",
        r"\b(?:мбоу|мкоу|маоу|гбоу|гоу|моау)\b",
        r"\b(?:сош|оош|нош)\b",
        r"лице[йя]",
        r"гимнази",
        r"муниципальн" + _W + r"\s+(?:бюджетн|казенн|автономн)" + _W + r"\s+(?:обще)?образовательн",
    ],
}
_WEAK: dict[ExecutorRole, list[str]] = {
    "institution": [r"центр", r"\bгбу\b", r"\bгау\b", r"\bгаоу\b"],
    "director": [r"образовательн" + _W + r" (?:организаци|учреждени)", r"общеобразовательн"],
}
_STRONG_RX = {role: [re.compile(p) for p in pats] for role, pats in _STRONG.items()}
_WEAK_RX = {role: [re.compile(p) for p in pats] for role, pats in _WEAK.items()}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("ё", "е")).strip()


def classify_executor(text: str) -> list[ExecutorRole]:
    """Roles mentioned in one executor string, in :data:`ROLE_ORDER`."""
    s = _norm(text)
    found = {role for role, rxs in _STRONG_RX.items() if any(rx.search(s) for rx in rxs)}
    if not found:
        found = {role for role, rxs in _WEAK_RX.items() if any(rx.search(s) for rx in rxs)}
    return [r for r in ROLE_ORDER if r in found]


def executor_roles(executors: list[str]) -> list[ExecutorRole]:
    found: set[ExecutorRole] = set()
    for e in executors:
        found.update(classify_executor(e))
    return [r for r in ROLE_ORDER if r in found]


def derive_level(roles: list[ExecutorRole], default: Level) -> Level:
    if {"regional", "institution"} & set(roles):
        return "region"
    if "municipal" in roles:
        return "municipality"
    if "director" in roles:
        return "school"
    return default


def split_executors(raw: str | None) -> list[str]:
    """Split an executors cell on commas, semicolons and newlines (not inside «» or ())."""
    if not raw:
        return []
    parts: list[str] = []
    buf: list[str] = []
    depth = 0
    for ch in raw:
        if ch in "«(":
            depth += 1
        elif ch in "»)" and depth:
            depth -= 1
        if ch in ",;\n\r" and depth == 0:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    out = []
    for p in parts:
        p = re.sub(r"\s+", " ", p).strip().lstrip("-–—•*·").strip().rstrip(".").strip()
        if p:
            out.append(p)
    return out


class RoadmapItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    number: str
    action: str
    deadline_text: str
    deadline: Deadline | None = None
    deadline_error: str | None = None
    executors: list[str] = Field(default_factory=list)
    executor_roles: list[ExecutorRole] = Field(default_factory=list)
    level: Level
    section: str | None = None
    indicator: str | None = None
    evidence: str | None = None
    row: int
    applies_to: AppliesTo | None = None  # None: as the roadmap

    def due_dates(self, within: Period) -> list[dt.date]:
        return self.deadline.due_dates(within) if self.deadline else []


class Milestone(BaseModel):
    """A completion target: at least ``min_percent`` of the roadmap done by ``date``."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    min_percent: int = Field(ge=0, le=100)
    max_percent: int | None = Field(default=None, ge=0, le=100)
    text: str
    item_number: str | None = None

    @model_validator(mode="after")
    def _check_range(self) -> Milestone:
        if self.max_percent is not None and self.max_percent < self.min_percent:
            raise ValueError("max_percent is below min_percent")
        return self


class Roadmap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    level: Level
    region: str | None = None
    municipality: str | None = None
    period: Period
    source: str | None = None  # the approving order, for people
    items: list[RoadmapItem] = Field(default_factory=list)
    milestones: list[Milestone] = Field(default_factory=list)
    applies_to: AppliesTo | None = None  # None: the default of the level (see roadmaps.audience)

    @model_validator(mode="after")
    def _check(self) -> Roadmap:
        if self.applies_to is None:
            self.applies_to = default_for_level(self.level)
        for m in self.milestones:
            if not self.period.contains(m.date):
                raise ValueError(f"milestone {m.date} is outside the period {self.period}")
        return self

    def item(self, number: str) -> RoadmapItem:
        for it in self.items:
            if it.number == number:
                return it
        raise KeyError(number)

    def audience(self, item: RoadmapItem) -> AppliesTo:
        """Whom the item applies to: its own ``applies_to``, else the roadmap's."""
        return item.applies_to or self.applies_to or default_for_level(self.level)

    def items_due(self, on_or_before: dt.date) -> list[RoadmapItem]:
        """Items with at least one due date on or before ``on_or_before``."""
        return [
            it for it in self.items if any(d <= on_or_before for d in it.due_dates(self.period))
        ]
