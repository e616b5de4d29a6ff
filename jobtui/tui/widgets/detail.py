"""The detail pane: one job's fields and stats with units, its rate, or its raw XML."""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.geometry import Region, Size
from textual.strip import Strip
from textual.widget import Widget
from textual.widgets import Label, Static

from jobtui.model import Domain, Job, JobState, StatValue, shown_rate
from jobtui.tui.format import DASH, elapsed, human_bytes, human_duration, human_rate, short_host
from jobtui.tui.store import RateTrack, eta, stale_note
from jobtui.tui.styles import Palette, palette
from jobtui.tui.widgets.drawn import changed_span
from jobtui.tui.widgets.field_grid import Field, Line, field_lines
from jobtui.tui.widgets.rate_line import RateLine, peak
from jobtui.units import percent, printable


def _label(key: str) -> str:
    return key.replace("_", " ")


def _fields(
    job: Job, domain: Domain | None, rate: float | None, now: float, pal: Palette
) -> list[Field]:
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
        ("elapsed", elapsed(job, now)),
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


ABOVE_FIELDS = 2  # the pane's title and rate line, a line each


class _LaidOutOnce:
    """A widget whose new virtual size, set by a layout of the screen, does not ask for
    another one. Textual sets it as a reactive that lays out again on change: the
    detail pane and its fields grow when a selected job's end overflows the pane, and
    each asked for a second layout of the whole screen (2-3 of them, ~15 ms each at
    120x35, for one event; docs/performance.md). The first layout already placed
    everything at that size, and the scrollbars still follow it (`_scroll_update`).

    A mixin, not a Widget: Textual gives each Widget subclass its own `can_focus`,
    which would hide the pane's (a scrollable container's) from the focus chain."""

    def _size_updated(
        self, size: Size, virtual_size: Size, container_size: Size, layout: bool = True
    ) -> bool:
        widget: Any = super()  # the Widget this is mixed into
        return bool(widget._size_updated(size, virtual_size, container_size, layout=False))


class FieldLines(_LaidOutOnce, Widget):
    """The job's fields (jobtui.tui.widgets.field_grid), drawn once per change and kept
    as lines, from which Textual paints: new figures repaint only the cells that
    changed (an elapsed time's digits), not the pane.

    It fills the pane below the title and the rate line (`min_lines`, worked out as the
    pane is laid out): fields that come and go within that height (a hint gone at READY,
    a stat that appears) change lines, not the widget's height, and a height change is
    what makes Textual lay out the whole screen."""

    DEFAULT_CSS = "FieldLines { height: auto; }"

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self.min_lines = 0
        self._fields: tuple[list[Field], list[str], Palette] = ([], [], palette(False))
        self._lines: list[Line] = []
        self._width = -1  # what _lines were drawn for

    def show(self, rows: list[Field], hints: list[str], pal: Palette) -> None:
        self._fields = (rows, hints, pal)
        width = self.size.width
        if width <= 0 or width != self._width:
            # Not laid out yet, or for another width: drawn when painted.
            self._width = -1
            self.refresh(layout=True)
            return
        old, new = self._lines, self._draw(width)
        self._lines = new
        if max(len(old), self.min_lines) != max(len(new), self.min_lines):
            self.refresh(layout=True)
            return
        for y in range(max(len(old), len(new))):
            a = old[y] if y < len(old) else []
            b = new[y] if y < len(new) else []
            span = changed_span(a, b) if a != b else None
            if span is not None:
                self.refresh(Region(span[0], y, span[1] - span[0], 1))

    def _draw(self, width: int) -> list[Line]:
        rows, hints, pal = self._fields
        if not rows and not hints:
            return []
        return field_lines(rows, hints, pal, width, self.app.console)

    def _lines_for(self, width: int) -> list[Line]:
        if width != self._width:
            self._lines, self._width = self._draw(width), width
        return self._lines

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        # In the same layout as the pane's: set from the pane's resize instead, it took a
        # second layout, and a screen taken between the two was laid out the other way.
        self.min_lines = max(0, container.height - ABOVE_FIELDS)
        return max(len(self._lines_for(width)), self.min_lines)

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        lines = self._lines_for(width)
        base = self.rich_style
        if y >= len(lines):
            return Strip.blank(width, base)
        return Strip(lines[y]).apply_style(base).adjust_cell_length(width, base)


class DetailPane(_LaidOutOnce, VerticalScroll):
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
        yield FieldLines(id="detail-fields")
        yield Static(id="detail-xml")

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
                self.query_one("#detail-fields", FieldLines).show([], [], pal)
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
        # (FieldLines counts them) and the width of the peak label. The title is one line
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
        self.query_one("#detail-fields", FieldLines).show(rows, hints or [], pal)
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
