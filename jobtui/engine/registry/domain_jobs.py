"""Domain jobs: one at a time per domain, seen in jobStats while they run.

A domain job's end comes from JOB_COMPLETED or the completed statistics libvirt
keeps; a job that vanished with no word from libvirt is `unknown`. The first look
at a domain records the completed statistics libvirt already keeps, so an old
job's statistics are never taken for a new job's outcome.

A restore shows in no job API of libvirt 9.0: QEMU's incoming MIGRATION events
say it began, the domain waits paused (starting up) while QEMU loads the image,
and the lifecycle event STARTED_RESTORED says it is done.
"""

from __future__ import annotations

from typing import Any

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.registry.book import (
    DOMAIN_GONE_GRACE,
    DomainId,
    DomainInfo,
    Track,
    int_or_none,
)
from jobtui.engine.registry.migration import Migrations
from jobtui.engine.sample import (
    ACTIVE_STATES,
    OPERATION_TYPES,
    DomainSample,
    domain_job_name,
)
from jobtui.model import (
    SAME_RUN_SECONDS,
    FrozenMap,
    Job,
    JobState,
    JobType,
)

# A domain starting up while taking in a stream is a restore once it has done so this
# long without a STARTED/MIGRATED event saying it is a migration's destination.
RESTORE_SETTLE = 1.0
# A domain seen starting up for this long, with no stream event seen, is loading a restore.
LONG_START = 2.0


def domain_progress(typ: JobType, stats: dict[str, Any]) -> tuple[int | None, int | None]:
    """(current, end) of a domain job from the stats libvirt gives it."""
    if typ.is_migration:
        # What is left, not what was sent: *_processed counts every page sent
        # again after the guest dirtied it and outgrows *_total. The bar goes
        # back when a pass starts with more to send: it does not lie.
        total = int_or_none(stats.get("data_total"))
        left = int_or_none(stats.get("data_remaining"))
        if not total:
            return None, None
        return max(0, total - (left or 0)), total
    if typ is JobType.BACKUP:
        return int_or_none(stats.get("disk_processed")), int_or_none(stats.get("disk_total"))
    for kind in ("data", "memory"):
        total = int_or_none(stats.get(f"{kind}_total"))
        if not total:
            continue
        left = int_or_none(stats.get(f"{kind}_remaining"))
        if left is not None:
            # A save is QEMU's migration stream into a file: *_processed leaves out
            # the zero pages it only flags, so a finished save of a mostly empty guest
            # read 1 %; what is left reaches 0 when it is done.
            return max(0, total - left), total
        return int_or_none(stats.get(f"{kind}_processed")), total
    return int_or_none(stats.get("disk_processed")), int_or_none(stats.get("disk_total"))


_COMPLETED = libvirt.VIR_DOMAIN_JOB_COMPLETED
# Jobs whose JOB_COMPLETED comes when QEMU's part is done, libvirt then finishing (a file
# written out; an external snapshot's disks, or its --halt): ended by a look (_held_look).
_HELD_TYPES = frozenset({JobType.SAVE, JobType.DUMP, JobType.SNAPSHOT})
# A held end no look has confirmed (the domain did not answer) is taken this much later.
HELD_END_WAIT = 2.0

# A job whose QEMU part is done while libvirt still holds it (jobStats(0) reads COMPLETED).
FINISHING = "QEMU's part is done; libvirt still finishes the job (a file still being written)"

# How long a migration or save that libvirt dropped waits for QEMU's word on its end.
QEMU_VERDICT_WAIT = 1.0


