"""Small statistics shared by the bench scripts (they run as scripts: this
directory is on sys.path)."""

from __future__ import annotations

import statistics
import subprocess


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


# Children start here, not in the repository: `python -m jobtui` puts its working
# directory first on sys.path, so a repository cwd would shadow a tree under test given
# on PYTHONPATH (an A/B run would compare the repository with itself).
NEUTRAL_CWD = "/"


def tree_under_test(python: str, environ: dict[str, str] | None = None) -> str:
    """The jobtui package a child started like the bench's children would import."""
    out = subprocess.run(
        [python, "-c", "import jobtui, os; print(os.path.dirname(jobtui.__file__))"],
        capture_output=True,
        text=True,
        check=True,
        cwd=NEUTRAL_CWD,
        env=environ,
    )
    return out.stdout.strip()
