"""Which control operation applies to which job, and why not.

A pure function of the job snapshot and the caller's options, shared by the
engine (which refuses with the reason) and the front ends (which hide or dim
keys). Each rule is what libvirt 9.0 and QEMU 7.2 accept; the reasons are in the
messages, and the tests on real QEMU check them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobtui.model import ControlOp, Job, JobState, JobType

_SPEED_TYPES = frozenset(
    {
        JobType.BLOCK_PULL,
        JobType.BLOCK_COPY,
        JobType.BLOCK_COMMIT,
        JobType.BLOCK_COMMIT_ACTIVE,
        JobType.BACKUP,
        JobType.MIGRATION_OUT,
    }
)
_PAUSABLE = frozenset(
    {JobType.BLOCK_PULL, JobType.BLOCK_COPY, JobType.BLOCK_COMMIT, JobType.BLOCK_COMMIT_ACTIVE}
)
_FINALIZABLE = frozenset({JobType.BLOCK_COPY, JobType.BLOCK_COMMIT_ACTIVE})


@dataclass(frozen=True)
class Options:
    readonly: bool = False
    # Pause/resume and orphan abort go through QEMU monitor passthrough, which
    # taints the domain: only when the operator asked for it.
    allow_qemu_monitor: bool = False


def pct(job: Job) -> str:
    p = job.progress
    return "unknown progress" if p is None else f"{p * 100:.0f} %"


def _qemu_cancel(who: str, opts: Options) -> str | None:
    """Only QEMU can cancel this job: allowed with the monitor opt-in, else why not."""
    if opts.allow_qemu_monitor:
        return None
    return (
        f"{who}: only QEMU can cancel it, which taints the domain; "
        "enable the QEMU monitor opt-in (--allow-qemu-monitor)"
    )


def refusal(job: Job, op: ControlOp, opts: Options) -> str | None:
    """None when `op` applies to `job`; otherwise the reason, for a person."""
    name = job.name
    if opts.readonly:
        return f"{job.host} is a read-only connection"
    state, typ = job.state, job.type
    if op is ControlOp.DISMISS:
        if state.finished:
            return None
        return f"{name} is still {state}: only finished jobs can be dismissed"
    if state.finished:
        return f"{name} has already finished ({state})"
    if state is JobState.ORPHANED:
        if op is ControlOp.ABORT:
            return _qemu_cancel(f"{name} is orphaned (its disk is gone)", opts)
        return f"{name} is orphaned (its disk is gone): libvirt can no longer {op} it"
    if job.outside_libvirt:
        # Started through QMP: libvirt knows nothing of it (engine/control.py).
        if op is ControlOp.ABORT:
            return _qemu_cancel(f"{name} was started outside libvirt", opts)
        if op not in (ControlOp.PAUSE, ControlOp.RESUME):
            return f"{name} was started outside libvirt: only QEMU can abort, pause or resume it"
    if op is ControlOp.ABORT:
        if typ is JobType.BLOCKDEV_CREATE:
            return f"{name} is QEMU's internal image creation: libvirt cannot abort it"
        if typ is JobType.MIGRATION_IN:
            return f"{name} is an incoming migration: abort it on the source host"
        if typ is JobType.RESTORE:
            return f"{name}: libvirt cannot abort a restore"
        if typ is JobType.SNAPSHOT_REVERT:
            return f"{name}: libvirt cannot abort a snapshot revert"
        if job.config.get("postcopy") == "active":
            return f"{name} is in post-copy: aborting now would lose the guest"
        if job.config.get("postcopy") == "failed":
            return (
                f"{name}: post-copy failed; the guest's memory is on both hosts, so the "
                "migration can only be recovered (virsh migrate --postcopy-resume)"
            )
        if typ is JobType.DUMP and job.config.get("memory_only") == "yes":
            return f"{name}: QEMU cannot abort a memory-only dump"
        return None
    if op is ControlOp.FINALIZE:
        if typ not in _FINALIZABLE:
            return f"{name} is a {typ} job: only a copy or an active commit can be finalized"
        if state is JobState.PAUSED:
            return f"{name} is paused: resume it before finalizing (a paused pivot never ends)"
        if state is not JobState.READY:
            return f"{name} is not ready to finalize: {pct(job)} mirrored"
        return None
    if op is ControlOp.SET_SPEED:
        if typ is JobType.MIGRATION_IN:
            return f"{name} is an incoming migration: set its speed on the source host"
        if typ not in _SPEED_TYPES:
            return f"{name} is a {typ} job: libvirt has no speed control for it"
        return None
    if op is ControlOp.POSTCOPY:
        if typ is not JobType.MIGRATION_OUT:
            return f"{name} is not an outgoing migration"
        postcopy = job.config.get("postcopy")
        if postcopy == "active":
            return f"{name} is already in post-copy"
        if postcopy == "failed":
            return f"{name}: post-copy failed; only recovering the migration can help"
        if postcopy == "no":
            return f"{name} was not started with post-copy allowed"
        # libvirt 9.0 does not tell whether a running migration may switch
        # (no jobStats field, no event): unless known, let libvirt decide.
        return None
    if op in (ControlOp.PAUSE, ControlOp.RESUME):
        if typ not in _PAUSABLE:
            return f"{name} is a {typ} job: it cannot be paused"
        if not opts.allow_qemu_monitor:
            return (
                f"pausing {name} needs QEMU monitor passthrough, which taints the domain; "
                "enable the QEMU monitor opt-in (--allow-qemu-monitor)"
            )
        if op is ControlOp.PAUSE and state is JobState.PAUSED:
            return f"{name} is already paused"
        if op is ControlOp.RESUME and state is not JobState.PAUSED:
            return f"{name} is not paused"
        return None
    return f"{op} is not a known operation"


def allowed_ops(job: Job, opts: Options) -> frozenset[ControlOp]:
    return frozenset(op for op in ControlOp if refusal(job, op, opts) is None)
