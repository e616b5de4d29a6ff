"""Domain jobs the lab starts (save, managed save, core dump), checked against what
libvirt itself reports: jobStats() while they run, JOB_COMPLETED with final stats."""

from __future__ import annotations

import libvirt
import pytest
from labtools import LibvirtEvents, wait_until

from jobtui.lab import Lab, MiB


@pytest.fixture
def events(lab: Lab):
    ev = LibvirtEvents(lab.conn, lab.uri)
    yield ev
    ev.close()


def _running_stats(dom: libvirt.virDomain) -> dict:
    def look() -> dict | None:
        try:
            stats = dom.jobStats(0)
        except libvirt.libvirtError:
            return None
        return stats if stats.get("type") in (1, 2) and stats.get("operation") else None

    return wait_until(look, 10, "libvirt reporting the job")


@pytest.mark.parametrize("kind", ["save", "managed-save", "dump"])
def test_domain_job_reported_then_completed_with_stats(
    lab: Lab, domname: str, events: LibvirtEvents, kind: str
) -> None:
    dom = lab.filled_domain(domname, 512)
    if kind == "save":
        bg, op = lab.start_save(dom), libvirt.VIR_DOMAIN_JOB_OPERATION_SAVE
    elif kind == "managed-save":
        bg, op = lab.start_managed_save(dom), libvirt.VIR_DOMAIN_JOB_OPERATION_SAVE
    else:
        bg, op = lab.start_dump(dom), libvirt.VIR_DOMAIN_JOB_OPERATION_DUMP
    stats = _running_stats(dom)
    assert stats["operation"] == op
    params = events.wait_completed(domname)
    bg.wait()
    assert bg.error is None
    assert params["operation"] == op
    assert params["memory_total"] >= 400 * MiB  # real bytes: the guest filled its RAM
    assert params["time_elapsed"] > 0
