"""The detail pane: one job's fields and stats with units, its rate, or its raw XML."""

from __future__ import annotations

from typing import Self

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region
from textual.widgets import Label, Static

from jobtui.model import Domain, Job, JobState, StatValue
from jobtui.tui.format import DASH, human_bytes, human_duration, human_rate, short_host
from jobtui.tui.store import RateTrack, eta, shown_rate, stale_note
from jobtui.tui.styles import Palette, palette
from jobtui.tui.widgets.drawn import changed_span
from jobtui.tui.widgets.rate_line import RateLine, peak
from jobtui.units import percent, printable

# A value longer than this gets a row of its own instead of half a row (paths, messages).
_LONG = 28
_LABEL = 9  # the narrowest label column


def _label(key: str) -> str:
    return key.replace("_", " ")


def _fields(
    job: Job, domain: Domain | None, rate: float | None, now: float, pal: Palette
) -> list[tuple[str, RenderableType]]:
    style = pal.state[job.state]
    state = Text(job.state.value, style=style)
    if job.stalled and job.state.active:
        state.append(" · stalled", style=pal.warn)
    if job.progress is None:
        progress = human_bytes(job.current)
    else:
        # The table's rounding (jobtui.units.percent): 511 of 512 MiB is not "100 %".
        progress = f"{human_bytes(job.current)} of {human_bytes(job.end)} ({percent(job.progress)})"
    dom = Text(printable(job.domain))
    if domain is not None and not domain.responsive:
        dom.append(" ⚠ unresponsive", style=pal.warn)
    active = job.state.active
    if job.stale and active:
        # Old figures say so: no rate or ETA, the age of the last sample instead.
        rate_cell: RenderableType = Text(stale_note(job, now), style=pal.warn)
        eta_cell: RenderableType = DASH
    else:
        rate_cell = human_rate(shown_rate(job, rate)) if active else DASH
        eta_cell = "ready" if job.state is JobState.READY else human_duration(eta(job, rate))
    rows: list[tuple[str, RenderableType]] = [
        ("state", state),
        ("type", job.type.value),
        ("progress", progress),
        ("rate", rate_cell),
        ("ETA", eta_cell),
        ("elapsed", human_duration((job.finished or now) - job.started)),
        ("bandwidth", human_rate(job.bandwidth) if job.bandwidth else "unlimited or unknown"),
        ("host", short_host(job.host)),
        ("domain", dom),
    ]
    if job.qemu_id:
        rows.append(("qemu job", job.qemu_id))
    for key, value in job.config.items():
        rows.append((_label(key), _value(key, value)))
    for key, value in job.stats.items():
        rows.append((_label(key), _value(key, value)))
    if job.message:
        rows.append(("message", Text(job.message, style=pal.warn if active else style)))
    return rows


def _value(key: str, value: StatValue) -> str:
    # Lazily: the XML layer loads lxml, which the TUI's first frame does not need.
    from jobtui.jobxml import format_value

    return format_value(key, value)


class FieldGrid:
    """Labelled values, two pairs to a line when there is room, one on a narrow terminal.

    A Rich renderable, so the layout is decided at render time from the real width.
    Long values (paths, messages) always get a line of their own, never an ellipsis.
    """

    def __init__(self, rows: list[tuple[str, RenderableType]], hints: list[str], pal: Palette):
        # A str cell of a Rich table is read as markup: a path or a libvirt error with
        # `[x]` in it would lose it, and one with `[/]` would crash the app.
        self.rows = [(k, Text(v) if isinstance(v, str) else v) for k, v in rows]
        self.hints = hints
        self.pal = pal

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        short = [(k, v) for k, v in self.rows if len(str(v)) <= _LONG]
        long = [(k, v) for k, v in self.rows if len(str(v)) > _LONG]
        # Two pairs to a line only if the longest label and value fit twice: an
        # ellipsis in a figure is worse than a longer pane (80 columns stay readable).
        label = max((cell_len(str(k)) for k, _v in short), default=0)
        value = max((cell_len(str(v)) for _k, v in short), default=0)
        pair = max(label, _LABEL) + 1 + value
        per_line = 2 if 2 * pair + 1 <= options.max_width else 1
        pairs = Table.grid(padding=(0, 1), expand=True)
        for _ in range(per_line):
            pairs.add_column(style=self.pal.muted, no_wrap=True, min_width=_LABEL)
            pairs.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        for i in range(0, len(short), per_line):
            cells: list[RenderableType] = []
            for k, v in short[i : i + per_line]:
                cells += [Text(k), v]
            pairs.add_row(*cells)
        wide = Table.grid(padding=(0, 1), expand=True)
        wide.add_column(style=self.pal.muted, no_wrap=True, min_width=_LABEL)
        wide.add_column(overflow="fold", ratio=1)
        for k, v in long:
            wide.add_row(Text(k), v)
        for hint in self.hints:
            wide.add_row("not now", Text(hint, style=self.pal.muted))
        yield pairs
        yield wide


class MinLines:
    """A renderable drawn at least `lines` lines tall (blank lines below it)."""

    def __init__(self, content: RenderableType, lines: int) -> None:
        self.content = content
        self.lines = lines

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        drawn = console.render_lines(self.content, options, pad=False)
        for line in drawn:
            yield from line
            yield Segment.line()
        for _ in range(self.lines - len(drawn)):
            yield Segment.line()


