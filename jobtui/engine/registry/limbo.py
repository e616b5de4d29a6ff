"""Jobs libvirt no longer sees, and jobs known before libvirt could be asked.

The proposal's "limbo" job: a block job whose disk was unplugged while QEMU kept
running it. libvirt forgets it at once (no public API lists or stops it), so the
engine keeps what it learned — QEMU's job id, the last figures, when it was last
confirmed and in which QEMU process (libvirt's domain id) — in the history, where
the next jobtui process finds it. That process shows it `orphaned` and stale until
something confirms or ends it:
- QEMU's own job events (any read-write connection receives them) end it;
- with the QEMU-monitor opt-in, QEMU's job list confirms it, or shows it gone;
- a domain that was stopped or restarted since (another domain id) took the job's
  QEMU process with it; a domain that no longer exists did too.

The same QEMU job list also shows jobs that libvirt lists nowhere at all (a job
started through QMP by someone else): they are shown with what their id tells.

Also here: the first look at a domain, which reads only what answers without the
QEMU monitor, shows a mirror that libvirt's XML describes before its figures are
known (a stopped QEMU never answers for them).
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from jobtui.engine.qemu_jobs import QemuJob, parse_qemu_job_id
from jobtui.engine.registry.book import DomainInfo, Track, TrackId
from jobtui.engine.registry.domain_jobs import DomainJobs
from jobtui.engine.sample import (
    ACTIVE_STATES,
    DomainSample,
    block_job_name,
)
from jobtui.model import (
    FrozenMap,
    Job,
    JobDismissed,
    JobState,
    JobStateChanged,
    JobType,
)

# An orphaned job's record in the history is refreshed at most this often.
KEEP_EVERY = 30.0


MIRROR_TYPES = {"copy": JobType.BLOCK_COPY, "active-commit": JobType.BLOCK_COMMIT_ACTIVE}


CONFIRM_FLAG = "--allow-qemu-monitor"


def beyond_libvirt(t: Track) -> bool:
    """A job libvirt cannot see: an orphan, or one only QEMU's job list shows."""
    return t.job.state is JobState.ORPHANED or t.job.qemu_only


def _clock(epoch: float | None) -> str:
    if epoch is None:
        return "an unknown time"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