class DomainJobs(Migrations):
    """Domain jobs (save, dump, migration, backup...) from jobStats, JOB_COMPLETED
    and the completed statistics libvirt keeps; and the restore no job API shows."""

    def _active_domain_job(self, d: DomainInfo) -> Track | None:
        for t in self._tracks_of(d.host, d.uuid):
            if (
                not t.disk
                and not t.job.type.is_block
                and t.job.state is not JobState.ORPHANED
                and not t.awaiting_source
                # A job only QEMU's job list shows (started through QMP) is no domain
                # job: taken for one, it hid itself on the next look (limbo.py).
                and not t.job.outside_libvirt
            ):
                return t
        return None

    def _awaits_qemu_verdict(self, t: Track, d: DomainInfo, at: float) -> bool:
        """A migration or save gone from libvirt with no statistics kept (cancelled or
        failed): QEMU's MIGRATION event says which, and can come a moment after libvirt
        has dropped the job (a destination's daemon killed: 1 ms after). Waited for
        QEMU_VERDICT_WAIT where this connection receives QEMU's events (tick ends the
        wait, as for any job gone without a word)."""
        if (
            t.hint is not None
            or d.host not in self.qemu_event_hosts
            or t.job.type not in (JobType.MIGRATION_OUT, JobType.SAVE)
        ):
            return False
        if t.gone_since is None:
            t.gone_since = at - DOMAIN_GONE_GRACE + QEMU_VERDICT_WAIT
            t.gone_why = "libvirt kept no final statistics"
        return True

    def _apply_domain_job(self, d: DomainInfo, s: DomainSample) -> None:
        track = self._held_look(d, s)
        if track is not None and track.job.type is JobType.RESTORE:
            # No job API shows a restore: it ends by its lifecycle event, or
            # (failed) when the domain is no longer waiting to start.
            if d.starting_up:
                track.gone_since = None
            elif s.taken > track.job.started:
                track.gone_since = track.gone_since or s.taken
            return
        if track is not None and (d.starting_up or s.taken < track.job.started):
            # Neither sample can say the job is gone: a domain starting up (an incoming
            # migration's new QEMU) is not asked for jobStats (sample.py), and a poll
            # that began before the job's STARTED/MIGRATED event came knows nothing of
            # it. Taken for "gone", the migration-in ended unknown and a second began.
            return
        running = bool(s.job_stats) or s.incoming
        if track is None and not running and self._restore_begun(d, s):
            return
        if s.completed_stats is not None:
            d.want_completed = False
            fp = _fingerprint(s.completed_stats)
            # A domain that came while the link was down: its kept stats, if any, are
            # a job that ran then (a migration in), not an old job to ignore.
            fresh = (d.seen_completed or d.came_unseen) and fp != d.completed_fp
            d.completed_fp, d.seen_completed, d.came_unseen = fp, True, False
            if track is None and not running and fresh and d.lost_since is not None:
                self._ran_unseen(d, s.completed_stats, s.taken)
            if d.host not in self.lost_at:
                d.lost_since = None  # the first look at the kept stats since it is back
            if track is not None and not running:
                op_type = OPERATION_TYPES.get(s.completed_stats.get("operation", -1))
                # An incoming migration seen from its start owns whatever stats
                # its domain (new on this host) keeps, even at our first look.
                if op_type == track.job.type and (
                    fresh
                    or (track.seen_start and op_type is JobType.MIGRATION_IN)
                    # First seen finishing: the kept stats, set then, are its own.
                    or track.finishing_seen
                ):
                    self._finish_domain_job(track, s.completed_stats, s.taken)
                    track = None
                elif track.abort_requested:
                    self._set_state(track, JobState.ABORTED, s.taken, message="aborted on request")
                    track = None
                elif track.hint is None and s.state not in ACTIVE_STATES:
                    # The domain stopped under the job, and the lifecycle event that says
                    # how (destroyed, crashed) may still be on its way: wait for it.
                    track.gone_since = track.gone_since or s.taken
                    track = None
                elif self._awaits_qemu_verdict(track, d, s.taken):
                    track = None
                else:
                    self._vanished(track, s.taken, "libvirt kept no final statistics")
                    track = None
        js = s.job_stats
        incoming = s.incoming
        if (js or incoming) and track is None and s.taken <= d.domain_job_ended:
            js, incoming = {}, False  # a stale look at the job that just ended
        if js or incoming:
            if js:
                typ = OPERATION_TYPES.get(int(js.get("operation", 0)), JobType.UNKNOWN)
            else:
                typ = JobType.MIGRATION_IN
            name = domain_job_name(typ)
            if track is not None and track.job.name != name:
                self._vanished(track, s.taken, "replaced by another job")
                track = None
            if track is None:
                elapsed = js.get("time_elapsed", 0) / 1000.0
                track = self._new(d, name, typ, s.taken - elapsed, at=s.taken)
                if not d.seen_completed:
                    d.want_completed = True
            track.gone_since = None
            if js:
                self._update_domain_job(track, js, s)
            if typ.is_migration:
                self._migration_sample(track, s)
        elif track is not None and s.state:
            # Gone from jobStats: the end arrives as JOB_COMPLETED or in the kept stats.
            if track.gone_since is None:
                track.gone_since = s.taken
            if (
                track.job.type is JobType.MIGRATION_IN
                and s.state in ("running", "idle")
                and s.reason == libvirt.VIR_DOMAIN_RUNNING_MIGRATED
            ):
                track.hint = (JobState.COMPLETED, "the domain runs on this host now")
            d.want_completed = True
            self._poke(d.id)

    def _ran_unseen(self, d: DomainInfo, stats: dict[str, Any], at: float) -> None:
        """Final statistics libvirt kept of a job that ran and ended while this host's
        connection was down: its events went into the dead connection. Told as a
        finished job; libvirt keeps no times, only how long it took."""
        typ = OPERATION_TYPES.get(int(stats.get("operation", 0)), JobType.UNKNOWN)
        elapsed = int_or_none(stats.get("time_elapsed"))
        if typ is JobType.UNKNOWN or elapsed is None or d.lost_since is None:
            return
        mark = (stats.get("operation"), elapsed)
        for j in self.finished.values():
            if (j.host, j.key.domain_uuid) == (d.host, d.uuid) and (
                j.stats.get("operation"),
                j.stats.get("time_elapsed"),
            ) == mark:
                return  # told already (its event, or a look before the link went)
        started = max(d.lost_since, at - elapsed / 1000.0)
        t = self._new(d, domain_job_name(typ), typ, started, at=at)
        down = f"it ran while the connection to this host was down ({at - d.lost_since:.0f} s)"
        self._finish_domain_job(
            t, stats, at, note=f"{down}: libvirt kept its final statistics, not when it ran"
        )

    def _update_domain_job(self, t: Track, js: dict[str, Any], s: DomainSample) -> None:
        typ = t.job.type
        cur, end = domain_progress(typ, js)
        if not end and t.job.end:
            # A migration reads all zeros at its start and again while it is
            # cancelled: keep the last real numbers rather than a reset bar.
            cur, end = t.job.current, t.job.end
        stats = {k: v for k, v in js.items() if k != "type"}
        bandwidth = t.job.bandwidth
        if typ is JobType.MIGRATION_OUT:
            bandwidth = s.max_speed
            self._convergence(t, stats, s.taken)
        config = t.job.config
        if typ is JobType.BACKUP and s.backup is not None:
            config = FrozenMap({**t.job.config, **s.backup.config()})
        finishing = js.get("type") == _COMPLETED
        if finishing and not t.job.stalled:
            message = FINISHING
        else:
            message = "" if t.job.message == FINISHING else t.job.message
        self._update(
            t,
            s.taken,
            sampled=s.answered,
            certain=s.certain,
            stats=FrozenMap(_merge_disk_stats(stats, t.job.stats)),
            current=cur,
            end=end,
            bandwidth=bandwidth,
            config=config,
            message=message,
        )
        if typ is JobType.MIGRATION_OUT:
            self._check_stall(t, s.taken)
        elif typ in (JobType.SAVE, JobType.DUMP, JobType.BACKUP):
            self._domain_job_clock(t, s.taken)

    def _finish_domain_job(
        self, t: Track, params: dict[str, Any], at: float, *, note: str = ""
    ) -> None:
        stats = {k: v for k, v in params.items() if k != "type"}
        cur, end = domain_progress(t.job.type, stats)
        success = params.get("success", True)
        errmsg = str(params.get("errmsg", "") or "")
        if success is False or params.get("type") == 4:  # VIR_DOMAIN_JOB_FAILED
            state = JobState.ABORTED if "cancel" in errmsg.lower() else JobState.FAILED
            msg = errmsg or "libvirt reported a failure"
        elif params.get("type") == 5:  # VIR_DOMAIN_JOB_CANCELLED
            state, msg = JobState.ABORTED, errmsg or "cancelled"
        elif errmsg and t.job.type is JobType.BACKUP:
            # How a pull-mode backup's client ends it: libvirt counts it completed.
            msg = f"ended by abort, as a pull-mode backup ends (libvirt: {errmsg})"
            state = JobState.COMPLETED
        else:
            state, msg = JobState.COMPLETED, errmsg
        if note:
            msg = f"{msg}; {note}" if msg else note
        merged = _merge_disk_stats(stats, t.job.stats)
        # libvirt's last word on the figures: they are final, not old (the job may
        # have gone stale while its host was out of reach, and ended meanwhile).
        self._set_state(
            t,
            state,
            at,
            stats=FrozenMap(merged),
            current=cur,
            end=end,
            message=msg,
            stale=False,
            sampled=max(at, t.job.sampled or 0.0),
        )

    def _vanished(self, t: Track, at: float, why: str) -> None:
        if (
            t.job.type is JobType.MIGRATION_IN
            and not t.awaiting_source
            and (t.hint is None or t.hint[0] is not JobState.COMPLETED)
        ):
            # A failed or aborted migration stops its incoming domain before the
            # source's job ends: the source says how it ended.
            out = self._peer_job(t.job)
            if out is not None and out.state.active:
                t.awaiting_source = True
                t.gone_since = at
                return
            if out is not None and out.state in (JobState.ABORTED, JobState.FAILED):
                self._conclude_incoming(t, at, out)
                return
        if t.abort_requested:
            self._set_state(t, JobState.ABORTED, at, message="aborted on request; " + why)
        elif t.hint is not None:
            self._set_state(t, t.hint[0], at, message=t.hint[1])
        elif (done := self._done_by_xml(t)) is not None:
            self._set_state(t, JobState.COMPLETED, at, message=done)
        elif undone := self._undone_by_restart(t):
            self._set_state(t, JobState.FAILED, at, message=undone)
        else:
            self._set_state(t, JobState.UNKNOWN, at, message=f"the job is gone and {why}")

    def _undone_by_restart(self, t: Track) -> str:
        """A migration or save gone with no word after this host's connection was lost,
        its domain still here: it did not complete (a migrated or saved domain is no
        longer running here), and a restarted libvirtd cancels such a job."""
        if t.lost_at is None or t.job.type not in (JobType.MIGRATION_OUT, JobType.SAVE):
            return ""
        d = self.domains.get(DomainId(t.job.host, t.job.key.domain_uuid))
        if d is None or d.state not in ACTIVE_STATES:
            return ""
        still = (
            f"the domain is still {d.state} on the source host"
            if t.job.type is JobType.MIGRATION_OUT
            else f"the domain is still {d.state}, not saved"
        )
        return (
            f"it did not complete: {still}; the connection to that host's libvirtd was "
            f"lost while the job ran, and a restarted libvirtd cancels an unfinished "
            f"{t.job.type}"
        )

    def _done_by_xml(self, t: Track) -> str | None:
        """Why a block job that ended with no word from libvirt (it ended while libvirtd
        was down: no event then, none after) finished, if its disk's XML shows it did:
        a shorter backing chain (pull, commit), or the disk on the copy. None if the XML
        cannot tell (an abort or a failure leaves the disk as it was)."""
        d = self.domains.get(DomainId(t.job.host, t.job.key.domain_uuid))
        before = t.disk_at_start
        now = next((x for x in d.disks if x.target == t.disk), None) if d else None
        if before is None or now is None or now.mirror_job:
            return None
        typ, seen = t.job.type, "libvirt sent no event, but the disk's XML shows it"
        if typ in (JobType.BLOCK_PULL, JobType.BLOCK_COMMIT) and now.chain < before.chain:
            return f"{seen}: its backing chain went from {before.chain} to {now.chain} images"
        dest = t.job.config.get("destination")
        if typ is JobType.BLOCK_COPY and dest and now.source == dest != before.source:
            return f"pivoted ({seen} on the copy)"
        if typ is JobType.BLOCK_COMMIT_ACTIVE and now.chain < before.chain:
            return f"pivoted ({seen} on the base: {now.source})"
        return None

    def _job_completed(self, e: ev.JobCompletedEv) -> None:
        params = dict(e.params)
        typ = OPERATION_TYPES.get(int(params.get("operation", 0)), JobType.UNKNOWN)
        elapsed = float(params.get("time_elapsed", 0)) / 1000.0
        known = self.domains.get(DomainId(e.host, e.uuid))
        t = self._active_domain_job(known) if known is not None else None
        if t is None and typ is not JobType.UNKNOWN:
            done = self._same_finished_run(
                e.host, e.uuid, domain_job_name(typ), e.time - elapsed, e.time
            )
            if done is not None and done.state is not JobState.UNKNOWN:
                # A poll read the kept final stats (or saw the domain go) before
                # this event was delivered: the run is already told.
                return
            if done is not None:
                # Lost as unknown (its domain went first): its real outcome came late.
                self._finish_domain_job(Track(job=done), params, e.time)
                return
        d = self._domain(e.host, e.uuid, e.domain)
        if t is None or (typ is not JobType.UNKNOWN and t.job.type is not typ):
            if t is not None:
                self._vanished(t, e.time, "another job completed")
            if typ is JobType.UNKNOWN:
                return
            t = self._new(d, domain_job_name(typ), typ, e.time - elapsed, at=e.time)
        # These stats are the completed job's: do not mistake them for a later one's.
        d.completed_fp, d.seen_completed = _fingerprint(params), True
        d.want_completed = False
        succeeded = params.get("success", True) and params.get("type", _COMPLETED) == _COMPLETED
        if typ in _HELD_TYPES and succeeded:
            # libvirt sends this when QEMU's part is done, and may then hold the job
            # (the domain paused) until its file is written out: a look says which.
            t.held_end = (params, e.time)
            self._poke(d.id)
            return
        self._finish_domain_job(t, params, e.time)

    def _held_end(self, t: Track, at: float) -> None:
        """libvirt let go of a save or dump whose JOB_COMPLETED came earlier."""
        assert t.held_end is not None
        params, sent = t.held_end
        t.held_end = None
        self._finish_domain_job(t, params, at if t.finishing_seen else sent)

    def _held_look(self, d: DomainInfo, s: DomainSample) -> Track | None:
        """What a look says of a save or dump whose JOB_COMPLETED came: still held (the
        track, to be updated), or over (None: ended here)."""
        t = self._active_domain_job(d)
        if t is None or t.held_end is None or s.taken < t.held_end[1]:
            return t
        if s.state in ACTIVE_STATES and s.job_stats.get("type") == _COMPLETED:
            t.finishing_seen = True
            return t
        if s.state in ACTIVE_STATES and not s.full:
            return t  # a quick look says nothing of the job
        self._held_end(t, s.taken)
        return None

    def _same_finished_run(
        self, host: str, uuid: str, name: str, started: float | None, ended: float
    ) -> Job | None:
        """The finished job a late end report is about. One job of a name runs
        at a time, so a finished job of that name that outlived the reported
        run's start (when known) and ended about when it did is that run."""
        for job in self.finished.values():
            if (
                job.host == host
                and job.key.domain_uuid == uuid
                and job.name == name
                and job.finished is not None
                and job.started < ended
                and (started is None or job.finished > started)
                and abs(job.finished - ended) < SAME_RUN_SECONDS
            ):
                return job
        return None

    def _restore_begun(self, d: DomainInfo, s: DomainSample) -> bool:
        """A domain taking in a migration stream that libvirt shows as no job
        (a migration's destination refuses jobStats instead): a restore."""
        since = d.stream_in
        config: dict[str, str] = {}
        if (
            since is None
            and d.starting_since is not None
            and (s.taken - d.starting_since >= LONG_START)
        ):
            # Starting up for seconds with no QEMU event seen: a restore that began before
            # this process watched (or on a connection without QEMU's events). A plain start
            # or a migration's destination leaves that state within a fraction of a second.
            since = d.starting_since
            config["seen"] = "already under way when first seen: it began earlier"
        # A migration's destination also takes in a stream before STARTED/MIGRATED
        # (which clears stream_in) arrives: give that event a moment to come.
        if since is None or not d.starting_up or s.taken <= since + RESTORE_SETTLE:
            return False
        d.stream_in = None
        t = self._new(
            d, domain_job_name(JobType.RESTORE), JobType.RESTORE, since, at=s.taken, config=config
        )
        t.hint = (JobState.FAILED, "the restore did not finish: the domain is not running")
        return True

    def _restored(self, d: DomainInfo, t: Track | None, at: float) -> None:
        """libvirt 9.0 shows a restore (virsh restore, or start from a managed
        save) in no job API: QEMU's incoming MIGRATION events say it began (see
        _qemu_event), the domain waits paused (starting up) while QEMU loads the
        image, and STARTED_RESTORED says it is done."""
        if t is not None and t.job.type is not JobType.RESTORE:
            return  # some other domain job owns this domain; leave it alone
        if t is None:  # over before a poll saw it, or no QEMU events on this connection
            started = d.stream_in if d.stream_in is not None else at
            d.stream_in = None
            t = self._new(d, domain_job_name(JobType.RESTORE), JobType.RESTORE, started, at=at)
        self._set_state(
            t, JobState.COMPLETED, at, message="restored; libvirt reports no progress for a restore"
        )


def _fingerprint(stats: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in stats.items() if isinstance(v, int | float | str)))


def _merge_disk_stats(new: dict[str, Any], old: FrozenMap) -> dict[str, Any]:
    """Keep the per-disk entries folded in from block jobs across domain-job samples."""
    merged = dict(new)
    for k, v in old.items():
        if "." in k and k not in merged:
            merged[k] = v
    return merged
