"""The book of jobs: the registry's tables, its outbox of events, and the few
steps every rule below takes on them.

Only the dispatcher thread touches a registry: libvirt samples and events go in,
`JobStateChanged`/`JobProgress`/`DomainChanged` come out through `drain`, in the
order they happened. No libvirt calls happen here, which keeps the truth rules
testable and the ordering simple.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from jobtui.engine.rate import RateWindow
from jobtui.engine.sample import (
    DiskInfo,
)
from jobtui.model import (
    UNKNOWN_DOMAIN_STATE,
    Domain,
    DomainChanged,
    EngineEvent,
    FrozenMap,
    Job,
    JobKey,
    JobProgress,
    JobState,
    JobStateChanged,
    JobType,
)

if TYPE_CHECKING:
    from jobtui.engine.registry.migration import Convergence


class DomainId(NamedTuple):
    """A domain on one host (a migrated domain has the same uuid on two)."""

    host: str
    uuid: str


class TrackId(NamedTuple):
    """An active job: one job of a name runs on a domain at a time."""

    host: str
    uuid: str
    name: str

    @classmethod
    def of(cls, job: Job) -> TrackId:
        return cls(job.host, job.key.domain_uuid, job.name)


class MigrationId(NamedTuple):
    """The latest migration job of one side: the two sides share the uuid."""

    uuid: str
    host: str
    type: JobType


# A job missing from libvirt's answers is given this long for its event to arrive.
GONE_GRACE = 2.0
# A domain job's end is read from the kept stats by the next poll: it is allowed longer.
DOMAIN_GONE_GRACE = 5 * GONE_GRACE


@dataclass
class Track:
    """The dispatcher's mutable record of one active job."""

    job: Job
    disk: str = ""
    gone_since: float | None = None
    abort_requested: bool = False
    paused_since: float | None = None
    state_before_pause: JobState | None = None
    window: RateWindow = field(default_factory=RateWindow)
    conv: Convergence | None = None
    stall_msg: str = ""  # the message this engine set for a stall, to clear it again
    peer_note: str = ""  # what the migration's other side said, to clear it likewise
    # How libvirt or QEMU said the job ended before it vanished from jobStats
    # (lifecycle event, QEMU MIGRATION status): used when no final stats follow.
    hint: tuple[JobState, str] | None = None
    seen_start: bool = False  # an incoming migration seen from its start (event)
    # A migration-in that ended here, waiting for the source's verdict.
    awaiting_source: bool = False
    kept_at: float = 0.0  # when an orphaned job was last handed to the history
    unconfirmed: bool = False  # shown from the XML alone; no full look has seen it yet
    # Why the job is gone when it ends by gone_since alone ("" : libvirt sent no word).
    gone_why: str = ""
    qemu_error: str = ""  # QEMU's words for the error that ended the job, if it said
    # The job's disk as the XML showed it when the job was found: what a job that ends
    # with no word from libvirt has done to it can be read off the XML (domain_jobs.py).
    disk_at_start: DiskInfo | None = None
    lost_at: float | None = None  # when its host's connection was last lost while it ran
    # A save's or dump's JOB_COMPLETED (params, time) while libvirt may still hold the job
    # to write its file out (domain_jobs.py, _held_end), and whether a look saw that.
    held_end: tuple[dict[str, Any], float] | None = None
    finishing_seen: bool = False
    postcopy_failed_at: float = 0.0  # when post-copy last failed (migration.py)


@dataclass
class DomainInfo:
    host: str
    uuid: str
    name: str
    state: str = UNKNOWN_DOMAIN_STATE
    responsive: bool = True
    disks: tuple[DiskInfo, ...] = ()
    xml_dirty: bool = True
    # The first look at a domain records the completed stats libvirt already
    # keeps, so an old job's stats are never taken for a new job's outcome.
    want_completed: bool = True
    completed_fp: tuple[Any, ...] | None = None
    seen_completed: bool = False  # completed_fp holds what libvirt had before our jobs
    # When the last domain job / each disk's block job ended by an event: a
    # sample taken before that moment still shows the job and must not revive it.
    domain_job_ended: float = 0.0
    block_ended: dict[str, float] = field(default_factory=dict)
    migration_out_ended: float = 0.0  # a storage migration's copy may end after it
    starting_up: bool = False  # paused (starting up) at the last poll: QEMU loads a restore
    starting_since: float | None = None  # when polls first saw it starting up, this time
    # When QEMU began taking in a migration stream while the domain was off: a
    # restore, or a migration-in until STARTED/MIGRATED says so.
    stream_in: float | None = None
    # When QEMU began sending a migration stream while the domain ran with no job
    # libvirt reported: a save or migration the next poll shows, or an internal
    # snapshot (QEMU's savevm), which no libvirt API shows (snapshot.py).
    stream_out: float | None = None
    stream_verdict: str = ""  # QEMU's last MIGRATION status for that stream
    # A savevm over before a poll could show it: (began, ended), recorded by tick
    # unless libvirt reports a job of that stream after all (snapshot.py).
    savevm_done: tuple[float, float] | None = None
    domain_id: int = -1  # libvirt's id of the running QEMU (changes with every start)
    # Copies libvirt reported completed, by disk: (the job, the event's time), until an
    # XML read after it shows the disk on the copy (block_jobs.py, _check_pivots).
    pivots: dict[str, tuple[JobKey, float]] = field(default_factory=dict)
    # When this host's connection was lost, until the first full look after it is back:
    # a domain job may have run and ended unseen meanwhile (domain_jobs.py, _ran_unseen).
    lost_since: float | None = None
    # First listed right after its host's connection came back: it appeared while the
    # link was down, and what libvirt kept of it then is news, not a baseline.
    came_unseen: bool = False
    full_once: bool = False  # a full sample (QEMU asked) has been applied
    first_full: float | None = None  # when the first full sample applied was taken

    @property
    def id(self) -> DomainId:
        return DomainId(self.host, self.uuid)

    def before_first_look(self, taken: float) -> bool:
        """A job found by a sample taken then was running before jobtui looked."""
        return self.first_full is None or taken <= self.first_full

    def snapshot(self) -> Domain:
        return Domain(self.host, self.uuid, self.name, self.state, self.responsive)


