"""The engine when QEMU stalls, disks vanish, jobs are paused behind libvirt's back."""

from __future__ import annotations

import json
import os
import signal
import time

import libvirt
import libvirt_qemu
import pytest
from enginetools import Stream
from labtools import wait_until

from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab, MiB
from jobtui.model import ControlOp, JobControlError, JobState
from jobtui.support import Options


def qemu_pid(lab: Lab, name: str) -> int:
    return int((lab.root / "run" / "qemu" / f"{name}.pid").read_text().strip())


def make_monitor(lab: Lab, **kw) -> JobMonitor:
    m = JobMonitor([lab.uri], active_interval=0.5, idle_interval=1.0, stuck_after=2.0, **kw)
    m.start()
    assert m.wait_ready(20)
    return m


def test_stopped_qemu_marks_domain_unresponsive_others_keep_updating(
    lab: Lab, domname: str
) -> None:
    other = domname + "-b"
    stuck_dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    live_dom = lab.domain(other, [DiskSpec("vda", lab.image(f"{other}-a", 384, 320))])
    m = make_monitor(lab)
    pid = qemu_pid(lab, domname)
    try:
        lab.start_copy(stuck_dom, "vda", bandwidth=1 * MiB)
        # Throttled mirrors move in 32 MiB steps: fast enough to see several.
        lab.start_copy(live_dom, "vda", bandwidth=16 * MiB)
        wait_until(lambda: m.find(domname, "copy-vda") and m.find(other, "copy-vda"), 10, "jobs")
        os.kill(pid, signal.SIGSTOP)
        t0 = time.monotonic()
        wait_until(
            lambda: any(d.name == domname and not d.responsive for d in m.domains()),
            15,
            "the stopped domain marked unresponsive",
        )
        assert time.monotonic() - t0 < 10
        before = m.find(other, "copy-vda").current
        wait_until(lambda: m.find(other, "copy-vda").current > before, 10, "the other job moving")
        assert all(d.responsive for d in m.domains() if d.name == other)
        stuck = m.find(domname, "copy-vda")
        with pytest.raises(JobControlError, match="not responding"):
            m.control(stuck.key, ControlOp.ABORT)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: all(d.responsive for d in m.domains() if d.name == domname), 40, "recovery")
    m.stop()
    lab.remove(other)


def _qmp(dom: libvirt.virDomain, cmd: str, **args) -> dict:
    return json.loads(
        libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": cmd, "arguments": args}), 0)
    )


def test_unplugged_disk_leaves_an_orphaned_job(lab: Lab, domname: str) -> None:
    dom = lab.domain(domname, [DiskSpec("sda", lab.image(f"{domname}-s", 128, 96), bus="scsi")])
    m = make_monitor(lab, options=Options(allow_qemu_monitor=True))
    stream = Stream(m)
    try:
        lab.start_copy(dom, "sda", bandwidth=2 * MiB)
        stream.wait_state(domname, "copy-sda", JobState.RUNNING, 10)
        _qmp(dom, "device_del", id="scsi0-0-0-0")  # what no public libvirt API allows
        orphan = stream.wait_state(domname, "copy-sda", JobState.ORPHANED, 10)
        assert "unplugged" in orphan.message
        assert orphan.qemu_id.startswith("copy-sda")
        # libvirt no longer sees the disk, QEMU still runs the job.
        with pytest.raises(libvirt.libvirtError):
            dom.blockJobInfo("sda", 0)
        jobs = _qmp(dom, "query-block-jobs")["return"]
        assert [j["device"] for j in jobs] == [orphan.qemu_id]
        msg = m.control(orphan.key, ControlOp.ABORT)
        assert "taint" in msg
        stream.wait_state(domname, "copy-sda", JobState.ABORTED, 10)
        # Concluded is what QEMU says first (and what ABORTED follows); libvirt, which
        # made the job, dismisses it from QEMU's list after that, later under load.
        wait_until(lambda: _qmp(dom, "query-block-jobs")["return"] == [], 10, "the dismiss")
    finally:
        m.stop()


