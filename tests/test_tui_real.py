"""The TUI on the real engine and real QEMU: keys an operator presses, and what
libvirt ends up doing."""

from __future__ import annotations

import time

import libvirt
import pytest

from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab, MiB
from jobtui.model import JobState
from jobtui.support import Options
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import JobTable


async def until(pilot, pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        await pilot.pause(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture
def engine(lab: Lab):
    monitors: list[JobMonitor] = []

    def make(**kw) -> JobMonitor:
        m = JobMonitor([lab.uri], active_interval=0.5, idle_interval=1.0, **kw)
        m.start()
        monitors.append(m)
        return m

    yield make
    for m in monitors:
        m.stop()


async def select_job(app: JobTUI, pilot, domain: str, name: str, state: JobState | None = None):
    src = app.source

    def found():
        j = src.find(domain, name)
        return j if j is not None and (state is None or j.state is state) else None

    job = await until(pilot, found, 30, f"{domain}/{name} {state or ''}")
    table = app.query_one(JobTable)
    await until(pilot, lambda: table.select(job.key), 10, "its row in the table")
    await pilot.pause()
    assert app.selected_job is not None and app.selected_job.key == job.key
    return job


async def test_f_then_y_pivots_a_ready_copy(lab: Lab, domname: str, engine) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    dest = lab.start_copy(dom, "vda", bandwidth=64 * MiB)
    app = JobTUI(engine())
    async with app.run_test(size=(120, 35)) as pilot:
        job = await select_job(app, pilot, domname, "copy-vda", JobState.READY)
        await pilot.press("f")
        await pilot.pause(0.3)
        await pilot.press("y")
        await until(
            pilot, lambda: str(dest) in dom.XMLDesc(0), 10, "libvirt's live XML on the copy"
        )
        await until(
            pilot,
            lambda: app.source.job(job.key).state is JobState.COMPLETED,
            10,
            "the row completed",
        )


async def test_a_then_y_aborts_pull_and_a_then_n_changes_nothing(
    lab: Lab, domname: str, engine
) -> None:
    chain = lab.chain(domname, 2, 128, 64)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_pull(dom, "vda", bandwidth=1 * MiB)
    app = JobTUI(engine())
    async with app.run_test(size=(120, 35)) as pilot:
        await select_job(app, pilot, domname, "pull-vda", JobState.RUNNING)
        await pilot.press("a")
        await pilot.pause(0.3)
        await pilot.press("n")
        await pilot.pause(1.0)
        assert dom.blockJobInfo("vda", 0)  # still running: "n" changed nothing
        await pilot.press("a")
        await pilot.pause(0.3)
        await pilot.press("y")
        await until(pilot, lambda: dom.blockJobInfo("vda", 0) == {}, 10, "libvirt: no job")
        assert str(chain[0]) in dom.XMLDesc(0)  # aborted, not completed


async def test_read_only_offers_no_control(lab: Lab, domname: str, engine) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    lab.start_copy(dom, "vda", bandwidth=64 * MiB)
    app = JobTUI(engine(options=Options(readonly=True)))
    async with app.run_test(size=(120, 35)) as pilot:
        await select_job(app, pilot, domname, "copy-vda", JobState.READY)
        for action in ("abort", "finalize", "dismiss", "bandwidth", "pause_resume"):
            assert not app.check_action(action, ())
        shown = {b.binding.action for b in app.active_bindings.values() if b.enabled}
        assert not shown & {"abort", "finalize", "dismiss", "bandwidth"}
        await pilot.press("f")
        await pilot.press("y")
        await pilot.pause(1.0)
        assert "ready='yes'" in dom.XMLDesc(0)  # nothing pivoted
    dom.blockJobAbort("vda", 0)


async def test_table_follows_a_job_from_a_second_connection(lab: Lab, domname: str, engine) -> None:
    lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    app = JobTUI(engine())
    async with app.run_test(size=(120, 35)) as pilot:
        await pilot.pause(1.0)
        table = app.query_one(JobTable)
        assert not [k for k in table.job_keys if app.source.job(k).domain == domname]
        other = libvirt.open(lab.uri)  # another client, after the UI is up
        try:
            dest = lab.images / f"{domname}-other.qcow2"
            other.lookupByName(domname).blockCopy(
                "vda",
                f"<disk type='file'><driver type='qcow2'/><source file='{dest}'/></disk>",
                {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: 2 * MiB},
                libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB,
            )
        finally:
            other.close()
        key = await until(
            pilot,
            lambda: next(
                (
                    k
                    for k in table.job_keys
                    if k.name == "copy-vda" and app.source.job(k).domain == domname
                ),
                None,
            ),
            10,
            "the new job's row",
        )
        first = str(table.get_cell(str(key), "progress"))
        await until(
            pilot, lambda: str(table.get_cell(str(key), "progress")) != first, 15, "progress"
        )
    lab.conn.lookupByName(domname).blockJobAbort("vda", 0)


async def test_odd_names_reach_the_dialogs_as_written(lab: Lab, domname: str, engine) -> None:
    """Names and paths are text, never markup (libvirt takes `[b]` in a name): `[x]`
    must not vanish, `[/]` not crash, in the table and the dialogs alike."""
    odd = f"{domname} [x] [b]y"
    where = lab.images / "odd[" / "]dest"
    where.mkdir(parents=True)
    dom = lab.domain(odd, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    dest = where / "copy.qcow2"
    lab.start_copy(dom, "vda", bandwidth=1 * MiB, dest=dest)
    app = JobTUI(engine())
    try:
        async with app.run_test(size=(160, 40)) as pilot:
            await select_job(app, pilot, odd, "copy-vda", JobState.RUNNING)
            table = app.query_one(JobTable)
            drawn = [strip.text for strip in table.render_lines(table.region.reset_offset)]
            assert any(f" {odd} " in line for line in drawn), drawn  # not `t1 y`
            await pilot.press("a")
            await pilot.pause(0.3)
            shown = [str(label.render()) for label in app.screen.query("Label")]
            assert f"Abort copy-vda on {odd}?" in shown
            assert any(str(dest) in text for text in shown), shown
            await pilot.press("n")
            await pilot.pause(0.3)
            await pilot.press("b")
            await pilot.pause(0.3)
            shown = [str(label.render()) for label in app.screen.query("Label")]
            assert f"Bandwidth for copy-vda on {odd}" in shown
            await pilot.press("escape")
            await pilot.pause(0.3)
            app.notify(f"{odd} at {dest}")  # what an alert or a refusal would carry
            await pilot.pause(0.3)
        assert dom.blockJobInfo("vda", 0)  # "n" and Escape changed nothing
    finally:
        lab.remove(odd)
