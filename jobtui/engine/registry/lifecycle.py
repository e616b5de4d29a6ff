"""What lifecycle events and QEMU's events say about jobs.

A stopped domain takes its block jobs with it (libvirt sends no block-job event
for them); lifecycle events mark a migration's milestones and post-copy; QEMU's
MIGRATION events begin a restore and tell how a migration went; its
JOB_STATUS_CHANGE events pause and resume jobs, make new ones visible within tens
of milliseconds, end the jobs only QEMU knows, and drive the image-creation rule.

QEMU's image creation before a copy (`blockdev-create`) normally takes a few
milliseconds; it becomes a visible job only when it lingers (slow or stuck
storage), and QEMU's events say when it ends but not how.
"""

from __future__ import annotations

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.qemu_jobs import parse_qemu_job_id
from jobtui.engine.registry.block_jobs import BlockJobs
from jobtui.engine.registry.book import DomainId, DomainInfo, TrackId
from jobtui.engine.registry.limbo import beyond_libvirt
from jobtui.engine.sample import (
    ACTIVE_STATES,
    domain_job_name,
)
from jobtui.model import (
    Job,
    JobDismissed,
    JobState,
    JobType,
)

# QEMU pauses a mirror for sub-millisecond drains; only a longer pause is real.
PAUSE_DEBOUNCE = 0.3


# QEMU's image-creation step becomes a visible job only when it takes this long.
CREATE_LINGER = 1.0


_EV = libvirt  # lifecycle event and detail numbers


# virDomainEventStoppedDetailType -> what happened, for a person.
STOP_REASONS = {
    libvirt.VIR_DOMAIN_EVENT_STOPPED_SHUTDOWN: "shut down",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED: "was destroyed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED: "failed (QEMU ended)",
}


# Stops that no domain job survives (a crash may follow a completed dump --crash).
KILLED_DETAILS = frozenset(
    {libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED, libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED}
)


# How a migration-in ends when its domain stops with libvirt's reason "failed" and its
# source is not watched: QEMU and libvirt here say "failed" for an abort on the source too.
INCOMING_STOPPED = (
    "the migration did not complete: the incoming domain was stopped, which is also how "
    "an abort on the source ends it (the source host says which)"
)


