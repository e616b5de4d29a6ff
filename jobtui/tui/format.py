"""Numbers as an operator reads them: sizes, rates, durations, progress bars.

Binary units throughout, as libvirt and virsh report sizes. Every function here
is pure so table cells can be compared and only changed cells repainted.
"""

from __future__ import annotations

from jobtui.inventory import short_name

DASH = "—"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float | None) -> str:
    if n is None:
        return DASH
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            if unit == "B" or abs(value) >= 100:
                # Three digits are plenty and keep rates within a 10-cell column.
                return f"{value:.0f} {unit}"
            return f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_rate(bytes_per_second: float | None) -> str:
    if bytes_per_second is None:
        return DASH
    return f"{human_bytes(bytes_per_second)}/s"


def human_duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return DASH
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def progress_bar(fraction: float | None, width: int = 10) -> str:
    """`█████░░░░░  42%`: readable without colour (NO_COLOR, monochrome tmux)."""
    if fraction is None:
        return f"{'░' * width}    ?"
    filled = round(fraction * width)
    # Never draw a full bar for an unfinished job: 99.6 % is not done.
    if filled == width and fraction < 1.0:
        filled = width - 1
    return f"{'█' * filled}{'░' * (width - filled)} {fraction * 100:3.0f}%"


def short_host(uri: str, hostname: str = "") -> str:
    """A host as people call it: `hostname` (its hosts.toml name, when it has one), else
    the short-name rule of jobtui.inventory (`ssh:kvm1`, `system@hosta`, `embed:lab1`)."""
    return hostname or short_name(uri)
