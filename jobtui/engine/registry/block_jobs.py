"""Block jobs: one per disk, seen in blockJobInfo while they run.

READY comes only from BLOCK_JOB_2's READY or the live XML's `<mirror ready='yes'>`
(libvirt holds `cur` one byte short of `end` until then); a block job's end comes
only from BLOCK_JOB_2, or from a stop of its domain.
"""

from __future__ import annotations

from typing import Any

from jobtui.engine import events as ev
from jobtui.engine.registry.book import DomainId, DomainInfo, Track, TrackId
from jobtui.engine.registry.limbo import Limbo, beyond_libvirt
from jobtui.engine.sample import (
    BLOCK_TYPES,
    DomainSample,
    block_job_name,
)
from jobtui.model import (
    FrozenMap,
    JobProgress,
    JobState,
    JobType,
)
from jobtui.units import mib

# Block-copy events this soon after a storage migration ended still belong to it.
MIGRATION_AFTERMATH = 5.0


BLOCK_STATUS = {0: JobState.COMPLETED, 1: JobState.FAILED, 2: JobState.ABORTED, 3: JobState.READY}

# QEMU's error event and libvirt's failed event of one job come milliseconds apart.
QEMU_ERROR_WINDOW = 5.0


class BlockJobs(Limbo):
    """Block jobs from blockJobInfo and BLOCK_JOB_2; a backup's or a storage
    migration's per-disk jobs folded into that domain job."""

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
            if t is not None and beyond_libvirt(t):
                self._set_aside(t, s.taken)  # libvirt sees this job: not the orphan
                t = None
            if t is not None and t.job.name != name:
                if t.unconfirmed:
                    self._drop_unconfirmed(t)
                else:
                    self._vanished(t, s.taken, "replaced by another job on the same disk")
                t = None
            mi = mirrors.get(disk)
            if t is None:
                config = {"disk": disk}
                if mi is not None and mi.source and typ is not JobType.BLOCK_COMMIT:
                    # (A commit below the top merges images the public XML does not
                    # name: the disk's own image is not what it reads.)
                    config["source"] = mi.source
                if mi is not None and mi.mirror_dest:
                    config["destination"] = mi.mirror_dest
                state = (
                    JobState.READY
                    if mi is not None and mi.mirror_ready == "yes"
                    else JobState.RUNNING
                )
                t = self._found(d, s.taken, name, typ, disk=disk, config=config)
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
                if t.job.qemu_only:
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
        changes: dict[str, Any] = {
            "stats": FrozenMap(stats),
            "config": _with_disk(t.job.config, disk),
        }
        if bw and t.job.type is JobType.BACKUP:
            changes["bandwidth"] = bw
        self._update(t, at, **changes)

    def _storage_copy_ended(self, t: Track, state: JobState, why: str) -> None:
        """A storage migration whose disk copy failed or was cancelled ends with it.
        During the copy QEMU's migration has not begun, so no MIGRATION event will
        say how the job ended, and libvirt keeps no statistics of a failed one:
        without this word it could only end unknown. The first word is kept (QEMU's
        comes milliseconds before libvirt's, and says more)."""
        if t.job.type is JobType.MIGRATION_OUT and t.hint is None and t.job.state.active:
            t.hint = (state, why)

    def _storage_copy_qemu_end(self, d: DomainInfo, t: Track, e: ev.QemuEv, error: str) -> None:
        """QEMU's BLOCK_JOB_COMPLETED with an error, or BLOCK_JOB_CANCELLED, of a
        mirror libvirt runs for a storage migration (its id: `drive-` + the disk's
        alias)."""
        qid = str(e.get("device", ""))
        disk = next((x.target for x in d.disks if x.alias and qid == f"drive-{x.alias}"), qid)
        offset, length = e.get("offset"), e.get("len")
        at = f"{mib(offset)} of {mib(length)}" if isinstance(offset, int) else "?"
        if error:
            why = f"QEMU reports the copy of {disk} to the destination failed at {at}: {error}"
            self._storage_copy_ended(t, JobState.FAILED, why)
        else:
            why = (
                f"the copy of {disk} to the destination was cancelled at {at} "
                "(libvirt cancels it when the migration is aborted)"
            )
            self._storage_copy_ended(t, JobState.ABORTED, why)

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
                config = domain_job.job.config
                if typ is JobType.BACKUP:
                    config = _with_disk(config, e.disk)
                self._update(domain_job, e.time, stats=FrozenMap(stats), config=config)
                if state in (JobState.FAILED, JobState.ABORTED):
                    # (libvirt 9.0 says "failed" for a copy it cancelled, too.)
                    why = f"libvirt reports the copy of {e.disk} to the destination failed"
                    self._storage_copy_ended(domain_job, JobState.FAILED, why)
            return
        name = block_job_name(typ, e.disk)
        t = self.active.get(TrackId(e.host, e.uuid, name))
        if t is not None and beyond_libvirt(t):
            self._set_aside(t, e.time)  # libvirt's event is never about a job it cannot see
            t = None
        if t is None and typ is JobType.BLOCK_COPY:
            ended = d.migration_out_ended
            if e.time - ended < MIGRATION_AFTERMATH:
                return  # the end of a storage migration's own copy
            if state is JobState.READY:
                # A copy we have not polled yet may be a storage migration's: the
                # poll (now) tells, and the live XML says whether a user's copy is ready.
                d.xml_dirty = True
                self._poke(DomainId(e.host, e.uuid))
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
        self._poke(DomainId(e.host, e.uuid))
        if state is JobState.READY:
            if t.job.state is JobState.RUNNING:
                # Synchronised: libvirt holds cur one short of end until READY.
                self._set_state(t, JobState.READY, e.time, current=t.job.end)
            return
        msg = ""
        if state is JobState.FAILED:
            said, when = self.qemu_errors.pop((e.host, e.uuid, e.disk), ("", 0.0))
            error = t.qemu_error or (said if abs(e.time - when) < QEMU_ERROR_WINDOW else "")
            if error:
                msg = f"QEMU reported an error: {error}"
            else:
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
        if state is JobState.COMPLETED and typ is JobType.BLOCK_COPY:
            d.pivots[e.disk] = (t.job.key, e.time)  # the XML read it pokes for tells

    def _check_pivots(self, d: DomainInfo, taken: float) -> None:
        """A copy libvirt reported completed is pivoted when libvirt's XML names the copy.
        A READY mirror ended through QEMU's monitor is reported completed too, the XML
        unchanged (measured: `block-job-cancel` left QEMU on the original image,
        `block-job-complete` switched QEMU alone): the first XML read after the event
        corrects the finished job's word for it."""
        for disk, (key, at) in list(d.pivots.items()):
            if taken <= at:
                continue
            del d.pivots[disk]
            job = self.finished.get(key)
            now = next((x for x in d.disks if x.target == disk), None)
            dest = job.config.get("destination") if job is not None else None
            if job is None or now is None or not dest or now.source == dest:
                continue
            fixed = job.evolve(
                message=(
                    f"libvirt reports the copy completed, but its XML still names "
                    f"{now.source} for {disk}, not the copy: the mirror was ended outside "
                    "libvirt (QEMU's monitor), so libvirt did not switch the disk"
                )
            )
            self.finished[key] = fixed
            self.out.append(JobProgress(fixed))
            self.newly_finished.append(fixed)  # the history's record is replaced


def _with_disk(config: FrozenMap, disk: str) -> FrozenMap:
    """`config` whose comma-separated `disks` includes `disk` (a backup's, a migration's)."""
    disks = [x for x in str(config.get("disks", "")).split(",") if x]
    if disk in disks:
        return config
    return FrozenMap({**config, "disks": ",".join([*disks, disk])})