def test_orphan_abort_is_refused_without_opt_in(lab: Lab, domname: str) -> None:
    dom = lab.domain(domname, [DiskSpec("sda", lab.image(f"{domname}-s", 128, 96), bus="scsi")])
    m = make_monitor(lab)
    stream = Stream(m)
    try:
        lab.start_copy(dom, "sda", bandwidth=2 * MiB)
        stream.wait_state(domname, "copy-sda", JobState.RUNNING, 10)
        _qmp(dom, "device_del", id="scsi0-0-0-0")
        orphan = stream.wait_state(domname, "copy-sda", JobState.ORPHANED, 10)
        with pytest.raises(JobControlError, match="taints the domain"):
            m.control(orphan.key, ControlOp.ABORT)
        assert _qmp(dom, "query-block-jobs")["return"]  # still running in QEMU
    finally:
        m.stop()


def test_pause_resume_opt_in_and_no_pivot_while_paused(lab: Lab, domname: str) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    m = make_monitor(lab, options=Options(allow_qemu_monitor=True))
    stream = Stream(m)
    try:
        lab.start_copy(dom, "vda", bandwidth=64 * MiB)
        ready = stream.wait_state(domname, "copy-vda", JobState.READY, 20)
        assert "tainted" in m.control(ready.key, ControlOp.PAUSE)
        paused = stream.wait_state(domname, "copy-vda", JobState.PAUSED, 10)
        assert any(j["paused"] for j in _qmp(dom, "query-block-jobs")["return"])
        # Pivoting a paused mirror hangs forever in QEMU: the engine refuses.
        with pytest.raises(JobControlError, match="resume it before finalizing"):
            m.control(paused.key, ControlOp.FINALIZE)
        m.control(paused.key, ControlOp.RESUME)
        wait_until(lambda: m.job(paused.key).state is JobState.READY, 10, "back to ready")
        assert not any(j["paused"] for j in _qmp(dom, "query-block-jobs")["return"])
        m.control(paused.key, ControlOp.FINALIZE)
        stream.wait_state(domname, "copy-vda", JobState.COMPLETED, 10)
    finally:
        m.stop()


def test_a_pause_made_by_another_client_is_seen_and_guards_the_pivot(
    lab: Lab, domname: str
) -> None:
    # Paused through QMP before this engine started (another client, or an earlier
    # jobtui process): libvirt says nothing of it, and a pivot would wait for ever
    # while libvirt holds the domain's job lock. With the opt-in, QEMU is asked.
    from jobtui.engine import control

    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    lab.start_copy(dom, "vda", bandwidth=64 * MiB)
    wait_until(lambda: dom.blockJobInfo("vda", 0).get("cur", -1) == dom.blockJobInfo("vda", 0)
               .get("end") > 0, 20, "mirrored")  # fmt: skip
    (qid,) = [j["device"] for j in _qmp(dom, "query-block-jobs")["return"]]
    wait_until(lambda: _qmp(dom, "query-block-jobs")["return"][0]["ready"], 20, "ready")
    _qmp(dom, "block-job-pause", device=qid)
    m = make_monitor(lab, options=Options(allow_qemu_monitor=True))
    try:
        job = wait_until(
            lambda: next(
                (j for j in m.jobs() if j.domain == domname and j.state is JobState.PAUSED),
                None,
            ),
            10,
            "the copy shown paused",
        )
        with pytest.raises(JobControlError, match="resume it before finalizing"):
            m.control(job.key, ControlOp.FINALIZE)
        # The engine's own check aside, the pivot itself asks QEMU first.
        with pytest.raises(JobControlError, match="paused in QEMU"):
            control.execute(
                dom, job.evolve(state=JobState.READY), ControlOp.FINALIZE, {}, ask_qemu=True
            )
        assert dom.blockJobInfo("vda", 0)  # libvirt still answers: no lock held
        m.control(job.key, ControlOp.RESUME)
        wait_until(lambda: m.job(job.key).state is JobState.READY, 10, "back to ready")
        m.control(job.key, ControlOp.FINALIZE)
        wait_until(lambda: m.job(job.key).state is JobState.COMPLETED, 15, "pivoted")
    finally:
        m.stop()


