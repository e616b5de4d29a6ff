"""The registry on jobs only QEMU still runs, fed libvirt's and QEMU's reports in the order
they came on this machine (tests/test_truth.py makes the same cases with real QEMU):
QEMU's word on how such a job ended, and a disk plugged in again under an orphan's name.
"""

from __future__ import annotations

from jobtui.engine import events as ev
from jobtui.engine.registry import Registry
from jobtui.engine.sample import DiskInfo, DomainSample
from jobtui.model import JobDismissed, JobState, JobStateChanged

HOST, UID = "qemu+unix:///system?socket=/run/a", "00000000-0000-4000-8000-0000000000bb"
MiB = 1 << 20
OLD, NEW = "copy-sda-libvirt-1-format", "copy-sda-libvirt-3-format"


def sda(alias: str = "scsi0-0-0-0") -> DiskInfo:
    return DiskInfo("sda", alias, "/img/a.qcow2", mirror_job="copy", mirror_dest="/img/c.qcow2")


def copying(at: float, cur: int, alias: str = "scsi0-0-0-0") -> DomainSample:
    block = {"sda": {"type": 2, "bandwidth": MiB, "cur": cur, "end": 96 * MiB}}
    return DomainSample(UID, "l1", "running", at, disks=(sda(alias),), block=block)


def qemu(at: float, name: str, **details: str) -> ev.QemuEv:
    return ev.QemuEv(HOST, UID, "l1", at, name=name, details=tuple(sorted(details.items())))


def orphaned(reg: Registry, t0: float) -> None:
    """A copy on sda, QEMU's id learnt from its event, then the disk unplugged under it."""
    reg.apply_sample(HOST, copying(t0, 4 * MiB))
    reg.apply_event(qemu(t0 + 0.1, "JOB_STATUS_CHANGE", id=OLD, status="running"))
    reg.apply_event(ev.DeviceRemovedEv(HOST, UID, "l1", t0 + 1, alias="scsi0-0-0-0"))
    (t,) = reg.active.values()
    assert t.job.state is JobState.ORPHANED and t.job.qemu_id == OLD


def changes(reg: Registry) -> list[tuple[str, str | None, str]]:
    out, _fin = reg.drain()
    return [
        (e.key.name, str(e.old) if e.old else None, str(e.new))
        for e in out
        if isinstance(e, JobStateChanged)
    ]


def test_an_orphan_cancelled_by_another_client_ends_aborted_as_qemu_says() -> None:
    reg = Registry({HOST})
    orphaned(reg, 1000.0)
    reg.drain()
    # QMP block-job-cancel from elsewhere: QEMU's events, in QEMU's order.
    reg.apply_event(qemu(1005.0, "JOB_STATUS_CHANGE", id=OLD, status="aborting"))
    reg.apply_event(qemu(1005.0, "BLOCK_JOB_CANCELLED", device=OLD, type="mirror"))
    reg.apply_event(qemu(1005.0, "JOB_STATUS_CHANGE", id=OLD, status="concluded"))
    reg.apply_event(qemu(1005.0, "JOB_STATUS_CHANGE", id=OLD, status="null"))
    assert changes(reg) == [("copy-sda", "orphaned", "aborted")]
    (job,) = reg.finished.values()
    assert job.message == "cancelled in QEMU"


def test_an_orphan_that_failed_in_qemu_ends_failed_with_qemus_words() -> None:
    reg = Registry({HOST})
    orphaned(reg, 2000.0)
    reg.drain()
    reg.apply_event(qemu(2005.0, "BLOCK_JOB_COMPLETED", device=OLD, error="Input/output error"))
    reg.apply_event(qemu(2005.0, "JOB_STATUS_CHANGE", id=OLD, status="concluded"))
    assert changes(reg) == [("copy-sda", "orphaned", "failed")]
    (job,) = reg.finished.values()
    assert job.message == "QEMU reported an error: Input/output error"


def test_a_new_copy_on_a_disk_plugged_in_again_does_not_become_the_orphan() -> None:
    reg = Registry({HOST})
    t0 = 3000.0
    orphaned(reg, t0)
    reg.drain()
    # A disk at the same target, plugged in by another client: the next look reads the XML.
    reg.apply_event(ev.DeviceAddedEv(HOST, UID, "l1", t0 + 2, alias="scsi0-0-0-1"))
    assert reg.poll_plan(HOST, UID).read_xml
    # A new copy on it; QEMU says so first, then the poll shows libvirt's job.
    reg.apply_event(qemu(t0 + 3, "JOB_STATUS_CHANGE", id=NEW, status="created"))
    reg.apply_sample(HOST, copying(t0 + 3.1, 1 * MiB, alias="scsi0-0-0-1"))
    out, _fin = reg.drain()
    assert [e.key.name for e in out if isinstance(e, JobDismissed)] == ["copy-sda"]
    started = [(e.key.name, e.old, str(e.new)) for e in out if isinstance(e, JobStateChanged)]
    assert (f"qemu-{OLD}", None, "orphaned") in started
    assert ("copy-sda", None, "running") in started
    assert [k.name for k in reg.forgotten] == ["copy-sda"]  # its history record moves
    # Each job keeps its own figures and its own QEMU events.
    reg.apply_event(qemu(t0 + 4, "JOB_STATUS_CHANGE", id=NEW, status="running"))
    reg.apply_event(qemu(t0 + 5, "BLOCK_JOB_CANCELLED", device=OLD, type="mirror"))
    reg.apply_event(qemu(t0 + 5, "JOB_STATUS_CHANGE", id=OLD, status="concluded"))
    assert changes(reg) == [(f"qemu-{OLD}", "orphaned", "aborted")]
    (new,) = (t.job for t in reg.active.values())
    assert (new.name, new.state, new.current) == ("copy-sda", JobState.RUNNING, 1 * MiB)
    assert new.qemu_id in ("", NEW)


def test_a_job_on_a_disk_plugged_in_since_the_xml_was_read_makes_the_engine_read_it() -> None:
    reg = Registry({HOST})
    vda = DiskInfo("vda", "virtio-disk0", "/img/v.qcow2")
    reg.apply_sample(HOST, DomainSample(UID, "l1", "running", 4000.0, disks=(vda,), block={}))
    assert not reg.poll_plan(HOST, UID).read_xml
    # No DEVICE_ADDED reached this connection; QEMU's event names a disk it has not read.
    reg.apply_event(qemu(4001.0, "JOB_STATUS_CHANGE", id="copy-sdb-libvirt-4-format",
                         status="created"))  # fmt: skip
    assert reg.poll_plan(HOST, UID).read_xml
