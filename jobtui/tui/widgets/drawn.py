"""Drawn lines kept across moves, for the job table's cells and the tree's lines.

Textual's DataTable and Tree key their caches of drawn lines on a counter that any
row or node added, removed or moved bumps, so one new job drew every cell and every
line in view again (~30 ms of the ~40 ms a new job took to reach the screen). The
widgets here keep what they drew under what it shows instead. What a drawn line holds
of its place is the mouse metadata in its styles (the table's row, the tree's line):
a line that only moved is stamped with its new place, not drawn again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style

Lines = list[list[Segment]]


def restamp(segments: Iterable[Segment], meta: Mapping[str, Any]) -> list[Segment]:
    """`segments` with `meta` as their mouse metadata (other keys kept)."""
    stamp = Style.from_meta(dict(meta))
    return [
        Segment(text, style + stamp if style is not None else stamp, control)
        for text, style, control in segments
    ]


class Drawn:
    """What was last drawn in each slot (a cell, a line), by what it shows, with the
    place it was drawn for.

    A slot keeps one drawing: a cell drawn again because its text changed replaces
    the old drawing, which goes at once. Kept until a bound instead, the drawings a
    storm of progress replaced (tens of thousands of small objects) lived on, and
    every pass of the garbage collector scanned them: 40-60 ms pauses on screen
    (docs/performance.md, "Sixteenth pass"). What toggles back and forth (the cursor
    on a row, focus) belongs in the slot, not in the look, so both drawings stay."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._drawn: dict[Hashable, tuple[Hashable, Hashable, Any]] = {}

    def clear(self) -> None:
        self._drawn.clear()

    def get(
        self,
        slot: Hashable,
        look: Hashable,
        place: Mapping[str, Any],
        draw: Callable[[], Any],
        move: Callable[[Any, Mapping[str, Any]], Any],
    ) -> Any:
        """The drawing for `slot` showing `look` at `place`: kept, moved there
        (`move`), or `draw()`n."""
        where = tuple(place.items())
        kept = self._drawn.get(slot)
        if kept is not None and kept[0] == look:
            _look, at, drawing = kept
            if at == where:
                return drawing
            drawing = move(drawing, place)
        else:
            if kept is None and len(self._drawn) >= self._limit:
                # Slots of rows and nodes long gone: a bound, not the common case.
                self._drawn.clear()
            drawing = draw()
        self._drawn[slot] = (look, where, drawing)
        return drawing


def _cells(line: Iterable[Segment]) -> list[tuple[str, Style | None]]:
    cells: list[tuple[str, Style | None]] = []
    for text, style, control in line:
        if control:
            continue
        if text.isascii() and text.isprintable():
            cells += [(ch, style) for ch in text]  # one cell each: most of every line
            continue
        for ch in text:
            width = cell_len(ch)
            if width:
                cells.append((ch, style))
                cells.extend([("", style)] * (width - 1))  # a wide character's right half
    return cells


def changed_span(old: Iterable[Segment], new: Iterable[Segment]) -> tuple[int, int] | None:
    """The cells [start, end) that differ between two drawings of one line (None: the
    same), so only they are repainted. A wide character counts whole."""
    a, b = _cells(old), _cells(new)
    if a == b:
        return None
    n = max(len(a), len(b))
    a += [("\0", None)] * (n - len(a))  # cells one line does not reach differ
    b += [("\0", None)] * (n - len(b))
    start = next(i for i in range(n) if a[i] != b[i])
    end = next(i for i in range(n, start, -1) if a[i - 1] != b[i - 1])

    def half(cells: list[tuple[str, Style | None]], i: int) -> bool:
        return i < len(cells) and cells[i][0] == ""

    while start > 0 and (half(a, start) or half(b, start)):
        start -= 1  # not from inside a wide character
    while half(a, end) or half(b, end):
        end += 1
    return start, end
