"""How engine events reach the screen: at once when the screen is idle, coalesced in a
storm, none lost, and no frame when nothing on screen changed.

RecordedSource (canned data) and Textual's pilot. No assertion here is about time: a
sleep only ever makes the screen *more* idle, and frames are counted, not timed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from jobtui import recorded
from jobtui.model import JobKey, JobState
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.view import FlushReport
from jobtui.tui.widgets.detail import DetailPane
from jobtui.tui.widgets.job_table import JobTable
from jobtui.units import percent

SIZE = (140, 40)


def make_app(source: RecordedSource, **kw: Any) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC, **kw)


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


def cell(table: JobTable, key: JobKey, column: str) -> str:
    return str(table.get_cell(str(key), column))


@contextmanager
def frames(app: JobTUI) -> Iterator[list[object]]:
    """Every frame Textual composes for the terminal while inside (the screen's
    updates as handed to the driver; a headless run composes them too)."""
    seen: list[object] = []
    real = app._display

    def counting(screen: Any, renderable: Any) -> None:
        if renderable is not None:
            seen.append(renderable)
        real(screen, renderable)

    app._display = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        app._display = real  # type: ignore[method-assign]


async def quiet(app: JobTUI, pilot: Any) -> None:
    """Until the first frames after launch (layout, footer, tree) are all drawn."""
    for _ in range(30):
        with frames(app) as seen:
            await pilot.pause(0.3)
        if not seen:
            return
    raise AssertionError("the screen never stopped repainting")


def from_thread(fn: Any) -> None:
    """Run `fn` on another thread, as the engine's callbacks run."""
    thread = threading.Thread(target=fn)
    thread.start()
    thread.join()