class LineStatic(Static):
    """A Static whose new content repaints only the lines that changed (a job's
    figures move a line or two at a time; the rest of the pane is not sent again).

    It is drawn at least `min_lines` tall: fields that come and go within that height
    (a hint gone at READY, a stat that appears) change lines, not the widget's height,
    and a height change is what makes Textual lay out the whole screen."""

    _hold_refresh = False
    min_lines = 0
    _content: RenderableType = ""

    def set_min_lines(self, lines: int) -> None:
        if lines != self.min_lines:
            self.min_lines = lines
            self.show(self._content, layout=True)

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._lines: list[list[Segment]] | None = None

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._hold_refresh and not regions and not layout and not recompose:
            return self
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def show(self, content: RenderableType, *, layout: bool) -> None:
        self._content = content
        if self.min_lines:
            content = MinLines(content, self.min_lines)
        width = self.content_region.width
        console = self.app.console
        lines = (
            console.render_lines(content, console.options.update_width(width), pad=False)
            if width > 0
            else None
        )
        old, self._lines = self._lines, lines
        if layout or lines is None or old is None or len(lines) != len(old):
            # As many lines as before keeps the pane's shape: no layout of the screen.
            self.update(content, layout=True)
            return
        self._hold_refresh = True
        try:
            self.update(content, layout=False)
        finally:
            self._hold_refresh = False
        for y, (a, b) in enumerate(zip(old, lines, strict=True)):
            span = changed_span(a, b) if a != b else None
            if span is not None:
                # Only the cells that changed (an elapsed time's digits), not the line.
                self.refresh(Region(span[0], y, span[1] - span[0], 1))


class DetailPane(VerticalScroll):
    """Scrollable, so a job with many stats still fits a 24-line terminal."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._shown: object = None  # what is on screen now: an unchanged job is not repainted
        self._heading: Text | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        # The rate above the fields: the fields fill the rest of the pane (min_lines),
        # so their line count can change without moving anything.
        with Horizontal(id="detail-rate"):
            yield Label("rate", id="detail-rate-label")
            yield RateLine(id="detail-spark")
            yield Label("", id="detail-rate-max")
        yield LineStatic(id="detail-fields")
        yield Static(id="detail-xml")

    def on_resize(self) -> None:
        # The title and the rate line take one line each.
        room = self.scrollable_content_region.height - 2
        self.query_one("#detail-fields", LineStatic).set_min_lines(max(0, room))

    def show_job(
        self,
        job: Job | None,
        *,
        domain: Domain | None = None,
        track: RateTrack | None = None,
        now: float = 0.0,
        hints: list[str] | None = None,
        empty: str = "no job selected",
    ) -> None:
        title = self.query_one("#detail-title", Static)
        pal = palette(self.app.no_color)
        if job is None:
            if self._shown != ("empty", empty, pal):
                self._shown = ("empty", empty, pal)
                # Every line keeps its place and size: the pane empties without a layout.
                self._heading = None
                title.update(Text(empty, style=pal.muted), layout=False)
                self.query_one("#detail-fields", LineStatic).show("", layout=False)
                self._show_rate(None)
            return
        rate = track.rate if track is not None else None
        rows = _fields(job, domain, rate, now, pal)
        history = list(track.history) if track is not None else []
        shown = (job.key, rows, hints or [], history, pal)
        if shown == self._shown:
            # Same text in every field (a poll that found nothing new): no repaint.
            return
        self._shown = shown
        # Only what changes the pane's shape lays out the screen: the fields' line count
        # (LineStatic counts them) and the width of the peak label. The title is one line
        # as wide as the pane, whatever it says. Otherwise only changed cells repaint.
        heading = Text.assemble(
            (printable(job.name), "bold"),
            f" · {job.type} on ",
            (printable(job.domain), "bold"),
            f" ({short_host(job.host)})",
        )
        if heading != self._heading:
            # Static.update repaints even the same text: a moving job's title was sent
            # to the terminal again at every poll.
            self._heading = heading
            title.update(heading, layout=False)
        self.query_one("#detail-fields", LineStatic).show(
            FieldGrid(rows, hints or [], pal), layout=False
        )
        self._show_rate(history)

    def _show_rate(self, history: list[float] | None) -> None:
        """The rate line: a bar per second and their peak (None: no job)."""
        self.query_one("#detail-rate-label", Label).update(
            "" if history is None else "rate", layout=False
        )
        self.query_one("#detail-spark", RateLine).values = history or []
        label = ""
        if history is not None:
            top = peak(history)
            label = f"max {human_rate(top)}" if top is not None else "no samples yet"
        # Its width is fixed (the CSS fits the widest peak): no layout.
        self.query_one("#detail-rate-max", Label).update(label, layout=False)

    def show_xml(self, text: str, *, error: bool = False) -> None:
        xml = self.query_one("#detail-xml", Static)
        if error:
            xml.update(Text(text, style=palette(self.app.no_color).alert))
        else:
            # Lazily: rich.syntax loads Pygments, which the first frame does not need.
            from rich.syntax import Syntax

            xml.update(Syntax(text.rstrip(), "xml", theme="ansi_dark", word_wrap=True))
