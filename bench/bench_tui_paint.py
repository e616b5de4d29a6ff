"""What one event costs to paint: a job that starts, becomes READY, and is aborted.

The TUI headless at 120x35 over the recorded source (canned jobs: this measures the
UI's drawing, not libvirt), 14 finished copies on screen as in bench_tui_terminal's
event scene; each round starts a copy on one of their domains, makes it READY, then
aborts it. Timed: each screen refresh Textual composes for the terminal (the
compositor's render of what changed), which widgets' lines it drew, and the app's own
work before it (folding the event into the store and the widgets: "apply"), each
layout of the whole screen (with the paint it ends with), and all of that for one
event ("event ms": what the UI thread spent between the event and its last frame).

With --selected the cursor is put on the new copy before it turns READY, as an
operator waiting to pivot it has it: the detail pane follows that job. With --reruns
each new job reruns a finished one (its name), as in bench_tui_terminal's scene, so
that an abort leaves it in its place among its domain's jobs. Each copy carries a real
one's paths and ends as the engine reports a real one (QEMU's job id, a message): with
--selected --height 33 its end overflows the detail pane, as a real copy's does at
120x35 in bench_tui_terminal.

    .venv/bin/python bench/bench_tui_paint.py [--rounds 14] [--selected] [--reruns] [--height N]
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
LAYOUTS: dict[str, list[float]] = defaultdict(list)
DRAWN: dict[tuple[str, str], float] = defaultdict(float)
# All the UI thread spent on one event (apply, layouts, paints), by (phase, round).
ROUND = [0]
EVENT: dict[tuple[str, int], float] = defaultdict(float)
NESTED = [0]  # inside a layout: its own paint is part of it


def instrument() -> None:
    refresh, render = Screen._compositor_refresh, Widget.render_lines
    layout = Screen._refresh_layout
    apply = JobView._apply_batch_now

    def timed_apply(view: JobView) -> None:
        t = time.perf_counter()
        apply(view)
        ms = (time.perf_counter() - t) * 1000
        APPLIES[PHASE[0]].append(ms)
        EVENT[(PHASE[0], ROUND[0])] += ms

    def timed_refresh(screen: Screen[Any]) -> None:
        dirty = bool(screen._dirty_widgets)
        t = time.perf_counter()
        refresh(screen)
        if dirty:
            ms = (time.perf_counter() - t) * 1000
            PAINTS[PHASE[0]].append(ms)
            if not NESTED[0]:
                EVENT[(PHASE[0], ROUND[0])] += ms

    def timed_layout(screen: Screen[Any], *args: Any, **kwargs: Any) -> None:
        # A layout of the whole screen, with the paint it ends with.
        t = time.perf_counter()
        NESTED[0] += 1
        try:
            layout(screen, *args, **kwargs)
        finally:
            NESTED[0] -= 1
        ms = (time.perf_counter() - t) * 1000
        LAYOUTS[PHASE[0]].append(ms)
        EVENT[(PHASE[0], ROUND[0])] += ms

    def timed_render(widget: Widget, crop: Any) -> Any:
        t = time.perf_counter()
        lines = render(widget, crop)
        DRAWN[(PHASE[0], type(widget).__name__)] += (time.perf_counter() - t) * 1000
        return lines

    Screen._compositor_refresh = timed_refresh  # type: ignore[method-assign]
    Widget.render_lines = timed_render  # type: ignore[method-assign]
    Screen._refresh_layout = timed_layout  # type: ignore[method-assign]
    JobView._apply_batch_now = timed_apply  # type: ignore[method-assign]


async def scene(rounds: int, selected: bool, reruns: bool = False, height: int = 35) -> None:
    src = recorded.many(14, hosts=1)
    for job in src.jobs():
        src.set_state(job.key, JobState.ABORTED)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(120, height)) as pilot:
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
            ROUND[0] = i
            like = domains[i % len(domains)]
            # A new job each round: later than any on screen, so it sorts first.
            name = like.name if reruns else "copy-vda"
            key = JobKey(like.key.host, like.key.domain_uuid, name, latest + 1 + i)
            # A copy's paths, as the engine reports a real one's: each is a line of
            # its own in the detail pane, which a selected copy's end then overflows.
            paths = {
                "destination": f"/var/lib/libvirt/images/{like.domain}-{name}-copy.qcow2",
                "source": f"/var/lib/libvirt/images/{like.domain}-{name}.qcow2",
            }
            job = like.evolve(key=key, state=JobState.RUNNING, config={**like.config, **paths})
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
            # As the engine reports a real copy's end: QEMU's job id and its message
            # (a line of its own) come with it: at 120x35 a selected copy's detail
            # then overflows its pane, as a real one does (bench_tui_terminal's).
            end = f"aborted after READY: {paths['destination']} is a consistent, usable copy"
            src.set_state(key, JobState.ABORTED, qemu_id=f"{name}-libvirt-1-format", message=end)
            await pilot.pause(0.15)
            # Since session 19 an ended job's row is painted in place and moves 0.3 s
            # later (jobtui.tui.feed.SETTLE_AFTER): that second paint, counted apart.
            PHASE[0] = "settle"
            await pilot.pause(0.45)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--selected", action="store_true", help="the new copy under the cursor")
    ap.add_argument("--height", type=int, default=35, help="terminal lines (width 120)")
    ap.add_argument("--reruns", action="store_true", help="each new job reruns a finished one")
    args = ap.parse_args()
    instrument()
    asyncio.run(scene(args.rounds, args.selected, args.reruns, args.height))
    import jobtui

    print(f"jobtui under test: {Path(jobtui.__file__).parent}")
    head = f"{'event':6} {'paints':>6} {'median ms':>10} {'max ms':>8} {'apply ms':>9}"
    print(f"{head} {'layouts':>7} {'event ms':>8} {'max':>6}   widgets drawn (ms, all paints)")
    for phase in ("start", "ready", "abort", "settle"):
        ms, applied = PAINTS[phase], APPLIES[phase]
        if not ms:
            print(f"{phase:6} {0:6}   (nothing painted)")
            continue
        top = sorted(((v, w) for (p, w), v in DRAWN.items() if p == phase), reverse=True)[:3]
        widgets = ", ".join(f"{w} {v:.0f}" for v, w in top)
        apply = statistics.median(applied) if applied else float("nan")
        laid = LAYOUTS[phase]
        spent = [v for (p, _r), v in EVENT.items() if p == phase]
        print(
            f"{phase:6} {len(ms):6} {statistics.median(ms):10.1f} {max(ms):8.1f} {apply:9.1f}"
            f" {len(laid):7} {statistics.median(spent):8.1f} {max(spent):6.1f}   {widgets}"
        )
    for phase, laid in LAYOUTS.items():
        if phase != "load" and laid:
            print(f"layouts in {phase}: {len(laid)}, median {statistics.median(laid):.1f} ms")


if __name__ == "__main__":
    main()
