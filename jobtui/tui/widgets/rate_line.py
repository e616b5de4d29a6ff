"""The detail pane's rate graph: one bar per second, newest on the right, from zero.

Textual's Sparkline stretches whatever it is given over its width and colours every
bar on its own: a graph fed four samples a second moved (and was sent to the terminal
again, one colour sequence per cell, ~1.5 KB) four times a second, and its x axis
meant "a sample", which is 0.25 s for the focused job and 1 s for the others. Here a
cell is a second (store.RateTrack bins the samples), the scale starts at zero so a
steady rate reads as a steady bar, and bars of one height share one colour run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import groupby

from rich.color import Color, blend_rgb
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

BARS = "▁▂▃▄▅▆▇█"


def peak(values: Iterable[float]) -> float | None:
    """The highest figure among `values` (NaN: a second without one); None if none."""
    return max((v for v in values if not math.isnan(v)), default=None)


def bar_levels(values: Sequence[float], width: int) -> list[int | None]:
    """The last `width` values as bar levels 0-7 on a scale from 0 to the peak of them
    all (the "max" the detail pane prints beside them, also when the pane is too narrow
    for every second), right-aligned; None where there is no second to show (yet) or no
    figure for it."""
    shown = list(values)[-width:] if width > 0 else []
    top_value = peak(values) or 0.0
    top = len(BARS) - 1
    pad: list[int | None] = [None] * (width - len(shown))
    return pad + [
        None
        if math.isnan(v)
        else (0 if top_value <= 0 else min(top, max(0, round(v / top_value * top))))
        for v in shown
    ]


class RateLine(Widget):
    COMPONENT_CLASSES = {"rate-line--low", "rate-line--high"}
    DEFAULT_CSS = """
    RateLine { height: 1; }
    RateLine > .rate-line--low { color: $primary 40%; }
    RateLine > .rate-line--high { color: $primary; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._values: tuple[float, ...] = ()

    @property
    def values(self) -> tuple[float, ...]:
        return self._values

    @values.setter
    def values(self, values: Sequence[float]) -> None:
        new = tuple(values)
        if new != self._values:
            self._values = new
            self.refresh()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y != 0 or width <= 0:
            return Strip.blank(width, base)
        low = self.get_component_rich_style("rate-line--low").color
        high = self.get_component_rich_style("rate-line--high").color
        top = len(BARS) - 1
        segments = []
        for level, run in groupby(bar_levels(self._values, width)):
            n = len(list(run))
            if level is None:
                segments.append(Segment(" " * n, base))
                continue
            color = high
            if low is not None and high is not None:
                mix = blend_rgb(low.get_truecolor(), high.get_truecolor(), level / top)
                color = Color.from_triplet(mix)
            segments.append(Segment(BARS[level] * n, base + Style(color=color)))
        return Strip(segments, width)
