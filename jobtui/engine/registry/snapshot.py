"""The internal snapshot: a domain job no libvirt API shows.

`virsh snapshot-create-as DOM` on a running domain with qcow2 disks has QEMU save the
guest's memory into a disk image (`savevm`). libvirt 9.0 runs it as an async job but
holds the domain's monitor for all of it: `jobStats` waits until it is over, then says
there was no job; no `JOB_COMPLETED` follows, and no statistics are kept. Measured with
a 1 GiB guest: a 2.5-4.8 s snapshot, `jobStats` blocked for all of it, the domain paused
with reason `save`.

What does show: QEMU's migration stream (libvirt's `MIGRATION_ITERATION` event, QEMU's
own `MIGRATION` events) begins while libvirt reports no domain job, and the poll that
asks for one does not answer. A save, a dump or a migration would have answered (their
`jobStats` returns at once), and a stopped QEMU sends no stream events: together the two
mean QEMU's savevm. The engine then shows a `snapshot` job (no figures: QEMU gives none)
instead of calling the domain stuck, and ends it when the domain answers again, as QEMU's
`MIGRATION` event said (`completed`, `failed`) or else `unknown`.

A revert (`virsh snapshot-revert`) of a running domain is libvirt's async snapshot job
too, and as hidden: libvirt 9.0 stops the domain's QEMU (STOPPED, detail
FROM_SNAPSHOT), starts a new one that loads the snapshot (STARTED, FROM_SNAPSHOT), and
`jobStats` waits the whole time (measured with a 1 GiB guest: 5-9 s), then reports no
job; `virDomainAbortJob` waits as long and then says no job is active. The two
lifecycle events bound a `snapshot-revert` job.
"""

from __future__ import annotations

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.registry.book import (
    DOMAIN_GONE_GRACE,
    GONE_GRACE,
    DomainId,
    DomainInfo,
    Track,
    TrackId,
)
from jobtui.engine.registry.lifecycle import Lifecycle
from jobtui.engine.sample import ACTIVE_STATES, DomainSample, domain_job_name
from jobtui.model import JobDismissed, JobState, JobType

# A poll that has not answered this long while the stream runs: QEMU's savevm.
SAVEVM_AFTER = 1.0

# A poll held this long by a stream libvirt then reports no job for: a short savevm.
# (jobStats answers in under a millisecond on qemu:///system, 2-7 us embedded.)
SHORT_SAVEVM_HELD = 0.05
# How long such a savevm waits for a JOB_COMPLETED saying it was something else.
SHORT_SAVEVM_WAIT = 1.0

SAVED_BY = "saved-by"
SAVEVM = "QEMU savevm (internal snapshot)"


_REVERT_BEGINS = (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FROM_SNAPSHOT)
_REVERT_ENDS = (libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_FROM_SNAPSHOT)
REVERTING = (
    "libvirt restarts the domain from a snapshot; it reports no progress for a revert, "
    "cannot abort one, and the domain's other calls wait for it"
)
REVERTED = "the domain was restarted from the snapshot"
REVERT_OFF = "the domain stayed shut off, and libvirt does not say why"
# Why a reverted domain is shut off, from its state reason.
_REVERT_OFF_REASONS = {
    libvirt.VIR_DOMAIN_SHUTOFF_FROM_SNAPSHOT: (
        JobState.COMPLETED,
        "reverted to a snapshot of the domain shut off: it stays shut off",
    ),
    libvirt.VIR_DOMAIN_SHUTOFF_FAILED: (
        JobState.FAILED,
        "the domain's new QEMU did not start from the snapshot: it is shut off",
    ),
}


def is_savevm(t: Track) -> bool:
    return t.job.type is JobType.SNAPSHOT and t.job.config.get(SAVED_BY) == SAVEVM