class Lifecycle(BlockJobs):
    """Lifecycle events, device removal and QEMU's own events."""

    def _lifecycle(self, d: DomainInfo, e: ev.LifecycleEv) -> None:
        """Migration milestones and the end of the domain's QEMU, which libvirt
        announces as lifecycle events."""
        kind = (e.event, e.detail)
        if e.event in (_EV.VIR_DOMAIN_EVENT_STARTED, _EV.VIR_DOMAIN_EVENT_STOPPED) and kind != (
            _EV.VIR_DOMAIN_EVENT_STARTED,
            _EV.VIR_DOMAIN_EVENT_STARTED_RESTORED,
        ):
            d.stream_in = None  # not a restore, or one that failed
        if e.event == _EV.VIR_DOMAIN_EVENT_STOPPED:
            self._stopped(d.host, d.uuid, e)
        t = self._active_domain_job(d)
        if t is not None and t.held_end is not None and e.event == _EV.VIR_DOMAIN_EVENT_STOPPED:
            self._held_end(t, e.time)  # a save's domain stops once its file is written
            t = None
        if kind == (_EV.VIR_DOMAIN_EVENT_STARTED, _EV.VIR_DOMAIN_EVENT_STARTED_RESTORED):
            self._restored(d, t, e.time)
            return
        if kind == (_EV.VIR_DOMAIN_EVENT_STARTED, _EV.VIR_DOMAIN_EVENT_STARTED_MIGRATED):
            # The destination's domain is created: the incoming migration begins.
            if t is None and e.time > d.domain_job_ended:
                t = self._new(
                    d, domain_job_name(JobType.MIGRATION_IN), JobType.MIGRATION_IN, e.time
                )
                t.seen_start = True
                self._link_peer(t)
            return
        if t is None or not t.job.type.is_migration:
            return
        postcopy = {
            (_EV.VIR_DOMAIN_EVENT_SUSPENDED, _EV.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY): "active",
            (_EV.VIR_DOMAIN_EVENT_RESUMED, _EV.VIR_DOMAIN_EVENT_RESUMED_POSTCOPY): "active",
            (_EV.VIR_DOMAIN_EVENT_SUSPENDED, _EV.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED): (
                "failed"
            ),
            (
                _EV.VIR_DOMAIN_EVENT_RESUMED,
                getattr(_EV, "VIR_DOMAIN_EVENT_RESUMED_POSTCOPY_FAILED", 4),
            ): "failed",
        }.get(kind)
        if postcopy:
            self._set_postcopy(t, postcopy, e.time)
        elif t.job.type is JobType.MIGRATION_IN:
            if kind == (_EV.VIR_DOMAIN_EVENT_RESUMED, _EV.VIR_DOMAIN_EVENT_RESUMED_MIGRATED):
                t.hint = (JobState.COMPLETED, "the domain runs on this host now")
            elif kind == (_EV.VIR_DOMAIN_EVENT_STOPPED, _EV.VIR_DOMAIN_EVENT_STOPPED_FAILED):
                # libvirt's word here ("failed") whether the source aborted or failed:
                # only the source knows which (and says it when it is watched too).
                t.hint = (JobState.FAILED, INCOMING_STOPPED)

    def _stopped(self, host: str, uuid: str, e: ev.LifecycleEv) -> None:
        """QEMU is gone and its block jobs with it, and libvirt sends no block job
        event for them: they end here, with the reason."""
        if e.detail not in STOP_REASONS:
            return
        why = f"the domain {STOP_REASONS[e.detail]} while the job ran; it did not finish"
        for bt in self._tracks_of(host, uuid):
            if bt.disk:
                bt.hint = (JobState.FAILED, why)
                self._vanished(bt, e.time, why)
            elif (
                e.detail in KILLED_DETAILS
                and bt.hint is None
                and bt.job.type is not JobType.MIGRATION_IN
            ):
                # A domain job ends by JOB_COMPLETED or its kept stats if libvirt
                # has any (a failed save or migration has none): else this is why.
                bt.hint = (JobState.FAILED, why)
                if bt.gone_since is not None:
                    self._vanished(bt, e.time, why)  # a poll already saw it gone

    def _device_removed(self, e: ev.DeviceRemovedEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        d.xml_dirty = True
        self._poke(DomainId(e.host, e.uuid))
        disk = next((x.target for x in d.disks if x.alias == e.alias), "")
        if not disk:
            return
        d.disks = tuple(x for x in d.disks if x.target != disk)
        for t in self._tracks_of(e.host, e.uuid):
            if t.disk != disk or not t.job.state.active:
                continue
            if e.host in self.qemu_event_hosts:
                msg = (
                    f"disk {disk} was unplugged while the job ran: QEMU still runs it "
                    "but libvirt no longer sees it"
                )
                self._orphan(t, d, e.time, msg)
            else:
                self._vanished(t, e.time, f"its disk {disk} was unplugged")

    def _stream_out(self, d: DomainInfo, at: float) -> None:
        """QEMU sends a migration stream and libvirt reports no job for it (yet): one
        the next poll shows, or QEMU's savevm, which no poll shows (snapshot.py)."""
        if d.stream_out is None and d.state in ACTIVE_STATES and not d.starting_up:
            d.stream_out, d.stream_verdict = at, ""

    def _qemu_event(self, e: ev.QemuEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        if e.name == "MIGRATION":
            status = e.get("status", "")
            if status in ("completed", "failed", "cancelled"):
                d.want_completed = True
            if status in ("failed", "cancelled"):
                d.stream_in = None
            t = self._active_domain_job(d)
            if (
                t is None
                and status == "setup"
                and (d.state not in ACTIVE_STATES or d.starting_up)
                and e.time > d.domain_job_ended
            ):
                # A domain that was off takes in a migration stream: a restore or
                # a migration-in. The next poll tells (_restore_begun).
                d.stream_in = e.time
            elif t is None and status in ("setup", "active") and d.stream_out is None:
                self._stream_out(d, e.time)
            elif (t is None and d.stream_out is not None) or (
                t is not None and t.job.type is JobType.SNAPSHOT
            ):
                d.stream_verdict = status  # how QEMU's savevm went (snapshot.py)
            elif t is not None and t.job.type is JobType.RESTORE and status == "failed":
                t.hint = (JobState.FAILED, "QEMU reports the restore failed")
            elif t is not None and t.job.type.is_migration:
                if status == "postcopy-active":
                    self._set_postcopy(t, "active", e.time)
                elif status == "cancelled":
                    t.hint = (JobState.ABORTED, "QEMU reports the migration cancelled")
                elif status == "failed" and t.job.type is JobType.MIGRATION_IN:
                    # An incoming stream that stops is "failed" for this QEMU, whatever
                    # ended it on the source (an abort too).
                    t.hint = (JobState.FAILED, INCOMING_STOPPED)
                elif status == "failed":
                    t.hint = (JobState.FAILED, "QEMU reports the migration failed")
                elif status == "completed" and t.job.type is JobType.MIGRATION_IN:
                    t.hint = (JobState.COMPLETED, "QEMU reports the migration completed")
            elif t is not None and t.job.type is JobType.SAVE and status in ("cancelled", "failed"):
                # A save is QEMU's migration stream into a file; libvirt keeps no
                # statistics of a cancelled or failed one.
                state = JobState.ABORTED if status == "cancelled" else JobState.FAILED
                t.hint = (state, f"QEMU reports the save {status}")
            self._poke(DomainId(e.host, e.uuid))
            return
        if e.name == "DUMP_COMPLETED":
            # A memory-only dump leaves libvirt no final statistics: without QEMU's
            # word it could only end as unknown.
            t = self._active_domain_job(d)
            if t is not None and t.job.type is JobType.DUMP:
                error = e.get("error")  # QEMU's DUMP_COMPLETED: present when it failed
                if error:
                    t.hint = (JobState.FAILED, f"QEMU reports the dump failed: {error}")
                else:
                    t.hint = (JobState.COMPLETED, "QEMU reports the dump completed")
                result = e.get("result")
                if isinstance(result, dict) and isinstance(result.get("completed"), int):
                    # QEMU's last word on the figures; the last poll is older (a small
                    # guest's dump ends between two polls, at a few percent).
                    self._update(t, e.time, current=result["completed"], end=result.get("total"))
            self._poke(DomainId(e.host, e.uuid))
            return
        if e.name in ("BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED"):
            error = str(e.get("error") or "")
            qid = str(e.get("device", ""))
            _typ, disk = parse_qemu_job_id(qid)
            tracks = self._tracks_of(e.host, e.uuid)
            # By QEMU's id first: an orphan and a new job may share a disk name.
            t = next((x for x in tracks if x.job.qemu_id == qid), None) or next(
                (x for x in tracks if disk and x.disk == disk), None
            )
            mig = self._active_domain_job(d) if t is None else None
            if mig is not None and mig.job.type is JobType.MIGRATION_OUT:
                if error or e.name == "BLOCK_JOB_CANCELLED":
                    self._storage_copy_qemu_end(d, mig, e, error)
            elif t is not None and beyond_libvirt(t):
                t.hint = qemu_outcome(e.name, error, t.job)  # libvirt will send no word
            elif e.name == "BLOCK_JOB_CANCELLED":
                return  # libvirt's own event follows and says it: no extra poll now
            elif t is not None and error:
                t.qemu_error = error  # libvirt's failed event that follows has no text
            elif error and disk:
                self.qemu_errors[(e.host, e.uuid, disk)] = (error, e.time)
            self._poke(DomainId(e.host, e.uuid))
            return
        if e.name != "JOB_STATUS_CHANGE":
            self._poke(DomainId(e.host, e.uuid))
            return
        qid, status = str(e.get("id", "")), str(e.get("status", ""))
        typ, disk = parse_qemu_job_id(qid)
        mine = next((x for x in self._tracks_of(e.host, e.uuid) if x.job.qemu_id == qid), None)
        if mine is not None and mine.job.qemu_only:
            self._limbo_event(mine, status, e.time)
            return
        if typ is JobType.BLOCKDEV_CREATE:
            self._create_job_event(d, qid, status, e.time)
            return
        if typ is JobType.UNKNOWN:
            if status in ("created", "running"):
                # libvirt's own jobs (a storage migration's drive-virtio-disk0
                # mirror): the poll shows which domain job they belong to.
                self._poke(DomainId(e.host, e.uuid))
            return
        t = next((x for x in self._tracks_of(e.host, e.uuid) if x.disk == disk and x.disk), None)
        if t is not None and t.job.qemu_id and t.job.qemu_id != qid:
            # Another job on the same disk name: an orphan's disk plugged in again.
            if t.job.state is JobState.ORPHANED:
                self._set_aside(t, e.time)
                t = None
            else:
                self._poke(DomainId(e.host, e.uuid))
                return
        if t is None:
            if status in ("created", "running"):
                if disk not in {x.target for x in d.disks}:
                    d.xml_dirty = True  # a disk plugged in since the XML was read
                self._poke(DomainId(e.host, e.uuid))  # the fast path: poll it right now
            return
        if not t.job.qemu_id:
            t.job = t.job.evolve(qemu_id=qid)
        if t.job.state is JobState.ORPHANED:
            self._limbo_event(t, status, e.time)
            return
        self._qemu_status(t, status, e.time)

    def _create_job_event(self, d: DomainInfo, qid: str, status: str, at: float) -> None:
        """QEMU's image creation before a copy: normally a few milliseconds. It is
        shown only when it lingers (slow or stuck storage), the case the proposal
        worries about; a quick one would just flash an 'unknown' row."""
        name = qid.removesuffix("-format")
        t = self.active.get(TrackId(d.host, d.uuid, name))
        if status in ("created", "running") and t is None:
            self.pending_creates.setdefault(TrackId(d.host, d.uuid, name), (at, qid, d.name))
            return
        if status in ("concluded", "null"):
            self.pending_creates.pop(TrackId(d.host, d.uuid, name), None)
        if status in ("concluded", "null") and t is not None:
            self._set_state(
                t,
                JobState.UNKNOWN,
                at,
                message="QEMU's image creation ended; QEMU does not report its outcome",
            )
            # A helper step of libvirt's own job: the stream shows it, history does not.
            self.finished.pop(t.job.key, None)
            self.newly_finished.remove(t.job)
            self.out.append(JobDismissed(t.job.key))

    def _linger_creates(self, now: float) -> None:
        """An image creation that has run for CREATE_LINGER becomes a visible job."""
        for key, (first, qid, _dname) in list(self.pending_creates.items()):
            d = self.domains.get(DomainId(key.host, key.uuid))
            if now - first > CREATE_LINGER and d is not None:
                del self.pending_creates[key]
                self._new(d, key.name, JobType.BLOCKDEV_CREATE, first, qemu_id=qid, at=now)


def qemu_outcome(event: str, error: str, job: Job) -> tuple[JobState, str]:
    """How QEMU says a job ended that libvirt no longer sees (its disk unplugged, or
    started through QMP): BLOCK_JOB_CANCELLED, or BLOCK_JOB_COMPLETED with or without
    an error. They come before the job's `concluded` status, which ends it."""
    if event == "BLOCK_JOB_CANCELLED":
        return JobState.ABORTED, "cancelled in QEMU"
    if error:
        return JobState.FAILED, f"QEMU reported an error: {error}"
    if job.type is JobType.BLOCK_COPY:
        dest = job.config.get("destination", "the destination")
        return JobState.COMPLETED, f"QEMU ended it without error: {dest} is a consistent copy"
    return JobState.COMPLETED, "QEMU ended it without error"