def test_a_job_started_through_qmp_stays_shown_as_qemu_says_and_is_cancelled_there(
    lab: Lab, domname: str
) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    (node,) = [b["inserted"]["node-name"] for b in _qmp(dom, "query-block")["return"]
               if "inserted" in b]  # fmt: skip
    target = lab.root / f"{domname}-qmp.qcow2"
    reply = _qmp(dom, "drive-mirror", **{"job-id": "ops-mirror", "device": node,
                 "target": str(target), "format": "qcow2", "sync": "full"})  # fmt: skip
    assert "error" not in reply, reply
    m = make_monitor(lab, options=Options(allow_qemu_monitor=True))
    try:
        job = wait_until(lambda: m.find(domname, "qemu-ops-mirror"), 10, "the QMP job")
        # QEMU's word on it: ready, once its mirror is in sync; and it stays listed.
        wait_until(lambda: m.job(job.key).state is JobState.READY, 20, "ready as QEMU says")
        time.sleep(3)
        assert m.job(job.key).state is JobState.READY
        assert [j["status"] for j in _qmp(dom, "query-jobs")["return"]] == ["ready"]
        assert "through the QEMU monitor" in m.control(job.key, ControlOp.ABORT)
        ended = wait_until(lambda: m.job(job.key).state.finished and m.job(job.key), 10, "end")
        assert ended.state is JobState.ABORTED
        assert not [j for j in _qmp(dom, "query-jobs")["return"] if j["status"] != "concluded"]
    finally:
        m.stop()


@pytest.mark.parametrize("qmp_cmd", ["block-job-cancel", "block-job-complete"])
def test_a_ready_copy_ended_through_qmp_is_not_called_pivoted_when_libvirt_did_not_switch(
    lab: Lab, domname: str, qmp_cmd: str
) -> None:
    """Another client ends libvirt's READY copy through QEMU's monitor: libvirt reports
    it completed either way, and its XML keeps the original image (QEMU stays on it
    after a cancel, switches alone after a complete). "pivoted: the disk now uses the
    copy" would be false for libvirt: the first XML read after the event says so."""
    src = lab.image(f"{domname}-a", 128, 32)
    dom = lab.domain(domname, [DiskSpec("vda", src)])
    m = make_monitor(lab)
    try:
        lab.start_copy(dom, "vda", bandwidth=0)
        job = wait_until(lambda: m.find(domname, "copy-vda"), 10, "the copy")
        wait_until(lambda: m.job(job.key).state is JobState.READY, 30, "ready")
        (qemu_job,) = _qmp(dom, "query-jobs")["return"]
        assert "error" not in _qmp(dom, qmp_cmd, device=qemu_job["id"])
        ended = wait_until(
            lambda: (j := m.job(job.key)) and "XML still names" in j.message and j,
            10,
            "the copy's end corrected by libvirt's XML",
        )
        assert ended.state is JobState.COMPLETED  # libvirt's own word
        assert f"still names {src} for vda, not the copy" in ended.message
        assert f"file='{src}'" in dom.XMLDesc(0)  # what libvirt says the disk is
    finally:
        m.stop()


def test_pause_refused_without_opt_in(lab: Lab, domname: str) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    m = make_monitor(lab)
    try:
        lab.start_pull(dom, "vda", bandwidth=1 * MiB)
        job = wait_until(lambda: m.find(domname, "pull-vda"), 10, "pull")
        with pytest.raises(JobControlError, match="taints the domain"):
            m.control(job.key, ControlOp.PAUSE)
        assert "custom monitor" not in " ".join(str(x) for x in dom.messages(0))
    finally:
        m.stop()


def test_polling_alone_finds_jobs_on_read_only_connection(lab: Lab, domname: str) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    m = JobMonitor([lab.uri], options=Options(readonly=True), idle_interval=1.0)
    m.start()
    try:
        assert m.wait_ready(20)
        stream = Stream(m)
        t0 = time.time()
        lab.start_copy(dom, "vda", bandwidth=2 * MiB)
        job = stream.wait_state(domname, "copy-vda", JobState.RUNNING, 5)
        # Within one idle polling interval (1 s), plus slack for a loaded 2-core machine.
        assert job.started - t0 < 1.0 + 1.0
        with pytest.raises(JobControlError, match="read-only"):
            m.control(job.key, ControlOp.ABORT)
        assert dom.blockJobInfo("vda", 0)  # still running
    finally:
        m.stop()
