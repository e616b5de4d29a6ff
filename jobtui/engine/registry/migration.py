"""Migrations, and whether a job's remaining work shrinks.

The source's `migration-out` has libvirt's stats; the destination refuses
jobStats, so its `migration-in` is seen through that refusal and the lifecycle
events, and shows the source's progress when both hosts are watched (matched by
domain UUID). Remaining data grows back at each pass: progress is what is left to
send, not what was sent, and a migration whose passes stop shrinking is flagged
`stalled` with the evidence. A block copy or active commit the guest writes to
faster than it copies never gets READY: it is flagged the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from jobtui.engine.registry.book import (
    Book,
    DomainId,
    DomainInfo,
    Track,
    TrackId,
    int_or_none,
)
from jobtui.engine.sample import (
    DomainSample,
)
from jobtui.model import (
    FrozenMap,
    Job,
    JobState,
    JobType,
)
from jobtui.units import mib

# A migration pass is progress when it starts with this much less to send than the
# best pass before it: its first sample comes up to a poll late, which alone makes
# the starts of equal passes differ by several per cent (measured: 120-124 MiB).
PASS_MARGIN = 0.10


# The most a throttled block job copies at once (measured: a mirror at 4 MiB/s copies
# 16 MiB and sleeps 4 s; mirrors at 16 MiB/s moved in 32 MiB steps).
THROTTLED_STEP = 32 * 1024 * 1024

# The longest a migration-in whose domain went waits for its source's job to end.
SOURCE_VERDICT_WAIT = 60.0

POSTCOPY_FAILED = (
    "post-copy failed: the guest's memory is split between the hosts and it stays paused "
    "until the migration is recovered (virsh migrate --postcopy --postcopy-resume)"
)
POSTCOPY_RECOVERED = "post-copy recovered after a failure"

# Jobs whose remaining work is watched for a stall while they run.
_STALL_BLOCK_TYPES = frozenset({JobType.BLOCK_COPY, JobType.BLOCK_COMMIT_ACTIVE})


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
    sent: int | None = None  # bytes moved in all (a migration's data_processed, a copy's cur)
    sent_at: float = 0.0  # when that last changed

    def moved(self, at: float, sent: int | None) -> None:
        if sent is not None and sent != self.sent:
            self.sent, self.sent_at = sent, at

    def frozen(self, now: float, after: float) -> float:
        """Seconds no byte moved, once that is at least `after` (else 0)."""
        idle = now - self.sent_at if self.sent is not None else 0.0
        return idle if idle >= after else 0.0

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
                f"no pass has begun with less than {mib(self.best_start)} to send"
            )
        return ""


class Migrations(Book):
    """Pairing the two sides of a migration, post-copy, and stall detection
    (for migrations and for mirrors that never get READY)."""

    def _domain(self, host: str, uuid: str, name: str = "") -> DomainInfo:
        if DomainId(host, uuid) not in self.domains:
            for t in self._tracks_of(host, uuid):
                if t.awaiting_source:  # the domain is back (a retried migration)
                    self._conclude_incoming(t, time.time(), self._peer_job(t.job))
        return super()._domain(host, uuid, name)

    def _set_state(self, t: Track, new: JobState, at: float, **changes: Any) -> None:
        if t.job.type is JobType.MIGRATION_OUT and new in (JobState.ABORTED, JobState.FAILED):
            # libvirt cancels a peer-to-peer migration whose destination daemon went;
            # QEMU then says "cancelled" as if an operator had aborted it.
            lost = self.lost_at.get(str(t.job.config.get("peer-host", "")))
            if lost is not None and lost >= t.job.started:
                why = changes.get("message") or t.job.message or str(new)
                changes["message"] = (
                    f"{why}; the destination's host was lost {max(at - lost, 0):.1f} s before"
                )
        super()._set_state(t, new, at, **changes)
        if new.finished and t.job.type is JobType.MIGRATION_OUT:
            self._source_ended(t.job, at)
        if new.finished and t.job.type.is_migration:
            self._tell_cut_off_peer(t.job)

    def _tell_cut_off_peer(self, ended: Job) -> None:
        """The other side runs on a host out of reach (its row stale): its own end
        comes with the connection, and until then its row says what this side said.
        One host's verdict does not end the other's job: a source may still fail
        after its destination resumed the guest (a post-copy), and libvirt on each
        host keeps its own account."""
        pt = self._peer_track(ended)
        if pt is None or pt.job.host not in self.lost_at:
            return
        side = "source" if ended.type is JobType.MIGRATION_OUT else "destination"
        pt.peer_note = (
            f"the {side} reports the migration {ended.state}; this host's own word comes "
            "when the connection to it is back"
        )
        self._update(pt, ended.finished or time.time(), message=pt.peer_note)

    def _mark_stale(self, t: Track) -> None:
        super()._mark_stale(t)
        if t.job.type is JobType.MIGRATION_OUT:
            # The destination shows the source's figures: old with them.
            pt = self._peer_track(t.job)
            if pt is not None and pt.job.config.get("progress-from") == t.job.host:
                super()._mark_stale(pt)

    def _progress_stale(self, t: Track) -> bool:
        """A migration-in showing the figures of a source that are not current."""
        if t.job.type is not JobType.MIGRATION_IN or not t.job.config.get("progress-from"):
            return False
        pt = self._peer_track(t.job)
        return pt is not None and pt.job.stale

    def _own_stale(self, t: Track) -> bool:
        """The job's own host or domain does not answer."""
        d = self.domains.get(DomainId(t.job.host, t.job.key.domain_uuid))
        return t.job.host in self.lost_at or (d is not None and not d.responsive)

    def _migration_sample(self, t: Track, s: DomainSample) -> None:
        """What a sample says about a migration beyond its stats: post-copy, the peer."""
        pc = s.postcopy
        if pc:
            self._set_postcopy(t, pc, s.taken)
        self._link_peer(t)

    def _convergence(self, t: Track, stats: dict[str, Any], at: float) -> None:
        """Derived stats: the dirty rate in bytes/s, and whether passes shrink."""
        remaining = int_or_none(stats.get("data_remaining"))
        total = int_or_none(stats.get("data_total"))
        page = int_or_none(stats.get("memory_page_size")) or 4096
        dirty = int_or_none(stats.get("memory_dirty_rate"))
        if dirty is not None:
            stats["memory_dirty_bps"] = dirty * page
        if remaining is None or not total:
            return  # the all-zero first sample
        if t.conv is None:
            t.conv = Convergence(moved_at=at, progress_at=at)
        t.conv.moved(at, int_or_none(stats.get("data_processed")))
        postcopy = t.job.config.get("postcopy") == "active"
        # The storage copy runs before the first memory pass (iteration 0): like
        # the first pass, there any fall is progress. Post-copy sends each page once.
        iteration = int_or_none(stats.get("memory_iteration")) or 0
        t.conv.observe(at, remaining, t.conv.pass_no if postcopy else iteration)
        if t.conv.pass_start is not None and iteration >= 1:
            stats["pass_remaining"] = t.conv.pass_start
        if t.conv.shrinking is not None and not postcopy:
            stats["remaining_shrinking"] = t.conv.shrinking

    def _block_convergence(self, t: Track, at: float) -> None:
        """A mirror the guest writes to faster than it copies never gets READY; any
        running job whose figures stop moving is stuck."""
        if t.job.state is not JobState.RUNNING:
            t.conv = None  # paused or ready: a later run starts its own clock
        elif t.job.end is not None and t.job.current is not None:
            if t.conv is None:
                t.conv = Convergence(moved_at=at, progress_at=at)
            if t.job.type in _STALL_BLOCK_TYPES:
                t.conv.observe(at, t.job.end - t.job.current, 0)
            t.conv.moved(at, t.job.current)
        self._check_stall(t, at)

    def _domain_job_clock(self, t: Track, at: float) -> None:
        """A save, dump or push-mode backup whose figures stop moving is stuck (a
        pull-mode backup waits for its reader by design)."""
        if t.job.type is JobType.BACKUP and t.job.config.get("mode") != "push":
            return
        self._block_convergence(t, at)

    def _check_stall(self, t: Track, now: float) -> None:
        conv = t.conv
        if conv is None or t.job.state is not JobState.RUNNING:
            if t.job.stalled:
                msg = "" if t.job.message == t.stall_msg else t.job.message
                t.stall_msg = ""
                self._update(t, now, stalled=False, message=msg)
            return
        if t.job.type.is_migration and t.job.config.get("postcopy") == "failed":
            return  # flagged with its cause (_set_postcopy) until it is recovered
        after = self.frozen_after
        if t.job.type.is_block and t.job.bandwidth:
            # A throttled block job moves in steps of up to THROTTLED_STEP, then sleeps
            # to keep the average: a 1 MiB/s copy is silent ~30 s between steps.
            after = max(after, 3 * THROTTLED_STEP / t.job.bandwidth)
        idle = conv.frozen(now, after)
        if idle:
            if t.job.type.is_migration:
                why = (
                    f"stuck: nothing sent for {idle:.0f} s ({mib(conv.sent)} so far): "
                    "the destination takes no data"
                )
            elif t.job.type in (JobType.SAVE, JobType.DUMP) and conv.sent == t.job.end:
                why = (
                    f"stuck: QEMU's part has been done for {idle:.0f} s and libvirt still "
                    "holds the job: its file is not written out yet"
                )
            else:
                why = (
                    f"stuck: nothing moved for {idle:.0f} s "
                    f"(at {mib(conv.sent)} of {mib(t.job.end)})"
                )
        elif t.job.type.is_migration:
            postcopy = t.job.config.get("postcopy") == "active"
            why = conv.stall(
                now,
                self.stall_after,
                self.stall_passes,
                passes_count=conv.pass_no >= 2 and not postcopy,
            )
            if why:
                st = t.job.stats
                dirty = int_or_none(st.get("memory_dirty_bps"))
                bps = int_or_none(st.get("memory_bps"))
                why = (
                    f"not converging: {why}; the guest dirties {mib(dirty)}/s, "
                    f"{mib(bps)}/s is sent (pass {conv.pass_no})"
                )
        elif t.job.type in _STALL_BLOCK_TYPES:
            why = conv.stall(now, self.stall_after, 0, passes_count=False)
            if why:
                bw = t.job.bandwidth
                limit = f"at most {mib(bw)}/s" if bw else "no limit"
                why = (
                    f"not converging: {why}; the guest writes at least as fast as it is "
                    f"copied ({limit}), {mib((t.job.end or 0) - (t.job.current or 0))} to go"
                )
        else:
            why = ""
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
        was_failed = t.job.config.get("postcopy") == "failed"
        if value == "active" and was_failed and at <= t.postcopy_failed_at:
            return  # a look begun before the failure, or its event overtaken
        config = dict(t.job.config, postcopy=value)
        changes: dict[str, Any] = {"config": FrozenMap(config)}
        if value == "active" and t.conv is not None:
            t.conv.restart(at)
        if value == "failed":
            # libvirt keeps the job (jobStats: unbounded, figures frozen) and the guest
            # paused, its memory on two hosts: the worst stall there is, not a guess.
            t.postcopy_failed_at = at
            t.stall_msg = POSTCOPY_FAILED
            changes.update(message=POSTCOPY_FAILED, stalled=True)
        elif was_failed:
            # `migrate --postcopy-resume` continues the same job.
            t.stall_msg = ""
            changes.update(message=POSTCOPY_RECOVERED, stalled=False)
        self._update(t, at, **changes)
        peer = self._peer_track(t.job)
        if peer is not None:
            self._set_postcopy(peer, value, at)

    def _peer_job(self, job: Job) -> Job | None:
        """The other side of `job`'s migration: same domain, another host."""
        want = JobType.MIGRATION_IN if job.type is JobType.MIGRATION_OUT else JobType.MIGRATION_OUT
        found = [
            j
            for m, j in self.migrations.items()
            if m.uuid == job.key.domain_uuid and m.type is want and m.host != job.host
        ]
        # Only a peer of the same run: its side started within its lifetime.
        found = [j for j in found if j.finished is None or j.finished >= job.started - 5]
        return max(found, key=lambda j: j.started) if found else None

    def _peer_track(self, job: Job) -> Track | None:
        peer = self._peer_job(job)
        if peer is None:
            return None
        t = self.active.get(TrackId.of(peer))
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
            if inc.job.stale and not out.job.stale and not self._own_stale(inc):
                changes["stale"] = False
            if out.job.stalled or inc.job.stalled:
                # What holds the migration up shows on both sides.
                changes["stalled"] = out.job.stalled
                changes["message"] = (
                    f"the source says: {out.job.message}" if out.job.stalled else ""
                )
            if inc.job.config.get("progress-from") != out.job.host:
                changes["config"] = FrozenMap(
                    dict(inc.job.config, **{"progress-from": out.job.host})
                )
            self._update(inc, time.time(), **changes)

    def _source_still_at_it(self, t: Track, now: float) -> bool:
        """A migration-in whose domain went waits for its source's verdict while the
        source's job still runs on a host that answers (measured: libvirt held a
        storage migration's job 9 s after its destination QEMU died), up to
        SOURCE_VERDICT_WAIT."""
        out = self._peer_job(t.job)
        return (
            out is not None
            and out.state.active
            and out.host not in self.lost_at
            and t.gone_since is not None
            and now - t.gone_since < SOURCE_VERDICT_WAIT
        )

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
            # Not "failed on the source": a destination that died fails it there too.
            self._set_state(t, out.state, at, message=f"the source says: {why}")
        elif t.hint is not None:
            self._set_state(t, t.hint[0], at, message=t.hint[1])
        else:
            self._set_state(
                t,
                JobState.UNKNOWN,
                at,
                message="the incoming domain went away and the source did not say how it ended",
            )
