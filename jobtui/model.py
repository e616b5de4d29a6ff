"""The words every layer of jobtui speaks: plain, immutable data, no I/O.

A `Job` is a snapshot. The engine makes a new one whenever anything about a job
changes and hands it to the front ends; nobody mutates a `Job` in place, so a
snapshot can cross threads (libvirt's event thread -> the UI) without locks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

StatValue = int | float | str | bool


class JobType(enum.StrEnum):
    MIGRATION_OUT = "migration-out"
    MIGRATION_IN = "migration-in"
    SAVE = "save"
    RESTORE = "restore"
    DUMP = "dump"
    SNAPSHOT = "snapshot"
    SNAPSHOT_REVERT = "snapshot-revert"
    SNAPSHOT_DELETE = "snapshot-delete"
    BACKUP = "backup"
    BLOCK_PULL = "block-pull"
    BLOCK_COPY = "block-copy"
    BLOCK_COMMIT = "block-commit"
    BLOCK_COMMIT_ACTIVE = "block-commit-active"
    BLOCKDEV_CREATE = "blockdev-create"
    UNKNOWN = "unknown"

    @property
    def is_block(self) -> bool:
        return self in _BLOCK_TYPES

    @property
    def is_migration(self) -> bool:
        return self in (JobType.MIGRATION_OUT, JobType.MIGRATION_IN)


_BLOCK_TYPES = frozenset(
    {
        JobType.BLOCK_PULL,
        JobType.BLOCK_COPY,
        JobType.BLOCK_COMMIT,
        JobType.BLOCK_COMMIT_ACTIVE,
        JobType.BLOCKDEV_CREATE,
    }
)


class JobState(enum.StrEnum):
    RUNNING = "running"
    READY = "ready"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    ABORTED = "aborted"
    # The job vanished and libvirt told us nothing: never claim a success we did not see.
    UNKNOWN = "unknown"
    # Its disk is gone from libvirt's view but QEMU still runs it.
    ORPHANED = "orphaned"

    @property
    def finished(self) -> bool:
        return self in _FINISHED

    @property
    def active(self) -> bool:
        return not self.finished


_FINISHED = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.ABORTED, JobState.UNKNOWN})


class ControlOp(enum.StrEnum):
    ABORT = "abort"
    FINALIZE = "finalize"
    PAUSE = "pause"
    RESUME = "resume"
    DISMISS = "dismiss"
    SET_SPEED = "set-speed"
    POSTCOPY = "postcopy"

    @property
    def needs_confirmation(self) -> bool:
        """Asked before it runs, in the CLI (or `--yes`) and the TUI: what it does
        cannot be undone (an abort, a pivot, a dropped record, a post-copy switch,
        after which the migration can no longer be aborted)."""
        return self in (ControlOp.ABORT, ControlOp.FINALIZE, ControlOp.DISMISS, ControlOp.POSTCOPY)


class HostState(enum.StrEnum):
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class JobControlError(Exception):
    """A control operation was refused or failed; `str(err)` is for a person."""


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable, ordered mapping: config and stats of a `Job`."""

    __slots__ = ("_items", "_dict")

    def __init__(self, data: Mapping[str, Any] | None = None, /, **kw: Any) -> None:
        d = dict(data or {})
        d.update(kw)
        self._dict = d
        self._items = tuple(d.items())

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return hash(frozenset(self._items))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return self._dict == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._dict!r})"


# Two sightings of one job name on one domain that ended this close together are
# one run: seen by two processes, or told twice (a poll, then the end event).
SAME_RUN_SECONDS = 3.0