class Limbo(DomainJobs):
    """The rules above, on the registry's own tables."""

    def _keep(self, t: Track, now: float, *, force: bool = False) -> None:
        """Hand an orphaned job to the history (the dispatcher records what drain returns)."""
        if force or now - t.kept_at >= KEEP_EVERY:
            t.kept_at = now
            self.newly_finished.append(t.job)

    def _set_aside(self, t: Track, at: float) -> None:
        """A job libvirt sees now carries an orphan's name (its disk was plugged in again
        and a new job started on it): the orphan is renamed for its QEMU id, so the two
        are never mixed up. Its record in the history moves with it."""
        old = t.job
        if not old.qemu_id:
            self._set_state(
                t,
                JobState.UNKNOWN,
                at,
                message=f"a new job runs on disk {t.disk}; this one's QEMU id was never known",
            )
            return
        self.active.pop(TrackId.of(old), None)
        self.out.append(JobDismissed(old.key))
        self.forgotten.append(old.key)
        msg = (
            f"{old.message}; was {old.name}, until a new job libvirt sees took that name "
            f"(disk {t.disk} plugged in again)"
        )
        t.job = old.evolve(key=replace(old.key, name=f"qemu-{old.qemu_id}"), message=msg)
        t.disk = ""  # no longer found by its disk: only by its QEMU id
        self.active[TrackId.of(t.job)] = t
        self.out.append(JobStateChanged(t.job.key, None, t.job.state, t.job, at))
        self._keep(t, at, force=True)

    def adopt_kept(self, job: Job) -> None:
        """An orphaned job an earlier process kept: shown, stale, until confirmed or ended."""
        disk = str(job.config.get("disk", ""))
        if job.name.startswith("qemu-"):
            disk = ""  # set aside: another job may carry its disk's name
        how = (
            "QEMU's job list will confirm it"
            if self.qemu_monitor
            else f"run with {CONFIRM_FLAG} to confirm it through QEMU's monitor"
        )
        msg = (
            f"libvirt no longer sees this job (its disk {disk or '?'} is gone); QEMU still ran "
            f"it when last confirmed at {_clock(job.sampled)}; {how}"
        )
        t = Track(job=job.evolve(stale=True, rate=None, message=msg), disk=disk)
        t.kept_at = time.time()
        self.active[TrackId.of(job)] = t

    def end_absent(self, host: str, listed: set[str], at: float) -> None:
        """The host's domain list came: orphans of domains it no longer has are over."""
        for k, t in list(self.active.items()):
            if k.host == host and k.uuid not in listed and t.job.state is JobState.ORPHANED:
                self._set_state(
                    t,
                    JobState.UNKNOWN,
                    at,
                    message="the domain no longer exists, and QEMU with it; how the job "
                    "ended is not known",
                )

    def _orphans_outlived(self, d: DomainInfo, at: float) -> None:
        """The domain's QEMU is another process (or none): its old jobs went with the old one."""
        for t in self._tracks_of(d.host, d.uuid):
            kept_id = t.job.config.get("qemu-domain-id")
            if t.job.state is not JobState.ORPHANED or not isinstance(kept_id, int):
                continue
            if d.domain_id == kept_id and d.state in ACTIVE_STATES:
                continue
            self._set_state(
                t,
                JobState.UNKNOWN,
                at,
                message=(
                    "the QEMU process that ran it has ended (the domain was stopped or "
                    f"restarted) since it was last confirmed at {_clock(t.job.sampled)}; "
                    "how the job ended is not known"
                ),
            )

    def _orphan(self, t: Track, d: DomainInfo, at: float, msg: str) -> None:
        config = dict(t.job.config, **{"qemu-domain-id": d.domain_id})
        config.setdefault("disk", t.disk)
        self._set_state(t, JobState.ORPHANED, at, message=msg, config=FrozenMap(config))
        self._mark_stale(t)
        self._keep(t, at, force=True)

    def _mirrors_from_xml(self, d: DomainInfo, s: DomainSample) -> None:
        """A first look that read only the XML: a copy or active commit it describes is
        shown at once, its figures unknown (stale), until QEMU answers for them."""
        if d.full_once:
            return
        have = {t.disk for t in self._tracks_of(d.host, d.uuid) if t.disk}
        for di in d.disks:
            typ = MIRROR_TYPES.get(di.mirror_job)
            # A mirror to a network target is a storage migration's, not a user's job.
            if typ is None or di.target in have or not di.mirror_dest:
                continue
            config = {"disk": di.target, "destination": di.mirror_dest}
            if di.source:
                config["source"] = di.source
            # Already READY when first seen: one "new -> ready", at the look's time
            # (not "new -> running" now, then "running -> ready" earlier).
            ready = di.mirror_ready == "yes"
            t = self._new(
                d,
                block_job_name(typ, di.target),
                typ,
                s.taken,
                disk=di.target,
                config=config,
                state=JobState.READY if ready else JobState.RUNNING,
                at=s.taken,
                before_seen=True,  # a first look's: it ran before
            )
            t.unconfirmed = True
            self._mark_stale(t)

    def _drop_unconfirmed(self, t: Track) -> None:
        """Shown from the XML, then not found by the first full look: never a job of ours."""
        self.active.pop(TrackId.of(t.job), None)
        self.out.append(JobDismissed(t.job.key))

    def _reconcile_qemu(self, d: DomainInfo, s: DomainSample, jobs: tuple[QemuJob, ...]) -> None:
        """QEMU's job list against libvirt's view: what libvirt cannot see is shown."""
        disks = {di.target for di in d.disks}
        domain_job = self._active_domain_job(d)
        seen: set[str] = set()
        for q in jobs:
            typ, disk = parse_qemu_job_id(q.id)
            if q.status in ("concluded", "null"):
                continue  # over; its end was (or will be) told by its events
            tracks = self._tracks_of(d.host, d.uuid)
            mine = next((x for x in tracks if x.job.qemu_id == q.id), None)
            t = next((x for x in tracks if disk and x.disk == disk), None)
            # Not libvirt's job on that disk: an orphan set aside, or one whose disk name
            # a new job took when the disk was plugged in again.
            other = (mine is not None and mine is not t) or (
                t is not None and t.job.qemu_id not in ("", q.id)
            )
            if typ.is_block and typ is not JobType.BLOCKDEV_CREATE and disk in disks and not other:
                # libvirt's own job on a disk it sees: the poll shows it, all but a
                # pause (libvirt has no word for one), which only QEMU can tell: one
                # made by another client, or by an earlier jobtui process.
                if t is not None and t.job.state is not JobState.ORPHANED:
                    self._qemu_status(t, q.status, s.answered)
                continue
            if typ is JobType.BLOCKDEV_CREATE and any(
                t.job.qemu_id == q.id for t in self._tracks_of(d.host, d.uuid)
            ):
                seen.add(q.id)
                continue
            if typ in (JobType.UNKNOWN, JobType.BACKUP) and domain_job is not None:
                continue  # a migration's drive mirror, a backup's per-disk job
            seen.add(q.id)
            self._qemu_only_job(d, s, q, typ, disk)
        for t in self._tracks_of(d.host, d.uuid):
            if t.job.qemu_only and t.job.qemu_id and t.job.qemu_id not in seen:
                if t.hint is not None:  # QEMU's event said how it ended
                    self._set_state(t, t.hint[0], s.answered, message=t.hint[1])
                    continue
                self._set_state(
                    t,
                    JobState.ABORTED if t.abort_requested else JobState.UNKNOWN,
                    s.answered,
                    message=(
                        "cancelled through QEMU"
                        if t.abort_requested
                        else "QEMU no longer runs it (its job list says so); how it ended "
                        "is not known"
                    ),
                )

    def _qemu_status(self, t: Track, status: str, at: float) -> None:
        """QEMU's word on a job's status (an event, or its job list): a pause held for
        PAUSE_DEBOUNCE makes it PAUSED (see Registry.tick; QEMU pauses mirrors for
        sub-millisecond drains), and running again restores what it was."""
        # A paused READY mirror is 'standby' in QEMU's words.
        if status in ("paused", "standby"):
            if t.paused_since is None:
                t.paused_since = at
        elif status in ("running", "ready"):
            t.paused_since = None
            if t.job.state is JobState.PAUSED:
                back = t.state_before_pause or (
                    JobState.READY if status == "ready" else JobState.RUNNING
                )
                t.state_before_pause = None
                self._set_state(t, back, at)

    def _qemu_only_job(
        self, d: DomainInfo, s: DomainSample, q: QemuJob, typ: JobType, disk: str
    ) -> None:
        if typ.is_block and typ is not JobType.BLOCKDEV_CREATE:
            name = block_job_name(typ, disk)
        else:
            name = f"qemu-{q.id}"
        t = next((x for x in self._tracks_of(d.host, d.uuid) if x.job.qemu_id == q.id), None)
        if t is None:
            t = self.active.get(TrackId(d.host, d.uuid, name))
            if t is not None and not beyond_libvirt(t):
                # The name is a job's that libvirt sees: this one goes by its QEMU id.
                name, t = f"qemu-{q.id}", None
        if t is None:
            config: dict[str, Any] = {"qemu-type": q.kind, "seen-by": "qemu"}
            if disk:
                config["disk"] = disk
            t = self._found(d, s.taken, name, typ, disk=disk, config=config, qemu_id=q.id)
        figures: dict[str, Any] = {"current": q.current, "end": q.end}
        if q.speed is not None or typ.is_block:
            figures["bandwidth"] = q.speed
        if not t.job.qemu_id:
            figures["qemu_id"] = q.id
        if typ is JobType.UNKNOWN and not t.job.message:
            # Its id follows no libvirt pattern, and no domain job runs (whose parts are
            # not listed here): most likely another client's, through QEMU's monitor.
            figures["message"] = (
                f"only QEMU knows this job (its {q.kind} job {q.id!r}): libvirt neither "
                "lists nor controls it; most likely started through QEMU's monitor"
            )
        if typ.is_block and typ is not JobType.BLOCKDEV_CREATE and disk:
            if t.job.state is not JobState.ORPHANED:
                self._orphan(
                    t,
                    d,
                    s.answered,
                    f"libvirt no longer sees this job (its disk {disk} is gone), but QEMU "
                    "still runs it (its job list says so)",
                )
            elif t.job.stale:
                msg = (
                    f"libvirt no longer sees this job (its disk {disk} is gone), but QEMU "
                    "still runs it (confirmed through its job list)"
                )
                figures["message"] = msg
        self._update(t, s.taken, sampled=s.answered, certain=s.certain, **figures)
        if t.job.state is JobState.ORPHANED:
            self._keep(t, s.answered)
        else:
            # What QEMU says it is doing is all there is to go by (READY, paused).
            if q.status == "ready" and t.job.state is JobState.RUNNING:
                self._set_state(t, JobState.READY, s.answered)
            self._qemu_status(t, q.status, s.answered)

    def _limbo_event(self, t: Track, status: str, at: float) -> None:
        """QEMU's job event for a job only QEMU knows: the only word on how it goes."""
        if status not in ("concluded", "null"):
            return
        if t.hint is not None:
            self._set_state(t, t.hint[0], at, message=t.hint[1])
        elif t.abort_requested:
            self._set_state(t, JobState.ABORTED, at, message="cancelled through QEMU")
        else:
            self._set_state(
                t, JobState.UNKNOWN, at, message="the job ended in QEMU; QEMU does not say how"
            )
