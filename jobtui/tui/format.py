"""Numbers as an operator reads them in the TUI: sizes, rates, durations, progress bars.

The units and their writing are jobtui.units'; here is what the TUI adds (a dash
for the unknown, the compact forms its columns need). Every function here is pure
so table cells can be compared and only changed cells repainted.
"""

from __future__ import annotations

from jobtui.inventory import short_name
from jobtui.model import Job
from jobtui.units import duration_short, percent, size_short

DASH = "—"


def human_bytes(n: float | None) -> str:
    return DASH if n is None else size_short(n)


def human_rate(bytes_per_second: float | None) -> str:
    return DASH if bytes_per_second is None else f"{size_short(bytes_per_second)}/s"


def human_duration(seconds: float | None) -> str:
    return DASH if seconds is None or seconds < 0 else duration_short(seconds)


def elapsed(job: Job, now: float) -> str:
    """How long the job has run; `≥` when it was already running when first seen
    (libvirt keeps no start time for a block job)."""
    text = human_duration((job.finished or now) - job.started)
    return f"≥{text}" if job.started_before_seen and text != DASH else text


def progress_bar(fraction: float | None, width: int = 10) -> str:
    """`█████░░░░░  42%`: readable without colour (NO_COLOR, monochrome tmux)."""
    if fraction is None:
        return f"{'░' * width}    ?"
    filled = max(0, min(width, round(fraction * width)))
    # Never a full bar for what is not all done, as units.percent never says 100 %.
    # (A save's final figures can stop short of their total: the row says what they say.)
    if fraction < 1.0:
        filled = min(filled, width - 1)
    return f"{'█' * filled}{'░' * (width - filled)} {percent(fraction):>4}"


def short_host(uri: str, hostname: str = "") -> str:
    """A host as people call it: `hostname` (its hosts.toml name, when it has one), else
    the short-name rule of jobtui.inventory (`ssh:kvm1`, `system@hosta`, `embed:lab1`)."""
    return hostname or short_name(uri)
