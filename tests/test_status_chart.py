"""The status chart: a real PNG read back with Pillow."""

from __future__ import annotations

import io
import warnings

import pytest
from PIL import Image, ImageStat

from exports import status_chart
from exports.status_chart import (
    MAX_BARS,
    MAX_HEIGHT_PX,
    WIDTH_PX,
    StatusRow,
    chart_height,
    fold_rows,
    render_status_chart,
    write_status_chart,
)

ROWS = [
    StatusRow("Гурьевский муниципальный округ", 3, 2, 5, 1, 4),
    StatusRow("Неманский муниципальный округ", 0, 0, 0, 0, 0),
    StatusRow("Черняховский муниципальный округ Калининградской области", 10, 1, 1, 0, 0),
]
ACCEPTED_GREEN = (0x2E, 0x7D, 0x32)


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def render_quietly(rows, **kwargs) -> tuple[bytes, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = render_status_chart(rows, **kwargs)
    return data, [str(w.message) for w in caught]


def pixels_of(image: Image.Image, colour: tuple[int, int, int]) -> int:
    return sum(count for count, rgb in image.getcolors(maxcolors=1 << 20) if rgb == colour)


def test_png_opens_has_phone_size_and_is_not_blank():
    data, caught = render_quietly(ROWS)
    image = open_png(data)
    assert image.size == (WIDTH_PX, chart_height(3))
    assert image.size[0] == 1000
    stddev = ImageStat.Stat(image.convert("L")).stddev[0]
    assert stddev > 10, "the chart is blank"
    assert not [m for m in caught if "missing" in m.lower()], caught


def test_segments_are_drawn_in_proportion():
    def green(accepted: int) -> int:
        rows = [StatusRow("Южный район", 4 - accepted, 0, 0, 0, accepted)]
        return pixels_of(open_png(render_status_chart(rows)), ACCEPTED_GREEN)

    legend_only, half, whole = green(0), green(2), green(4)
    assert legend_only < 1000 < half
    assert 1.8 < (whole - legend_only) / (half - legend_only) < 2.2


def test_height_grows_with_municipalities_and_is_capped():
    small = open_png(render_status_chart(ROWS)).size[1]
    rows = [StatusRow(f"Район {i}", i, 1, 2, 0, i % 3) for i in range(12)]
    medium = open_png(render_status_chart(rows)).size[1]
    many = [StatusRow(f"Район {i}", i, 1, 2, 0, i % 3) for i in range(200)]
    capped = open_png(render_status_chart(many)).size
    assert small < medium < capped[1] == MAX_HEIGHT_PX
    assert capped[0] == WIDTH_PX


def test_beyond_the_cap_the_rest_is_summed_as_others():
    rows = [StatusRow(f"Район {i}", i, 1, 2, 3, 4) for i in range(MAX_BARS + 15)]
    folded = fold_rows(rows)
    assert len(folded) == MAX_BARS
    assert [r.municipality for r in folded[:-1]] == [f"Район {i}" for i in range(MAX_BARS - 1)]
    others = folded[-1]
    rest = rows[MAX_BARS - 1 :]
    assert others.municipality == f"прочие ({len(rest)})"
    assert others.not_started == sum(r.not_started for r in rest)
    assert (others.in_progress, others.submitted, others.returned, others.accepted) == (
        16,
        32,
        48,
        64,
    )
    assert sum(r.total for r in folded) == sum(r.total for r in rows)
    assert fold_rows(rows[:MAX_BARS]) == rows[:MAX_BARS]


def test_cyrillic_renders_with_dejavu_and_the_check_catches_a_font_without_it(monkeypatch):
    _, caught = render_quietly(ROWS, title="Готовность: Калининградская область")
    assert not [m for m in caught if "missing" in m.lower()], caught
    # the same check flags a font with no Cyrillic (Computer Modern ships with matplotlib)
    monkeypatch.setattr(status_chart, "FONT", "cmr10")
    _, caught = render_quietly(ROWS)
    assert [m for m in caught if "missing" in m.lower()]


def test_no_rows_is_a_chart_saying_no_data(tmp_path):
    path = write_status_chart([], tmp_path / "status.png")
    image = open_png(path.read_bytes())
    assert image.size == (WIDTH_PX, chart_height(0))
    assert ImageStat.Stat(image.convert("L")).stddev[0] > 5


def test_negative_counts_are_refused():
    with pytest.raises(ValueError, match="Южный"):
        render_status_chart([StatusRow("Южный район", -1, 0, 0, 0, 0)])
