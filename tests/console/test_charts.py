"""The SVG bar charts: well-formed, every text escaped, bars in proportion."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from chronik.api.console.charts import Series, bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def test_a_chart_is_well_formed_svg_with_every_text_escaped() -> None:
    hostile = '<script>alert(1)</script> & "quotes"'
    chart = bar_chart(hostile, ["10:00", hostile], [Series(hostile, (1, 4)), Series("ended", (0, 2))])
    assert "<script>" not in chart
    root = ET.fromstring(str(chart))
    assert root.tag == f"{SVG}svg" and root.get("aria-label") == hostile
    assert root.findtext(f"{SVG}title") == hostile
    tips = [
        bar.findtext(f"{SVG}title") for bar in root.iter(f"{SVG}rect") if bar.find(f"{SVG}title") is not None
    ]
    assert tips == [f"10:00: 1 {hostile}", "10:00: 0 ended", f"{hostile}: 4 {hostile}", f"{hostile}: 2 ended"]
    heights = [
        float(bar.get("height") or 0)
        for bar in root.iter(f"{SVG}rect")
        if bar.find(f"{SVG}title") is not None
    ]
    assert heights[2] == max(heights) and heights[0] == pytest.approx(heights[2] / 4) and heights[1] == 0


def test_an_empty_chart_draws_no_bar_heights() -> None:
    root = ET.fromstring(str(bar_chart("nothing yet", ["a", "b"], [Series("created", (0, 0))])))
    assert all(rect.get("height") in ("0.0", "9") for rect in root.iter(f"{SVG}rect"))
    with pytest.raises(ValueError, match="one count per label"):
        bar_chart("bad", ["a"], [Series("x", (1, 2))])
