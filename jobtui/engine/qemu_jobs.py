"""QEMU's own view of a domain's jobs, for what libvirt no longer sees.

libvirt lists a block job only through the disk it runs on. When that disk is
unplugged under the job (a virtio-scsi disk removed by `device_del`), QEMU goes on
running it and libvirt can neither list nor stop it: the job is in limbo. Only
QEMU's monitor (`query-jobs`, `query-block-jobs`) still shows it. Asking taints the
domain, so the engine asks only with the user's opt-in (`--allow-qemu-monitor`),
once when it first sees a domain (and after a reconnect), and again while such a
job is on screen.

QEMU names libvirt's jobs `<kind>-<disk>-<node>`: `copy-sda-libvirt-1-format`,
`create-libvirt-2-format`. A job whose id does not follow that pattern was started
by someone else (through QMP) or belongs to a libvirt domain job (a storage
migration's `drive-…` mirrors): its id tells nothing, and jobtui says so rather
than guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import libvirt

from jobtui.model import JobType

QEMU_JOB_PREFIX = {
    "pull": JobType.BLOCK_PULL,
    "copy": JobType.BLOCK_COPY,
    "commit": JobType.BLOCK_COMMIT,
    "active-commit": JobType.BLOCK_COMMIT_ACTIVE,
    "backup": JobType.BACKUP,
    "create": JobType.BLOCKDEV_CREATE,
}


def parse_qemu_job_id(qid: str) -> tuple[JobType, str]:
    """`copy-vda-libvirt-1-format` -> (block-copy, 'vda'); `create-libvirt-2-format` -> create;
    anything else -> (unknown, '')."""
    for prefix in ("active-commit", "pull", "copy", "commit", "backup", "create"):
        if qid.startswith(prefix + "-"):
            if prefix == "create":
                return JobType.BLOCKDEV_CREATE, ""
            disk = qid[len(prefix) + 1 :].split("-", 1)[0]
            return QEMU_JOB_PREFIX[prefix], disk
    return JobType.UNKNOWN, ""


@dataclass(frozen=True)
class QemuJob:
    """One entry of QEMU's job list, block-job figures merged in where QEMU has them."""

    id: str
    kind: str  # QEMU's job type: mirror, stream, commit, backup, create, ...
    status: str  # created, running, paused, ready, standby, concluded, ...
    current: int | None = None
    end: int | None = None
    speed: int | None = None  # bytes/s; None when unlimited or not a block job


def query_qemu_jobs(dom: libvirt.virDomain) -> tuple[QemuJob, ...] | None:
    """QEMU's jobs, or None when QEMU could not be asked (not running, refused)."""
    jobs = _ask(dom, "query-jobs")
    block = _ask(dom, "query-block-jobs")
    if jobs is None and block is None:
        return None
    by_id: dict[str, QemuJob] = {}
    for j in jobs or []:
        qid = str(j.get("id", ""))
        by_id[qid] = QemuJob(
            id=qid,
            kind=str(j.get("type", "")),
            status=str(j.get("status", "")),
            current=_int(j.get("current-progress")),
            end=_int(j.get("total-progress")),
        )
    for b in block or []:
        qid = str(b.get("device", ""))
        old = by_id.get(qid)
        by_id[qid] = QemuJob(
            id=qid,
            kind=str(b.get("type", old.kind if old else "")),
            status=str(b.get("status", old.status if old else "")),
            current=_int(b.get("offset")),
            end=_int(b.get("len")),
            speed=_int(b.get("speed")) or None,
        )
    return tuple(by_id.values())


def _ask(dom: libvirt.virDomain, command: str) -> list[dict[str, Any]] | None:
    import libvirt_qemu

    try:
        text = libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": command}), 0)
        reply = json.loads(text)
    except (libvirt.libvirtError, ValueError):
        return None
    ret = reply.get("return") if isinstance(reply, dict) else None
    return [x for x in ret if isinstance(x, dict)] if isinstance(ret, list) else None


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int) and not isinstance(v, bool) else None
