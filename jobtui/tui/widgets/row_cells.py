"""What a job's row in the job table says: its cells (text and look), and what a
column sorts it by. The table (job_table.py) draws them; this holds no widget."""

from __future__ import annotations

import functools

from rich.cells import cell_len
from rich.text import Text

from jobtui.model import Job, JobState, shown_rate, transfer_rate
from jobtui.tui.format import DASH, elapsed, human_duration, human_rate, progress_bar
from jobtui.tui.store import eta, sort_key, stale_note
from jobtui.tui.styles import COLOR, Palette
from jobtui.units import printable

Cell = Text | str
Cells = dict[str, Cell]

# A domain (or job) name wider than this many terminal cells is cut with an ellipsis in
# the table (the detail pane shows it whole): a 200-character name must not push every
# other column off an 80-, 120- or 160-column screen.
DOMAIN_MAX = 20
# Columns whose order moves with progress or the clock alone: the rows are re-sorted
# whenever their figures change, not only when jobs come, go or finish.
MOVING = frozenset({"progress", "rate", "eta", "elapsed"})


def sort_value(column: str, job: Job, rate: float | None, now: float) -> tuple[object, ...]:
    """What `column` sorts a job by: the figure, not its text ("1.2G/s" > "512M/s"), an
    unknown figure last; ties go to the default order (active first, domain, name)."""
    value: object
    match column:
        case "domain":
            value = job.domain.lower()
        case "job":
            value = job.name.lower()
        case "type":
            value = job.type.value
        case "state":
            value = list(JobState).index(job.state)
        case "progress":
            value = job.progress
        case "rate":
            value = None if job.stale or not job.state.active else shown_rate(job, rate)
        case "eta":
            live = job.state is JobState.RUNNING and not job.stale
            value = eta(job, rate) if live else None
        case "elapsed":
            value = (job.finished or now) - job.started
        case "bandwidth":
            value = job.bandwidth
        case _:
            value = 0
    return (value is None, value if value is not None else 0, *sort_key(job))


def fit_cells(text: str, width: int) -> Cell:
    """`text` cut to `width` terminal cells (wide characters count two), "…" marking a cut;
    control characters (libvirt allows them in names) written as escapes. DataTable
    reads a str cell as markup with emoji codes: a domain named `db [b]1` showed as
    `db 1`, `db:zap:` as `db⚡` (and a `[/b]` would stop the TUI). A name that could be
    read so is a Text (no markup); the rest stay plain strings, which cost the garbage
    collector nothing (a storm rebuilds every row's cells)."""
    text = printable(text)
    if cell_len(text) > width:
        cut = Text(text, no_wrap=True)
        cut.truncate(width, overflow="ellipsis")
        text = cut.plain
    return Text(text) if "[" in text or ":" in text else text


def shown(cell: Cell) -> str:
    return cell.plain if isinstance(cell, Text) else cell


@functools.lru_cache(maxsize=2048)
def styled(text: str, style: str) -> Text:
    """One Text for each look a state or progress cell can have, shared by every row
    that shows it (never changed once made: DataTable only draws it). A storm rebuilds
    a row's cells at each figure; new Texts for them made six objects a row for the
    garbage collector, each time."""
    return Text(text, style=style)


def row_cells(job: Job, rate: float | None, now: float, pal: Palette = COLOR) -> Cells:
    style = pal.state[job.state]
    active = job.state.active
    transfer = transfer_rate(job)
    if transfer is not None and rate is not None:
        # Net progress can never beat what is sent; a new pass's jump would say so.
        rate = min(rate, transfer)
    if job.stale and active:
        # Not current (the domain or host does not answer): no figure, its age instead.
        rate_cell: Cell = Text(stale_note(job, now), style=pal.warn)
    elif job.stalled and active:
        rate_cell = Text("stalled", style=pal.warn)
    else:
        rate_cell = human_rate(shown_rate(job, rate)) if active else DASH
    if job.state is JobState.READY:
        eta_cell = "ready"
    else:
        live = active and not job.stale
        eta_cell = human_duration(eta(job, rate)) if live else DASH
    return {
        "domain": fit_cells(job.domain, DOMAIN_MAX),
        "job": fit_cells(job.name, DOMAIN_MAX),
        "type": job.type.value,
        "state": styled(job.state.value, style),
        "progress": styled(progress_bar(job.progress), style),
        "rate": rate_cell,
        "eta": eta_cell,
        "elapsed": elapsed(job, now),
        "bandwidth": human_rate(job.bandwidth),
    }
