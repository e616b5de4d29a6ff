"""Keys on a real live migration between the two lab hosts: `b` sets its speed,
`c` (after a Yes) switches it to post-copy, and `a` is then no longer offered."""

from __future__ import annotations

import time

import pytest
from labtools import wait_until

from jobtui.engine.monitor import JobMonitor
from jobtui.lab.hosts import TwoHosts
from jobtui.model import JobState
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import JobTable

MiB = 1024 * 1024


async def until(pilot, pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def hosts():
    h = TwoHosts().start()
    try:
        yield h
    finally:
        h.close()


async def test_b_then_c_steer_a_live_migration(hosts: TwoHosts) -> None:
    name = "tui-mig"
    dom = hosts.filled_guest(name, 256, dirty_mib=64, rate_mib=32)
    mig = hosts.start_migration(dom, bandwidth_mib=8, postcopy=True, postcopy_bandwidth_mib=16)
    m = JobMonitor([hosts.uri_a, hosts.uri_b], active_interval=0.5, idle_interval=1.0)
    m.start()
    try:
        app = JobTUI(m)
        async with app.run_test(size=(120, 35)) as pilot:

            def out():
                j = m.find(name, "migration-out")
                return j if j is not None and j.host == hosts.uri_a and j.state.active else None

            job = await until(pilot, out, 20, "the migration-out row")
            table = app.query_one(JobTable)
            await until(pilot, lambda: table.select(job.key), 10, "its row")
            await pilot.pause()
            await pilot.press("b")
            await pilot.pause(0.3)
            await pilot.press(*"32M", "enter")
            # libvirt agrees: the migration's limit is now 32 MiB/s.
            await until(pilot, lambda: dom.migrateGetMaxSpeed(0) == 32, 10, "32 MiB/s")
            await until(
                pilot,
                lambda: (m.job(job.key).stats.get("memory_bps") or 0) > 16 * MiB,
                15,
                "memory_bps above the old limit",
            )
            assert app.check_action("abort", ())
            await pilot.press("c")
            await pilot.pause(0.3)
            await pilot.press("y")
            await until(
                pilot,
                lambda: m.job(job.key).config.get("postcopy") == "active",
                15,
                "post-copy shown",
            )
            # The source is paused, the guest runs on the destination; abort is gone.
            await until(pilot, lambda: dom.state()[0] == 3, 10, "the source paused")
            await pilot.pause(0.5)
            assert not app.check_action("abort", ())
        mig.wait(120)
        done = wait_until(
            lambda: (j := m.job(job.key)) is not None and j.state.finished and j,
            30,
            "the migration to finish",
        )
        assert done.state is JobState.COMPLETED
    finally:
        m.stop()
        hosts.remove(name)
