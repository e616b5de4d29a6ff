"""Units a person types: one parser for the engine, the CLI and the TUI.

Plain Python (no libvirt, no Textual), so every front end accepts exactly the
same words and none has to load libvirt to check a typo.
"""

from __future__ import annotations

import re

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
