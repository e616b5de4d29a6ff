"""The UI's own copy of what the engine reported, and what changed since the last paint.

Engine events arrive one by one (many per second with hundreds of jobs); the
screen repaints at most once per tick. The store absorbs every event at once
(cheap: a dict write) and hands the screen a summary of what changed, so a job
that moved ten times between ticks costs one row update.

No Textual here: this is plain state, testable and benchmarkable on its own.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from jobtui.model import (
    Domain,
    DomainChanged,
    EngineEvent,
    Host,
    HostChanged,
    HostState,
    Job,
    JobDismissed,
    JobKey,
    JobProgress,
    JobState,
    JobStateChanged,
    shown_rate,
)
from jobtui.tui.format import DASH, human_duration

HISTORY = 120  # seconds of rate kept per job for the detail pane's graph
# Seconds with no sample between two that have one, drawn at the earlier rate: a job
# polled once a second skips a second now and then. A longer gap (the job was stale)
# is kept as seconds without a figure (NaN, drawn blank), not as figures nobody measured.
GAP_FILL = 2


class RateTrack:
    """What the screen shows of a job's speed: the engine's rate and its recent values.

    The engine measures the rate (engine/rate.py: between real steps, from the times
    libvirt answered); the screen keeps one value per second of libvirt's time (the
    last rate measured in it) for the graph, so a bar is a second whichever pace the
    job is polled at, and the graph moves once a second. A stale job (its domain or
    host not answering) has no rate and adds nothing: the graph stops rather than
    drawing figures nobody measured, and its seconds show blank once figures return.
    """

    __slots__ = ("history", "rate", "_sampled", "_second", "_last")

    def __init__(self) -> None:
        self.history: deque[float] = deque(maxlen=HISTORY)  # whole seconds, oldest first
        self.rate: float | None = None
        self._sampled: float | None = None
        self._second: int | None = None  # the second still being measured
        self._last = 0.0  # the rate last measured in it

    def add(self, job: Job) -> None:
        self.rate = None if job.stale else job.rate
        if self.rate is None or job.sampled is None or job.sampled == self._sampled:
            return
        # The graph draws the rate the screen shows beside it: what a migration sends,
        # nothing for a synchronised (READY) mirror, where only the guest's writes move.
        shown = shown_rate(job, self.rate)
        if shown is None:
            return
        self._sampled = job.sampled
        second = int(job.sampled)
        if self._second is not None and second > self._second:
            # The second being measured is over: it goes on the graph.
            skipped = min(second - self._second - 1, HISTORY)
            self.history.append(self._last)
            self.history.extend([self._last if skipped <= GAP_FILL else math.nan] * skipped)
        if self._second is None or second >= self._second:
            self._second, self._last = second, float(shown)


def stale_note(job: Job, now: float) -> str:
    """`— 12s old`: a figure that is not current, with the age of the last one."""
    if job.sampled is None:
        return DASH
    return f"{DASH} {human_duration(max(0.0, now - job.sampled))} old"


def eta(job: Job, rate: float | None) -> float | None:
    if job.state is not JobState.RUNNING or not rate or rate <= 0:
        return None
    if job.current is None or not job.end:
        return None
    return max(0.0, (job.end - job.current) / rate)


@dataclass(frozen=True)
class Scope:
    """What the tree selects: everything, one host, or one domain."""

    host: str | None = None
    domain_uuid: str | None = None

    def __contains__(self, job: Job) -> bool:
        if self.host is not None and job.host != self.host:
            return False
        return self.domain_uuid is None or job.key.domain_uuid == self.domain_uuid


ALL = Scope()


def matches(job: Job, text: str) -> bool:
    """The `/` filter: every word is a case-insensitive substring of the domain, job,
    type, state or host (`web1 copy` narrows to web1's copies)."""
    words = text.lower().split()
    if not words:
        return True
    hays = [h.lower() for h in (job.domain, job.name, job.type.value, job.state.value, job.host)]
    return all(any(w in hay for hay in hays) for w in words)


def sort_key(job: Job) -> tuple[bool, str, str, float]:
    """Active jobs first, then by domain and name (newest run first among equals)."""
    return (job.state.finished, job.domain, job.name, -job.started)


@dataclass
class Changes:
    jobs: set[JobKey] = field(default_factory=set)  # added or updated
    removed: set[JobKey] = field(default_factory=set)
    states: set[JobKey] = field(default_factory=set)  # state changed: labels change
    moved: set[JobKey] = field(default_factory=set)  # became finished (or not): rows move
    structure: bool = False  # hosts, domains, or the set of jobs changed
    hosts: bool = False
    transitions: list[JobStateChanged] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.jobs or self.removed or self.structure or self.hosts or self.transitions)

    @property
    def news(self) -> bool:
        """Anything but figures moved: a job, domain or host came, went or changed state."""
        return bool(self.removed or self.structure or self.hosts or self.transitions)


