"""Domain jobs (save, managed save, dump, backup) through the engine, on guests
whose RAM is full of real data, and the finished-job history."""

from __future__ import annotations

import os
import threading
import time

import libvirt
import pytest
from enginetools import Stream
from labtools import wait_until

from jobtui import jobxml
from jobtui.engine.history import History
from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab, MiB
from jobtui.model import ControlOp, DomainChanged, JobControlError, JobState, JobType


@pytest.fixture
def history(tmp_path):
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


@pytest.fixture
def monitor(lab: Lab, history: History):
    m = JobMonitor([lab.uri], history=history, active_interval=0.5, idle_interval=1.0)
    m.start()
    assert m.wait_ready(20)
    yield m
    m.stop()


def test_save_completes_with_final_stats(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.filled_domain(domname, 512)
    stream = Stream(monitor)
    bg = lab.start_save(dom)
    running = stream.wait_state(domname, "save", JobState.RUNNING, 10)
    assert running.type is JobType.SAVE
    done = stream.wait_state(domname, "save", JobState.COMPLETED, 60)
    bg.wait()
    assert bg.error is None
    # Final stats are JOB_COMPLETED's: real bytes moved.
    assert done.stats["memory_total"] >= 400 * MiB
    # Done is all of it, as libvirt counts it (nothing remaining), though the zero
    # pages QEMU only flags are not in data_processed.
    assert done.stats["data_remaining"] == 0
    assert done.current == done.end == done.stats["data_total"]
    assert stream.transitions(domname, "save") == [(None, "running"), ("running", "completed")]
    assert not dom.isActive()
    jobxml.validate(monitor.job_xml(done.key))


def test_restore_shows_as_a_restore_job_libvirt_does_not_list(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    dom = lab.filled_domain(domname, 512)
    stream = Stream(monitor)
    saved = lab.start_save(dom)
    stream.wait_state(domname, "save", JobState.COMPLETED, 60)
    saved.wait()
    assert saved.path is not None
    began = time.time()
    restoring = lab.start_restore(saved.path)
    # libvirt shows no job while QEMU loads the image: the domain waits, starting up.
    wait_until(lambda: dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED, 10, "restore under way")
    assert dom.state()[1] == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
    assert dom.jobStats()["type"] == libvirt.VIR_DOMAIN_JOB_NONE
    done = stream.wait_state(domname, "restore", JobState.COMPLETED, 60)
    restoring.wait()
    assert restoring.error is None and dom.isActive()
    assert done.type is JobType.RESTORE
    assert done.message == "restored; libvirt reports no progress for a restore"
    assert stream.transitions(domname, "restore") == [(None, "running"), ("running", "completed")]
    # It began with QEMU's incoming MIGRATION event, before the end event.
    assert done.finished is not None
    assert began <= done.started < done.finished
    jobxml.validate(monitor.job_xml(done.key))


def test_abort_save_keeps_domain_running(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.filled_domain(domname, 1024)
    stream = Stream(monitor)
    bg = lab.start_save(dom)
    running = stream.wait_state(domname, "save", JobState.RUNNING, 10)
    msg = monitor.control(running.key, ControlOp.ABORT)
    assert "aborted" in msg
    bg.wait()
    assert bg.error and "cancel" in bg.error
    end = stream.wait_state(domname, "save", JobState.ABORTED, 30)
    assert end.finished is not None
    assert dom.isActive()  # libvirt agrees: the domain kept running
    assert bg.path is not None and not bg.path.exists()


def test_managed_save_completes(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.filled_domain(domname, 512)
    stream = Stream(monitor)
    bg = lab.start_managed_save(dom)
    stream.wait_state(domname, "save", JobState.RUNNING, 10)
    stream.wait_state(domname, "save", JobState.COMPLETED, 60)
    bg.wait()
    assert dom.hasManagedSaveImage(0)


def test_core_dump_completes(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.filled_domain(domname, 512)
    stream = Stream(monitor)
    bg = lab.start_dump(dom)
    job = stream.wait_state(domname, "dump", JobState.RUNNING, 10)
    assert job.type is JobType.DUMP
    stream.wait_state(domname, "dump", JobState.COMPLETED, 60)
    bg.wait()
    assert bg.error is None and bg.path.stat().st_size > 400 * MiB


def test_a_dump_whose_file_takes_no_data_is_stuck_until_it_does(lab: Lab, domname: str) -> None:
    """A dump into a pipe nobody reads: QEMU's writes block, libvirt's figures stop
    (jobStats answers, the same bytes each time), no event says anything. The engine
    flags the dump stuck once nothing moved for `frozen_after`; read, it completes."""
    dom = lab.filled_domain(domname, 256)
    fifo = lab.root / f"{domname}.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    m = JobMonitor([lab.uri], active_interval=0.5, idle_interval=1.0, frozen_after=3.0)
    m.start()
    try:
        assert m.wait_ready(20)
        stream = Stream(m)
        bg = lab.start_dump(dom, fifo)
        job = stream.wait_state(domname, "dump", JobState.RUNNING, 10)
        stuck = wait_until(lambda: (j := m.job(job.key)) and j.stalled and j, 30, "stuck")
        assert stuck.state is JobState.RUNNING
        assert stuck.message.startswith("stuck: nothing moved for "), stuck.message
        before = dom.jobStats()
        time.sleep(1.0)
        after = dom.jobStats()
        assert before["type"] == after["type"] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED
        assert before["data_processed"] == after["data_processed"]
        drained = threading.Event()

        def drain() -> None:
            os.set_blocking(fd, True)
            while os.read(fd, 1 << 20):
                pass
            drained.set()

        threading.Thread(target=drain, daemon=True).start()
        end = stream.wait_state(domname, "dump", JobState.COMPLETED, 60)
        bg.wait()
        assert bg.error is None and drained.wait(10)
        assert not end.stalled and not end.message.startswith("stuck")
    finally:
        m.stop()
        os.close(fd)


def test_memory_only_dump_ends_as_qemu_reports_it(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    dom = lab.filled_domain(domname, 1024)
    stream = Stream(monitor)
    bg = lab.start_dump(dom, memory_only=True)
    job = stream.wait_state(domname, "dump", JobState.RUNNING, 10)
    with pytest.raises(JobControlError):
        # QEMU cannot cancel a memory-only dump; libvirt says so.
        monitor.control(job.key, ControlOp.ABORT)
    bg.wait()
    end = wait_until(lambda: (j := monitor.job(job.key)) and j.state.finished and j, 30, "end")
    # No JOB_COMPLETED and no kept statistics for a memory-only dump: QEMU's own
    # DUMP_COMPLETED event (this read-write connection receives QEMU's events) says it.
    assert bg.error is None
    assert end.state is JobState.COMPLETED, end
    assert end.message == "QEMU reports the dump completed"
    # With QEMU's final figures, not the last poll's (which may be a few percent).
    assert end.current == end.end and end.end and end.end > 512 * MiB


def test_backup_abort_is_aborted(lab: Lab, domname: str, monitor: JobMonitor) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 96))])
    stream = Stream(monitor)
    targets = lab.start_backup(dom, ["vda"], bandwidth=2 * MiB)
    job = stream.wait_state(domname, "backup", JobState.RUNNING, 10)
    monitor.control(job.key, ControlOp.ABORT)
    end = stream.wait_state(domname, "backup", JobState.ABORTED, 20)
    assert "cancel" in end.message.lower()
    assert not targets["vda"].exists()  # libvirt removed the partial target


def test_pull_backup_ended_by_abort_is_completed_as_libvirt_counts_it(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    stream = Stream(monitor)
    sock = lab.start_pull_backup(dom, ["vda"])
    job = stream.wait_state(domname, "backup", JobState.RUNNING, 10)
    assert sock.exists()  # the NBD export a backup client would read
    # Where a backup client connects, from libvirt's own description of the backup.
    job = wait_until(
        lambda: (b := monitor.find(domname, "backup")) and b.config.get("server") and b,
        10,
        "the backup's description",
    )
    assert (job.config["mode"], job.config["server"], job.config["disks"]) == (
        "pull",
        str(sock),
        "vda",
    )
    monitor.control(job.key, ControlOp.ABORT)
    end = stream.wait_state(domname, "backup", JobState.COMPLETED, 20)
    kept = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    assert kept["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
    assert end.message == (
        f"ended by abort, as a pull-mode backup ends (libvirt: {kept['errmsg']})"
    )
    assert stream.transitions(domname, "backup") == [(None, "running"), ("running", "completed")]


def test_history_survives_restart_and_dismiss(lab: Lab, domname: str, tmp_path) -> None:
    path = tmp_path / "h.sqlite3"
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 32))])
    with History(path) as h:
        m = JobMonitor([lab.uri], history=h, active_interval=0.5)
        m.start()
        stream = Stream(m)
        lab.start_copy(dom, "vda", bandwidth=64 * MiB)
        ready = stream.wait_state(domname, "copy-vda", JobState.READY, 20)
        m.control(ready.key, ControlOp.FINALIZE)
        done = stream.wait_state(domname, "copy-vda", JobState.COMPLETED, 10)
        m.stop()
    with History(path) as h:
        m2 = JobMonitor([lab.uri], history=h)
        kept = m2.job(done.key)
        assert kept is not None and kept.state is JobState.COMPLETED
        assert kept.message == done.message and kept.end == done.end
        with pytest.raises(JobControlError, match="already finished"):
            m2.control(done.key, ControlOp.ABORT)
        m2.start()
        assert "dismissed" in m2.control(done.key, ControlOp.DISMISS)
        assert m2.job(done.key) is None
        m2.stop()
    with History(path) as h:
        assert all(j.key != done.key for j in h.jobs())


