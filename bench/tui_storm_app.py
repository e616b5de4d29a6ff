"""The real TUI over a RecordedSource with many running jobs, for bench_tui_terminal.py.

Runs in a terminal. A background thread plays a storm (`--rate` progress events per
second spread over every job, in 10 ms slices like a poller's sweep) during the
`--storm` seconds of every `--period`, quiet otherwise, and every `--marker` seconds
flips the first row's job between running and paused. Each flip's emit time
(time.time()) and new state are appended to `--log`, one `TIME STATE` line.

    .venv/bin/python bench/tui_storm_app.py --jobs 2000 --rate 2000 --log /tmp/marks
"""

from __future__ import annotations

import argparse
import gc
import itertools
import threading
import time
from pathlib import Path

from jobtui import recorded
from jobtui.model import JobState
from jobtui.tui.app import JobTUI


def play(src: recorded.RecordedSource, args: argparse.Namespace, stop: threading.Event) -> None:
    stop.wait(args.warmup)  # the app subscribes and draws its first frame meanwhile
    keys = [j.key for j in src.jobs()]
    marker = min(keys, key=lambda k: (k.domain_uuid, k.name))  # the first row (vm000)
    stream = (k for k in itertools.cycle(keys) if k != marker)
    log = Path(args.log)
    start = time.monotonic()
    next_mark = start + args.marker
    per_slice = max(1, int(args.rate / 100))
    next_slice = start
    while not stop.is_set():
        now = time.monotonic()
        phase = (now - start) % args.period
        if phase < args.storm:
            for _ in range(per_slice):
                key = next(stream)
                job = src.job(key)
                assert job is not None and job.current is not None and job.end is not None
                src.progress(key, current=(job.current + job.end // 100) % job.end)
        if now >= next_mark:
            job = src.job(marker)
            assert job is not None
            new = JobState.PAUSED if job.state is JobState.RUNNING else JobState.RUNNING
            t = time.time()
            src.set_state(marker, new)
            with log.open("a") as f:
                f.write(f"{t:.6f} {new.value} {'storm' if phase < args.storm else 'quiet'}\n")
            next_mark += args.marker
        next_slice += 0.01
        time.sleep(max(0.0, next_slice - time.monotonic()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=2000.0, help="events per second in a storm")
    ap.add_argument("--period", type=float, default=6.0)
    ap.add_argument("--storm", type=float, default=3.0, help="seconds of storm per period")
    ap.add_argument("--marker", type=float, default=0.37, help="seconds between state flips")
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    # As the `jobtui` command runs its TUI (jobtui.cli.entry): no collection until the
    # first frame, then what was made so far frozen out of later full collections.
    gc.disable()
    src = recorded.many(args.jobs)
    app = JobTUI(src, freeze_gc=True)
    stop = threading.Event()
    player = threading.Thread(target=play, args=(src, args, stop), daemon=True)

    player.start()
    try:
        app.run()
    finally:
        stop.set()


if __name__ == "__main__":
    main()
