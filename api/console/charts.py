"""Bar charts as inline SVG, drawn on the server: no chart library, no script, nothing to load.

``bar_chart`` turns counts per bucket into one ``<svg>`` element. Every piece of text in it (the
title, labels, series names) is XML-escaped here, so the result is safe to insert into a page as
markup whatever the labels hold; the numbers are formatted by this module, never taken as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape, quoteattr

import msgspec
from markupsafe import Markup

from chronik._runtime.console_stats import Buckets

__all__ = ["Series", "bar_chart", "buckets_chart"]

_WIDTH, _HEIGHT = 640, 150
_LEFT, _RIGHT, _TOP, _BOTTOM = 34, 6, 8, 20
_COLOURS = ("#2456c9", "#1c7c3c", "#b42318", "#a15c00", "#6b4fbb")


class Series(msgspec.Struct, frozen=True):
    """One series of a chart: a name (shown in the legend and each bar's tooltip) and its counts."""

    name: str
    counts: tuple[int, ...]


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], *, tick_every: int = 1) -> Markup:
    """An SVG bar chart: one slot per label, the series' bars side by side in it.

    Args:
        title: What the chart shows; its accessible name and its ``<title>``.
        labels: Each slot's label (a bucket's time); every ``tick_every``-th is written under the axis,
            and every one is in its bars' tooltips.
        series: The counts, one per label each, drawn in the order given.
        tick_every: How often a label is written under the axis.
    """
    if any(len(one.counts) != len(labels) for one in series):
        raise ValueError("every series needs one count per label")
    top = max((count for one in series for count in one.counts), default=0)
    plot_width, plot_height = _WIDTH - _LEFT - _RIGHT, _HEIGHT - _TOP - _BOTTOM
    slot = plot_width / max(len(labels), 1)
    bar = slot * 0.8 / max(len(series), 1)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label={quoteattr(title)}>',
        f"<title>{escape(title)}</title>",
        f'<line x1="{_LEFT}" y1="{_TOP + plot_height}" x2="{_WIDTH - _RIGHT}" y2="{_TOP + plot_height}" '
        'stroke="#9aa3b2" stroke-width="1"/>',
        f'<text x="{_LEFT - 4}" y="{_TOP + 9}" text-anchor="end" font-size="10" fill="#5b6576">{top}</text>',
        f'<text x="{_LEFT - 4}" y="{_TOP + plot_height}" text-anchor="end" font-size="10" '
        'fill="#5b6576">0</text>',
    ]
    for index, label in enumerate(labels):
        x0 = _LEFT + index * slot + slot * 0.1
        for number, one in enumerate(series):
            count = one.counts[index]
            height = plot_height * count / top if top else 0.0
            tip = f"{label}: {count} {one.name}"
            parts.append(
                f'<rect x="{x0 + number * bar:.1f}" y="{_TOP + plot_height - height:.1f}" '
                f'width="{max(bar - 0.5, 0.5):.1f}" height="{height:.1f}" '
                f'fill="{_COLOURS[number % len(_COLOURS)]}"><title>{escape(tip)}</title></rect>'
            )
        if index % max(tick_every, 1) == 0:
            parts.append(
                f'<text x="{_LEFT + index * slot:.1f}" y="{_HEIGHT - 6}" font-size="10" '
                f'fill="#5b6576">{escape(label)}</text>'
            )
    legend_x = float(_WIDTH - _RIGHT)
    for number, one in reversed(list(enumerate(series))):
        legend_x -= 8 + 7 * len(one.name) + 14
        colour = _COLOURS[number % len(_COLOURS)]
        parts.append(f'<rect x="{legend_x:.1f}" y="{_TOP}" width="9" height="9" fill="{colour}"/>')
        parts.append(
            f'<text x="{legend_x + 12:.1f}" y="{_TOP + 8}" font-size="10" fill="#1d2430">'
            f"{escape(one.name)}</text>"
        )
    parts.append("</svg>")
    # Markup: every text above went through escape()/quoteattr(), and the rest is numbers.
    return Markup("".join(parts))


def buckets_chart(title: str, buckets: Buckets, *, label_format: str, tick_every: int) -> Markup:
    """``bar_chart`` of counts per bucket of time, each bucket labelled by its UTC start."""
    labels = [start.strftime(label_format) for start in buckets.starts]
    series = [Series(name, tuple(counts)) for name, counts in buckets.series.items()]
    return bar_chart(title, labels, series, tick_every=tick_every)
