"""Small statistics shared by the bench scripts (they run as scripts: this
directory is on sys.path)."""

from __future__ import annotations

import statistics


def pct(values: list[float], q: float) -> float:
    """The q-quantile by nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary_line(name: str, ms: list[float], *, width: int, q: float) -> str:
    """`  name  median … ms   pNN … ms   max … ms`"""
    label = f"p{round(q * 100)}"
    return (
        f"  {name:{width}} median {statistics.median(ms):7.1f} ms   {label} {pct(ms, q):7.1f} ms"
        f"   max {max(ms):7.1f} ms"
    )
