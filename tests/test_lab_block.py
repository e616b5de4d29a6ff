"""Every block job kind the lab starts, checked against what libvirt reports."""

from __future__ import annotations

import libvirt
import pytest
from labtools import LibvirtEvents

from jobtui.lab import DiskSpec, Lab, LabError, MiB

COMPLETED, FAILED, CANCELED, READY = 0, 1, 2, 3


@pytest.fixture
def events(lab: Lab):
    ev = LibvirtEvents(lab.conn, lab.uri)
    yield ev
    ev.close()


def test_pull_runs_then_completes(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_pull(dom, "vda", bandwidth=32 * MiB)
    info = dom.blockJobInfo("vda", 0)
    assert info["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_PULL
    assert 0 <= info["cur"] < info["end"]
    events.wait_block(domname, "vda", COMPLETED)
    assert dom.blockJobInfo("vda", 0) == {}
    # The pulled image no longer needs its backing file.
    assert "<backingStore/>" in dom.XMLDesc(0) or "<backingStore>" not in dom.XMLDesc(0)


def test_copy_reaches_ready_and_pivots(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    dest = lab.start_copy(dom, "vda", bandwidth=64 * MiB)
    assert dom.blockJobInfo("vda", 0)["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY
    events.wait_block(domname, "vda", READY)
    assert "ready='yes'" in dom.XMLDesc(0)
    dom.blockJobAbort("vda", libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
    events.wait_block(domname, "vda", COMPLETED)
    assert str(dest) in dom.XMLDesc(0)


def test_commit_completes(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    chain = lab.chain(domname, 3, 192, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_commit(dom, "vda", bandwidth=32 * MiB)
    assert dom.blockJobInfo("vda", 0)["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COMMIT
    events.wait_block(domname, "vda", COMPLETED)
    assert str(chain[1]) not in dom.XMLDesc(0)


def test_active_commit_ready_then_abort_is_canceled(
    lab: Lab, domname: str, events: LibvirtEvents
) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_active_commit(dom, "vda", bandwidth=64 * MiB)
    info = dom.blockJobInfo("vda", 0)
    assert info["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_ACTIVE_COMMIT
    events.wait_block(domname, "vda", READY)
    dom.blockJobAbort("vda", 0)
    events.wait_block(domname, "vda", CANCELED)
    assert str(chain[-1]) in dom.XMLDesc(0)  # the domain keeps its top image


def test_abort_running_pull_is_canceled(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    chain = lab.chain(domname, 2, 128, 48)
    dom = lab.domain(domname, [DiskSpec("vda", chain[-1])])
    lab.start_pull(dom, "vda", bandwidth=4 * MiB)
    dom.blockJobAbort("vda", 0)
    events.wait_block(domname, "vda", CANCELED)


def test_push_backup_reports_and_completes(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    dom = lab.domain(
        domname,
        [
            DiskSpec("vda", lab.image(f"{domname}-a", 128, 48)),
            DiskSpec("vdb", lab.image(f"{domname}-b", 128, 48)),
        ],
    )
    targets = lab.start_backup(dom, ["vda", "vdb"], bandwidth=48 * MiB)
    stats = dom.jobStats(0)
    assert stats["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP
    assert dom.blockJobInfo("vda", 0)["type"] == libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_BACKUP
    params = events.wait_completed(domname)
    assert params["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP
    assert params.get("success", True) is True
    assert params["disk_total"] >= 2 * 48 * MiB
    for path in targets.values():
        assert path.exists() and path.stat().st_size > 40 * MiB


def test_copy_onto_full_filesystem_fails(lab: Lab, domname: str, events: LibvirtEvents) -> None:
    full = lab.tmpfs(domname, 32)  # mounted before the domain starts (QEMU's mount namespace)
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 96))])
    lab.start_copy(dom, "vda", bandwidth=0, dest=full / "copy.qcow2")
    events.wait_block(domname, "vda", FAILED)
    assert dom.isActive()  # the domain keeps running


def test_bad_input_gives_one_line_errors(lab: Lab, domname: str, tmp_path) -> None:
    with pytest.raises(LabError, match=r"^disk image .* does not exist$"):
        lab.domain(domname, [DiskSpec("vda", tmp_path / "missing.qcow2")])
    dom = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 64))])
    assert dom.isActive()
    with pytest.raises(LabError, match="already exists"):
        lab.domain(domname)
    with pytest.raises(LabError, match="backing image .* does not exist"):
        lab.image(f"{domname}-b", 64, backing=tmp_path / "nope.qcow2")
    with pytest.raises(LabError) as err:
        lab.start_pull(dom, "vdz")
    assert "\n" not in str(err.value) and "vdz" in str(err.value)


def test_no_space_left_is_one_line_and_lab_still_cleans(lab: Lab, domname: str) -> None:
    full = lab.tmpfs(domname, 8)
    from jobtui.lab.images import create_image

    with pytest.raises(LabError) as err:
        create_image(full / "big.qcow2", 64, data_mib=32)
    assert "\n" not in str(err.value)
    assert "No space left" in str(err.value) or "space" in str(err.value).lower()


def test_failed_lab_open_is_one_line_and_cleans_up(lab: Lab, tmp_path) -> None:
    # libvirt allows one embedded driver per process: a second lab must fail
    # cleanly and remove what it had made.
    root = tmp_path / "second"
    root.mkdir()
    with pytest.raises(LabError) as err:
        Lab(root)
    # libvirt says "already open with path ..." or "Too many drivers", depending on
    # what the process opened before.
    assert "\n" not in str(err.value) and str(err.value).startswith("cannot open qemu:///embed")
    assert list(root.iterdir()) == []
