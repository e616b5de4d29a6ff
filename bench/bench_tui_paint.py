"""What one event costs to paint: a job that starts, becomes READY, and is aborted.

The TUI headless at 120x35 over the recorded source (canned jobs: this measures the
UI's drawing, not libvirt), 14 finished copies on screen as in bench_tui_terminal's
event scene; each round starts a copy on one of their domains, makes it READY, then
aborts it. Timed: each screen refresh Textual composes for the terminal (the
compositor's render of what changed), which widgets' lines it drew, and the app's own
work before it (folding the event into the store and the widgets: "apply").

With --selected the cursor is put on the new copy before it turns READY, as an
operator waiting to pivot it has it: the detail pane follows that job. With --reruns
each new job reruns a finished one (its name), as in bench_tui_terminal's scene, so
that an abort leaves it in its place among its domain's jobs.

    .venv/bin/python bench/bench_tui_paint.py [--rounds 14] [--selected] [--reruns]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import defaultdict
from datetime import UTC
from pathlib import Path
from typing import Any

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

from textual.screen import Screen  # noqa: E402
from textual.widget import Widget  # noqa: E402

from jobtui import recorded  # noqa: E402
from jobtui.model import Job, JobKey, JobState, JobStateChanged  # noqa: E402
from jobtui.tui.app import JobTUI  # noqa: E402
from jobtui.tui.view import JobView  # noqa: E402
from jobtui.tui.widgets.job_table import JobTable  # noqa: E402

PHASE = ["load"]
PAINTS: dict[str, list[float]] = defaultdict(list)
APPLIES: dict[str, list[float]] = defaultdict(list)
DRAWN: dict[tuple[str, str], float] = defaultdict(float)


def instrument() -> None:
    refresh, render = Screen._compositor_refresh, Widget.render_lines
    apply = JobView._apply_batch_now

    def timed_apply(view: JobView) -> None:
        t = time.perf_counter()
        apply(view)
        APPLIES[PHASE[0]].append((time.perf_counter() - t) * 1000)

    def timed_refresh(screen: Screen[Any]) -> None:
        dirty = bool(screen._dirty_widgets)
        t = time.perf_counter()
        refresh(screen)
        if dirty:
            PAINTS[PHASE[0]].append((time.perf_counter() - t) * 1000)

    def timed_render(widget: Widget, crop: Any) -> Any:
        t = time.perf_counter()
        lines = render(widget, crop)
        DRAWN[(PHASE[0], type(widget).__name__)] += (time.perf_counter() - t) * 1000
        return lines

    Screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
    Widget.render_lines = timed_render  # type: ignore[method-assign]
    JobView._apply_batch_now = timed_apply  # type: ignore[method-assign]


async def scene(rounds: int, selected: bool, reruns: bool = False) -> None:
    src = recorded.many(14, hosts=1)
    for job in src.jobs():
        src.set_state(job.key, JobState.ABORTED)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(120, 35)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.5)
        domains = src.jobs()
        latest = max(j.key.started for j in domains)
        if reruns:
            # Rerun each domain's first job by name: ended, the rerun stays first.
            firsts: dict[str, Job] = {}
            for j in sorted(domains, key=lambda j: j.name):
                firsts.setdefault(j.key.domain_uuid, j)
            domains = list(firsts.values())
        for i in range(rounds):
            like = domains[i % len(domains)]
            # A new job each round: later than any on screen, so it sorts first.
            name = like.name if reruns else "copy-vda"
            key = JobKey(like.key.host, like.key.domain_uuid, name, latest + 1 + i)
            job = like.evolve(key=key, state=JobState.RUNNING)
            PHASE[0] = "start"
            src.emit(JobStateChanged(key, None, JobState.RUNNING, job, src.clock()))
            await pilot.pause(0.3)
            if selected:
                PHASE[0] = "select"
                app.query_one(JobTable).select(key)
                await pilot.pause(0.3)
            PHASE[0] = "ready"
            src.set_state(key, JobState.READY)
            await pilot.pause(0.3)
            PHASE[0] = "abort"
            src.set_state(key, JobState.ABORTED)
            await pilot.pause(0.15)
            # Since session 19 an ended job's row is painted in place and moves 0.3 s
            # later (jobtui.tui.feed.SETTLE_AFTER): that second paint, counted apart.
            PHASE[0] = "settle"
            await pilot.pause(0.45)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--selected", action="store_true", help="the new copy under the cursor")
    ap.add_argument("--reruns", action="store_true", help="each new job reruns a finished one")
    args = ap.parse_args()
    instrument()
    asyncio.run(scene(args.rounds, args.selected, args.reruns))
    import jobtui

    print(f"jobtui under test: {Path(jobtui.__file__).parent}")
    head = f"{'event':6} {'paints':>6} {'median ms':>10} {'max ms':>8} {'apply ms':>9}"
    print(f"{head}   widgets drawn (ms, all paints)")
    for phase in ("start", "ready", "abort", "settle"):
        ms, applied = PAINTS[phase], APPLIES[phase]
        if not ms:
            print(f"{phase:6} {0:6}   (nothing painted)")
            continue
        top = sorted(((v, w) for (p, w), v in DRAWN.items() if p == phase), reverse=True)[:3]
        widgets = ", ".join(f"{w} {v:.0f}" for v, w in top)
        apply = statistics.median(applied) if applied else float("nan")
        print(
            f"{phase:6} {len(ms):6} {statistics.median(ms):10.1f} {max(ms):8.1f} {apply:9.1f}"
            f"   {widgets}"
        )


if __name__ == "__main__":
    main()
