"""SVG snapshots of the TUI over a RecordedSource (canned data, a clock that only moves
when told to, UTC): the same pixels on every machine. Update them after a deliberate change
with `pytest tests/test_tui_snapshots.py --snapshot-update` and look at the report.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC

import pytest

from jobtui import recorded
from jobtui.model import JobKey, JobState
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.domain_tree import DomainRef, DomainTree, HostRef
from jobtui.tui.widgets.job_table import JobTable

WIDE = (140, 40)


def make_app(source: RecordedSource) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC)


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


def prepared(
    source: RecordedSource,
    *,
    ticks: int = 5,
    then: Callable[[JobTUI], None] | None = None,
) -> Callable[..., Awaitable[None]]:
    """A run_before: wait for the first load, play `ticks` recorded seconds, then `then`."""

    async def run_before(pilot) -> None:
        app: JobTUI = pilot.app
        await app.wait_until_loaded()
        for _ in range(ticks):
            source.tick()
        await pilot.pause()
        app.flush_updates()
        if then is not None:
            then(app)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        app.flush_updates()
        await pilot.pause()

    return run_before


def test_empty_host(snap_compare):
    src = recorded.empty()
    assert snap_compare(make_app(src), terminal_size=(100, 24), run_before=prepared(src))


def test_running_jobs(snap_compare):
    src = recorded.busy()
    assert snap_compare(make_app(src), terminal_size=WIDE, run_before=prepared(src))


def test_ready_job_selected_with_detail(snap_compare):
    src = recorded.busy()

    def pick(app: JobTUI) -> None:
        app.query_one(JobTable).select(key_of(src, "copy-vda"))

    assert snap_compare(make_app(src), terminal_size=WIDE, run_before=prepared(src, then=pick))


def test_raw_xml(snap_compare):
    src = recorded.busy()

    def pick(app: JobTUI) -> None:
        app.query_one(JobTable).select(key_of(src, "copy-vda"))

    assert snap_compare(
        make_app(src), press=["x"], terminal_size=WIDE, run_before=prepared(src, then=pick)
    )


def test_confirm_abort_of_ready_copy(snap_compare):
    src = recorded.busy()

    def pick(app: JobTUI) -> None:
        app.query_one(JobTable).select(key_of(src, "copy-vda"))

    assert snap_compare(
        make_app(src), press=["a"], terminal_size=WIDE, run_before=prepared(src, then=pick)
    )


def test_help(snap_compare):
    src = recorded.busy()
    assert snap_compare(make_app(src), press=["question_mark"], run_before=prepared(src))


def test_event_log(snap_compare):
    src = recorded.busy()

    def transitions(app: JobTUI) -> None:
        save = key_of(src, "save")
        src.set_state(save, JobState.COMPLETED, current=src.job(save).end)
        src.tick()
        src.set_state(key_of(src, "dump"), JobState.FAILED, message="No space left on device")
        src.tick(120)  # pull-vdb reaches its end and completes

    assert snap_compare(
        make_app(src), press=["e"], terminal_size=WIDE, run_before=prepared(src, then=transitions)
    )


def test_unresponsive_domain(snap_compare):
    src = recorded.busy()
    mig = key_of(src, "migration-out")

    def pick(app: JobTUI) -> None:
        app.query_one(DomainTree).select_ref(DomainRef(mig.host, mig.domain_uuid))

    assert snap_compare(make_app(src), terminal_size=WIDE, run_before=prepared(src, then=pick))


def test_disconnected_host(snap_compare):
    src = recorded.busy()

    def pick(app: JobTUI) -> None:
        app.query_one(DomainTree).select_ref(HostRef(recorded.KVM2))

    assert snap_compare(make_app(src), terminal_size=WIDE, run_before=prepared(src, then=pick))


def test_80x24(snap_compare):
    src = recorded.busy()
    assert snap_compare(make_app(src), terminal_size=(80, 24), run_before=prepared(src))


def test_80x24_no_color(snap_compare, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_COLOR", "1")
    src = recorded.busy()
    assert snap_compare(make_app(src), terminal_size=(80, 24), run_before=prepared(src))