class Snapshots(Lifecycle):
    def _lifecycle(self, d: DomainInfo, e: ev.LifecycleEv) -> None:
        super()._lifecycle(d, e)
        kind = (e.event, e.detail)
        if kind not in (_REVERT_BEGINS, _REVERT_ENDS):
            return
        t = self._active_domain_job(d)
        if kind == _REVERT_BEGINS:
            # Also the end of `snapshot-create --halt`: its savevm, or its snapshot job
            # (ended a moment before: its JOB_COMPLETED may come first), owns that one.
            if t is None and d.stream_out is None and e.time - d.domain_job_ended > 1.0:
                name = domain_job_name(JobType.SNAPSHOT_REVERT)
                t = self._new(d, name, JobType.SNAPSHOT_REVERT, e.time, at=e.time)
                self._update(t, e.time, message=REVERTING)
        elif t is not None and t.job.type is JobType.SNAPSHOT_REVERT:
            self._set_state(t, JobState.COMPLETED, e.time, message=REVERTED)

    def _revert_look(self, d: DomainInfo, s: DomainSample) -> None:
        """A look at a domain under a revert whose last event was missed or never
        comes (a revert that leaves the domain shut off)."""
        t = self._active_domain_job(d)
        if t is None or t.job.type is not JobType.SNAPSHOT_REVERT or s.taken <= t.job.started:
            return
        if s.state not in ACTIVE_STATES:
            # Also for a moment between the old QEMU's end and the new one's start,
            # hence the wait (GONE_GRACE, not a domain job's longer one).
            if t.gone_since is None:
                t.gone_since = s.taken - DOMAIN_GONE_GRACE + GONE_GRACE
            t.gone_why = REVERT_OFF
            t.hint = _REVERT_OFF_REASONS.get(s.reason)
        elif d.starting_up or not s.full:
            t.gone_since = t.hint = None
        else:  # jobStats answered: libvirt's revert is over
            self._set_state(t, JobState.COMPLETED, s.answered, message=REVERTED)

    def poll_held(self, host: str, uuid: str, held: float, at: float) -> bool:
        """The domain's poll has not answered for `held` seconds. True when that is an
        internal snapshot or a revert (shown as its job), not a domain that does not
        answer."""
        d = self.domains.get(DomainId(host, uuid))
        if d is None:
            return False
        t = self._active_domain_job(d)
        if t is not None and t.job.type is JobType.SNAPSHOT_REVERT:
            return True
        if t is not None and t.held_end is not None:
            t.finishing_seen = True  # libvirt still holds the job its event said done
            return True
        if d.stream_out is None:
            return False
        if t is not None:
            return is_savevm(t)
        if held < SAVEVM_AFTER or d.domain_job_ended >= d.stream_out:
            return False  # (that stream was a job libvirt reported, now over)
        t = self._new(d, "snapshot", JobType.SNAPSHOT, d.stream_out,
                      config={SAVED_BY: SAVEVM}, at=at)  # fmt: skip
        self._update(
            t,
            at,
            message="QEMU saves the guest's state into the disk images; libvirt reports "
            "no progress for an internal snapshot and its other calls wait for it",
        )
        return True

    def _savevm_sample(self, d: DomainInfo, s: DomainSample) -> bool:
        """A full sample after the stream began: an internal snapshot it shows ended
        (True: the sample said all there is about domain jobs)."""
        t = self._active_domain_job(d)
        if t is not None and t.job.type is JobType.SNAPSHOT_REVERT:
            return True  # _revert_look decides its end
        if s.job_stats or s.incoming:
            d.stream_out = None
            if t is not None and is_savevm(t):
                # A slow poll, and libvirt does report the stream's job (a save, a
                # migration): the guess was wrong, and that row never was a job.
                self.active.pop(TrackId.of(t.job), None)
                self.out.append(JobDismissed(t.job.key))
            return False  # libvirt reports a job: not QEMU's savevm
        if t is None and d.stream_out is not None and s.longest_call >= SHORT_SAVEVM_HELD:
            # The poll was held and then libvirt reported no job: a savevm too short to
            # be shown running ended while it waited. Recorded a moment later, unless a
            # JOB_COMPLETED says the stream was a save, a dump or a migration after all.
            d.savevm_done = (d.stream_out, s.answered)
            self.savevm_pending.add(d.id)
        if t is None or not is_savevm(t):
            if t is None:
                d.stream_out = None
            return False
        d.stream_out = None
        state, why = _verdict(d.stream_verdict)
        self._set_state(t, state, s.answered, message=why)
        return True

    def _savevm_tick(self, now: float) -> None:
        for did in list(self.savevm_pending):
            d = self.domains.get(did)
            if d is None or d.savevm_done is None:
                self.savevm_pending.discard(did)
                continue
            if now - d.savevm_done[1] < SHORT_SAVEVM_WAIT:
                continue
            self.savevm_pending.discard(did)
            began, ended = d.savevm_done
            d.savevm_done = None
            if d.domain_job_ended >= began or self._active_domain_job(d) is not None:
                continue  # libvirt reported that stream's job after all
            t = self._new(d, "snapshot", JobType.SNAPSHOT, began,
                          config={SAVED_BY: SAVEVM}, at=began)  # fmt: skip
            state, why = _verdict(d.stream_verdict)
            self._set_state(t, state, ended, message=f"{why}; it ended between two polls")


def _verdict(status: str) -> tuple[JobState, str]:
    if status == "completed":
        return JobState.COMPLETED, "QEMU reports the guest's state saved"
    if status == "failed":
        return JobState.FAILED, "QEMU reports saving the guest's state failed"
    return (
        JobState.UNKNOWN,
        "over; libvirt says nothing of how an internal snapshot ended "
        "(`virsh snapshot-list` shows whether it was taken)",
    )