def int_or_none(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


class Book:
    """The tables, and the steps every rule takes on them: a job is created
    (`_new`), changes state (`_set_state`), gets new figures (`_update`) or
    goes stale (`_mark_stale`); each step queues its event in `out`, in order."""

    def __init__(
        self,
        qemu_events_hosts: set[str] | None = None,
        *,
        stall_after: float = 150.0,
        stall_passes: int = 10,
        frozen_after: float = 30.0,
        qemu_monitor: bool = False,
    ) -> None:
        # The user allowed asking QEMU's monitor (which taints the domain).
        self.qemu_monitor = qemu_monitor
        # A job whose remaining data has not shrunk for stall_after seconds (as
        # KubeVirt's progressTimeout), or a migration whose last stall_passes
        # passes did not start with less to send, is flagged stalled.
        self.stall_after = stall_after
        self.stall_passes = stall_passes
        # A running job that moves no byte at all for frozen_after seconds is
        # stalled sooner: nothing is being sent (a stopped peer QEMU, a dead link).
        self.frozen_after = frozen_after
        # The latest migration job per (domain uuid, host, type): the two sides
        # of one migration find each other here, also after one side ended.
        self.migrations: dict[MigrationId, Job] = {}
        self.domains: dict[DomainId, DomainInfo] = {}
        self.lost_at: dict[str, float] = {}  # hosts whose connection is down, since when
        # Hosts back from a lost connection whose first domain list has not come yet,
        # and since when the connection was down.
        self.relisting: dict[str, float] = {}
        self.last_answer: dict[str, float] = {}  # when each host's latest look was taken
        self.active: dict[TrackId, Track] = {}
        self.finished: dict[JobKey, Job] = {}
        self.removed: dict[DomainId, float] = {}  # when each domain went
        self.qemu_event_hosts: set[str] = (
            qemu_events_hosts if qemu_events_hosts is not None else set()
        )
        self.out: list[EngineEvent] = []
        # Jobs for the history: the finished ones, and orphaned ones (see limbo.py).
        self.newly_finished: list[Job] = []
        # History records to drop: an orphan renamed (Limbo._set_aside) is kept anew.
        self.forgotten: list[JobKey] = []
        self.savevm_pending: set[DomainId] = set()  # DomainInfo.savevm_done is set
        self.pokes: set[DomainId] = set()  # domains to poll now
        self.pending_creates: dict[TrackId, tuple[float, str, str]] = {}
        # QEMU's error for a block job that ended before it had a track (it started and
        # failed between two polls): (host, uuid, disk) -> (error, when QEMU said it).
        self.qemu_errors: dict[tuple[str, str, str], tuple[str, float]] = {}

    def drain(self) -> tuple[list[EngineEvent], list[Job]]:
        out, fin = self.out, self.newly_finished
        self.out, self.newly_finished = [], []
        return out, fin

    def _domain(self, host: str, uuid: str, name: str = "") -> DomainInfo:
        d = self.domains.get(DomainId(host, uuid))
        if d is None:
            d = DomainInfo(host, uuid, name or uuid)
            self.domains[d.id] = d
            self.out.append(DomainChanged(d.snapshot()))
        return d

    def _poke(self, d: DomainId) -> None:
        """Poll the domain now: something happened that its figures will show."""
        self.pokes.add(d)

    def has_jobs(self, host: str, uuid: str) -> bool:
        return any(k.host == host and k.uuid == uuid for k in self.active)

    def _tracks_of(self, host: str, uuid: str) -> list[Track]:
        return [t for k, t in self.active.items() if k.host == host and k.uuid == uuid]

    def _new(
        self,
        dom: DomainInfo,
        name: str,
        typ: JobType,
        started: float,
        *,
        disk: str = "",
        state: JobState = JobState.RUNNING,
        config: dict[str, Any] | None = None,
        at: float | None = None,
        qemu_id: str = "",
        before_seen: bool = False,
    ) -> Track:
        key = JobKey(dom.host, dom.uuid, name, round(started, 3))
        job = Job(
            key=key,
            domain=dom.name,
            type=typ,
            state=state,
            config=FrozenMap(config or {}),
            qemu_id=qemu_id,
            started_before_seen=before_seen,
        )
        track = Track(job=job, disk=disk)
        if disk:
            track.disk_at_start = next((x for x in dom.disks if x.target == disk), None)
        self.active[TrackId(dom.host, dom.uuid, name)] = track
        self.out.append(JobStateChanged(key, None, state, job, at or time.time()))
        if typ.is_migration:
            self.migrations[MigrationId(dom.uuid, dom.host, typ)] = job
        return track

    def _found(
        self,
        dom: DomainInfo,
        taken: float,
        name: str,
        typ: JobType,
        *,
        disk: str,
        config: dict[str, Any],
        qemu_id: str = "",
    ) -> Track:
        """A job that a sample taken at `taken` found running: it began by then, and
        before jobtui looked if that was the domain's first look."""
        return self._new(
            dom,
            name,
            typ,
            taken,
            disk=disk,
            config=config,
            at=taken,
            qemu_id=qemu_id,
            before_seen=dom.before_first_look(taken),
        )

    def _set_state(self, t: Track, new: JobState, at: float, **changes: Any) -> None:
        old = t.job.state
        if new.finished:
            changes.setdefault("finished", at)
        if new.finished:
            # A finished job is not stalled: whatever it was waiting for is over. Nor
            # stale: its figures are the last it will have, not a current one late.
            changes.setdefault("stalled", False)
            changes.setdefault("stale", False)
            message = changes.get("message", t.job.message)
            if message and message in (t.stall_msg, t.peer_note):
                changes["message"] = ""  # set by this engine for a state now over
        t.job = t.job.evolve(state=new, **changes)
        if old != new:
            self.out.append(JobStateChanged(t.job.key, old, new, t.job, at))
        elif changes:
            self.out.append(JobProgress(t.job))
        if t.job.type.is_migration:
            self.migrations[MigrationId(t.job.key.domain_uuid, t.job.host, t.job.type)] = t.job
        if new.finished:
            d = self.domains.get(DomainId(t.job.host, t.job.key.domain_uuid))
            if d is not None and t.disk:
                d.block_ended[t.disk] = max(d.block_ended.get(t.disk, 0.0), at)
            elif d is not None:
                d.domain_job_ended = max(d.domain_job_ended, at)
                if t.job.type is JobType.MIGRATION_OUT:
                    d.migration_out_ended = at
            self.active.pop(TrackId.of(t.job), None)
            self.finished[t.job.key] = t.job
            self.newly_finished.append(t.job)

    def _update(
        self,
        t: Track,
        at: float,
        *,
        sampled: float | None = None,
        certain: bool = True,
        **changes: Any,
    ) -> None:
        """`sampled`: when libvirt answered with these figures; they are current again."""
        if sampled is not None:
            cur = changes.get("current", t.job.current)
            if not certain or t.job.stale:
                t.window.reset()  # figures across a gap of unknown length say nothing
            if cur is not None:
                t.window.add(sampled, cur)
            rate = t.window.rate(sampled)
            changes.update(sampled=sampled, stale=False, rate=None if rate is None else round(rate))
            if t.peer_note and changes.get("message", t.job.message) == t.peer_note:
                changes["message"] = ""  # its own host answers again: its word, not the peer's
        new = t.job.evolve(**changes)
        if new != t.job:
            # A fresh sample time alone is no news for subscribers: the figures did not move.
            news = new.evolve(sampled=t.job.sampled) != t.job
            t.job = new
            if news:
                self.out.append(JobProgress(new))
            if new.type.is_migration:
                self.migrations[MigrationId(new.key.domain_uuid, new.host, new.type)] = new

    def _mark_stale(self, t: Track) -> None:
        if not t.job.stale:
            t.window.reset()
            t.job = t.job.evolve(stale=True, rate=None)
            self.out.append(JobProgress(t.job))

    def set_responsive(self, host: str, uuid: str, responsive: bool) -> None:
        """Unresponsive: the domain's figures stop being current. Responsive again only
        when a full sample answers (apply_sample), never because a call gave up."""
        d = self.domains.get(DomainId(host, uuid))
        if d is not None and d.responsive != responsive:
            d.responsive = responsive
            self.out.append(DomainChanged(d.snapshot()))
        if not responsive:
            for t in self._tracks_of(host, uuid):
                self._mark_stale(t)

    def host_lost(self, host: str) -> None:
        """The connection is gone: every figure of the host's jobs is now old."""
        self.lost_at[host] = time.time()
        # A link that dies is noticed seconds later (keepalive): what ran unseen may
        # have begun right after the host's last answer.
        since = min(self.lost_at[host], self.last_answer.get(host, self.lost_at[host]))
        for d in self.domains.values():
            if d.host == host and d.lost_since is None:
                d.lost_since = since
        for k, t in list(self.active.items()):
            if k.host == host:
                t.lost_at = self.lost_at[host]
                self._mark_stale(t)
