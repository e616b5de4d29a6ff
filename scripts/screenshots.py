"""Render screenshots/*.svg from a real demo run (real QEMU, the demo's lab and jobs).

    sudo .venv/bin/python scripts/screenshots.py

The TUI runs headless at 120x36 on a JobMonitor over the demo's embedded lab; the
script presses keys as an operator would and saves what the screen shows.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jobtui.demo import Director  # noqa: E402
from jobtui.engine.history import History  # noqa: E402
from jobtui.engine.monitor import JobMonitor  # noqa: E402
from jobtui.lab import Lab  # noqa: E402
from jobtui.lab.hosts import TwoHosts  # noqa: E402
from jobtui.model import JobState  # noqa: E402
from jobtui.tui.app import JobTUI  # noqa: E402

OUT = ROOT / "screenshots"


async def wait_for(pilot: object, pred: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():  # type: ignore[operator]
            return
        await pilot.pause(0.25)  # type: ignore[attr-defined]
    raise SystemExit("timed out waiting for the demo's jobs")


async def shoot(lab: Lab, monitor: JobMonitor) -> None:
    app = JobTUI(monitor)
    async with app.run_test(size=(120, 36)) as pilot:

        def ready(domain: str, name: str) -> bool:
            job = monitor.find(domain, name)
            return job is not None and job.state is JobState.READY

        await wait_for(pilot, lambda: ready("db1", "commit-vda"), 90)
        await wait_for(pilot, lambda: monitor.find("batch1", "save") is not None, 90)
        await pilot.pause(1.5)
        app.save_screenshot(str(OUT / "overview.svg"))
        await wait_for(pilot, lambda: ready("web1", "copy-vda"), 90)
        await pilot.press("slash", *"web1 copy", "enter")
        await pilot.pause(1.5)
        app.save_screenshot(str(OUT / "ready-detail.svg"))
        await pilot.press("f")
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "confirm-finalize.svg"))
        await pilot.press("n", "escape", "e")
        await pilot.pause(1.0)
        app.save_screenshot(str(OUT / "event-log.svg"))
        await pilot.press("e", "question_mark")
        await pilot.pause(0.5)
        app.save_screenshot(str(OUT / "help.svg"))
        await pilot.press("escape")

        def migrating() -> bool:
            job = monitor.find("mover1", "migration-out")
            return job is not None and job.state is JobState.RUNNING and (job.progress or 0) > 0.3

        await wait_for(pilot, migrating, 120)
        await pilot.press("escape", "slash", *"migration-out", "enter")
        await pilot.pause(1.5)
        app.save_screenshot(str(OUT / "migration.svg"))


def main() -> None:
    OUT.mkdir(exist_ok=True)
    with Lab(prefix="jobtui-shots-", save_image_format="gzip") as lab, TwoHosts() as hosts:
        director = Director(lab, fail_demo=True)
        director.build()
        director.add_migration(hosts)
        director.start()
        monitor = JobMonitor(
            [lab.uri, hosts.a.uri, hosts.b.uri], history=History(lab.root / "history.sqlite3")
        )
        monitor.start()
        try:
            asyncio.run(shoot(lab, monitor))
        finally:
            monitor.stop()
            director.stop()
    for p in sorted(OUT.glob("*.svg")):
        print(p.relative_to(ROOT))


if __name__ == "__main__":
    main()
