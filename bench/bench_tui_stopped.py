"""Key -> screen while one domain's QEMU is stopped (kill -STOP).

Real QEMU on the embedded lab: two domains with throttled block copies, the
real engine, the TUI headless at 120x35. Each sample presses a key that changes
the screen (toggle the event log, move the cursor) and waits until Textual has
processed it and gone idle (the next frame is composed). Measured side by side
in one run: first with both domains healthy, then with one QEMU stopped (its
monitor calls hang; the engine marks it unresponsive and keeps the rest live).

    .venv/bin/python bench/bench_tui_stopped.py [--presses 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from pathlib import Path

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from benchstats import summary_line  # noqa: E402

from jobtui.engine.monitor import JobMonitor  # noqa: E402
from jobtui.lab import DiskSpec, Lab, MiB  # noqa: E402
from jobtui.tui.app import JobTUI  # noqa: E402


async def presses(pilot: object, n: int) -> list[float]:
    out = []
    keys = ["e", "down", "e", "up"]
    for i in range(n):
        t0 = time.perf_counter()
        await pilot.press(keys[i % len(keys)])  # type: ignore[attr-defined]
        await pilot.pause()  # type: ignore[attr-defined]
        out.append((time.perf_counter() - t0) * 1000)
        await asyncio.sleep(0.05)
    return out


async def run(lab: Lab, monitor: JobMonitor, n: int, pid: int) -> dict[str, list[float]]:
    app = JobTUI(monitor)
    res: dict[str, list[float]] = {}
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.pause(3.0)
        res["healthy"] = await presses(pilot, n)
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 20
            while all(d.responsive for d in monitor.domains()):
                if time.monotonic() > deadline:
                    raise SystemExit("the stopped domain was never marked unresponsive")
                await pilot.pause(0.2)
            res["one QEMU stopped"] = await presses(pilot, n)
        finally:
            os.kill(pid, signal.SIGCONT)
    return res


async def pilot_floor(n: int) -> list[float]:
    """The same presses on an empty Textual app: the pilot's own idle waits."""
    from textual.app import App
    from textual.widgets import Static

    class Bare(App[None]):
        BINDINGS = [("e", "flip", ""), ("down", "flip", ""), ("up", "flip", "")]

        def compose(self):  # type: ignore[no-untyped-def]
            yield Static("x", id="s")

        def action_flip(self) -> None:
            s = self.query_one("#s", Static)
            s.update("y" if str(s.content) == "x" else "x")

    async with Bare().run_test(size=(120, 35)) as pilot:
        return await presses(pilot, n)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--presses", type=int, default=60)
    args = ap.parse_args()
    with Lab(prefix="jobtui-bench-") as lab:
        a = lab.domain("stuck", [DiskSpec("vda", lab.image("stuck", 256, 192))])
        b = lab.domain("live", [DiskSpec("vda", lab.image("live", 256, 192))])
        lab.start_copy(a, "vda", bandwidth=2 * MiB)
        lab.start_copy(b, "vda", bandwidth=2 * MiB)
        pid = int((lab.root / "run" / "qemu" / "stuck.pid").read_text())
        monitor = JobMonitor([lab.uri])
        monitor.start()
        try:
            res = asyncio.run(run(lab, monitor, args.presses, pid))
        finally:
            monitor.stop()
    res["bare Textual app"] = asyncio.run(pilot_floor(args.presses))
    print(f"key -> screen, {args.presses} presses each, TUI headless 120x35")
    for name, ms in res.items():
        print(summary_line(name, ms, width=16, q=0.99))
    ratio = statistics.median(res["one QEMU stopped"]) / statistics.median(res["healthy"])
    print(f"  stopped / healthy median ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