@dataclass(frozen=True, order=True)
class JobKey:
    """Identity of one job run: a second `copy-vda` later is a different job."""

    host: str
    domain_uuid: str
    name: str
    # Epoch seconds: libvirt's start time for a domain job, else when jobtui saw it start,
    # or first saw it running (then Job.started_before_seen).
    started: float
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Keys are looked up in dicts and sets for every row of every paint (10^4 times
        # a paint with 2000 jobs): hashed once, not once per lookup.
        object.__setattr__(
            self, "_hash", hash((self.host, self.domain_uuid, self.name, self.started))
        )

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return f"{self.host}/{self.domain_uuid}/{self.name}@{self.started:.3f}"


@dataclass(frozen=True)
class Job:
    key: JobKey
    domain: str  # the domain's name (the uuid is in the key)
    type: JobType
    state: JobState
    config: FrozenMap = field(default_factory=FrozenMap)
    stats: FrozenMap = field(default_factory=FrozenMap)
    # Progress in the job's own unit (bytes for everything libvirt reports today).
    current: int | None = None
    end: int | None = None
    bandwidth: int | None = None  # bytes/s; None when unlimited or unknown
    finished: float | None = None  # epoch seconds
    message: str = ""  # why it ended, or what an operator must know ("stalled", "tainted")
    qemu_id: str = ""  # QEMU's internal job id where known (copy-vda-libvirt-1-format)
    stalled: bool = False
    # When libvirt (or QEMU) last answered with these figures, epoch seconds.
    sampled: float | None = None
    # The figures are not current: the domain does not answer, its host is gone, or
    # (an orphaned job kept from an earlier process) nothing has confirmed it since.
    stale: bool = False
    # Bytes/s over the recent window of samples (see engine/rate.py); None when unknown
    # or when the figures are stale.
    rate: int | None = None
    # Already running when jobtui first looked at its domain: libvirt keeps no start time
    # for a block job, so `started` is when it was first seen and the job began earlier.
    started_before_seen: bool = False

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def host(self) -> str:
        return self.key.host

    @property
    def started(self) -> float:
        return self.key.started

    @property
    def outside_libvirt(self) -> bool:
        """Started through QMP: only QEMU's job list shows it, only QEMU can act on it."""
        return self.config.get("seen-by") == "qemu"

    @property
    def qemu_only(self) -> bool:
        """Only QEMU's job list and events tell about it: started outside libvirt, or
        orphaned (its disk unplugged while QEMU kept running it)."""
        return self.state is JobState.ORPHANED or self.outside_libvirt

    @property
    def progress(self) -> float | None:
        """Fraction done in [0, 1], or None when libvirt gives no total."""
        if self.current is None or not self.end:
            return None
        return max(0.0, min(1.0, self.current / self.end))

    def evolve(self, **changes: Any) -> Job:
        return replace(self, **changes)


# A domain's state before anything has told it: listed, not yet looked at.
UNKNOWN_DOMAIN_STATE = "unknown"


def transfer_rate(job: Job) -> float | None:
    """What a migration sends per second, as libvirt measures it (memory + disks).

    Its progress (total − remaining) moves slower, or backwards, while the guest
    dirties memory: the table shows what is sent, the ETA what is gained.
    """
    if not job.type.is_migration:
        return None
    parts = [job.stats.get(k) for k in ("memory_bps", "disk_bps")]
    nums = [float(v) for v in parts if isinstance(v, int | float) and not isinstance(v, bool)]
    return sum(nums) if nums else None


def shown_rate(job: Job, rate: float | None) -> float | None:
    """The rate a person is shown: what a migration sends, none for a synchronised
    (READY) mirror, where only the guest's new writes move; else the measured one."""
    if job.state is JobState.READY:
        return None
    transfer = transfer_rate(job)
    return transfer if transfer is not None else rate


@dataclass(frozen=True)
class Domain:
    host: str
    uuid: str
    name: str
    state: str  # running, paused, shut off, ... (virsh's words), or UNKNOWN_DOMAIN_STATE
    responsive: bool = True


@dataclass(frozen=True)
class Host:
    uri: str
    state: HostState
    readonly: bool = False
    error: str = ""  # libvirt's reason for the last failure, shown as-is
    hostname: str = ""


# --- what the engine tells its subscribers -------------------------------------------


@dataclass(frozen=True)
class JobStateChanged:
    """The proposal's JOB_STATE event: exactly once per transition, in order per job."""

    key: JobKey
    old: JobState | None  # None: first sighting
    new: JobState
    job: Job
    time: float


@dataclass(frozen=True)
class JobProgress:
    """Stats or progress of a job changed without a state change."""

    job: Job


@dataclass(frozen=True)
class JobDismissed:
    key: JobKey


@dataclass(frozen=True)
class DomainChanged:
    domain: Domain
    removed: bool = False


@dataclass(frozen=True)
class HostChanged:
    host: Host


EngineEvent = JobStateChanged | JobProgress | JobDismissed | DomainChanged | HostChanged