def step(src: RecordedSource, key: JobKey) -> None:
    """A progress event: the job one percent further (around again at the end)."""
    job = src.job(key)
    assert job is not None and job.current is not None and job.end is not None
    src.progress(key, current=(job.current + job.end // 100) % job.end)


async def play(pilot: Any, storm: Any) -> None:
    """Run `storm` on an engine-like thread to its end, then let the last window close."""
    thread = threading.Thread(target=storm)
    thread.start()
    while thread.is_alive():
        await pilot.pause(0.05)
    await pilot.pause(0.3)


async def test_an_event_on_an_idle_screen_is_painted_without_waiting_for_a_tick():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    flushes: list[FlushReport] = []
    app = make_app(src, on_flush=flushes.append)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        table = app.query_one(JobTable)
        # Longer than the coalescing window: the screen is idle (a slow machine only
        # makes it idler).
        await pilot.pause(0.3)
        flushes.clear()
        end = src.job(pull).end
        from_thread(lambda: src.progress(pull, current=end // 2))
        await pilot.pause()
        # No flush_updates(), no batch tick: the hand-off itself painted it.
        assert cell(table, pull, "progress").endswith("50%")
        assert [f.touched for f in flushes] == [frozenset({pull})]


async def test_a_storm_loses_no_event_and_is_coalesced():
    src = recorded.many(2000)
    keys = [j.key for j in src.jobs()]
    flushes: list[FlushReport] = []
    app = make_app(src, on_flush=flushes.append)
    events = 6000

    def storm() -> None:
        for i in range(events):
            step(src, keys[(i * 7919) % len(keys)])

    async with app.run_test(size=(160, 50)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        flushes.clear()
        await play(pilot, storm)
        table = app.query_one(JobTable)
        shown = {k: cell(table, k, "progress") for k in keys}
        app.flush_updates()  # anything still pending would change the screen now
        assert {k: cell(table, k, "progress") for k in keys} == shown
    # What the user sees is the source's last word on every job: nothing lost.
    pal_free = {k: shown[k].split()[-1] for k in keys}
    for key in keys:
        job = src.job(key)
        assert job is not None and job.progress is not None
        assert pal_free[key] == f"{job.progress * 100:.0f}%"
    # Every job touched, in far fewer paints than events.
    assert set().union(*(f.touched for f in flushes)) == set(keys)
    assert len(flushes) < events / 20


async def test_nothing_is_redrawn_when_nothing_changed():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await quiet(app, pilot)
        job = src.job(pull)
        with frames(app) as seen:
            # Idle for more than one clock tick: the clock did not move, nothing did.
            await pilot.pause(1.3)
            # A poll that found nothing new: the same job again.
            from_thread(lambda: src.progress(pull, current=job.current))
            await pilot.pause()
            app.flush_updates()
            await pilot.pause()
        assert seen == []


async def test_a_progress_step_below_the_shown_precision_repaints_nothing():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        table = app.query_one(JobTable)
        # Another job is selected: its detail pane is not about `pull`.
        assert app.selected_job is not None and app.selected_job.key != pull
        await quiet(app, pilot)
        job = src.job(pull)
        before = cell(table, pull, "progress")
        with frames(app) as seen:
            # 4 KiB further out of gigabytes: the rounded percentage stays; the rate
            # column needs two samples at different times (the clock did not move).
            from_thread(lambda: src.progress(pull, current=job.current + 4096))
            await pilot.pause()
            app.flush_updates()
            await pilot.pause()
        assert cell(table, pull, "progress") == before
        assert seen == []


async def test_the_clock_repaints_only_what_moves_with_it():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        table = app.query_one(JobTable)
        active = [k for k in table.job_keys if src.job(k).state.active]
        finished = [k for k in table.job_keys if not src.job(k).state.active]
        assert active and finished
        before = {k: cell(table, k, "elapsed") for k in table.job_keys}
        src.clock.advance(1.0)
        app.flush_updates()
        after = {k: cell(table, k, "elapsed") for k in table.job_keys}
        assert all(after[k] != before[k] for k in active)
        assert all(after[k] == before[k] for k in finished)
        # A finished job selected: its detail pane does not move with the clock.
        assert table.select(finished[0])
        await pilot.pause()
        detail = app.query_one(DetailPane)
        shown = detail._shown
        src.clock.advance(1.0)
        app.flush_updates()
        assert detail._shown is shown


async def test_a_state_change_never_waits_for_a_progress_window():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    flushes: list[FlushReport] = []
    # A progress window that never closes by itself: only news may cut through it.
    app = make_app(src, coalesce=3600, on_flush=flushes.append)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        table = app.query_one(JobTable)
        end = src.job(pull).end
        # News first, and on screen: whatever the loading left queued goes with it, and
        # the window opens now (a loaded machine delivered the last of it late).
        from_thread(lambda: src.set_state(pull, JobState.PAUSED))
        for _ in range(200):
            if cell(table, pull, "state") == "paused":
                break
            await pilot.pause(0.05)
        from_thread(lambda: src.progress(pull, current=end * 45 // 100))
        await pilot.pause(0.1)
        assert not cell(table, pull, "progress").endswith("45%")  # held: the window is open
        from_thread(lambda: src.set_state(pull, JobState.RUNNING))
        for _ in range(200):  # a frame is 1/60 s; a loaded machine only takes longer
            if cell(table, pull, "state") == "running":
                break
            await pilot.pause(0.05)
        # The resume is on screen, and the progress that waited came with it.
        assert cell(table, pull, "state") == "running"
        assert cell(table, pull, "progress").endswith("45%")


async def test_news_in_a_progress_window_is_painted_without_the_other_jobs_figures():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    copy = next(j.key for j in src.jobs() if j.state is JobState.RUNNING and j.key != pull)
    # A progress window that never closes by itself.
    app = make_app(src, coalesce=3600)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        table = app.query_one(JobTable)
        from_thread(lambda: src.set_state(pull, JobState.PAUSED))  # opens the window
        for _ in range(200):
            if cell(table, pull, "state") == "paused":
                break
            await pilot.pause(0.05)
        end = src.job(pull).end
        from_thread(lambda: src.progress(pull, current=end * 45 // 100))
        await pilot.pause(0.1)
        from_thread(lambda: src.set_state(copy, JobState.PAUSED))
        for _ in range(200):
            if cell(table, copy, "state") == "paused":
                break
            await pilot.pause(0.05)
        # The other job's news is on screen; pull's figures still wait for the window:
        # a state change in a storm is one row's paint, not every figure's.
        assert cell(table, copy, "state") == "paused"
        assert not cell(table, pull, "progress").endswith("45%")
        # pull's own news takes its waiting figures with it, oldest first.
        from_thread(lambda: src.set_state(pull, JobState.RUNNING))
        for _ in range(200):
            if cell(table, pull, "state") == "running":
                break
            await pilot.pause(0.05)
        assert cell(table, pull, "progress").endswith("45%")


async def test_a_storm_with_state_changes_shows_every_jobs_last_word():
    src = recorded.many(600)
    keys = [j.key for j in src.jobs()]
    app = make_app(src)
    states = (JobState.PAUSED, JobState.RUNNING)

    def storm() -> None:
        for i in range(4000):
            key = keys[(i * 7919) % len(keys)]
            if i % 37 == 0:
                job = src.job(key)
                assert job is not None
                src.set_state(key, states[job.state is JobState.PAUSED])
            else:
                step(src, key)

    async with app.run_test(size=(160, 50)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        await play(pilot, storm)
        table = app.query_one(JobTable)
        for key in keys:
            job = src.job(key)
            assert job is not None and job.progress is not None
            assert cell(table, key, "state") == job.state.value
            assert cell(table, key, "progress").split()[-1] == percent(job.progress)