class JobStore:
    def __init__(self) -> None:
        self.hosts: dict[str, Host] = {}
        self.domains: dict[tuple[str, str], Domain] = {}
        self.jobs: dict[JobKey, Job] = {}
        self.rates: dict[JobKey, RateTrack] = {}
        self._changes = Changes()
        self._seq = 0  # events applied so far
        self._touched: dict[JobKey, int] = {}  # seq of the last event about a job
        # ... about a domain or a host: a snapshot older than the event does not undo it.
        self._domain_touched: dict[tuple[str, str], int] = {}
        self._host_touched: dict[str, int] = {}

    @property
    def seq(self) -> int:
        return self._seq

    def apply(self, event: EngineEvent, at: float) -> None:
        self._seq += 1
        ch = self._changes
        match event:
            case JobStateChanged(key=key, job=job):
                self._put(job, at)
                self._touched[key] = self._seq
                ch.transitions.append(event)
            case JobProgress(job=job):
                self._put(job, at)
                self._touched[job.key] = self._seq
            case JobDismissed(key=key):
                self._drop(key)
                self._touched[key] = self._seq
            case DomainChanged(domain=domain, removed=removed):
                where = (domain.host, domain.uuid)
                if removed:
                    self.domains.pop(where, None)
                else:
                    self.domains[where] = domain
                self._domain_touched[where] = self._seq
                ch.structure = True
            case HostChanged(host=host):
                self.hosts[host.uri] = host
                self._host_touched[host.uri] = self._seq
                ch.hosts = ch.structure = True

    def load(
        self,
        hosts: Iterable[Host],
        domains: Iterable[Domain],
        jobs: Iterable[Job],
        *,
        at: float,
        since_seq: int,
    ) -> None:
        """Merge a full snapshot requested when the store was at `since_seq`.

        A job, domain or host an event touched after the request is at least as new
        as the snapshot's copy, so the event's version wins (a domain an event added
        is kept, one it removed stays removed). Jobs of connected hosts missing from
        the snapshot are gone (e.g. dismissed while we were away); rebuilding after
        a reconnect never duplicates rows because rows are keyed.
        """
        for host in hosts:
            if self._host_touched.get(host.uri, 0) <= since_seq:
                self.hosts[host.uri] = host
        fresh = {(d.host, d.uuid): d for d in domains}
        for where, seq in self._domain_touched.items():
            if seq > since_seq:
                fresh.pop(where, None)
                if where in self.domains:
                    fresh[where] = self.domains[where]
        self.domains = fresh
        seen: set[JobKey] = set()
        for job in jobs:
            seen.add(job.key)
            if self._touched.get(job.key, 0) > since_seq:
                continue
            if self.jobs.get(job.key) != job:
                self._put(job, at)
        connected = {u for u, h in self.hosts.items() if h.state is HostState.CONNECTED}
        for key in list(self.jobs):
            if key not in seen and key.host in connected and self._touched.get(key, 0) <= since_seq:
                self._drop(key)
        self._changes.structure = self._changes.hosts = True

    def take(self) -> Changes:
        """What changed since the last call (the screen applies it in one paint)."""
        ch, self._changes = self._changes, Changes()
        # A job updated then dismissed within one tick is only removed.
        ch.jobs -= ch.removed
        ch.states -= ch.removed
        ch.moved -= ch.removed
        return ch

    def domain_of(self, job: Job) -> Domain | None:
        return self.domains.get((job.host, job.key.domain_uuid))

    def _put(self, job: Job, at: float) -> None:
        old = self.jobs.get(job.key)
        if old is None:
            self._changes.structure = True
        elif old.state is not job.state:
            self._changes.states.add(job.key)
            if old.state.finished != job.state.finished:
                self._changes.moved.add(job.key)
        self.jobs[job.key] = job
        self.rates.setdefault(job.key, RateTrack()).add(job)
        self._changes.jobs.add(job.key)
        self._changes.removed.discard(job.key)

    def _drop(self, key: JobKey) -> None:
        if self.jobs.pop(key, None) is not None:
            self.rates.pop(key, None)
            self._changes.removed.add(key)
            self._changes.structure = True
