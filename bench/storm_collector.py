"""What Python's garbage collector costs the TUI in a storm: headless, 2000 recorded
jobs (jobtui.recorded, canned data), ~2000 progress events a second from a background
thread as a poller would make them, for `seconds`. Prints each generation's passes (count,
median, longest, total, in CPU time of the thread that ran them, so another thread
holding the interpreter meanwhile does not count) and how many objects the collector
still tracks outside the frozen ones at the end (what each full pass scans).

    .venv/bin/python bench/storm_collector.py 30

Run it with PYTHONPATH set to another tree's copy of jobtui/ to compare two trees.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import statistics
import sys
import threading
import time
from typing import Any

from jobtui import recorded
from jobtui.tui.app import JobTUI

PER_SLICE = 20  # events every 10 ms: ~2000 a second


class Pauses:
    def __init__(self) -> None:
        self.by_generation: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            took = (time.thread_time() - self._started) * 1000
            self.by_generation[info["generation"]].append(took)


def play(src: recorded.RecordedSource, seconds: float) -> None:
    keys = [j.key for j in src.jobs()]
    stream = itertools.cycle(keys)
    end = time.monotonic() + seconds
    due = time.monotonic()
    while time.monotonic() < end:
        for _ in range(PER_SLICE):
            key = next(stream)
            job = src.job(key)
            assert job is not None and job.current is not None and job.end
            src.progress(key, current=(job.current + job.end // 100) % job.end)
        due += 0.01
        time.sleep(max(0.0, due - time.monotonic()))


async def main(seconds: float) -> None:
    gc.disable()  # as the `jobtui` command starts its TUI (collected from the first frame)
    src = recorded.many(2000)
    app = JobTUI(src, freeze_gc=True)
    pauses = Pauses()
    async with app.run_test(size=(120, 35)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(1.0)
        gc.callbacks.append(pauses)
        player = threading.Thread(target=play, args=(src, seconds), daemon=True)
        player.start()
        while player.is_alive():
            await pilot.pause(0.1)
        tracked = len(gc.get_objects(0)) + len(gc.get_objects(1)) + len(gc.get_objects(2))
        gc.callbacks.remove(pauses)
    for generation, took in pauses.by_generation.items():
        if took:
            print(
                f"generation {generation}: {len(took)} passes, median "
                f"{statistics.median(took):.2f} ms, longest {max(took):.2f} ms, "
                f"total {sum(took):.0f} ms"
            )
        else:
            print(f"generation {generation}: no pass")
    print(f"objects tracked outside the frozen ones at the end: {tracked}")


if __name__ == "__main__":
    asyncio.run(main(float(sys.argv[1]) if len(sys.argv) > 1 else 30.0))
