"""How many libvirt calls a second does the engine make, idle and with jobs?

Real QEMU on the embedded lab: --domains domains with --disks disks each. The
engine's own call counters (JobMonitor.call_counts) are read over a window,
first with every domain idle, then with one throttled block job on each of
--active domains. The naive alternative (jobStats + blockJobInfo for every
disk of every domain every second) is printed beside it for scale.

    .venv/bin/python bench/bench_calls.py [--domains 30] [--disks 3] [--active 5] [--window 10]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from jobtui.engine.monitor import JobMonitor  # noqa: E402
from jobtui.lab import DiskSpec, Lab, MiB  # noqa: E402


def rate(monitor: JobMonitor, window: float) -> tuple[float, dict[str, int]]:
    before = monitor.call_counts()
    time.sleep(window)
    after = monitor.call_counts()
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    return sum(delta.values()) / window, delta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=30)
    ap.add_argument("--disks", type=int, default=3)
    ap.add_argument("--active", type=int, default=5)
    ap.add_argument("--window", type=float, default=10.0)
    args = ap.parse_args()
    targets = ["vda", "vdb", "vdc", "vdd"][: args.disks]
    with Lab(prefix="jobtui-bench-") as lab:
        doms = []
        for i in range(args.domains):
            disks = [
                DiskSpec(t, lab.image(f"d{i}-{t}", 64, 8 if j else 32))
                for j, t in enumerate(targets)
            ]
            doms.append(lab.domain(f"d{i}", disks))
        m = JobMonitor([lab.uri])
        m.start()
        m.wait_ready(60)
        time.sleep(3)
        idle, idle_calls = rate(m, args.window)
        for dom in doms[: args.active]:
            lab.start_copy(dom, "vda", bandwidth=1 * MiB)
        time.sleep(3)
        busy, busy_calls = rate(m, args.window)
        m.stop()
    naive = args.domains * (2 + args.disks)
    print(f"{args.domains} domains x {args.disks} disks, window {args.window:.0f} s")
    print(f"  idle:              {idle:6.1f} calls/s  {idle_calls}")
    print(f"  {args.active} jobs running:    {busy:6.1f} calls/s  {busy_calls}")
    print(f"  naive 1 s sweep:   {naive:6.1f} calls/s (state + jobStats + blockJobInfo per disk)")


if __name__ == "__main__":
    main()
