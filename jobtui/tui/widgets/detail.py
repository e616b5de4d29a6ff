"""The detail pane: one job's fields and stats with units, its rate, or its raw XML."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Label, Sparkline, Static

from jobtui.jobxml import format_value
from jobtui.model import Domain, Job, JobState, StatValue
from jobtui.tui.format import DASH, human_bytes, human_duration, human_rate, short_host
from jobtui.tui.store import RateTrack, eta
from jobtui.tui.widgets.job_table import STATE_STYLE

# A value longer than this gets a row of its own instead of half a row (paths, messages).
_LONG = 28


def _label(key: str) -> str:
    return key.replace("_", " ")


def _fields(
    job: Job, domain: Domain | None, rate: float | None, now: float
) -> list[tuple[str, RenderableType]]:
    style = STATE_STYLE[job.state]
    state = Text(job.state.value, style=style)
    if job.stalled and job.state.active:
        state.append(" · stalled", style="bold yellow")
    if job.progress is None:
        progress = human_bytes(job.current)
    else:
        progress = (
            f"{human_bytes(job.current)} of {human_bytes(job.end)} ({job.progress * 100:.0f} %)"
        )
    dom = Text(job.domain)
    if domain is not None and not domain.responsive:
        dom.append(" ⚠ unresponsive", style="bold yellow")
    active = job.state.active
    rows: list[tuple[str, RenderableType]] = [
        ("state", state),
        ("type", job.type.value),
        ("progress", progress),
        ("rate", human_rate(rate) if active else DASH),
        ("ETA", "ready" if job.state is JobState.READY else human_duration(eta(job, rate))),
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
        rows.append(("message", Text(job.message, style="yellow" if active else style)))
    return rows


def _value(key: str, value: StatValue) -> str:
    return format_value(key, value)


def _grid(rows: list[tuple[str, RenderableType]], hints: list[str]) -> RenderableType:
    """Short values two pairs to a line; long ones (paths, messages) a line each."""
    short = [(k, v) for k, v in rows if len(str(v)) <= _LONG]
    long = [(k, v) for k, v in rows if len(str(v)) > _LONG]
    pairs = Table.grid(padding=(0, 1), expand=True)
    for _ in range(2):
        pairs.add_column(style="dim", justify="right", no_wrap=True, min_width=9)
        pairs.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
    for i in range(0, len(short), 2):
        cells: list[RenderableType] = []
        for k, v in short[i : i + 2]:
            cells += [k, v]
        pairs.add_row(*cells)
    wide = Table.grid(padding=(0, 1), expand=True)
    wide.add_column(style="dim", justify="right", no_wrap=True, min_width=9)
    wide.add_column(overflow="fold", ratio=1)
    for k, v in long:
        wide.add_row(k, v)
    for hint in hints:
        wide.add_row("not now", Text(hint, style="dim"))
    return Group(pairs, wide)


class DetailPane(VerticalScroll):
    """Scrollable, so a job with many stats still fits a 24-line terminal."""

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title")
        yield Static(id="detail-fields")
        with Horizontal(id="detail-rate"):
            yield Label("rate", id="detail-rate-label")
            yield Sparkline([], id="detail-spark")
            yield Label("", id="detail-rate-max")
        yield Static(id="detail-xml")

    def show_job(
        self,
        job: Job | None,
        *,
        domain: Domain | None = None,
        track: RateTrack | None = None,
        now: float = 0.0,
        hints: list[str] | None = None,
    ) -> None:
        title = self.query_one("#detail-title", Static)
        if job is None:
            title.update(Text("no job selected", style="dim"))
            self.query_one("#detail-fields", Static).update("")
            self.set_class(True, "-empty")
            return
        self.set_class(False, "-empty")
        title.update(
            Text.assemble(
                (job.name, "bold"),
                f" · {job.type} on ",
                (job.domain, "bold"),
                f" ({short_host(job.host)})",
            )
        )
        rate = track.rate if track is not None else None
        self.query_one("#detail-fields", Static).update(
            _grid(_fields(job, domain, rate, now), hints or [])
        )
        history = list(track.history) if track is not None else []
        self.query_one("#detail-spark", Sparkline).data = history
        peak = f"max {human_rate(max(history))}" if history else "no samples yet"
        self.query_one("#detail-rate-max", Label).update(peak)

    def show_xml(self, text: str, *, error: bool = False) -> None:
        xml = self.query_one("#detail-xml", Static)
        if error:
            xml.update(Text(text, style="red"))
        else:
            xml.update(Syntax(text.rstrip(), "xml", theme="ansi_dark", word_wrap=True))
