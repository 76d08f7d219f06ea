"""The completion chart for `/status`: horizontal stacked bars by municipality, as a PNG.

A pure function of the rows: no database, no display (matplotlib's Agg canvas, no pyplot
and its global state, so it is safe to call from any thread).
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_PX = 1000
DPI = 100
BASE_HEIGHT_PX = 260  # title, legend and the axis
BAR_HEIGHT_PX = 46
MIN_HEIGHT_PX = 420
MAX_BARS = 30  # beyond this the rest is summed as «прочие»
MAX_HEIGHT_PX = BASE_HEIGHT_PX + BAR_HEIGHT_PX * MAX_BARS
OTHERS = "прочие"
FONT = "DejaVu Sans"  # bundled with matplotlib, has Cyrillic

# (field, legend label, colour): the order of the segments, left to right
SEGMENTS = (
    ("accepted", "принято", "#2e7d32"),
    ("submitted", "отправлено", "#1e88e5"),
    ("returned", "на доработке", "#fb8c00"),
    ("in_progress", "заполняется", "#fdd835"),
    ("not_started", "не начато", "#bdbdbd"),
)


@dataclass(frozen=True)
class StatusRow:
    municipality: str
    not_started: int = 0
    in_progress: int = 0
    submitted: int = 0
    returned: int = 0
    accepted: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, name) for name, _, _ in SEGMENTS)


def chart_height(bars: int) -> int:
    """Pixels for this many bars: grows with them, between MIN and MAX."""
    return max(MIN_HEIGHT_PX, min(MAX_HEIGHT_PX, BASE_HEIGHT_PX + BAR_HEIGHT_PX * bars))


def fold_rows(rows: Sequence[StatusRow], max_bars: int = MAX_BARS) -> list[StatusRow]:
    """At most ``max_bars`` rows in the given order; the rest summed into «прочие»."""
    rows = list(rows)
    for row in rows:
        negative = [name for name, _, _ in SEGMENTS if getattr(row, name) < 0]
        if negative:
            raise ValueError(f"{row.municipality}: negative count in {', '.join(negative)}")
    if len(rows) <= max_bars:
        return rows
    kept, rest = rows[: max_bars - 1], rows[max_bars - 1 :]
    others = StatusRow(
        f"{OTHERS} ({len(rest)})",
        **{name: sum(getattr(r, name) for r in rest) for name, _, _ in SEGMENTS},
    )
    return [*kept, others]


def render_status_chart(
    rows: Sequence[StatusRow], title: str = "Заполнение анкет по муниципалитетам"
) -> bytes:
    """The PNG bytes: one bar per municipality (top to bottom in the given order)."""
    # matplotlib costs the bot's start a noticeable time: loaded on the first chart only
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bars = fold_rows(rows)
    height = chart_height(len(bars))
    # fonts are looked up when texts are made: the whole figure inside the context
    with rc_context({"font.family": FONT}):
        figure = Figure(figsize=(WIDTH_PX / DPI, height / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(figure)
        _draw(figure, figure.add_subplot(), bars, title)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def write_status_chart(rows: Sequence[StatusRow], path: Path, title: str | None = None) -> Path:
    data = render_status_chart(rows) if title is None else render_status_chart(rows, title)
    path.write_bytes(data)
    return path


def _draw(figure: Figure, axes, bars: list[StatusRow], title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    figure.suptitle(title, fontsize=18, fontweight="bold")
    if not bars:
        axes.set_axis_off()
        axes.text(0.5, 0.5, "Нет данных", ha="center", va="center", fontsize=18)
        return
    labels = [textwrap.shorten(b.municipality, 48, placeholder="…") for b in bars]
    labels = ["\n".join(textwrap.wrap(label, 24)) for label in labels]
    positions = list(range(len(bars)))
    left = [0] * len(bars)
    widest = max(b.total for b in bars) or 1
    for name, label, colour in SEGMENTS:
        values = [getattr(b, name) for b in bars]
        container = axes.barh(positions, values, left=left, color=colour, label=label, height=0.7)
        shown = [str(v) if v and v / widest >= 0.06 else "" for v in values]
        axes.bar_label(container, labels=shown, label_type="center", fontsize=12)
        left = [a + b for a, b in zip(left, values, strict=True)]
    for position, bar in zip(positions, bars, strict=True):
        axes.text(bar.total + widest * 0.01, position, str(bar.total), va="center", fontsize=12)
    axes.set_yticks(positions, labels, fontsize=13)
    axes.invert_yaxis()  # the first municipality on top
    axes.set_xlim(0, widest * 1.08)
    axes.set_xlabel("Число школ", fontsize=13)
    axes.tick_params(axis="x", labelsize=12)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.spines[["top", "right"]].set_visible(False)
    figure.legend(loc="outside lower center", ncols=len(SEGMENTS), fontsize=12, frameon=False)
