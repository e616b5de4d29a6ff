"""What recording one finished job in the history costs, by SQLite's `synchronous` setting.

The engine records a job's end before it emits it, so this is on the event path. Rounds
alternate FULL (SQLite's default) and NORMAL on fresh files in DIR (default /var/tmp, a
real disk, not tmpfs), `records` records a round:

    .venv/bin/python bench/history_commit.py --rounds 3 --records 300 [DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import pct  # noqa: E402

from jobtui.engine.history import History  # noqa: E402
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType  # noqa: E402


def finished_job(n: int) -> Job:
    return Job(
        key=JobKey("qemu:///system", f"uuid-{n % 7}", "copy-vda", 1700000000.0 + n),
        domain=f"web{n % 7}",
        type=JobType.BLOCK_COPY,
        state=JobState.COMPLETED,
        config=FrozenMap(disk="vda", destination=f"/var/lib/copy-{n}.qcow2"),
        stats=FrozenMap(time_elapsed=1000 * n),
        current=n,
        end=n,
        finished=1700001000.0 + n * 10,
        message="done",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", nargs="?", default="/var/tmp")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--records", type=int, default=300)
    a = ap.parse_args()
    times: dict[str, list[float]] = {"FULL": [], "NORMAL": []}
    n = 0
    for _ in range(a.rounds):
        for mode, ts in times.items():
            with tempfile.TemporaryDirectory(dir=a.dir) as d:
                h = History(os.path.join(d, "history.sqlite3"))
                assert h._conn is not None
                h._conn.execute(f"PRAGMA synchronous = {mode}")
                for _ in range(a.records):
                    n += 1
                    job = finished_job(n)
                    t = time.perf_counter()
                    h.record(job)
                    ts.append((time.perf_counter() - t) * 1000)
                h.close()
    print("| synchronous | records | median | p99 | max |\n|---|---|---|---|---|")
    for mode, ts in times.items():
        p50, p99 = pct(ts, 0.5), pct(ts, 0.99)
        print(f"| {mode} | {len(ts)} | {p50:.2f} ms | {p99:.2f} ms | {max(ts):.2f} ms |")


if __name__ == "__main__":
    main()
