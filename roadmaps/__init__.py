"""Roadmaps («дорожные карты»): deadline parsing, the data model and imports (no DB, no bot)."""

from roadmaps.audience import AppliesTo, AppliesToError, parse_applies_to
from roadmaps.deadlines import Deadline, DeadlineParseError, Period, parse_deadline
from roadmaps.importer import (
    ImportResult,
    PeriodNotFound,
    RoadmapFormatError,
    RowProblem,
    import_xlsx,
    import_yaml,
    import_yaml_all,
    load_bundled,
)
from roadmaps.model import Milestone, Roadmap, RoadmapItem

__all__ = [
    "AppliesTo",
    "AppliesToError",
    "Deadline",
    "DeadlineParseError",
    "ImportResult",
    "Milestone",
    "Period",
    "PeriodNotFound",
    "Roadmap",
    "RoadmapFormatError",
    "RoadmapItem",
    "RowProblem",
    "import_xlsx",
    "import_yaml",
    "import_yaml_all",
    "load_bundled",
    "parse_applies_to",
    "parse_deadline",
]
