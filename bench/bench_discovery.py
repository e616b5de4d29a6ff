"""How fast does the engine see a job another client started?

Real QEMU on the embedded lab: a domain per trial, a block copy started on the
lab's own connection (not the engine's), and the time from `blockCopy()`
returning to the engine's first JobStateChanged(None -> running). Two paths,
measured side by side in one run:
  - events: a read-write connection, QEMU's JOB_STATUS_CHANGE events poke a poll;
  - polling: the same engine with QEMU events off (as on a read-only connection),
    idle domains polled every --idle seconds.

    .venv/bin/python bench/bench_discovery.py [--trials 15] [--idle 2.0]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
from pathlib import Path

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchstats import summary_line  # noqa: E402

from jobtui.engine.monitor import JobMonitor  # noqa: E402
from jobtui.lab import DiskSpec, Lab, MiB  # noqa: E402
from jobtui.model import JobStateChanged  # noqa: E402


def trial(lab: Lab, monitor: JobMonitor, name: str, idle: float) -> float:
    dom = lab.domain(name, [DiskSpec("vda", lab.image(f"{name}-a", 64, 32))])
    seen = threading.Event()
    stamp: list[float] = []

    def on(e: object) -> None:
        if isinstance(e, JobStateChanged) and e.old is None and e.job.domain == name:
            stamp.append(time.perf_counter())
            seen.set()

    unsub = monitor.subscribe(on)
    # Known and idle before the job starts, at a random phase of the polling cycle.
    time.sleep(1.0 + random.uniform(0.0, idle))
    lab.start_copy(dom, "vda", bandwidth=1 * MiB)
    t0 = time.perf_counter()
    ok = seen.wait(15)
    unsub()
    dom.blockJobAbort("vda", 0)
    lab.remove(name)
    if not ok:
        raise SystemExit(f"{name}: job not seen within 15 s")
    return stamp[0] - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=15)
    ap.add_argument("--idle", type=float, default=2.0)
    args = ap.parse_args()
    results: dict[str, list[float]] = {"events": [], "polling": []}
    with Lab(prefix="jobtui-bench-") as lab:
        monitors = {
            "events": JobMonitor([lab.uri], idle_interval=args.idle),
            "polling": JobMonitor([lab.uri], idle_interval=args.idle, qemu_events=False),
        }
        for m in monitors.values():
            m.start()
            m.wait_ready(20)
        for i in range(args.trials):
            for path in ("events", "polling"):  # interleaved: same machine load for both
                results[path].append(trial(lab, monitors[path], f"b{i}-{path[0]}", args.idle))
        for m in monitors.values():
            m.stop()
    print(f"discovery latency, {args.trials} trials per path, idle poll every {args.idle} s")
    for path, xs in results.items():
        ms = [x * 1000 for x in xs]
        print(summary_line(path, ms, width=8, q=0.9))
    ratio = statistics.median(results["polling"]) / statistics.median(results["events"])
    print(f"  polling / events median ratio: {ratio:.1f}x")


if __name__ == "__main__":
    main()
