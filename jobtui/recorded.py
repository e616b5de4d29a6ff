"""A recorded, deterministic `JobSource`: canned hosts, domains and jobs.

This is a stage prop for SVG snapshots, UI tests and UI benchmarks. It knows
nothing about libvirt and proves nothing about it: every number here was typed
in, and every control operation only rewrites this object's own state. Claims
about how libvirt behaves belong to tests against the engine and the lab.

Time is a `RecordedClock` that moves only when told to, so elapsed times, ETAs
and rates rendered from it are the same on every run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from jobtui.model import (
    ControlOp,
    Domain,
    DomainChanged,
    EngineEvent,
    FrozenMap,
    Host,
    HostChanged,
    HostState,
    Job,
    JobControlError,
    JobDismissed,
    JobKey,
    JobProgress,
    JobState,
    JobStateChanged,
    JobType,
)
from jobtui.source import Subscriber
from jobtui.support import Options, refusal

# 2023-11-14 22:13:20 UTC: an arbitrary, fixed "now" for every preset.
EPOCH = 1_700_000_000.0

GiB = 1024**3
MiB = 1024**2


class RecordedClock:
    """A clock that only moves when told to. Thread-safe."""

    def __init__(self, now: float = EPOCH) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._now += seconds
            return self._now


@dataclass(frozen=True)
class ControlCall:
    key: JobKey
    op: ControlOp
    args: dict[str, Any] = field(default_factory=dict)


class RecordedSource:
    """A `JobSource` over a fixed list of hosts, domains and jobs.

    `emit()` feeds an engine event to subscribers (from any thread) after
    applying it to this source's own state, so `jobs()` stays consistent with
    what subscribers saw. `speeds` gives running jobs a recorded throughput that
    `tick()` plays forward.
    """

    def __init__(
        self,
        hosts: Iterable[Host] = (),
        domains: Iterable[Domain] = (),
        jobs: Iterable[Job] = (),
        *,
        options: Options | None = None,
        clock: RecordedClock | None = None,
        speeds: dict[JobKey, int] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.options = options or Options()
        self.clock = clock or RecordedClock()
        self.calls: list[ControlCall] = []
        self.started = False
        self.focused: JobKey | None = None
        # Simulated blocking time of every source call, to show the UI never
        # waits on its event loop (the real engine can take 30 s on a stuck QEMU).
        self.latency = latency
        self._hosts = {h.uri: h for h in hosts}
        self._domains = {(d.host, d.uuid): d for d in domains}
        self._jobs = {j.key: j for j in jobs}
        self._speeds = dict(speeds or {})
        self._paused_from: dict[JobKey, JobState] = {}
        self._ticks = 0
        self._subscribers: list[Subscriber] = []
        self._lock = threading.RLock()

    # --- JobSource --------------------------------------------------------------------

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.started = False

    def hosts(self) -> list[Host]:
        self._wait()
        with self._lock:
            return list(self._hosts.values())

    def domains(self) -> list[Domain]:
        self._wait()
        with self._lock:
            return list(self._domains.values())

    def jobs(self, *, include_finished: bool = True) -> list[Job]:
        self._wait()
        with self._lock:
            return [j for j in self._jobs.values() if include_finished or j.state.active]

    def job(self, key: JobKey) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def job_xml(self, key: JobKey) -> str:
        self._wait()
        job = self.job(key)
        if job is None:
            raise JobControlError(f"no such job: {key.name}")
        from jobtui.jobxml import to_xml  # lazily: the XML layer is not needed to watch

        return to_xml(job)

    def control(self, key: JobKey, op: ControlOp, **args: Any) -> str:
        self._wait()
        with self._lock:
            self.calls.append(ControlCall(key, op, dict(args)))
            job = self._jobs.get(key)
            if job is None:
                raise JobControlError(f"{key.name} is gone")
            reason = refusal(job, op, self.options)
            if reason is not None:
                raise JobControlError(reason)
            event, result = self._apply_op(job, op, args)
        self.emit(event)
        return result

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def focus(self, key: JobKey | None) -> None:
        """The job on screen (the engine samples it faster; here it is only recorded)."""
        self.focused = key

    # --- driving it from tests and benchmarks ---------------------------------------

    def emit(self, event: EngineEvent) -> None:
        """Apply `event` to this source, then hand it to every subscriber (this thread)."""
        with self._lock:
            self._apply_event(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)

    def set_state(self, key: JobKey, new: JobState, **changes: Any) -> JobStateChanged:
        """Emit the JOB_STATE transition of `key` to `new` (with other field changes)."""
        with self._lock:
            job = self._jobs[key]
            now = self.clock()
            if new.finished and "finished" not in changes:
                changes["finished"] = now
            event = JobStateChanged(key, job.state, new, job.evolve(state=new, **changes), now)
        self.emit(event)
        return event

    def progress(self, key: JobKey, **changes: Any) -> JobProgress:
        """Emit a progress update of `key` (e.g. `current=...`)."""
        with self._lock:
            event = JobProgress(self._jobs[key].evolve(**changes))
        self.emit(event)
        return event

    def tick(self, seconds: float = 1.0) -> list[EngineEvent]:
        """Advance the clock and play every running job forward at its recorded speed.

        A block copy or active commit that reaches its end turns READY; any other
        job that reaches its end completes. Returns the events emitted.
        """
        self.clock.advance(seconds)
        self._ticks += 1
        emitted: list[EngineEvent] = []
        with self._lock:
            moving = [
                (self._jobs[k], s)
                for k, s in self._speeds.items()
                if k in self._jobs and self._jobs[k].state is JobState.RUNNING
            ]
        for job, speed in moving:
            if job.current is None or job.end is None:
                continue
            # A recorded wobble, so rate sparklines have a shape and stay reproducible.
            factor = _WOBBLE[self._ticks % len(_WOBBLE)]
            current = min(job.end, job.current + int(speed * factor * seconds))
            changes = {
                "current": current,
                "stats": _advance_stats(job.stats, current - job.current),
                # What the engine's rate window would say of steady recorded steps.
                "rate": int(speed * factor),
                "sampled": self.clock(),
            }
            if current < job.end:
                emitted.append(self.progress(job.key, **changes))
            elif job.type in (JobType.BLOCK_COPY, JobType.BLOCK_COMMIT_ACTIVE):
                emitted.append(self.set_state(job.key, JobState.READY, **changes))
            else:
                emitted.append(self.set_state(job.key, JobState.COMPLETED, **changes))
        return emitted

    # --- internals -----------------------------------------------------------------------

    def _wait(self) -> None:
        if self.latency:
            threading.Event().wait(self.latency)

    def _apply_event(self, event: EngineEvent) -> None:
        match event:
            case JobStateChanged(job=job) | JobProgress(job=job):
                self._jobs[job.key] = job
            case JobDismissed(key=key):
                self._jobs.pop(key, None)
            case DomainChanged(domain=domain, removed=removed):
                if removed:
                    self._domains.pop((domain.host, domain.uuid), None)
                else:
                    self._domains[(domain.host, domain.uuid)] = domain
            case HostChanged(host=host):
                self._hosts[host.uri] = host

    def _apply_op(self, job: Job, op: ControlOp, args: dict[str, Any]) -> tuple[EngineEvent, str]:
        now = self.clock()
        where = f"{job.name} on {job.domain}"

        def to(state: JobState, **changes: Any) -> JobStateChanged:
            if state.finished:
                changes.setdefault("finished", now)
            return JobStateChanged(
                job.key, job.state, state, job.evolve(state=state, **changes), now
            )

        if op is ControlOp.ABORT:
            return to(JobState.ABORTED, message="aborted by operator"), f"aborted {where}"
        if op is ControlOp.FINALIZE:
            return to(JobState.COMPLETED), f"finalized {where}: the domain now uses the new disk"
        if op is ControlOp.PAUSE:
            self._paused_from[job.key] = job.state
            return to(JobState.PAUSED), f"paused {where}"
        if op is ControlOp.RESUME:
            return to(self._paused_from.pop(job.key, JobState.RUNNING)), f"resumed {where}"
        if op is ControlOp.DISMISS:
            return JobDismissed(job.key), f"dismissed {where}"
        if op is ControlOp.SET_SPEED:
            bandwidth = int(args.get("bandwidth", 0))
            event = JobProgress(job.evolve(bandwidth=bandwidth or None))
            shown = "unlimited" if not bandwidth else f"{bandwidth} bytes/s"
            return event, f"{where}: bandwidth {shown}"
        if op is ControlOp.POSTCOPY:
            config = FrozenMap(job.config, postcopy="active")
            return JobProgress(job.evolve(config=config)), f"{where} switched to post-copy"
        raise JobControlError(f"{op} is not a known operation")


_WOBBLE = (1.0, 0.8, 1.15, 0.9, 1.25, 0.7, 1.05, 1.1)


def _advance_stats(stats: FrozenMap, delta: int) -> FrozenMap:
    """Keep the recorded `*_processed` / `*_remaining` stats in step with `current`."""
    moved = {}
    for k, v in stats.items():
        if k.endswith("_processed"):
            moved[k] = v + delta
        elif k.endswith("_remaining"):
            moved[k] = max(0, v - delta)
    return FrozenMap(stats, **moved) if moved else stats


# --- presets ---------------------------------------------------------------------------

KVM1 = "qemu+ssh://kvm1.lab/system"
KVM2 = "qemu+ssh://kvm2.lab/system"


def _uuid(n: int) -> str:
    return f"6b3c{n:04x}-5f1e-4d2a-9c3b-0000000000{n:02x}"


def _job(
    host: str,
    dom: Domain,
    name: str,
    typ: JobType,
    state: JobState,
    *,
    ago: float,
    config: dict[str, Any] | None = None,
    stats: dict[str, Any] | None = None,
    **fields: Any,
) -> Job:
    return Job(
        key=JobKey(host, dom.uuid, name, EPOCH - ago),
        domain=dom.name,
        type=typ,
        state=state,
        config=FrozenMap(config or {}),
        stats=FrozenMap(stats or {}),
        **fields,
    )


def empty(*, readonly: bool = False) -> RecordedSource:
    """One connected host with one idle domain and no jobs."""
    host = Host(KVM1, HostState.CONNECTED, readonly=readonly, hostname="kvm1.lab")
    dom = Domain(KVM1, _uuid(1), "web1", "running")
    return RecordedSource([host], [dom], [], options=Options(readonly=readonly))


def busy(*, readonly: bool = False) -> RecordedSource:
    """Two hosts, four domains, jobs of most types in most states.

    kvm1 is connected; kvm2 dropped its connection (its error is shown as
    libvirt would word it). db1 has a stuck QEMU monitor (unresponsive).
    """
    h1 = Host(KVM1, HostState.CONNECTED, readonly=readonly, hostname="kvm1.lab")
    h2 = Host(
        KVM2,
        HostState.DISCONNECTED,
        readonly=readonly,
        error="Cannot recv data: ssh: connect to host kvm2.lab port 22: No route to host",
        hostname="kvm2.lab",
    )
    web1 = Domain(KVM1, _uuid(1), "web1", "running")
    web2 = Domain(KVM1, _uuid(2), "web2", "running")
    db1 = Domain(KVM1, _uuid(3), "db1", "running", responsive=False)
    build1 = Domain(KVM1, _uuid(4), "build1", "running")

    copy = _job(
        KVM1, web1, "copy-vda", JobType.BLOCK_COPY, JobState.READY, ago=540,
        config={"disk": "vda", "destination": "/var/lib/libvirt/images/web1-vda.copy.qcow2"},
        current=20 * GiB, end=20 * GiB, bandwidth=32 * MiB,
        qemu_id="copy-vda-libvirt-1-format",
    )  # fmt: skip
    pull = _job(
        KVM1, web1, "pull-vdb", JobType.BLOCK_PULL, JobState.RUNNING, ago=95,
        config={"disk": "vdb", "base": "/var/lib/libvirt/images/web1-vdb.base.qcow2"},
        current=int(0.42 * 8 * GiB), end=8 * GiB,
        qemu_id="pull-vdb-libvirt-3-format",
    )  # fmt: skip
    backup = _job(
        KVM1, web1, "backup", JobType.BACKUP, JobState.RUNNING, ago=200,
        config={"mode": "push", "disks": "vda,vdb"},
        stats={"disk_total": 28 * GiB, "disk_processed": 17 * GiB, "disk_remaining": 11 * GiB},
        current=17 * GiB, end=28 * GiB, bandwidth=64 * MiB,
    )  # fmt: skip
    save = _job(
        KVM1, web2, "save", JobType.SAVE, JobState.RUNNING, ago=30,
        config={"file": "/var/lib/libvirt/save/web2.save"},
        stats={"memory_total": 4 * GiB, "memory_processed": 700 * MiB,
               "memory_remaining": 4 * GiB - 700 * MiB, "time_elapsed": 30_000},
        current=700 * MiB, end=4 * GiB,
    )  # fmt: skip
    failed = _job(
        KVM1, web2, "copy-vdb", JobType.BLOCK_COPY, JobState.FAILED, ago=1800,
        config={"disk": "vdb", "destination": "/mnt/nfs/web2-vdb.qcow2"},
        current=3 * GiB, end=10 * GiB, finished=EPOCH - 1500,
        message="No space left on device (/mnt/nfs)",
    )  # fmt: skip
    commit = _job(
        KVM1, web2, "commit-vda", JobType.BLOCK_COMMIT, JobState.COMPLETED, ago=3600,
        config={"disk": "vda", "top": "vda[2]", "base": "vda[1]"},
        current=6 * GiB, end=6 * GiB, finished=EPOCH - 3420,
    )  # fmt: skip
    orphan = _job(
        KVM1, web2, "copy-sda", JobType.BLOCK_COPY, JobState.ORPHANED, ago=720,
        config={"disk": "sda", "destination": "/var/lib/libvirt/images/web2-sda.copy.qcow2"},
        current=3 * GiB, end=12 * GiB, qemu_id="copy-sda-libvirt-1-format",
        message="sda was removed from the domain; QEMU still runs the job",
    )  # fmt: skip
    migration = _job(
        KVM1,
        db1,
        "migration-out",
        JobType.MIGRATION_OUT,
        JobState.RUNNING,
        ago=310,
        config={"destination": "qemu+tls://kvm3.lab/system", "postcopy": "allowed", "live": "yes"},
        stats={
            "memory_total": 16 * GiB,
            "memory_processed": 21 * GiB,
            "memory_remaining": 2 * GiB + 300 * MiB,
            "memory_iteration": 4,
            "memory_dirty_rate": 51_200,
            "memory_page_size": 4096,
            "memory_bps": 120 * MiB,
            "data_total": 16 * GiB,
            "data_processed": 21 * GiB,
            "data_remaining": 2 * GiB + 300 * MiB,
            "downtime": 300,
            "setup_time": 42,
            "time_elapsed": 310_000,
        },
        current=14 * GiB - 300 * MiB,
        end=16 * GiB,
        bandwidth=128 * MiB,
        stalled=True,
        message="not converging: dirty rate 200 MiB/s exceeds bandwidth",
    ).evolve(stale=True, sampled=EPOCH - 42)  # db1 does not answer: figures 42 s old
    orphan = orphan.evolve(stale=True, sampled=EPOCH - 300)  # nothing confirms it since
    dump = _job(
        KVM1, build1, "dump", JobType.DUMP, JobState.RUNNING, ago=44,
        config={"file": "/var/crash/build1.core", "memory_only": "no"},
        stats={"memory_total": 8 * GiB, "memory_processed": int(1.8 * GiB)},
        current=int(1.8 * GiB), end=8 * GiB,
    )  # fmt: skip
    jobs = [copy, pull, backup, save, failed, commit, orphan, migration, dump]
    speeds = {
        pull.key: 48 * MiB,
        backup.key: 64 * MiB,
        save.key: 24 * MiB,
        migration.key: 120 * MiB,
        dump.key: 70 * MiB,
    }
    # db1's monitor is stuck: its migration stats are frozen at the last sample.
    speeds.pop(migration.key)
    return RecordedSource(
        [h1, h2],
        [web1, web2, db1, build1],
        jobs,
        options=Options(readonly=readonly),
        speeds=speeds,
    )


def many(n: int = 500, *, hosts: int = 4) -> RecordedSource:
    """`n` running block jobs spread over `hosts` hosts, ten jobs per domain: a load test."""
    host_objs = [
        Host(f"qemu+ssh://kvm{h}.lab/system", HostState.CONNECTED, hostname=f"kvm{h}.lab")
        for h in range(1, hosts + 1)
    ]
    types = [JobType.BLOCK_COPY, JobType.BLOCK_PULL, JobType.BLOCK_COMMIT, JobType.BACKUP]
    domains: dict[tuple[str, int], Domain] = {}
    jobs: list[Job] = []
    speeds: dict[JobKey, int] = {}
    for i in range(n):
        d = i // 10
        host = host_objs[d % hosts].uri
        dom = domains.setdefault(
            (host, d), Domain(host, f"00000000-0000-4000-8000-{d:012x}", f"vm{d:03d}", "running")
        )
        typ = types[i % len(types)]
        name = f"{typ.value.split('-')[-1]}-vd{chr(ord('a') + i % 10)}"
        job = _job(host, dom, name, typ, JobState.RUNNING, ago=60 + i,
                   config={"disk": f"vd{chr(ord('a') + i % 10)}"},
                   current=(i % 97) * GiB // 100, end=GiB)  # fmt: skip
        jobs.append(job)
        speeds[job.key] = (1 + i % 7) * MiB
    return RecordedSource(host_objs, domains.values(), jobs, speeds=speeds)
