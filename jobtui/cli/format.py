"""How jobs and events look on stdout: JSON for scripts, aligned text for people.

Pure functions of model objects, so the output is tested without libvirt.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich.cells import cell_len

from jobtui import units
from jobtui.inventory import short_name
from jobtui.model import HostChanged, HostState, Job, JobState, JobStateChanged, shown_rate

# The text table's widest column, in terminal cells: a longer name (a 200-character domain)
# is printed whole but sets no width, so it shifts its own row, not every row.
COLUMN_MAX = 40


def iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds")


def _json_value(value: Any) -> Any:
    # json.dumps would write NaN/Infinity, which is not JSON; a newer libvirt could send them.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_map(m: Mapping[str, Any]) -> dict[str, Any]:
    return {str(k): _json_value(v) for k, v in m.items()}


def _name(uri: str, names: Mapping[str, str] | None) -> str:
    return (names or {}).get(uri) or short_name(uri)


def job_to_dict(job: Job, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`names`: URI → host name (hosts.toml); a host without one gets its short_name."""
    return {
        "host": job.host,
        "host_name": _name(job.host, names),
        "domain": job.domain,
        "uuid": job.key.domain_uuid,
        "name": job.name,
        "type": str(job.type),
        "state": str(job.state),
        "current": job.current,
        "end": job.end,
        "progress": None if job.progress is None else round(job.progress, 4),
        "bandwidth": job.bandwidth,
        "started": iso(job.started),
        # libvirt keeps no start time for a block job: one already running when jobtui
        # first looked has the time it was seen as "started".
        "started_before_seen": job.started_before_seen,
        "finished": iso(job.finished),
        "config": _json_map(job.config),
        "stats": _json_map(job.stats),
        "message": job.message,
        "stalled": job.stalled,
        "qemu_id": job.qemu_id or None,
        "rate": job.rate,
        # When libvirt last answered with these figures, and whether they are still current.
        "sampled": iso(job.sampled),
        "stale": job.stale,
    }


def event_to_dict(e: JobStateChanged, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {
        "time": iso(e.time),
        "host": e.key.host,
        "host_name": _name(e.key.host, names),
        "domain": e.job.domain,
        "uuid": e.key.domain_uuid,
        "name": e.key.name,
        "type": str(e.job.type),
        "old": None if e.old is None else str(e.old),
        "new": str(e.new),
        "message": e.job.message,
    }


def host_event_to_dict(e: HostChanged, names: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A host lost or back, in the shape of a job's line: `type` "host", no domain or job,
    `new` "disconnected" (the reason in `message`) or "connected"."""
    lost = e.host.state is HostState.DISCONNECTED
    return {
        "time": iso(time.time()),
        "host": e.host.uri,
        "host_name": _name(e.host.uri, names),
        "domain": None,
        "uuid": None,
        "name": None,
        "type": "host",
        "old": "connected" if lost else "disconnected",
        "new": str(e.host.state),
        "message": (e.host.error or "no reason given") if lost else "",
    }


def event_line(e: JobStateChanged, names: Mapping[str, str] | None = None) -> str:
    """`2025-01-02 03:04:05.678 qemu:///system web1 copy-vda: running -> ready`

    With `names`, the host is shown by its name (`kvm1`) instead of its URI.
    """
    when = datetime.fromtimestamp(e.time).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    old = "new" if e.old is None else str(e.old)
    host = names.get(e.key.host, e.key.host) if names else e.key.host
    domain, name = units.printable(e.job.domain), units.printable(e.key.name)
    line = f"{when} {host} {domain} {name}: {old} -> {e.new}"
    if e.new.finished and e.job.message:
        line += f" ({units.printable(e.job.message)})"
    return line


def human_rate(bps: int | None) -> str:
    return "-" if bps is None else units.rate(bps)


def _column_width(cells: list[str]) -> int:
    """The widest cell (terminal cells: wide characters count two), if at most COLUMN_MAX."""
    return max((w for c in cells if (w := cell_len(c)) <= COLUMN_MAX), default=COLUMN_MAX)


def _pad(text: str, width: int, *, right: bool) -> str:
    gap = " " * max(0, width - cell_len(text))
    return gap + text if right else text + gap


def percent(job: Job) -> str:
    return units.percent(job.progress)


def rate_cell(job: Job, now: float) -> str:
    """The rate the TUI shows (a migration's: what libvirt says it sends); for figures
    that are not current, their age instead."""
    if job.state.finished or job.state is JobState.READY:
        return "-"
    if job.stale:
        return "stale" if job.sampled is None else f"stale {max(0, int(now - job.sampled))}s"
    rate = shown_rate(job, job.rate)
    return human_rate(None if rate is None else round(rate))


def job_table(
    jobs: Sequence[Job],
    *,
    show_host: bool,
    names: Mapping[str, str] | None = None,
    now: float | None = None,
) -> str:
    """An aligned table like virsh's: a header, a rule, one row per job."""
    at = time.time() if now is None else now
    header = ["Domain", "Job", "Type", "State", "Progress", "Rate", "Bandwidth"]
    rows = [
        [
            units.printable(j.domain),
            units.printable(j.name),
            str(j.type),
            str(j.state),
            percent(j),
            rate_cell(j, at),
            human_rate(j.bandwidth),
        ]
        for j in jobs
    ]
    if show_host:
        header.insert(0, "Host")
        for j, row in zip(jobs, rows, strict=True):
            row.insert(0, names.get(j.host, j.host) if names else j.host)
    widths = [_column_width([r[i] for r in [header, *rows]]) for i in range(len(header))]
    # Numbers read best right-aligned; the last column needs no trailing padding.
    right = {len(header) - 3, len(header) - 2, len(header) - 1}

    def fmt(cells: list[str]) -> str:
        parts = [
            _pad(c, w, right=i in right) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return " " + "   ".join(parts).rstrip()

    rule = "-" * (sum(widths) + 3 * (len(widths) - 1) + 2)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])
