"""The job registry and its state machine.

Only the dispatcher thread touches a Registry: libvirt samples and events go
in, `JobStateChanged`/`JobProgress`/`DomainChanged` come out, in order. No
libvirt calls happen here, which keeps the truth rules testable and the
ordering simple.

Truth rules (DESIGN §2): READY only from libvirt's READY event or the live
XML's `<mirror ready='yes'>`; a block job's end only from BLOCK_JOB_2; a
domain job's end from JOB_COMPLETED or the kept completed stats; a job that
vanished with no word from libvirt is `unknown`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jobtui.engine import events as ev
from jobtui.engine.sample import (
    BLOCK_TYPES,
    OPERATION_TYPES,
    DiskInfo,
    DomainSample,
    block_job_name,
    domain_job_name,
)
from jobtui.model import (
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

BLOCK_STATUS = {0: JobState.COMPLETED, 1: JobState.FAILED, 2: JobState.ABORTED, 3: JobState.READY}
QEMU_JOB_PREFIX = {
    "pull": JobType.BLOCK_PULL,
    "copy": JobType.BLOCK_COPY,
    "commit": JobType.BLOCK_COMMIT,
    "active-commit": JobType.BLOCK_COMMIT_ACTIVE,
    "backup": JobType.BACKUP,
    "create": JobType.BLOCKDEV_CREATE,
}


@dataclass
class Track:
    """The dispatcher's mutable record of one active job."""

    job: Job
    disk: str = ""
    gone_since: float | None = None
    abort_requested: bool = False
    paused_since: float | None = None
    state_before_pause: JobState | None = None
    last_sample: tuple[float, int] | None = None  # (time, current) for the rate
    rate: float | None = None


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
    extra: dict[str, Any] = field(default_factory=dict)

    def snapshot(self) -> Domain:
        return Domain(self.host, self.uuid, self.name, self.state, self.responsive)


def parse_qemu_job_id(qid: str) -> tuple[JobType, str]:
    """`copy-vda-libvirt-1-format` -> (block-copy, 'vda'); `create-libvirt-2-format` -> create."""
    for prefix in ("active-commit", "pull", "copy", "commit", "backup", "create"):
        if qid.startswith(prefix + "-"):
            rest = qid[len(prefix) + 1 :]
            if prefix == "create":
                return JobType.BLOCKDEV_CREATE, ""
            disk = rest.split("-", 1)[0]
            return QEMU_JOB_PREFIX[prefix], disk
    return JobType.UNKNOWN, ""


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def domain_progress(typ: JobType, stats: dict[str, Any]) -> tuple[int | None, int | None]:
    """(current, end) of a domain job from the stats libvirt gives it."""
    if typ is JobType.BACKUP:
        return _int(stats.get("disk_processed")), _int(stats.get("disk_total"))
    total = _int(stats.get("data_total"))
    if total:
        return _int(stats.get("data_processed")), total
    total = _int(stats.get("memory_total"))
    if total:
        return _int(stats.get("memory_processed")), total
    return _int(stats.get("disk_processed")), _int(stats.get("disk_total"))


