"""A `ControlOp` on a job -> the libvirt call that does it.

Runs on the domain's worker thread. Refusals that need no libvirt call are
decided before we get here (`jobtui.support.refusal`); what libvirt itself
refuses comes back as `JobControlError` with libvirt's words.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import libvirt

from jobtui.engine.connection import libvirt_reason
from jobtui.model import ControlOp, Job, JobControlError, JobState, JobType
from jobtui.units import MiB, mib, parse_bandwidth


class PostcopyNotAllowed(JobControlError):
    """libvirt refused post-copy because the migration was not started allowing it:
    the only way to learn that in libvirt 9.0, so the engine remembers it."""


def _call(what: str, fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(*args)
    except libvirt.libvirtError as err:
        raise JobControlError(f"{what}: {libvirt_reason(err)}") from None


def execute(
    dom: libvirt.virDomain,
    job: Job,
    op: ControlOp,
    args: dict[str, Any],
    *,
    ask_qemu: bool = False,
) -> str:
    """Carry out `op` on `job` (checked against support.refusal before). `ask_qemu`:
    the QEMU-monitor opt-in is on, so QEMU may be asked what libvirt cannot tell."""
    disk = str(job.config.get("disk", ""))
    name = f"{job.name} on {job.domain}"
    if job.state is JobState.ORPHANED:
        if op is ControlOp.ABORT:
            return _qemu_cancel(dom, job)
        raise JobControlError(f"{name} is orphaned: only abort is possible")
    if job.outside_libvirt and op is ControlOp.ABORT:
        return _qemu_cancel(dom, job)  # libvirt knows nothing of it
    if op is ControlOp.ABORT:
        if job.type.is_block:
            _call(
                f"cannot abort {name}",
                dom.blockJobAbort,
                disk,
                libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_ASYNC,
            )
            if job.type is JobType.BLOCK_COPY and job.state is JobState.READY:
                return f"aborting {name}: the copy left on disk is consistent"
            return f"aborting {name}"
        _call(f"cannot abort {name}", dom.abortJob)
        if job.type is JobType.MIGRATION_OUT:
            return f"aborted {name}: the domain keeps running on this host"
        return f"aborted {name}"
    if op is ControlOp.FINALIZE:
        if ask_qemu:
            _refuse_paused_pivot(dom, job, name)
        _call(
            f"cannot finalize {name}",
            dom.blockJobAbort,
            disk,
            libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT,
        )
        if job.type is JobType.BLOCK_COPY:
            return f"pivoted {name}: the disk now uses {job.config.get('destination', 'the copy')}"
        return f"finalized {name}: the disk now uses the base image"
    if op is ControlOp.SET_SPEED:
        bps = parse_bandwidth(args.get("bandwidth", 0))
        return _set_speed(dom, job, bps, name)
    if op is ControlOp.POSTCOPY:
        try:
            dom.migrateStartPostCopy(0)
        except libvirt.libvirtError as err:
            reason = f"cannot switch {name} to post-copy: {libvirt_reason(err)}"
            if "VIR_MIGRATE_POSTCOPY" in (err.get_error_message() or ""):
                raise PostcopyNotAllowed(reason) from None
            raise JobControlError(reason) from None
        return f"{name} switched to post-copy: it can no longer be aborted"
    if op in (ControlOp.PAUSE, ControlOp.RESUME):
        verb = "block-job-pause" if op is ControlOp.PAUSE else "block-job-resume"
        qid = job.qemu_id or _find_qemu_job(dom, disk)
        _qemu(dom, {"execute": verb, "arguments": {"device": qid}}, f"cannot {op} {name}")
        return f"{op}d {name} (through the QEMU monitor: the domain is now tainted)"
    raise JobControlError(f"{op} is not supported for {name}")


def _set_speed(dom: libvirt.virDomain, job: Job, bps: int, name: str) -> str:
    human = "unlimited" if bps == 0 else f"{mib(bps)}/s"
    if job.type.is_migration:
        flags = 0
        if job.config.get("postcopy") == "active":
            flags = libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY
        # migrateSetMaxSpeed takes MiB/s: round up so a small limit never becomes 0 (= unlimited).
        _call(f"cannot set the speed of {name}", dom.migrateSetMaxSpeed, -(-bps // MiB), flags)
        return f"{name}: bandwidth {human}"
    flags = libvirt.VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES
    if job.type is JobType.BACKUP:
        disks = [d for d in str(job.config.get("disks", "")).split(",") if d]
        if not disks:
            raise JobControlError(f"{name}: no disk of this backup is known yet")
        for d in disks:
            _call(f"cannot set the speed of {name} ({d})", dom.blockJobSetSpeed, d, bps, flags)
        return f"{name}: bandwidth {human} on {', '.join(disks)}"
    disk = str(job.config.get("disk", ""))
    _call(f"cannot set the speed of {name}", dom.blockJobSetSpeed, disk, bps, flags)
    return f"{name}: bandwidth {human}"


def _qemu(dom: libvirt.virDomain, cmd: dict[str, Any], what: str) -> dict[str, Any]:
    import libvirt_qemu

    try:
        out = libvirt_qemu.qemuMonitorCommand(dom, json.dumps(cmd), 0)
    except libvirt.libvirtError as err:
        raise JobControlError(f"{what}: {libvirt_reason(err)}") from None
    reply: dict[str, Any] = json.loads(out)
    if "error" in reply:
        raise JobControlError(f"{what}: QEMU says {reply['error'].get('desc', reply['error'])}")
    return reply


def _find_qemu_job(dom: libvirt.virDomain, disk: str) -> str:
    reply = _qemu(dom, {"execute": "query-block-jobs"}, "cannot list QEMU's block jobs")
    for j in reply.get("return", []):
        dev = str(j.get("device", ""))
        if f"-{disk}-" in dev:
            return dev
    raise JobControlError(f"QEMU runs no block job on {disk}")


def _qemu_cancel(dom: libvirt.virDomain, job: Job) -> str:
    qid = job.qemu_id or _find_qemu_job(dom, str(job.config.get("disk", "")))
    if job.type.is_block and job.type is not JobType.BLOCKDEV_CREATE:
        cmd = {"execute": "block-job-cancel", "arguments": {"device": qid, "force": True}}
    else:
        # Not a block job (QEMU's job list shows it, with a type jobtui cannot name):
        # job-cancel is QEMU's forced cancel for every job.
        cmd = {"execute": "job-cancel", "arguments": {"id": qid}}
    _qemu(dom, cmd, f"cannot cancel {job.name}")
    return f"cancelled {qid} through the QEMU monitor (the domain is now tainted)"


def _refuse_paused_pivot(dom: libvirt.virDomain, job: Job, name: str) -> None:
    """A pivot of a mirror QEMU holds paused never ends, and libvirt keeps the domain's
    job lock while it waits (nothing but destroying the domain frees it). A pause made by
    another client or an earlier process is invisible to libvirt: ask QEMU."""
    qid = job.qemu_id or _find_qemu_job(dom, str(job.config.get("disk", "")))
    reply = _qemu(dom, {"execute": "query-block-jobs"}, f"cannot finalize {name}")
    for j in reply.get("return", []):
        if j.get("device") == qid and (j.get("paused") or j.get("status") == "standby"):
            raise JobControlError(
                f"{name} is paused in QEMU (by another client?): resume it before "
                "finalizing (a paused pivot never ends)"
            )
