"""The registry's face: every method the monitor calls is here.

The monitor reads and tells the registry only through these methods (always on
the dispatcher thread, or under the monitor's lock for the snapshot readers);
the tables behind them are the business of the concerns beneath.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.registry.book import (
    DOMAIN_GONE_GRACE,
    GONE_GRACE,
    DomainId,
    Track,
    TrackId,
)
from jobtui.engine.registry.domain_jobs import HELD_END_WAIT
from jobtui.engine.registry.lifecycle import PAUSE_DEBOUNCE
from jobtui.engine.registry.snapshot import Snapshots
from jobtui.engine.sample import DiskInfo, DomainSample
from jobtui.model import (
    Domain,
    DomainChanged,
    EngineEvent,
    FrozenMap,
    Job,
    JobDismissed,
    JobKey,
    JobState,
)


class PollPlan(NamedTuple):
    """What the next poll of a domain should ask, from what the registry knows."""

    jobs: tuple[JobKey, ...]  # the domain's active jobs
    read_xml: bool  # the disks' XML may have changed (or the domain is new)
    want_completed: bool  # the completed statistics libvirt keeps may say something
    disks: tuple[DiskInfo, ...]
    qemu_only: bool  # QEMU's job list has news: a job only it sees, or a pause
    qemu_events: bool  # the host's connection receives QEMU's job events


class Registry(Snapshots):
    """What the monitor (and the tests) use: samples and events in, events out."""

    def apply_sample(self, host: str, s: DomainSample) -> None:
        if s.gone:
            self.remove_domain(host, s.uuid, s.taken)
            return
        did = DomainId(host, s.uuid)
        if did not in self.domains and s.taken <= self.removed.get(did, 0):
            return  # taken before the domain went: it must not bring back its jobs
        d = self._domain(host, s.uuid, s.name)
        self._answered(host, s.taken)
        if (d.name, d.state) != (s.name, s.state):
            d.name, d.state = s.name, s.state
            self.out.append(DomainChanged(d.snapshot()))
        if s.disks is not None:
            d.disks = s.disks
            d.xml_dirty = False
            self._check_pivots(d, s.taken)
        d.starting_up = s.state == "paused" and s.reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
        if not d.starting_up:
            d.starting_since = None
        elif d.starting_since is None:
            d.starting_since = s.taken
        if s.domain_id != d.domain_id:
            d.domain_id = s.domain_id
            self._orphans_outlived(d, s.taken)
        self._revert_look(d, s)
        if not s.full:
            self._held_look(d, s)
            self._mirrors_from_xml(d, s)
            return
        d.full_once = True
        if d.first_full is None:
            d.first_full = s.taken
        self.set_responsive(host, s.uuid, True)
        if not self._savevm_sample(d, s):
            self._apply_domain_job(d, s)
        self._apply_block_jobs(d, s)
        if s.qemu_jobs is not None:
            self._reconcile_qemu(d, s, s.qemu_jobs)
        for t in self._tracks_of(host, s.uuid):
            # The domain answered: what its jobs show is current again (an orphan's
            # figures come only from QEMU's job list, which clears its own flag).
            if (
                t.job.stale
                and t.job.state is not JobState.ORPHANED
                and not t.unconfirmed
                and not self._progress_stale(t)
            ):
                self._update(t, s.taken, stale=False)

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
            else:
                self._stream_out(d, e.time)
            self._poke(DomainId(e.host, e.uuid))
        elif isinstance(e, ev.LifecycleEv):
            did = DomainId(e.host, e.uuid)
            if did not in self.domains and did in self.removed:
                # Its last word came after a poll found it gone: how its jobs ended.
                if e.event == libvirt.VIR_DOMAIN_EVENT_STOPPED:
                    self._stopped(e.host, e.uuid, e)
                return
            d = self._domain(e.host, e.uuid, e.domain)
            d.xml_dirty = True
            self._lifecycle(d, e)
            if self._active_domain_job(d) is not None:
                d.want_completed = True
            self._poke(DomainId(e.host, e.uuid))
        elif isinstance(e, ev.DeviceRemovedEv):
            self._device_removed(e)
        elif isinstance(e, ev.DeviceAddedEv):
            # A disk plugged in by any client: polled from the next look on.
            self._domain(e.host, e.uuid, e.domain).xml_dirty = True
            self._poke(DomainId(e.host, e.uuid))
        elif isinstance(e, ev.QemuEv):
            self._qemu_event(e)

    def tick(self, now: float) -> None:
        self._linger_creates(now)
        self._savevm_tick(now)
        for t in list(self.active.values()):
            grace = GONE_GRACE if t.disk else DOMAIN_GONE_GRACE
            if t.held_end is not None and not t.finishing_seen:
                if now - t.held_end[1] > HELD_END_WAIT:
                    self._held_end(t, now)
                continue
            if t.gone_since is not None and now - t.gone_since > grace:
                if t.awaiting_source:
                    if self._source_still_at_it(t, now):
                        continue
                    self._conclude_incoming(t, now, self._peer_job(t.job))
                else:
                    why = t.gone_why or "libvirt sent no event saying how it ended"
                    if t.lost_at is not None:
                        # Its end event may well have been sent, into a dead connection.
                        why += (
                            " (the connection to its host was down for part of its run: "
                            "an event sent then is lost)"
                        )
                    self._vanished(t, now, why)
                continue
            if (
                t.paused_since is not None
                and now - t.paused_since > PAUSE_DEBOUNCE
                and t.job.state in (JobState.RUNNING, JobState.READY)
            ):
                t.state_before_pause = t.job.state
                self._set_state(t, JobState.PAUSED, now)

    def remove_domain(self, host: str, uuid: str, at: float) -> None:
        d = self.domains.pop(DomainId(host, uuid), None)
        if d is None:
            return
        self.removed[DomainId(host, uuid)] = at
        for t in self._tracks_of(host, uuid):
            if t.awaiting_source:
                continue
            if not t.disk or t.hint is not None or t.abort_requested:
                # (A domain job's late JOB_COMPLETED still corrects an unknown end.)
                self._vanished(t, at, "the domain disappeared")
            elif t.gone_since is None:
                # A transient domain that stopped is gone at once, and a poll can find
                # it gone before libvirt's STOPPED event (which says why) arrives: a
                # block job waits GONE_GRACE for that word (see apply_event) before it
                # ends as unknown. Every process then tells the same end.
                t.gone_since, t.gone_why = at, "the domain disappeared"
        self.out.append(DomainChanged(d.snapshot(), removed=True))

    def note_abort(self, key: JobKey, requested: bool = True) -> None:
        t = self.active.get(TrackId(key.host, key.domain_uuid, key.name))
        if t is not None:
            t.abort_requested = requested
            self._poke(DomainId(key.host, key.domain_uuid))

    def note_postcopy(self, key: JobKey, value: str) -> None:
        t = self.track_for(key)
        if t is not None and t.job.config.get("postcopy") != value:
            self._update(t, time.time(), config=FrozenMap(dict(t.job.config, postcopy=value)))

    def track_for(self, key: JobKey) -> Track | None:
        t = self.active.get(TrackId(key.host, key.domain_uuid, key.name))
        return t if t is not None and t.job.key == key else None

    # --- what the monitor reads ------------------------------------------------------

    def domain_snapshots(self) -> list[Domain]:
        return [d.snapshot() for d in self.domains.values()]

    def active_jobs(self) -> list[Job]:
        return [t.job for t in self.active.values()]

    def finished_jobs(self) -> list[Job]:
        return list(self.finished.values())

    def job(self, key: JobKey) -> Job | None:
        t = self.track_for(key)
        return t.job if t is not None else self.finished.get(key)

    def is_responsive(self, host: str, uuid: str) -> bool | None:
        """None: a domain the registry does not know (yet, or any more)."""
        d = self.domains.get(DomainId(host, uuid))
        return None if d is None else d.responsive

    def has_qemu_events(self, host: str) -> bool:
        return host in self.qemu_event_hosts

    def poll_plan(self, host: str, uuid: str) -> PollPlan:
        d = self.domains.get(DomainId(host, uuid))
        tracks = self._tracks_of(host, uuid)
        return PollPlan(
            jobs=tuple(t.job.key for t in tracks),
            read_xml=d is None or d.xml_dirty,
            want_completed=d is None or d.want_completed,
            disks=d.disks if d is not None else (),
            qemu_only=any(
                t.job.qemu_only
                # Only QEMU tells when a pause ends (one made elsewhere sends this
                # connection no event it can tie to the job before the poll).
                or t.job.state is JobState.PAUSED
                or t.paused_since is not None
                for t in tracks
            ),
            qemu_events=host in self.qemu_event_hosts,
        )

    def take_pokes(self) -> set[DomainId]:
        """The domains to poll now; the set starts empty again."""
        pokes, self.pokes = self.pokes, set()
        return pokes

    # --- what the monitor tells ------------------------------------------------------

    def load_history(self, jobs: Iterable[Job]) -> None:
        """Jobs an earlier process recorded: finished ones are shown as they ended,
        orphaned ones adopted (stale until something confirms or ends them)."""
        for job in jobs:
            if job.state is JobState.ORPHANED:
                self.adopt_kept(job)
            else:
                self.finished[job.key] = job

    def host_up(self, host: str, *, qemu_events: bool) -> None:
        """A (re)connected host: its domains' XML and kept statistics are read afresh."""
        lost = self.lost_at.pop(host, None)
        if lost is not None:
            self.relisting[host] = min(lost, self.last_answer.get(host, lost))
        if qemu_events:
            self.qemu_event_hosts.add(host)
        else:
            self.qemu_event_hosts.discard(host)
        for d in self.domains.values():
            if d.host == host:
                d.xml_dirty = d.want_completed = True

    def domain_listed(self, host: str, uuid: str, name: str) -> None:
        """A host's listing names a domain: it is shown at once (a fleet's first frame),
        its state follows with its first look."""
        new = DomainId(host, uuid) not in self.domains
        d = self._domain(host, uuid, name)
        lost = self.relisting.get(host)
        if new and lost is not None:
            # It came (a migration in, a restore, a start) while the link was down.
            d.lost_since, d.came_unseen = lost, True

    def end_absent(self, host: str, listed: set[str], at: float) -> None:
        super().end_absent(host, listed, at)
        if self.relisting.pop(host, None) is not None:
            # The first list since the link came back: a domain there before the link
            # went and not listed now went meanwhile (a destination's libvirtd killed
            # with its incoming QEMU); no look at it will ever come to say so. (One
            # that came since, by an event, was not there before: it stays.)
            for d in [d for d in self.domains.values() if d.host == host]:
                if d.uuid not in listed and d.lost_since is not None:
                    self.remove_domain(host, d.uuid, at)
        self._answered(host, at)

    def _answered(self, host: str, at: float) -> None:
        """The host answered a call begun at `at` (a look, a domain list)."""
        self.last_answer[host] = max(at, self.last_answer.get(host, 0.0))

    def poke(self, host: str, uuid: str) -> None:
        self._poke(DomainId(host, uuid))

    def dismiss(self, key: JobKey) -> None:
        """A finished job leaves the list; subscribers hear it in order with the rest."""
        self.finished.pop(key, None)
        self.out.append(JobDismissed(key))

    def announce(self, event: EngineEvent) -> None:
        """An event of the monitor's own (a host's state), emitted in order with the batch."""
        self.out.append(event)
