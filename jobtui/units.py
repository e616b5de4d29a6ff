"""Units: the one parser of what a person types, and the one home of how sizes,
rates, percentages and durations are written, for the engine, the CLI, the TUI
and the job XML.

Plain Python (no libvirt, no Textual), so every front end accepts exactly the
same words and none has to load libvirt to check a typo. Binary units
throughout, as libvirt and virsh report sizes.
"""

from __future__ import annotations

import re

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

# virsh's scaled integers: K/KiB are 1024, KB is 1000 (virScaleInteger).
_SCALE = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kib": 1024,
    "kb": 1000,
    "m": 1024**2,
    "mib": 1024**2,
    "mb": 1000**2,
    "g": 1024**3,
    "gib": 1024**3,
    "gb": 1000**3,
    "t": 1024**4,
    "tib": 1024**4,
    "tb": 1000**4,
}
_BANDWIDTH = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*(?:/\s*s)?\s*$", re.IGNORECASE)


def parse_bandwidth(text: str | int) -> int:
    """`32M`, `32MiB/s`, `1048576` (bytes/s), `0` (unlimited) → bytes/s.

    Raises ValueError with a one-line message for a person.
    """
    if isinstance(text, int):
        if text < 0:
            raise ValueError(f"not a bandwidth: {text} (it cannot be negative)")
        return text
    m = _BANDWIDTH.match(text)
    if not m:
        raise ValueError(f"not a bandwidth: {text.strip()!r} (try 32M, 32MiB/s, 0 for unlimited)")
    number, unit = m.group(1), m.group(2).lower()
    if unit not in _SCALE:
        raise ValueError(
            f"not a bandwidth: {text.strip()!r} (unknown unit {m.group(2)!r};"
            " use K, M, G, KiB, MiB, GiB, ...)"
        )
    value = float(number) * _SCALE[unit]
    if value != int(value):
        raise ValueError(f"{text.strip()} is not a whole number of bytes/s")
    if value >= 2**63:
        raise ValueError(f"{text.strip()} is too large")
    return int(value)


# --- writing ---------------------------------------------------------------------------

_BINARY = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def number(value: int | float) -> str:
    """An integer as it is; a float without trailing zeros (`1.5`, `2`, `1e+20`)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def size(value: int | float) -> str:
    """Bytes to one decimal in the largest binary unit: `512 B`, `1.5 GiB`, `-3.0 MiB`."""
    sign, n = ("-" if value < 0 else ""), abs(value)
    if n < 1024:
        return f"{sign}{number(n)} B"
    for prefix in ("Ki", "Mi", "Gi", "Ti", "Pi"):
        n /= 1024
        if n < 1023.95:  # so rounding never prints "1024.0 KiB"
            return f"{sign}{n:.1f} {prefix}B"
    return f"{sign}{n / 1024:.1f} EiB"


def rate(bytes_per_second: int | float) -> str:
    """`32.0 MiB/s`."""
    return size(bytes_per_second) + "/s"


def size_short(value: float) -> str:
    """At most three digits, for narrow columns: `512 B`, `1.5 GiB`, `123 MiB`."""
    n = float(value)
    for unit in _BINARY:
        if abs(n) < 1024 or unit == _BINARY[-1]:
            if unit == "B" or abs(n) >= 100:
                # Three digits are plenty and keep rates within a 10-cell column.
                return f"{n:.0f} {unit}"
            return f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def mib(n: float | None) -> str:
    """In MiB whatever the size (`0.5 MiB`, `2048.0 MiB`): figures compared side by side
    in one message read best in one unit. `?` when unknown."""
    return "?" if n is None else f"{n / MiB:.1f} MiB"


def percent(fraction: float | None, unknown: str = "-") -> str:
    """`42%`; never `100%` for what is not all done (99.6 % is not done)."""
    if fraction is None:
        return unknown
    value = round(fraction * 100)
    return f"{min(value, 99) if fraction < 1.0 else value}%"


def duration_ms(ms: int | float) -> str:
    """libvirt's milliseconds: `40 ms`, `12.3 s`, `1m 23s`, `2h 05m`, `3d 04h`."""
    if ms < 0:
        return "-" + duration_ms(-ms)
    if ms < 1000:
        return f"{number(ms)} ms"
    if ms < 59_950:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(int(ms // 1000), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s"


def duration_short(seconds: float) -> str:
    """Whole seconds, for narrow columns: `42s`, `3m07s`, `2h05m`, `3d04h`."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def printable(name: str) -> str:
    """`name` with control characters written as escapes (`a\\nb` for a newline).

    libvirt accepts newlines, tabs and ESC in domain names; printed raw they split a
    table's rows, and an escape sequence would be sent to the terminal as a command."""
    if name.isprintable():
        return name
    out = []
    for ch in name:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)