def test_an_internal_snapshot_and_its_revert_are_jobs_not_a_stuck_domain(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    """libvirt shows an internal snapshot through no API: jobStats waits for all of it
    and then reports no job (engine/registry/snapshot.py); a revert the same. jobtui
    shows each as a job."""
    dom = lab.filled_domain(domname, 1024, disks=[DiskSpec("vda", lab.image(domname, 2048, 0))])
    stream = Stream(monitor)
    done: list[BaseException | None] = []

    def take() -> None:
        try:
            dom.snapshotCreateXML("<domainsnapshot><name>s1</name></domainsnapshot>", 0)
            done.append(None)
        except libvirt.libvirtError as err:
            done.append(err)

    t0 = time.time()
    bg = threading.Thread(target=take)
    bg.start()
    job = stream.wait_state(domname, "snapshot", JobState.RUNNING, 30)
    assert job.type is JobType.SNAPSHOT and job.started >= t0 - 1
    bg.join(120)
    assert done == [None] and dom.snapshotListNames() == ["s1"]
    end = stream.wait_state(domname, "snapshot", JobState.COMPLETED, 30)
    assert end.message == "QEMU reports the guest's state saved"
    # Its calls waited for the snapshot: that was the job, not a domain that hung.
    assert all(d.responsive for d in monitor.domains() if d.name == domname)
    changes = [e.domain for e in stream.all if isinstance(e, DomainChanged)]
    assert all(d.responsive for d in changes if d.name == domname)

    # Its revert: libvirt stops the domain's QEMU and starts one that loads the
    # snapshot; jobStats waits for all of it, then says there was no job.
    reverted: list[float] = []
    asked: list[tuple[float, int]] = []

    def revert() -> None:
        dom.revertToSnapshot(dom.snapshotLookupByName("s1"), 0)
        reverted.append(time.time())

    def ask() -> None:
        kind = dom.jobStats()["type"]
        asked.append((time.time(), kind))

    bg = threading.Thread(target=revert)
    bg.start()
    job = stream.wait_state(domname, "snapshot-revert", JobState.RUNNING, 30)
    assert job.type is JobType.SNAPSHOT_REVERT
    probe = threading.Thread(target=ask)
    probe.start()
    with pytest.raises(JobControlError, match="libvirt cannot abort a snapshot revert"):
        monitor.control(job.key, ControlOp.ABORT)
    bg.join(120)
    probe.join(60)
    end = stream.wait_state(domname, "snapshot-revert", JobState.COMPLETED, 30)
    assert end.message == "the domain was restarted from the snapshot"
    assert asked[0][1] == libvirt.VIR_DOMAIN_JOB_NONE and asked[0][0] >= reverted[0] - 0.5
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert all(d.responsive for d in monitor.domains() if d.name == domname)
    changes = [e.domain for e in stream.all if isinstance(e, DomainChanged)]
    assert all(d.responsive for d in changes if d.name == domname)


def test_a_revert_to_a_shut_off_snapshot_ends_when_the_domain_stays_off(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    """A running domain reverted to a snapshot taken while it was shut off: libvirt
    stops it (STOPPED, from snapshot) and no event ends the revert; the domain's state
    reason says how it went."""
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(domname, 64, 0))])
    dom.destroy()
    dom.snapshotCreateXML("<domainsnapshot><name>off</name></domainsnapshot>", 0)
    dom.create()
    stream = Stream(monitor)
    dom.revertToSnapshot(dom.snapshotLookupByName("off"), 0)
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT]
    end = stream.wait_state(domname, "snapshot-revert", JobState.COMPLETED, 30)
    assert end.message == "reverted to a snapshot of the domain shut off: it stays shut off"
    assert [new for _old, new in stream.transitions(domname, "snapshot-revert")] == [
        "running",
        "completed",
    ]