class Registry:
    def __init__(self, qemu_events_hosts: set[str] | None = None) -> None:
        self.domains: dict[tuple[str, str], DomainInfo] = {}
        self.active: dict[tuple[str, str, str], Track] = {}
        self.finished: dict[JobKey, Job] = {}
        self.qemu_event_hosts: set[str] = (
            qemu_events_hosts if qemu_events_hosts is not None else set()
        )
        self.out: list[EngineEvent] = []
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
            d = DomainInfo(host, uuid, name or uuid)
            self.domains[(host, uuid)] = d
            self.out.append(DomainChanged(d.snapshot()))
        return d

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
        return track

    def _set_state(self, t: Track, new: JobState, at: float, **changes: Any) -> None:
        old = t.job.state
        if new.finished:
            changes.setdefault("finished", at)
        t.job = t.job.evolve(state=new, **changes)
        if old != new:
            self.out.append(JobStateChanged(t.job.key, old, new, t.job, at))
        elif changes:
            self.out.append(JobProgress(t.job))
        if new.finished:
            d = self.domains.get((t.job.host, t.job.key.domain_uuid))
            if d is not None and t.disk:
                d.block_ended[t.disk] = max(d.block_ended.get(t.disk, 0.0), at)
            elif d is not None:
                d.domain_job_ended = max(d.domain_job_ended, at)
            self.active.pop((t.job.host, t.job.key.domain_uuid, t.job.name), None)
            self.finished[t.job.key] = t.job
            self.newly_finished.append(t.job)

    def _update(self, t: Track, at: float, **changes: Any) -> None:
        cur = changes.get("current")
        if cur is not None:
            if t.last_sample is not None and at > t.last_sample[0] and cur >= t.last_sample[1]:
                t.rate = (cur - t.last_sample[1]) / (at - t.last_sample[0])
            t.last_sample = (at, cur)
        new = t.job.evolve(**changes)
        if new != t.job:
            t.job = new
            self.out.append(JobProgress(new))

    def set_responsive(self, host: str, uuid: str, responsive: bool) -> None:
        d = self.domains.get((host, uuid))
        if d is not None and d.responsive != responsive:
            d.responsive = responsive
            self.out.append(DomainChanged(d.snapshot()))

    def remove_domain(self, host: str, uuid: str, at: float) -> None:
        d = self.domains.pop((host, uuid), None)
        if d is None:
            return
        for t in self._tracks_of(host, uuid):
            self._vanished(t, at, "the domain disappeared")
        self.out.append(DomainChanged(d.snapshot(), removed=True))

    # --- samples ---------------------------------------------------------------------

    def apply_sample(self, host: str, s: DomainSample) -> None:
        if s.gone:
            self.remove_domain(host, s.uuid, s.taken)
            return
        d = self._domain(host, s.uuid, s.name)
        if (d.name, d.state) != (s.name, s.state):
            d.name, d.state = s.name, s.state
            self.out.append(DomainChanged(d.snapshot()))
        if s.disks is not None:
            d.disks = s.disks
            d.xml_dirty = False
        self._apply_domain_job(d, s)
        self._apply_block_jobs(d, s)

    def _active_domain_job(self, d: DomainInfo) -> Track | None:
        for t in self._tracks_of(d.host, d.uuid):
            if not t.disk and not t.job.type.is_block and t.job.state is not JobState.ORPHANED:
                return t
        return None

    def _apply_domain_job(self, d: DomainInfo, s: DomainSample) -> None:
        track = self._active_domain_job(d)
        if s.completed_stats is not None:
            d.want_completed = False
            fp = _fingerprint(s.completed_stats)
            fresh = d.seen_completed and fp != d.completed_fp
            d.completed_fp, d.seen_completed = fp, True
            if track is not None and not s.job_stats:
                if (
                    fresh
                    and OPERATION_TYPES.get(s.completed_stats.get("operation", -1))
                    == track.job.type
                ):
                    self._finish_domain_job(track, s.completed_stats, s.taken)
                    track = None
                elif track.abort_requested:
                    self._set_state(track, JobState.ABORTED, s.taken, message="aborted on request")
                    track = None
                else:
                    self._vanished(track, s.taken, "libvirt kept no final statistics")
                    track = None
        js = s.job_stats
        if js and track is None and s.taken <= d.domain_job_ended:
            js = {}  # a stale look at the job that just ended
        if js:
            typ = OPERATION_TYPES.get(int(js.get("operation", 0)), JobType.UNKNOWN)
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
            cur, end = domain_progress(typ, js)
            stats = {k: v for k, v in js.items() if k != "type"}
            config = dict(track.job.config)
            self._update(
                track,
                s.taken,
                stats=FrozenMap(_merge_disk_stats(stats, track.job.stats)),
                current=cur,
                end=end,
                bandwidth=track.job.bandwidth,
                config=FrozenMap(config),
            )
        elif track is not None and s.state:
            # Gone from jobStats: the end arrives as JOB_COMPLETED or in the kept stats.
            if track.gone_since is None:
                track.gone_since = s.taken
            d.want_completed = True
            self.poke.add((d.host, d.uuid))

    def _apply_block_jobs(self, d: DomainInfo, s: DomainSample) -> None:
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
            bw = int(info.get("bandwidth", 0)) or None
            config = dict(t.job.config)
            if mi is not None and mi.mirror_dest and "destination" not in config:
                config["destination"] = mi.mirror_dest
            self._update(
                t,
                s.taken,
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
        if s.state and s.block is not None:
            for disk, t in by_disk.items():
                if t.job.state is JobState.ORPHANED:
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
        else:
            state, msg = JobState.COMPLETED, ""
        merged = _merge_disk_stats(stats, t.job.stats)
        self._set_state(t, state, at, stats=FrozenMap(merged), current=cur, end=end, message=msg)

    def _vanished(self, t: Track, at: float, why: str) -> None:
        if t.abort_requested:
            self._set_state(t, JobState.ABORTED, at, message="aborted on request; " + why)
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
            if self._active_domain_job(d) is not None:
                d.want_completed = True
            self.poke.add((e.host, e.uuid))
        elif isinstance(e, ev.DeviceRemovedEv):
            self._device_removed(e)
        elif isinstance(e, ev.QemuEv):
            self._qemu_event(e)

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
        cur = t.job.end if state is JobState.COMPLETED and t.job.end else t.job.current
        self._set_state(t, state, e.time, message=msg, current=cur)

    def _job_completed(self, e: ev.JobCompletedEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        params = dict(e.params)
        typ = OPERATION_TYPES.get(int(params.get("operation", 0)), JobType.UNKNOWN)
        t = self._active_domain_job(d)
        if t is None or (typ is not JobType.UNKNOWN and t.job.type is not typ):
            if t is not None:
                self._vanished(t, e.time, "another job completed")
            if typ is JobType.UNKNOWN:
                return
            elapsed = float(params.get("time_elapsed", 0)) / 1000.0
            t = self._new(d, domain_job_name(typ), typ, e.time - elapsed, at=e.time)
        # These stats are the completed job's: do not mistake them for a later one's.
        d.completed_fp, d.seen_completed = _fingerprint(params), True
        d.want_completed = False
        self._finish_domain_job(t, params, e.time)

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
                self._set_state(t, JobState.ORPHANED, e.time, message=msg)
            else:
                self._vanished(t, e.time, f"its disk {disk} was unplugged")

    def _qemu_event(self, e: ev.QemuEv) -> None:
        d = self._domain(e.host, e.uuid, e.domain)
        if e.name == "MIGRATION":
            status = e.get("status", "")
            if status in ("completed", "failed", "cancelled"):
                d.want_completed = True
            self.poke.add((e.host, e.uuid))
            return
        if e.name != "JOB_STATUS_CHANGE":
            self.poke.add((e.host, e.uuid))
            return
        qid, status = str(e.get("id", "")), str(e.get("status", ""))
        typ, disk = parse_qemu_job_id(qid)
        if typ is JobType.BLOCKDEV_CREATE:
            self._create_job_event(d, qid, status, e.time)
            return
        if typ is JobType.UNKNOWN:
            return
        t = next((x for x in self._tracks_of(e.host, e.uuid) if x.disk == disk and x.disk), None)
        if t is None:
            if status in ("created", "running"):
                self.poke.add((e.host, e.uuid))  # the fast path: poll it right now
            return
        if not t.job.qemu_id:
            t.job = t.job.evolve(qemu_id=qid)
        if t.job.state is JobState.ORPHANED:
            if status in ("concluded", "null"):
                if t.abort_requested:
                    self._set_state(t, JobState.ABORTED, e.time, message="cancelled through QEMU")
                else:
                    self._set_state(
                        t,
                        JobState.UNKNOWN,
                        e.time,
                        message="the orphaned job ended; QEMU does not say how",
                    )
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
                self._vanished(t, now, "libvirt sent no event saying how it ended")
                continue
            if (
                t.paused_since is not None
                and now - t.paused_since > PAUSE_DEBOUNCE
                and t.job.state in (JobState.RUNNING, JobState.READY)
            ):
                t.state_before_pause = t.job.state
                self._set_state(t, JobState.PAUSED, now)

    def note_abort(self, key: JobKey) -> None:
        t = self.active.get((key.host, key.domain_uuid, key.name))
        if t is not None:
            t.abort_requested = True
            self.poke.add((key.host, key.domain_uuid))

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
