"""How long from an engine event to its row changing in the job table?

Runs the TUI headless over a RecordedSource with many running jobs, emits
progress and state events from a background thread (as the engine does), and
times each event from emit to the end of the batch (flush) that updated its
row. The source is canned data: this measures the UI, not libvirt.

    .venv/bin/python bench/bench_tui_events.py [--jobs 500] [--events 5000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import statistics
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from jobtui import recorded  # noqa: E402
from jobtui.model import JobKey, JobState  # noqa: E402
from jobtui.tui.app import JobTUI
from jobtui.tui.view import FlushReport  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def emit_events(source: recorded.RecordedSource, n: int, rate: float) -> list[tuple[JobKey, float]]:
    """Emit `n` events at about `rate` per second; return (job, perf_counter at emit)."""
    keys = [j.key for j in source.jobs()]
    sent: list[tuple[JobKey, float]] = []
    batch = max(1, int(rate / 100))  # emit in 10 ms slices, like a poller sweeping domains
    next_at = time.perf_counter()
    for i in range(n):
        key = keys[(i * 7919) % len(keys)]  # a stride, so successive events hit different rows
        job = source.job(key)
        assert job is not None and job.end is not None and job.current is not None
        t = time.perf_counter()
        if i % 50 == 0:
            # A state change: the tree relabels and the table re-sorts if it finishes.
            new = JobState.PAUSED if job.state is JobState.RUNNING else JobState.RUNNING
            source.set_state(key, new)
        else:
            # 2 % further, wrapping below 96 %, so the shown whole percent always changes
            # (a step of GiB // 100 is a hair under 1 %: 99.0 % -> 99.99 % both show 99 %,
            # and such an event has nothing new to show).
            source.progress(key, current=(job.current + job.end // 50) % (job.end * 96 // 100))
        sent.append((key, t))
        if (i + 1) % batch == 0:
            next_at += 0.01
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
    return sent


async def run(jobs: int, events: int, rate: float, interval: float, size: tuple[int, int]) -> None:
    source = recorded.many(jobs)
    flushes: list[FlushReport] = []
    app = JobTUI(source, clock=source.clock, coalesce=interval, on_flush=flushes.append)
    async with app.run_test(size=size) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.5)
        flushes.clear()
        result: list[list[tuple[JobKey, float]]] = []
        thread = threading.Thread(target=lambda: result.append(emit_events(source, events, rate)))
        started = time.perf_counter()
        thread.start()
        while thread.is_alive():
            await asyncio.sleep(0.05)
        emitted_for = time.perf_counter() - started
        # Until the last window has been painted: an app that fell behind paints late,
        # which the latencies show; only an event never painted is "never shown".
        seen, quiet_since = len(flushes), time.perf_counter()
        while time.perf_counter() - quiet_since < max(0.2, interval * 3):
            await pilot.pause(0.02)
            if len(flushes) != seen:
                seen, quiet_since = len(flushes), time.perf_counter()
            if time.perf_counter() - started > emitted_for + 10:
                break
    sent = result[0]

    touched_at: dict[JobKey, list[float]] = defaultdict(list)
    for f in flushes:
        for key in f.touched:
            touched_at[key].append(f.at)
    latencies: list[float] = []
    missed = 0
    for key, t in sent:
        times = touched_at[key]
        i = bisect.bisect_left(times, t)
        if i == len(times):
            missed += 1
        else:
            latencies.append(times[i] - t)
    took = [f.took for f in flushes if f.touched]

    ms = 1000.0
    print(f"jobtui TUI event latency — {jobs} jobs, {size[0]}x{size[1]}, coalescing {interval}s")
    per_s = len(sent) / emitted_for
    print(f"  events emitted   {len(sent)} in {emitted_for:.2f} s ({per_s:.0f}/s)")
    print(f"  batches applied  {len(took)} (avg {len(sent) / max(1, len(took)):.0f} events each)")
    print(
        f"  emit → row       median {statistics.median(latencies) * ms:.1f} ms, "
        f"p99 {pct(latencies, 0.99) * ms:.1f} ms, max {max(latencies) * ms:.1f} ms"
        + (f"  ({missed} never shown)" if missed else "")
    )
    print(
        f"  batch apply      median {statistics.median(took) * ms:.2f} ms, "
        f"p99 {pct(took, 0.99) * ms:.2f} ms, max {max(took) * ms:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--interval", type=float, default=0.04, help="UI coalescing window (s)")
    parser.add_argument("--size", default="160x50", help="terminal WxH")
    args = parser.parse_args()
    w, h = (int(x) for x in args.size.split("x"))
    asyncio.run(run(args.jobs, args.events, args.rate, args.interval, (w, h)))


if __name__ == "__main__":
    main()
