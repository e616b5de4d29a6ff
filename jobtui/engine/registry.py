"""The job registry and its state machine.

Only the dispatcher thread touches a Registry: libvirt samples and events go
in, `JobStateChanged`/`JobProgress`/`DomainChanged` come out, in order. No
libvirt calls happen here, which keeps the truth rules testable and the
ordering simple.

Truth rules (DESIGN §2): READY only from libvirt's READY event or the live
XML's `<mirror ready='yes'>`; a block job's end only from BLOCK_JOB_2; a
domain job's end from JOB_COMPLETED or the kept completed stats; a job that
vanished with no word from libvirt is `unknown`.

Migrations (facts §7): the source's `migration-out` has libvirt's stats; the
destination refuses jobStats, so its `migration-in` is seen through that
refusal and the lifecycle events, and shows the source's progress when both
hosts are watched (matched by domain UUID). Remaining data grows back at each
pass: progress is what is left to send, not what was sent, and a migration
whose passes stop shrinking is flagged `stalled` with the evidence.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.limbo import LimboRules
from jobtui.engine.qemu_jobs import parse_qemu_job_id
from jobtui.engine.rate import RateWindow
from jobtui.engine.sample import (
    ACTIVE_STATES,
    BLOCK_TYPES,
    OPERATION_TYPES,
    DiskInfo,
    DomainSample,
    block_job_name,
    domain_job_name,
)
from jobtui.model import (
    SAME_RUN_SECONDS,
    Domain,
    DomainChanged,
    EngineEvent,
    FrozenMap,
    Job,
    JobDismissed,
    JobKey,
    JobProgress,
    JobState,
    JobStateChanged,
    JobType,
)

# A job missing from libvirt's answers is given this long for its event to arrive.
GONE_GRACE = 2.0
# QEMU pauses a mirror for sub-millisecond drains; only a longer pause is real.
PAUSE_DEBOUNCE = 0.3
# QEMU's image-creation step becomes a visible job only when it takes this long.
CREATE_LINGER = 1.0
# A migration pass is progress when it starts with this much less to send than the
# best pass before it: its first sample comes up to a poll late, which alone makes
# the starts of equal passes differ by several per cent (measured: 120-124 MiB).
PASS_MARGIN = 0.10
# A domain starting up while taking in a stream is a restore once it has done so this
# long without a STARTED/MIGRATED event saying it is a migration's destination.
RESTORE_SETTLE = 1.0
# Block-copy events this soon after a storage migration ended still belong to it.
MIGRATION_AFTERMATH = 5.0
MiB = 1024 * 1024
# Jobs whose remaining work is watched for a stall while they run.
_STALL_BLOCK_TYPES = frozenset({JobType.BLOCK_COPY, JobType.BLOCK_COMMIT_ACTIVE})

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
BLOCK_STATUS = {0: JobState.COMPLETED, 1: JobState.FAILED, 2: JobState.ABORTED, 3: JobState.READY}

@dataclass
class Convergence:
    """Is a job's remaining data shrinking? Fed one sample at a time.

    Within a migration pass the remaining data always falls (down to QEMU's
    switch-over threshold, where the dirty bitmap is synced and refilled), so it
    proves only that bytes move. Whether the migration gains on the guest shows
    in how much each pass starts with. The first pass, post-copy, a storage
    copy and block mirrors have no such refill: there any fall is progress.
    """

    pass_no: int = -1
    pass_low: int | None = None  # lowest remaining seen in the current pass
    moved_at: float = 0.0  # when remaining last fell below pass_low
    pass_start: int | None = None  # remaining at the first sample of this pass
    best_start: int | None = None  # pass start at the last progress
    progress_at: float = 0.0  # when a pass last started lower (by PASS_MARGIN)
    passes_since: int = 0  # passes begun since then
    shrinking: bool | None = None  # did this pass start with less than the best before?

    def observe(self, at: float, remaining: int, pass_no: int) -> None:
        if pass_no > self.pass_no:
            first = self.pass_no < 0
            self.pass_no = pass_no
            self.pass_start = self.pass_low = remaining
            self.moved_at = at
            if first or self.best_start is None:
                self.best_start, self.progress_at = remaining, at
            elif remaining < self.best_start * (1 - PASS_MARGIN):
                self.best_start, self.progress_at = remaining, at
                self.passes_since = 0
                self.shrinking = True
            else:
                self.passes_since += 1
                self.shrinking = False
            return
        if self.pass_low is None or remaining < self.pass_low:
            self.pass_low = remaining
            self.moved_at = at

    def restart(self, at: float) -> None:
        """Post-copy or a resume: what came before says nothing about what follows."""
        self.moved_at = self.progress_at = at
        self.passes_since = 0
        self.best_start = self.pass_low

    def stall(self, now: float, after: float, passes: int, *, passes_count: bool) -> str:
        """Why the job counts as stalled ('' when it does not)."""
        if now - self.moved_at >= after:
            return f"what is left has not shrunk for {now - self.moved_at:.0f} s"
        if not passes_count:
            return ""
        if self.passes_since >= passes or (
            self.passes_since >= 1 and now - self.progress_at >= after
        ):
            n = self.passes_since
            return (
                f"for {now - self.progress_at:.0f} s ({n} {'pass' if n == 1 else 'passes'}) "
                f"no pass has begun with less than {_mib(self.best_start)} to send"
            )
        return ""


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
    # How libvirt or QEMU said the job ended before it vanished from jobStats
    # (lifecycle event, QEMU MIGRATION status): used when no final stats follow.
    hint: tuple[JobState, str] | None = None
    seen_start: bool = False  # an incoming migration seen from its start (event)
    # A migration-in that ended here, waiting for the source's verdict.
    awaiting_source: bool = False
    kept_at: float = 0.0  # when an orphaned job was last handed to the history
    unconfirmed: bool = False  # shown from the XML alone; no full look has seen it yet


@dataclass
class DomainInfo:
    host: str
    uuid: str
    name: str
    state: str = "unknown"
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
    # When QEMU began taking in a migration stream while the domain was off: a
    # restore, or a migration-in until STARTED/MIGRATED says so.
    stream_in: float | None = None
    domain_id: int = -1  # libvirt's id of the running QEMU (changes with every start)
    full_once: bool = False  # a full sample (QEMU asked) has been applied

    def snapshot(self) -> Domain:
        return Domain(self.host, self.uuid, self.name, self.state, self.responsive)


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _mib(n: float | None) -> str:
    return "?" if n is None else f"{n / MiB:.1f} MiB"


def domain_progress(typ: JobType, stats: dict[str, Any]) -> tuple[int | None, int | None]:
    """(current, end) of a domain job from the stats libvirt gives it."""
    if typ.is_migration:
        # What is left, not what was sent: *_processed counts every page sent
        # again after the guest dirtied it and outgrows *_total. The bar goes
        # back when a pass starts with more to send: it does not lie.
        total = _int(stats.get("data_total"))
        left = _int(stats.get("data_remaining"))
        if not total:
            return None, None
        return max(0, total - (left or 0)), total
    if typ is JobType.BACKUP:
        return _int(stats.get("disk_processed")), _int(stats.get("disk_total"))
    total = _int(stats.get("data_total"))
    if total:
        return _int(stats.get("data_processed")), total
    total = _int(stats.get("memory_total"))
    if total:
        return _int(stats.get("memory_processed")), total
    return _int(stats.get("disk_processed")), _int(stats.get("disk_total"))


class Registry(LimboRules):
    def __init__(
        self,
        qemu_events_hosts: set[str] | None = None,
        *,
        stall_after: float = 150.0,
        stall_passes: int = 10,
        qemu_monitor: bool = False,
    ) -> None:
        # The user allowed asking QEMU's monitor (which taints the domain).
        self.qemu_monitor = qemu_monitor
        # A job whose remaining data has not shrunk for stall_after seconds (as
        # KubeVirt's progressTimeout), or a migration whose last stall_passes
        # passes did not start with less to send, is flagged stalled.
        self.stall_after = stall_after
        self.stall_passes = stall_passes
        # The latest migration job per (domain uuid, host, type): the two sides
        # of one migration find each other here, also after one side ended.
        self.migrations: dict[tuple[str, str, JobType], Job] = {}
        self.domains: dict[tuple[str, str], DomainInfo] = {}
        self.active: dict[tuple[str, str, str], Track] = {}
        self.finished: dict[JobKey, Job] = {}
        self.removed: dict[tuple[str, str], float] = {}  # when each domain went
        self.qemu_event_hosts: set[str] = (
            qemu_events_hosts if qemu_events_hosts is not None else set()
        )
        self.out: list[EngineEvent] = []
        # Jobs for the history: the finished ones, and orphaned ones (see limbo.py).
        self.newly_finished: list[Job] = []
        self.poke: set[tuple[str, str]] = set()
        self.pending_creates: dict[tuple[str, str, str], tuple[float, str, str]] = {}

    # --- helpers ---------------------------------------------------------------------

    def drain(self) -> tuple[list[EngineEvent], list[Job]]:
        out, fin = self.out, self.newly_finished
        self.out, self.newly_finished = [], []
        return out, fin

    def _domain(self, host: str, uuid: str, name: str = "") -> DomainInfo:
        d = self.domains.get((host, uuid))
        if d is None:
            for t in self._tracks_of(host, uuid):
                if t.awaiting_source:  # the domain is back (a retried migration)
                    self._conclude_incoming(t, time.time(), self._peer_job(t.job))
            d = DomainInfo(host, uuid, name or uuid)
            self.domains[(host, uuid)] = d
            self.out.append(DomainChanged(d.snapshot()))
        return d

    def has_jobs(self, host: str, uuid: str) -> bool:
        return any(h == host and u == uuid for (h, u, _n) in self.active)

    def _tracks_of(self, host: str, uuid: str) -> list[Track]:
        return [t for (h, u, _n), t in self.active.items() if h == host and u == uuid]

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
    ) -> Track:
        key = JobKey(dom.host, dom.uuid, name, round(started, 3))
        job = Job(
            key=key,
            domain=dom.name,
            type=typ,
            state=state,
            config=FrozenMap(config or {}),
            qemu_id=qemu_id,
        )
        track = Track(job=job, disk=disk)
        self.active[(dom.host, dom.uuid, name)] = track
        self.out.append(JobStateChanged(key, None, state, job, at or time.time()))
        if typ.is_migration:
            self.migrations[(dom.uuid, dom.host, typ)] = job
        return track

    def _set_state(self, t: Track, new: JobState, at: float, **changes: Any) -> None:
        old = t.job.state
        if new.finished:
            changes.setdefault("finished", at)
        if new.finished:
            # A finished job is not stalled: whatever it was waiting for is over.
            changes.setdefault("stalled", False)
            if t.stall_msg and changes.get("message", t.job.message) == t.stall_msg:
                changes["message"] = ""
        t.job = t.job.evolve(state=new, **changes)
        if old != new:
            self.out.append(JobStateChanged(t.job.key, old, new, t.job, at))
        elif changes:
            self.out.append(JobProgress(t.job))
        if t.job.type.is_migration:
            self.migrations[(t.job.key.domain_uuid, t.job.host, t.job.type)] = t.job
        if new.finished:
            d = self.domains.get((t.job.host, t.job.key.domain_uuid))
            if d is not None and t.disk:
                d.block_ended[t.disk] = max(d.block_ended.get(t.disk, 0.0), at)
            elif d is not None:
                d.domain_job_ended = max(d.domain_job_ended, at)
                if t.job.type is JobType.MIGRATION_OUT:
                    d.migration_out_ended = at
            self.active.pop((t.job.host, t.job.key.domain_uuid, t.job.name), None)
            self.finished[t.job.key] = t.job
            self.newly_finished.append(t.job)
            if t.job.type is JobType.MIGRATION_OUT:
                self._source_ended(t.job, at)

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
        new = t.job.evolve(**changes)
        if new != t.job:
            # A fresh sample time alone is no news for subscribers: the figures did not move.
            news = new.evolve(sampled=t.job.sampled) != t.job
            t.job = new
            if news:
                self.out.append(JobProgress(new))
            if new.type.is_migration:
                self.migrations[(new.key.domain_uuid, new.host, new.type)] = new

    def _mark_stale(self, t: Track) -> None:
        if not t.job.stale:
            t.window.reset()
            t.job = t.job.evolve(stale=True, rate=None)
            self.out.append(JobProgress(t.job))

    def set_responsive(self, host: str, uuid: str, responsive: bool) -> None:
        """Unresponsive: the domain's figures stop being current. Responsive again only
        when a full sample answers (apply_sample), never because a call gave up."""
        d = self.domains.get((host, uuid))
        if d is not None and d.responsive != responsive:
            d.responsive = responsive
            self.out.append(DomainChanged(d.snapshot()))
        if not responsive:
            for t in self._tracks_of(host, uuid):
                self._mark_stale(t)

    def host_lost(self, host: str) -> None:
        """The connection is gone: every figure of the host's jobs is now old."""
        for (h, _u, _n), t in list(self.active.items()):
            if h == host:
                self._mark_stale(t)

    def remove_domain(self, host: str, uuid: str, at: float) -> None:
        d = self.domains.pop((host, uuid), None)
        if d is None:
            return
        self.removed[(host, uuid)] = at
        for t in self._tracks_of(host, uuid):
            if not t.awaiting_source:
                self._vanished(t, at, "the domain disappeared")
        self.out.append(DomainChanged(d.snapshot(), removed=True))

    # --- samples ---------------------------------------------------------------------

    def apply_sample(self, host: str, s: DomainSample) -> None:
        if s.gone:
            self.remove_domain(host, s.uuid, s.taken)
            return
        if (host, s.uuid) not in self.domains and s.taken <= self.removed.get((host, s.uuid), 0):
            return  # taken before the domain went: it must not bring back its jobs
        d = self._domain(host, s.uuid, s.name)
        if (d.name, d.state) != (s.name, s.state):
            d.name, d.state = s.name, s.state
            self.out.append(DomainChanged(d.snapshot()))
        if s.disks is not None:
            d.disks = s.disks
            d.xml_dirty = False
        d.starting_up = s.state == "paused" and s.reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
        if s.domain_id != d.domain_id:
            d.domain_id = s.domain_id
            self._orphans_outlived(d, s.taken)
        if not s.full:
            self._mirrors_from_xml(d, s)
            return
        d.full_once = True
        self.set_responsive(host, s.uuid, True)
        self._apply_domain_job(d, s)
        self._apply_block_jobs(d, s)
        if s.qemu_jobs is not None:
            self._reconcile_qemu(d, s, s.qemu_jobs)
        for t in self._tracks_of(host, s.uuid):
            # The domain answered: what its jobs show is current again (an orphan's
            # figures come only from QEMU's job list, which clears its own flag).
            if t.job.stale and t.job.state is not JobState.ORPHANED and not t.unconfirmed:
                self._update(t, s.taken, stale=False)

    def _active_domain_job(self, d: DomainInfo) -> Track | None:
        for t in self._tracks_of(d.host, d.uuid):
            if (
                not t.disk
                and not t.job.type.is_block
                and t.job.state is not JobState.ORPHANED
                and not t.awaiting_source
            ):
                return t
        return None

    def _apply_domain_job(self, d: DomainInfo, s: DomainSample) -> None:
        track = self._active_domain_job(d)
        if track is not None and track.job.type is JobType.RESTORE:
            # No job API shows a restore: it ends by its lifecycle event, or
            # (failed) when the domain is no longer waiting to start.
            if d.starting_up:
                track.gone_since = None
            elif s.taken > track.job.started:
                track.gone_since = track.gone_since or s.taken
            return
        running = bool(s.job_stats) or s.incoming
        if track is None and not running and self._restore_begun(d, s):
            return
        if s.completed_stats is not None:
            d.want_completed = False
            fp = _fingerprint(s.completed_stats)
            fresh = d.seen_completed and fp != d.completed_fp
            d.completed_fp, d.seen_completed = fp, True
            if track is not None and not running:
                op_type = OPERATION_TYPES.get(s.completed_stats.get("operation", -1))
                # An incoming migration seen from its start owns whatever stats
                # its domain (new on this host) keeps, even at our first look.
                if op_type == track.job.type and (
                    fresh or (track.seen_start and op_type is JobType.MIGRATION_IN)
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
            self.poke.add((d.host, d.uuid))

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
        self._update(
            t,
            s.taken,
            sampled=s.answered,
            certain=s.certain,
            stats=FrozenMap(_merge_disk_stats(stats, t.job.stats)),
            current=cur,
            end=end,
            bandwidth=bandwidth,
        )
        if typ is JobType.MIGRATION_OUT:
            self._check_stall(t, s.taken)

    # --- migrations ------------------------------------------------------------------

    def _migration_sample(self, t: Track, s: DomainSample) -> None:
        """What a sample says about a migration beyond its stats: post-copy, the peer."""
        pc = s.postcopy
        if pc:
            self._set_postcopy(t, pc, s.taken)
        self._link_peer(t)

    def _convergence(self, t: Track, stats: dict[str, Any], at: float) -> None:
        """Derived stats: the dirty rate in bytes/s, and whether passes shrink."""
        remaining = _int(stats.get("data_remaining"))
        total = _int(stats.get("data_total"))
        page = _int(stats.get("memory_page_size")) or 4096
        dirty = _int(stats.get("memory_dirty_rate"))
        if dirty is not None:
            stats["memory_dirty_bps"] = dirty * page
        if remaining is None or not total:
            return  # the all-zero first sample
        if t.conv is None:
            t.conv = Convergence(moved_at=at, progress_at=at)
        postcopy = t.job.config.get("postcopy") == "active"
        # The storage copy runs before the first memory pass (iteration 0): like
        # the first pass, there any fall is progress. Post-copy sends each page once.
        iteration = _int(stats.get("memory_iteration")) or 0
        t.conv.observe(at, remaining, t.conv.pass_no if postcopy else iteration)
        if t.conv.pass_start is not None and iteration >= 1:
            stats["pass_remaining"] = t.conv.pass_start
        if t.conv.shrinking is not None and not postcopy:
            stats["remaining_shrinking"] = t.conv.shrinking

    def _block_convergence(self, t: Track, at: float) -> None:
        """A mirror the guest writes to faster than it copies never gets READY."""
        if t.job.type not in _STALL_BLOCK_TYPES or t.job.state is not JobState.RUNNING:
            t.conv = None  # paused or ready: a later run starts its own clock
        elif t.job.end is not None and t.job.current is not None:
            if t.conv is None:
                t.conv = Convergence(moved_at=at, progress_at=at)
            t.conv.observe(at, t.job.end - t.job.current, 0)
        self._check_stall(t, at)

    def _check_stall(self, t: Track, now: float) -> None:
        conv = t.conv
        if conv is None or t.job.state is not JobState.RUNNING:
            if t.job.stalled:
                msg = "" if t.job.message == t.stall_msg else t.job.message
                t.stall_msg = ""
                self._update(t, now, stalled=False, message=msg)
            return
        if t.job.type.is_migration:
            postcopy = t.job.config.get("postcopy") == "active"
            why = conv.stall(
                now,
                self.stall_after,
                self.stall_passes,
                passes_count=conv.pass_no >= 2 and not postcopy,
            )
            if why:
                st = t.job.stats
                dirty = _int(st.get("memory_dirty_bps"))
                bps = _int(st.get("memory_bps"))
                why = (
                    f"not converging: {why}; the guest dirties {_mib(dirty)}/s, "
                    f"{_mib(bps)}/s is sent (pass {conv.pass_no})"
                )
        else:
            why = conv.stall(now, self.stall_after, 0, passes_count=False)
            if why:
                bw = t.job.bandwidth
                limit = f"at most {_mib(bw)}/s" if bw else "no limit"
                why = (
                    f"not converging: {why}; the guest writes at least as fast as it is "
                    f"copied ({limit}), {_mib((t.job.end or 0) - (t.job.current or 0))} to go"
                )
        if why:
            t.stall_msg = why
            self._update(t, now, stalled=True, message=why)
        elif t.job.stalled:
            msg = "" if t.job.message == t.stall_msg else t.job.message
            t.stall_msg = ""
            self._update(t, now, stalled=False, message=msg)

    def _set_postcopy(self, t: Track, value: str, at: float) -> None:
        if t.job.config.get("postcopy") == value or not t.job.state.active:
            return
        if value == "active" and t.job.config.get("postcopy") == "failed":
            return  # a late sample or event: failure is the last word
        config = dict(t.job.config, postcopy=value)
        changes: dict[str, Any] = {"config": FrozenMap(config)}
        if value == "active" and t.conv is not None:
            t.conv.restart(at)
        if value == "failed":
            changes["message"] = (
                "post-copy failed: the guest's memory is split between the hosts and it "
                "stays paused until the migration is recovered (--postcopy-resume)"
            )
        self._update(t, at, **changes)
        peer = self._peer_track(t.job)
        if peer is not None:
            self._set_postcopy(peer, value, at)

    def _peer_job(self, job: Job) -> Job | None:
        """The other side of `job`'s migration: same domain, another host."""
        want = JobType.MIGRATION_IN if job.type is JobType.MIGRATION_OUT else JobType.MIGRATION_OUT
        found = [
            j
            for (uuid, host, typ), j in self.migrations.items()
            if uuid == job.key.domain_uuid and typ is want and host != job.host
        ]
        # Only a peer of the same run: its side started within its lifetime.
        found = [j for j in found if j.finished is None or j.finished >= job.started - 5]
        return max(found, key=lambda j: j.started) if found else None

    def _peer_track(self, job: Job) -> Track | None:
        peer = self._peer_job(job)
        if peer is None:
            return None
        t = self.active.get((peer.host, peer.key.domain_uuid, peer.name))
        return t if t is not None and t.job.key == peer.key else None

    def _link_peer(self, t: Track) -> None:
        peer = self._peer_job(t.job)
        if peer is None:
            return
        if (t.job.config.get("peer-host"), t.job.config.get("peer-domain")) != (
            peer.host,
            peer.domain,
        ):
            config = dict(t.job.config, **{"peer-host": peer.host, "peer-domain": peer.domain})
            self._update(t, time.time(), config=FrozenMap(config))
        pt = self._peer_track(t.job)
        if pt is not None and pt.job.config.get("peer-host") != t.job.host:
            self._link_peer(pt)
        out = t if t.job.type is JobType.MIGRATION_OUT else pt
        inc = pt if out is t else t
        if out is not None and inc is not None and inc.job.state.active:
            # libvirt gives the destination no stats: show the source's progress there.
            changes: dict[str, Any] = {"current": out.job.current, "end": out.job.end}
            if inc.job.config.get("progress-from") != out.job.host:
                changes["config"] = FrozenMap(
                    dict(inc.job.config, **{"progress-from": out.job.host})
                )
            self._update(inc, time.time(), **changes)

    def _source_ended(self, out: Job, at: float) -> None:
        """The source's verdict decides a migration-in whose domain already went."""
        t = self._peer_track(out)
        if t is None:
            return
        if t.awaiting_source:
            self._conclude_incoming(t, at, out)

    def _conclude_incoming(self, t: Track, at: float, out: Job | None) -> None:
        t.awaiting_source = False
        if out is not None and out.state in (JobState.ABORTED, JobState.FAILED):
            why = out.message or str(out.state)
            self._set_state(
                t, out.state, at, message=f"the migration {out.state} on the source: {why}"
            )
        elif t.hint is not None:
            self._set_state(t, t.hint[0], at, message=t.hint[1])
        else:
            self._set_state(
                t,
                JobState.UNKNOWN,
                at,
                message="the incoming domain went away and the source did not say how it ended",
            )

    def _apply_block_jobs(self, d: DomainInfo, s: DomainSample) -> None:
        if s.block is None:
            return  # not asked: it would have waited on another job's lock
        domain_job = self._active_domain_job(d)
        by_disk = {t.disk: t for t in self._tracks_of(d.host, d.uuid) if t.disk}
        mirrors = {di.target: di for di in d.disks}
        for disk, info in s.block.items():
            if disk not in by_disk and s.taken <= d.block_ended.get(disk, 0.0):
                continue  # a stale look at a job whose end event came first
            typ = BLOCK_TYPES.get(int(info.get("type", 0)), JobType.UNKNOWN)
            if typ is JobType.BACKUP or (
                typ is JobType.BLOCK_COPY
                and domain_job is not None
                and domain_job.job.type is JobType.MIGRATION_OUT
            ):
                # Per-disk pieces of a backup or a storage migration belong to that job.
                if domain_job is not None:
                    self._fold_disk(domain_job, disk, info, s.taken)
                continue
            name = block_job_name(typ, disk)
            t = by_disk.pop(disk, None)
            if t is not None and t.job.name != name:
                if t.unconfirmed:
                    self._drop_unconfirmed(t)
                else:
                    self._vanished(t, s.taken, "replaced by another job on the same disk")
                t = None
            mi = mirrors.get(disk)
            if t is None:
                config = {"disk": disk}
                if mi is not None and mi.source:
                    config["source"] = mi.source
                if mi is not None and mi.mirror_dest:
                    config["destination"] = mi.mirror_dest
                state = (
                    JobState.READY
                    if mi is not None and mi.mirror_ready == "yes"
                    else JobState.RUNNING
                )
                t = self._new(d, name, typ, s.taken, disk=disk, config=config, at=s.taken)
                if state is JobState.READY:
                    self._set_state(t, JobState.READY, s.taken)
            t.gone_since = None
            t.unconfirmed = False
            bw = int(info.get("bandwidth", 0)) or None
            config = dict(t.job.config)
            if mi is not None and mi.mirror_dest and "destination" not in config:
                config["destination"] = mi.mirror_dest
            self._update(
                t,
                s.taken,
                sampled=s.answered,
                certain=s.certain,
                current=int(info.get("cur", 0)),
                end=int(info.get("end", 0)),
                bandwidth=bw,
                config=FrozenMap(config),
            )
            if (
                mi is not None
                and mi.mirror_ready == "yes"
                and t.job.state is JobState.RUNNING
                and t.paused_since is None
            ):
                self._set_state(t, JobState.READY, s.taken)
            if (
                t.job.type in (JobType.BLOCK_COPY, JobType.BLOCK_COMMIT_ACTIVE)
                and t.job.state is JobState.RUNNING
            ):
                d.xml_dirty = True  # keep watching <mirror ready=...>
            self._block_convergence(t, s.taken)
        if s.state and s.block is not None:
            for disk, t in by_disk.items():
                if t.unconfirmed:
                    self._drop_unconfirmed(t)
                    continue
                if t.job.state is JobState.ORPHANED or t.job.config.get("seen-by") == "qemu":
                    continue
                if disk not in mirrors and t.job.state.active:
                    continue  # device removal is handled by its own event
                if t.gone_since is None:
                    t.gone_since = s.taken

    def _fold_disk(self, t: Track, disk: str, info: dict[str, int], at: float) -> None:
        stats = dict(t.job.stats)
        stats[f"{disk}.current"] = int(info.get("cur", 0))
        stats[f"{disk}.end"] = int(info.get("end", 0))
        bw = int(info.get("bandwidth", 0))
        if bw:
            stats[f"{disk}.bandwidth"] = bw
        config = dict(t.job.config)
        disks = [x for x in str(config.get("disks", "")).split(",") if x]
        if disk not in disks:
            disks.append(disk)
            config["disks"] = ",".join(disks)
        changes: dict[str, Any] = {"stats": FrozenMap(stats), "config": FrozenMap(config)}
        if bw and t.job.type is JobType.BACKUP:
            changes["bandwidth"] = bw
        self._update(t, at, **changes)

    def _finish_domain_job(self, t: Track, params: dict[str, Any], at: float) -> None:
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
        merged = _merge_disk_stats(stats, t.job.stats)
        self._set_state(t, state, at, stats=FrozenMap(merged), current=cur, end=end, message=msg)

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
        else:
            self._set_state(t, JobState.UNKNOWN, at, message=f"the job is gone and {why}")

    # --- events ----------------------------------------------------------------------

    def apply_event(self, e: ev.LibvirtEvent) -> None:
        if isinstance(e, ev.BlockJobEv):
            self._block_event(e)
        elif isinstance(e, ev.JobCompletedEv):
            self._job_completed(e)
        elif isinstance(e, ev.MigrationIterationEv):
            d = self._domain(e.host, e.uuid, e.domain)
            t = self._active_domain_job(d)
            if t is not None:
                stats = dict(t.job.stats)
                stats["memory_iteration"] = e.iteration
                self._update(t, e.time, stats=FrozenMap(stats))
            self.poke.add((e.host, e.uuid))
        elif isinstance(e, ev.LifecycleEv):
            d = self._domain(e.host, e.uuid, e.domain)
            d.xml_dirty = True
            self._lifecycle(d, e)
            if self._active_domain_job(d) is not None:
                d.want_completed = True
            self.poke.add((e.host, e.uuid))
        elif isinstance(e, ev.DeviceRemovedEv):
            self._device_removed(e)
        elif isinstance(e, ev.QemuEv):
            self._qemu_event(e)

    def _lifecycle(self, d: DomainInfo, e: ev.LifecycleEv) -> None:
        """Migration milestones and the end of the domain's QEMU, which libvirt
        announces as lifecycle events."""
        kind = (e.event, e.detail)
        if e.event in (_EV.VIR_DOMAIN_EVENT_STARTED, _EV.VIR_DOMAIN_EVENT_STOPPED) and kind != (
            _EV.VIR_DOMAIN_EVENT_STARTED,
            _EV.VIR_DOMAIN_EVENT_STARTED_RESTORED,
        ):
            d.stream_in = None  # not a restore, or one that failed
        if e.event == _EV.VIR_DOMAIN_EVENT_STOPPED and e.detail in STOP_REASONS:
            # QEMU is gone and its block jobs with it, and libvirt sends no block
            # job event for them: they end here, with the reason.
            why = f"the domain {STOP_REASONS[e.detail]} while the job ran; it did not finish"
            for bt in self._tracks_of(d.host, d.uuid):
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
        t = self._active_domain_job(d)
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
                t.hint = (JobState.FAILED, "the incoming domain was stopped: the migration failed")

    def _restore_begun(self, d: DomainInfo, s: DomainSample) -> bool:
        """A domain taking in a migration stream that libvirt shows as no job
        (a migration's destination refuses jobStats instead): a restore."""
        since = d.stream_in
        # A migration's destination also takes in a stream before STARTED/MIGRATED
        # (which clears stream_in) arrives: give that event a moment to come.
        if since is None or not d.starting_up or s.taken <= since + RESTORE_SETTLE:
            return False
        d.stream_in = None
        t = self._new(d, domain_job_name(JobType.RESTORE), JobType.RESTORE, since, at=s.taken)
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

    def _block_event(self, e: ev.BlockJobEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        typ = BLOCK_TYPES.get(e.type, JobType.UNKNOWN)
        state = BLOCK_STATUS.get(e.status)
        if state is None:
            return
        domain_job = self._active_domain_job(d)
        if typ is JobType.BACKUP or (
            typ is JobType.BLOCK_COPY
            and domain_job is not None
            and domain_job.job.type is JobType.MIGRATION_OUT
        ):
            if domain_job is not None:
                stats = dict(domain_job.job.stats)
                stats[f"{e.disk}.result"] = str(state)
                self._update(domain_job, e.time, stats=FrozenMap(stats))
            return
        name = block_job_name(typ, e.disk)
        t = self.active.get((e.host, e.uuid, name))
        if t is None and typ is JobType.BLOCK_COPY:
            ended = d.migration_out_ended
            if e.time - ended < MIGRATION_AFTERMATH:
                return  # the end of a storage migration's own copy
            if state is JobState.READY:
                # A copy we have not polled yet may be a storage migration's: the
                # poll (now) tells, and the live XML says whether a user's copy is ready.
                d.xml_dirty = True
                self.poke.add((e.host, e.uuid))
                return
        if t is None and state.finished:
            lost = self._same_finished_run(e.host, e.uuid, name, None, e.time)
            if lost is not None and lost.state is JobState.UNKNOWN:
                # Given up on (no end event in time, the load was high): the end came late.
                t = Track(job=lost, disk=e.disk)
        if t is None:
            # A job that lived and ended between two polls: still worth a row.
            cfg = {"disk": e.disk}
            t = self._new(d, name, typ, e.time, disk=e.disk, config=cfg, at=e.time)
        t.gone_since = None
        d.xml_dirty = True
        self.poke.add((e.host, e.uuid))
        if state is JobState.READY:
            if t.job.state is JobState.RUNNING:
                # Synchronised: libvirt holds cur one short of end until READY.
                self._set_state(t, JobState.READY, e.time, current=t.job.end)
            return
        msg = ""
        if state is JobState.FAILED:
            msg = "QEMU reported an I/O error (libvirt passes on no error text)"
        elif state is JobState.ABORTED:
            was_ready = t.job.state is JobState.READY
            if typ is JobType.BLOCK_COPY and was_ready:
                dest = t.job.config.get("destination", "the destination")
                msg = f"aborted after READY: {dest} is a consistent, usable copy"
            elif typ is JobType.BLOCK_COMMIT_ACTIVE and was_ready:
                msg = (
                    "aborted after READY: the base holds the committed data; the disk keeps its top"
                )
            else:
                msg = "aborted"
        elif state is JobState.COMPLETED and typ is JobType.BLOCK_COPY:
            msg = "pivoted: the disk now uses the copy"
        elif state is JobState.COMPLETED and typ is JobType.BLOCK_COMMIT_ACTIVE:
            msg = "pivoted: the disk now uses the base it was committed into"
        cur = t.job.end if state is JobState.COMPLETED and t.job.end else t.job.current
        self._set_state(t, state, e.time, message=msg, current=cur)

    def _job_completed(self, e: ev.JobCompletedEv) -> None:
        params = dict(e.params)
        typ = OPERATION_TYPES.get(int(params.get("operation", 0)), JobType.UNKNOWN)
        elapsed = float(params.get("time_elapsed", 0)) / 1000.0
        known = self.domains.get((e.host, e.uuid))
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
        self._finish_domain_job(t, params, e.time)

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

    def _device_removed(self, e: ev.DeviceRemovedEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        d.xml_dirty = True
        self.poke.add((e.host, e.uuid))
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
            elif t is not None and t.job.type is JobType.RESTORE and status == "failed":
                t.hint = (JobState.FAILED, "QEMU reports the restore failed")
            elif t is not None and t.job.type.is_migration:
                if status == "postcopy-active":
                    self._set_postcopy(t, "active", e.time)
                elif status == "cancelled":
                    t.hint = (JobState.ABORTED, "QEMU reports the migration cancelled")
                elif status == "failed":
                    t.hint = (JobState.FAILED, "QEMU reports the migration failed")
                elif status == "completed" and t.job.type is JobType.MIGRATION_IN:
                    t.hint = (JobState.COMPLETED, "QEMU reports the migration completed")
            self.poke.add((e.host, e.uuid))
            return
        if e.name != "JOB_STATUS_CHANGE":
            self.poke.add((e.host, e.uuid))
            return
        qid, status = str(e.get("id", "")), str(e.get("status", ""))
        typ, disk = parse_qemu_job_id(qid)
        mine = next((x for x in self._tracks_of(e.host, e.uuid) if x.job.qemu_id == qid), None)
        if mine is not None and (
            mine.job.state is JobState.ORPHANED or mine.job.config.get("seen-by") == "qemu"
        ):
            self._limbo_event(mine, status, e.time)
            return
        if typ is JobType.BLOCKDEV_CREATE:
            self._create_job_event(d, qid, status, e.time)
            return
        if typ is JobType.UNKNOWN:
            if status in ("created", "running"):
                # libvirt's own jobs (a storage migration's drive-virtio-disk0
                # mirror): the poll shows which domain job they belong to.
                self.poke.add((e.host, e.uuid))
            return
        t = next((x for x in self._tracks_of(e.host, e.uuid) if x.disk == disk and x.disk), None)
        if t is None:
            if status in ("created", "running"):
                self.poke.add((e.host, e.uuid))  # the fast path: poll it right now
            return
        if not t.job.qemu_id:
            t.job = t.job.evolve(qemu_id=qid)
        if t.job.state is JobState.ORPHANED:
            self._limbo_event(t, status, e.time)
            return
        # A paused READY mirror is 'standby' in QEMU's words.
        if status in ("paused", "standby"):
            if t.paused_since is None:
                t.paused_since = e.time
        elif status in ("running", "ready"):
            t.paused_since = None
            if t.job.state is JobState.PAUSED:
                back = t.state_before_pause or JobState.RUNNING
                t.state_before_pause = None
                self._set_state(t, back, e.time)

    def _limbo_event(self, t: Track, status: str, at: float) -> None:
        """QEMU's job event for a job only QEMU knows: the only word on how it goes."""
        if status not in ("concluded", "null"):
            return
        if t.abort_requested:
            self._set_state(t, JobState.ABORTED, at, message="cancelled through QEMU")
        else:
            self._set_state(
                t, JobState.UNKNOWN, at, message="the job ended in QEMU; QEMU does not say how"
            )

    def _create_job_event(self, d: DomainInfo, qid: str, status: str, at: float) -> None:
        """QEMU's image creation before a copy: normally a few milliseconds. It is
        shown only when it lingers (slow or stuck storage), the case the proposal
        worries about; a quick one would just flash an 'unknown' row."""
        name = qid.removesuffix("-format")
        t = self.active.get((d.host, d.uuid, name))
        if status in ("created", "running") and t is None:
            self.pending_creates.setdefault((d.host, d.uuid, name), (at, qid, d.name))
            return
        if status in ("concluded", "null"):
            self.pending_creates.pop((d.host, d.uuid, name), None)
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

    # --- time ------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        for key, (first, qid, _dname) in list(self.pending_creates.items()):
            d = self.domains.get((key[0], key[1]))
            if now - first > CREATE_LINGER and d is not None:
                del self.pending_creates[key]
                self._new(d, key[2], JobType.BLOCKDEV_CREATE, first, qemu_id=qid, at=now)
        for t in list(self.active.values()):
            # A domain job's end is read from the kept stats by the next poll; allow it longer.
            grace = GONE_GRACE if t.disk else 5 * GONE_GRACE
            if t.gone_since is not None and now - t.gone_since > grace:
                if t.awaiting_source:
                    self._conclude_incoming(t, now, self._peer_job(t.job))
                else:
                    self._vanished(t, now, "libvirt sent no event saying how it ended")
                continue
            if (
                t.paused_since is not None
                and now - t.paused_since > PAUSE_DEBOUNCE
                and t.job.state in (JobState.RUNNING, JobState.READY)
            ):
                t.state_before_pause = t.job.state
                self._set_state(t, JobState.PAUSED, now)

    def note_abort(self, key: JobKey, requested: bool = True) -> None:
        t = self.active.get((key.host, key.domain_uuid, key.name))
        if t is not None:
            t.abort_requested = requested
            self.poke.add((key.host, key.domain_uuid))

    def note_postcopy(self, key: JobKey, value: str) -> None:
        t = self.track_for(key)
        if t is not None and t.job.config.get("postcopy") != value:
            self._update(t, time.time(), config=FrozenMap(dict(t.job.config, postcopy=value)))

    def track_for(self, key: JobKey) -> Track | None:
        t = self.active.get((key.host, key.domain_uuid, key.name))
        return t if t is not None and t.job.key == key else None


def _fingerprint(stats: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in stats.items() if isinstance(v, int | float | str)))


def _merge_disk_stats(new: dict[str, Any], old: FrozenMap) -> dict[str, Any]:
    """Keep the per-disk entries folded in from block jobs across domain-job samples."""
    merged = dict(new)
    for k, v in old.items():
        if "." in k and k not in merged:
            merged[k] = v
    return merged
