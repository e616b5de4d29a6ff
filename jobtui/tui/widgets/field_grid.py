"""The detail pane's labelled values, laid out and drawn as lines of segments.

Two label/value pairs to a line when the longest of each fits twice, one on a narrow
pane; a long value (a path, a message) on a line of its own, wrapped under its label,
never cut. Drawn here rather than by a Rich table: the pane is drawn at every poll of
the selected job and at its every change of state, and a Rich table measured, wrapped
and padded every cell through its renderable protocol: 2-3 ms a drawing, the largest
part of the selected job's way to the screen (docs/performance.md). The layout is the
one that table gave (columns as wide as their widest label, the values sharing the
rest, the first value column taking the odd cell).
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

from jobtui.tui.styles import Palette

# A value longer than this gets a line of its own instead of half a line.
LONG = 28
LABEL = 9  # the narrowest label column

Line = list[Segment]
Field = tuple[str, RenderableType]


def field_lines(
    rows: Sequence[Field], hints: Sequence[str], pal: Palette, width: int, console: Console
) -> list[Line]:
    """`rows` (label, value) and the hints ("not now": why a key does nothing) as lines
    `width` cells wide."""
    # A str value is plain text, never markup: a path or a libvirt error with `[x]`
    # in it must show as it is.
    cells = [(k, Text(v) if isinstance(v, str) else v) for k, v in rows]
    texts = [(k, v) for k, v in cells if isinstance(v, Text)]
    if len(texts) != len(cells):
        return _by_rich(cells, hints, pal, width, console)
    short: list[tuple[str, Text]] = []
    long: list[tuple[str, Text]] = []
    for k, v in texts:
        (short if len(v.plain) <= LONG and "\n" not in v.plain else long).append((k, v))
    label = max((cell_len(k) for k, _v in short), default=0)
    value = max((cell_len(v.plain) for _k, v in short), default=0)
    pair = max(label, LABEL) + 1 + value
    per_line = 2 if 2 * pair + 1 <= width else 1
    wide = long + [("not now", Text(h, style=pal.muted)) for h in hints]
    labels = [_label_width([k for k, _v in short[c::per_line]]) for c in range(per_line)]
    rest = width - sum(w + 1 for w in labels)
    wide_label = _label_width([k for k, _v in wide])
    if rest < 2 * per_line or width - wide_label - 1 < 1:
        # Narrower than the labels: Rich squeezes the columns.
        return _by_rich(cells, hints, pal, width, console)
    muted = console.get_style(pal.muted)
    return _pairs(short, labels, rest, muted, console) + _wide(
        wide, wide_label, width, muted, console
    )


def _label_width(labels: Sequence[str]) -> int:
    return max([LABEL, *(cell_len(k) for k in labels)])


def _render(text: Text, console: Console) -> Line:
    """`text` as segments, its own style under its spans' (as Rich draws a Text)."""
    segments = list(text.render(console))
    if text.style:
        segments = list(Segment.apply_style(segments, console.get_style(text.style)))
    return segments


def _pairs(
    fields: list[tuple[str, Text]], labels: list[int], rest: int, muted: Style, console: Console
) -> list[Line]:
    """`rest`: the cells left for the values once each label column and the space after
    every column but the last are taken."""
    if not fields:
        return []
    per_line = len(labels)
    # The values share what is left, the first taking the odd cell.
    first = -(-rest // per_line)
    values = [first - 1, rest - first] if per_line == 2 else [rest]
    lines = []
    for i in range(0, len(fields), per_line):
        line: Line = []
        chunk = fields[i : i + per_line]
        for c in range(per_line):
            if c:
                line.append(Segment(" "))
            lw, vw = labels[c], values[c]
            if c >= len(chunk):
                line += [Segment(" " * (lw + 1), muted), Segment(" " * vw)]
                continue
            k, v = chunk[c]
            line.append(Segment(k + " " * (lw - cell_len(k) + 1), muted))
            cut = v.copy()
            cut.truncate(vw, overflow="ellipsis", pad=True)
            line += _render(cut, console)
        lines.append(line)
    return lines


def _wide(
    fields: list[tuple[str, Text]], lw: int, width: int, muted: Style, console: Console
) -> list[Line]:
    vw = width - lw - 1
    lines = []
    for k, v in fields:
        wrapped = v.wrap(console, vw, overflow="fold")
        for n, part in enumerate(wrapped):
            head = k if n == 0 else ""
            part.truncate(vw, pad=True)
            label = Segment(head + " " * (lw - cell_len(head) + 1), muted)
            lines.append([label, *_render(part, console)])
    return lines


def _by_rich(
    cells: Sequence[Field],
    hints: Sequence[str],
    pal: Palette,
    width: int,
    console: Console,
) -> list[Line]:
    """A value that is not text, or a pane too narrow for the columns: Rich's tables
    lay them out (squeezing the labels), in the same order."""
    from rich.table import Table

    short = [(k, v) for k, v in cells if len(str(v)) <= LONG]
    long = [(k, v) for k, v in cells if len(str(v)) > LONG]
    label = max((cell_len(str(k)) for k, _v in short), default=0)
    value = max((cell_len(str(v)) for _k, v in short), default=0)
    per_line = 2 if 2 * (max(label, LABEL) + 1 + value) + 1 <= width else 1
    pairs = Table.grid(padding=(0, 1), expand=True)
    for _ in range(per_line):
        pairs.add_column(style=pal.muted, no_wrap=True, min_width=LABEL)
        pairs.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    for i in range(0, len(short), per_line):
        row: list[RenderableType] = []
        for k, v in short[i : i + per_line]:
            row += [Text(k), v]
        pairs.add_row(*row)
    wide = Table.grid(padding=(0, 1), expand=True)
    wide.add_column(style=pal.muted, no_wrap=True, min_width=LABEL)
    wide.add_column(overflow="fold", ratio=1)
    for k, v in long:
        wide.add_row(Text(k), v)
    for hint in hints:
        wide.add_row("not now", Text(hint, style=pal.muted))
    options = console.options.update_width(width)
    return console.render_lines(pairs, options, pad=False) + console.render_lines(
        wide, options, pad=False
    )