def test_an_external_snapshot_that_halts_is_one_snapshot_job_until_libvirt_is_done(
    lab: Lab, domname: str, monitor: JobMonitor
) -> None:
    """`snapshot-create --memspec … --halt`: libvirt sends JOB_COMPLETED once QEMU has
    saved the memory, then holds the job for the disks and the halt (its poll waits),
    and stops the domain (STOPPED, from snapshot). One snapshot job, over when libvirt
    is, not a second one for the held poll, and no revert."""
    dom = lab.filled_domain(domname, 256, disks=[DiskSpec("vda", lab.image(domname, 256, 0))])
    stream = Stream(monitor)
    mem, overlay = lab.root / f"{domname}.mem", lab.root / f"{domname}-ov.qcow2"
    xml = (
        f"<domainsnapshot><name>h</name><memory snapshot='external' file='{mem}'/>"
        f"<disks><disk name='vda' snapshot='external'><source file='{overlay}'/></disk>"
        "</disks></domainsnapshot>"
    )
    dom.snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_HALT)
    returned = time.time()
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT]
    end = stream.wait_state(domname, "snapshot", JobState.COMPLETED, 30)
    assert end.finished is not None and end.finished >= returned - 0.5
    time.sleep(3)
    assert stream.transitions(domname, "snapshot") == [(None, "running"), ("running", "completed")]
    assert not [j for j in monitor.jobs(domain=domname) if j.name == "snapshot-revert"]
