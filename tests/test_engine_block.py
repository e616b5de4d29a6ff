"""The engine over real block jobs: discovery, the JOB_STATE stream, control, truth rules."""

from __future__ import annotations

import time

import libvirt
import pytest
from enginetools import Stream, wait_job
from labtools import wait_until

from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab, MiB
from jobtui.model import ControlOp, JobControlError, JobState, JobType


@pytest.fixture
def monitor(lab: Lab):
    m = JobMonitor([lab.uri], active_interval=0.5, idle_interval=1.0)
    m.start()
    assert m.wait_ready(20)
    yield m
    m.stop()


def test_copy_from_second_connection_is_found_and_finalized(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    stream = Stream(monitor)
    # Another client starts the job after the engine is running.
    other = libvirt.open(lab.uri)
    try:
        odom = other.lookupByName(domname)
        dest = lab.images / f"{domname}-copy.qcow2"
        odom.blockCopy(
            "vda",
            f"<disk type='file'><driver type='qcow2'/><source file='{dest}'/></disk>",
            {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: 32 * MiB},
            libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB,
        )
    finally:
        other.close()
    job = stream.wait_state(domname, "copy-vda", JobState.RUNNING, 10)
    assert job.type is JobType.BLOCK_COPY and job.config["disk"] == "vda"
    assert not job.started_before_seen  # seen to start: its start is known
    # An engine started later finds it running: libvirt keeps no start time for a block
    # job, so that one says its "started" is only when it first saw the job.
    later = JobMonitor([lab.uri], active_interval=0.5, idle_interval=1.0)
    later.start()
    try:
        assert later.wait_ready(20)
        seen = later.find(domname, "copy-vda")
        assert seen is not None and seen.started_before_seen and seen.started > job.started
        assert 'started-before-seen="yes"' in later.job_xml(seen.key)
    finally:
        later.stop()
    # Refused with a reason while it is still mirroring.
    running = monitor.find(domname, "copy-vda")
    with pytest.raises(JobControlError, match=r"not ready to finalize: \d+ % mirrored"):
        monitor.control(running.key, ControlOp.FINALIZE)
    ready = stream.wait_state(domname, "copy-vda", JobState.READY, 30)
    assert "ready='yes'" in dom.XMLDesc(0)
    assert ready.current == ready.end
    msg = monitor.control(ready.key, ControlOp.FINALIZE)
    assert "pivoted" in msg
    done = stream.wait_state(domname, "copy-vda", JobState.COMPLETED, 10)
    assert str(dest) in dom.XMLDesc(0)  # libvirt agrees: the disk uses the copy
    assert done.finished is not None
    assert stream.transitions(domname, "copy-vda") == [
        (None, "running"),
        ("running", "ready"),
        ("ready", "completed"),
    ]


def test_abort_pull_through_engine(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    stream = Stream(monitor)
    lab.start_pull(dom, "vda", bandwidth=2 * MiB)
    job = stream.wait_state(domname, "pull-vda", JobState.RUNNING, 10)
    assert job.type is JobType.BLOCK_PULL
    monitor.control(job.key, ControlOp.ABORT)
    stream.wait_state(domname, "pull-vda", JobState.ABORTED, 10)
    assert dom.blockJobInfo("vda", 0) == {}
    assert str(chain[0]) in dom.XMLDesc(0)  # the backing file is still needed
    assert stream.transitions(domname, "pull-vda") == [(None, "running"), ("running", "aborted")]


def test_set_speed_reaches_libvirt(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_pull(dom, "vda", bandwidth=1 * MiB)
    job = wait_job(monitor, lambda j: j.domain == domname and j.name == "pull-vda")
    assert "3.0 MiB/s" in monitor.control(job.key, ControlOp.SET_SPEED, bandwidth="3M")
    info = dom.blockJobInfo("vda", libvirt.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES)
    assert info["bandwidth"] == 3 * MiB
    wait_until(lambda: monitor.job(job.key).bandwidth == 3 * MiB, 10, "bandwidth in the job")
    with pytest.raises(JobControlError, match="not a bandwidth"):
        monitor.control(job.key, ControlOp.SET_SPEED, bandwidth="fast")
    monitor.control(job.key, ControlOp.ABORT)


def test_active_commit_ready_then_abort_keeps_top(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    stream = Stream(monitor)
    lab.start_active_commit(dom, "vda", bandwidth=64 * MiB)
    ready = stream.wait_state(domname, "commit-vda", JobState.READY, 30)
    assert ready.type is JobType.BLOCK_COMMIT_ACTIVE
    monitor.control(ready.key, ControlOp.ABORT)
    end = stream.wait_state(domname, "commit-vda", JobState.ABORTED, 10)
    assert "keeps its top" in end.message
    assert str(chain[-1]) in dom.XMLDesc(0)


def test_active_commit_pivoted_by_another_client_is_completed(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    stream = Stream(monitor)
    lab.start_active_commit(dom, "vda", bandwidth=64 * MiB)
    stream.wait_state(domname, "commit-vda", JobState.READY, 30)
    other = libvirt.open(lab.uri)  # as `virsh blockjob --pivot` would
    try:
        other.lookupByName(domname).blockJobAbort("vda", libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
    finally:
        other.close()
    end = stream.wait_state(domname, "commit-vda", JobState.COMPLETED, 10)
    assert end.message == "pivoted: the disk now uses the base it was committed into"
    xml = dom.XMLDesc(0)
    assert str(chain[0]) in xml and str(chain[-1]) not in xml  # libvirt agrees
    path = [new for _old, new in stream.transitions(domname, "commit-vda")]
    assert path == ["running", "ready", "completed"]


def test_commit_completes_with_final_progress(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    chain = lab.chain(domname, 3, 192, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    stream = Stream(monitor)
    lab.start_commit(dom, "vda", bandwidth=48 * MiB)
    done = stream.wait_state(domname, "commit-vda", JobState.COMPLETED, 30)
    assert done.type is JobType.BLOCK_COMMIT
    assert done.current == done.end and done.end
    assert str(chain[1]) not in dom.XMLDesc(0)
    # The disk's own (top) image is not what a commit below it reads: not its source.
    assert "source" not in done.config and done.config["disk"] == "vda"


def test_copy_to_full_filesystem_is_failed(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    full = lab.tmpfs(domname, 32)
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 96))])
    stream = Stream(monitor)
    lab.start_copy(dom, "vda", bandwidth=0, dest=full / "copy.qcow2")
    failed = stream.wait_state(domname, "copy-vda", JobState.FAILED, 20)
    # QEMU's own words (its BLOCK_JOB_COMPLETED event): libvirt's event has no text.
    assert failed.message == "QEMU reported an error: No space left on device", failed.message
    assert dom.isActive()


def test_push_backup_is_one_job_with_its_disks(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.domain(
        domname,
        [
            DiskSpec("vda", lab.image(f"{domname}-a", 128, 48)),
            DiskSpec("vdb", lab.image(f"{domname}-b", 128, 48)),
        ],
    )
    stream = Stream(monitor)
    targets = lab.start_backup(dom, ["vda", "vdb"], bandwidth=16 * MiB)

    def both_disks() -> bool:
        b = monitor.find(domname, "backup")
        return b is not None and set(str(b.config.get("disks", "")).split(",")) == {"vda", "vdb"}

    wait_until(both_disks, 15, "both disks folded into the backup")
    # Where each disk goes, from libvirt's own description of the backup.
    backup = monitor.find(domname, "backup")
    assert backup is not None and backup.config["mode"] == "push"
    assert {d: backup.config.get(f"{d}.target") for d in targets} == {
        d: str(p) for d, p in targets.items()
    }
    names = {j.name for j in monitor.jobs(domain=domname)}
    assert names == {"backup"}  # no separate per-disk block jobs
    done = stream.wait_state(domname, "backup", JobState.COMPLETED, 60)
    assert done.type is JobType.BACKUP
    assert done.stats["disk_total"] >= 96 * MiB
    assert done.current == done.end


def test_engine_reports_call_counts(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    lab.domain(domname)
    wait_until(lambda: monitor.call_counts().get("blockJobInfo", 0) > 0, 10, "a poll")
    counts = monitor.call_counts()
    assert counts["state"] >= 1 and counts["jobStats"] >= 1


def test_jobs_of_a_destroyed_domain_fail_with_the_reason(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    """libvirt sends no block job event when QEMU goes: the lifecycle event says why."""
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(
        domname,
        [DiskSpec("vda", chain[-1]), DiskSpec("vdb", lab.image(f"{domname}-b", 128, 64))],
    )
    stream = Stream(monitor)
    lab.start_pull(dom, "vda", bandwidth=2 * MiB)
    lab.start_copy(dom, "vdb", bandwidth=2 * MiB)
    stream.wait_state(domname, "pull-vda", JobState.RUNNING, 10)
    stream.wait_state(domname, "copy-vdb", JobState.RUNNING, 10)
    dom.destroy()
    for name in ("pull-vda", "copy-vdb"):
        job = stream.wait_state(domname, name, JobState.FAILED, 10)
        assert job.message == "the domain was destroyed while the job ran; it did not finish"
        assert job.current is not None and job.end and job.current < job.end
        # QEMU drains (pauses) its jobs while it shuts down, and a drain behind
        # throttled I/O can outlast the pause debounce: a short 'paused' is true, and
        # so is the 'running' QEMU reports when the drain ends before the process does.
        path = [new for _old, new in stream.transitions(domname, name)]
        assert path[0] == "running" and path[-1] == "failed", path
        assert set(path[1:-1]) <= {"paused", "running"}, path
    assert not dom.isActive()
    # Started again, the domain has no job and no old one comes back.
    dom.create()
    time.sleep(2.5)  # more than one poll of the running domain (idle_interval 1 s)
    assert dom.blockJobInfo("vda", 0) == {}
    jobs = monitor.jobs(domain=domname)
    assert sorted((j.name, str(j.state)) for j in jobs) == [
        ("copy-vdb", "failed"),
        ("pull-vda", "failed"),
    ]
