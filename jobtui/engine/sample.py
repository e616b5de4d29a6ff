"""One look at a domain through libvirt's public API, as plain data.

`sample_domain` runs on the domain's own worker thread (it may block on the
QEMU monitor); what it returns is immutable and goes to the dispatcher, which
alone decides what changed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import libvirt
from lxml import etree

from jobtui.engine.backup_desc import BackupDesc, read_backup
from jobtui.engine.qemu_jobs import QemuJob, query_qemu_jobs
from jobtui.engine.rate import UNCERTAIN_CALL
from jobtui.model import JobType
from jobtui.units import MiB

# virDomainJobOperation -> job type (libvirt-domain.h).
OPERATION_TYPES: dict[int, JobType] = {
    2: JobType.SAVE,
    3: JobType.RESTORE,
    4: JobType.MIGRATION_IN,
    5: JobType.MIGRATION_OUT,
    6: JobType.SNAPSHOT,
    7: JobType.SNAPSHOT_REVERT,
    8: JobType.DUMP,
    9: JobType.BACKUP,
    10: JobType.SNAPSHOT_DELETE,
}

# virDomainBlockJobType -> job type.
BLOCK_TYPES: dict[int, JobType] = {
    1: JobType.BLOCK_PULL,
    2: JobType.BLOCK_COPY,
    3: JobType.BLOCK_COMMIT,
    4: JobType.BLOCK_COMMIT_ACTIVE,
    5: JobType.BACKUP,
}

BLOCK_NAME_PREFIX: dict[JobType, str] = {
    JobType.BLOCK_PULL: "pull",
    JobType.BLOCK_COPY: "copy",
    JobType.BLOCK_COMMIT: "commit",
    JobType.BLOCK_COMMIT_ACTIVE: "commit",
}

DOMAIN_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: "no state",
    libvirt.VIR_DOMAIN_RUNNING: "running",
    libvirt.VIR_DOMAIN_BLOCKED: "idle",
    libvirt.VIR_DOMAIN_PAUSED: "paused",
    libvirt.VIR_DOMAIN_SHUTDOWN: "in shutdown",
    libvirt.VIR_DOMAIN_SHUTOFF: "shut off",
    libvirt.VIR_DOMAIN_CRASHED: "crashed",
    libvirt.VIR_DOMAIN_PMSUSPENDED: "pmsuspended",
}

ACTIVE_STATES = frozenset({"running", "idle", "paused", "in shutdown", "pmsuspended"})

# libvirt's "no limit" for migrateGetMaxSpeed, in MiB/s (INT64_MAX >> 20).
UNLIMITED_MIB = (2**63 - 1) >> 20

# State reasons that say a migration is in post-copy (or failed in it), by side.
POSTCOPY_REASONS: dict[tuple[int, int], str] = {
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY): "active",
    (libvirt.VIR_DOMAIN_PAUSED, libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED): "failed",
    (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_POSTCOPY): "active",
    (libvirt.VIR_DOMAIN_RUNNING, getattr(libvirt, "VIR_DOMAIN_RUNNING_POSTCOPY_FAILED", 11)): (
        "failed"
    ),
}


_STATE_CODES = {v: k for k, v in DOMAIN_STATES.items()}


def block_job_name(typ: JobType, disk: str) -> str:
    return f"{BLOCK_NAME_PREFIX.get(typ, 'block')}-{disk}"


def domain_job_name(typ: JobType) -> str:
    return str(typ)


@dataclass(frozen=True)
class DiskInfo:
    target: str
    alias: str = ""
    source: str = ""
    mirror_job: str = ""  # 'copy' or 'active-commit' while a mirror exists
    mirror_ready: str = ""  # 'yes', 'no', 'pivot', 'abort'
    mirror_dest: str = ""
    chain: int = 0  # images below the disk's own in its backing chain, as the XML shows


@dataclass(frozen=True)
class DomainSample:
    uuid: str
    name: str
    state: str
    taken: float  # time.time() when the sample was begun
    disks: tuple[DiskInfo, ...] | None = None  # None: XML not re-read this time
    job_stats: dict[str, Any] = field(default_factory=dict)  # {} when none / not asked
    completed_stats: dict[str, Any] | None = None  # None when not asked for
    # disk -> blockJobInfo; None when not asked: a first look that only read what needs
    # no QEMU monitor, or a migration's destination, where blockJobInfo waits for the
    # whole migration (docs/call-waits.md).
    block: dict[str, dict[str, int]] | None = field(default_factory=dict)
    gone: bool = False  # the domain no longer exists
    error: str = ""
    reason: int = 0  # libvirt's state reason (virDomainPausedReason, ...)
    # libvirt refuses jobStats on a migration's destination ("available only on
    # the source host"): that refusal is how an incoming migration shows.
    incoming: bool = False
    # migrateGetMaxSpeed while a migration-out runs, bytes/s; None when unlimited.
    max_speed: int | None = None
    # time.time() when the last call that read figures answered: their time.
    answered: float = 0.0
    longest_call: float = 0.0  # seconds the slowest of those calls took
    # False for a first look that read only what needs no QEMU monitor (state, XML).
    full: bool = True
    domain_id: int = -1  # libvirt's id of the running domain: it changes with every start
    # QEMU's own jobs (query-jobs + query-block-jobs), with the QEMU-monitor opt-in only.
    qemu_jobs: tuple[QemuJob, ...] | None = None
    # A running backup's own description (disks, targets, mode); None when none runs.
    backup: BackupDesc | None = None

    @property
    def certain(self) -> bool:
        """Whether the figures' time is known: a call that hung for a while read them
        at some moment we cannot tell (a stopped QEMU that was continued)."""
        return self.longest_call <= UNCERTAIN_CALL

    @property
    def postcopy(self) -> str:
        """'active' or 'failed' when the state reason says post-copy, else ''."""
        return POSTCOPY_REASONS.get((_STATE_CODES.get(self.state, -1), self.reason), "")


def parse_disks(xml: str) -> tuple[DiskInfo, ...]:
    root = etree.fromstring(xml.encode())
    out = []
    for disk in root.iterfind("./devices/disk"):
        target = disk.find("target")
        if target is None or disk.get("device", "disk") not in ("disk", "lun"):
            continue
        alias = disk.find("alias")
        source = disk.find("source")
        mirror = disk.find("mirror")
        src = ""
        if source is not None:
            src = source.get("file") or source.get("dev") or source.get("name") or ""
        mj = mr = md = ""
        if mirror is not None:
            mj = mirror.get("job", "")
            mr = mirror.get("ready", "no")
            ms = mirror.find("source")
            md = (
                (ms.get("file") or ms.get("dev") or "")
                if ms is not None
                else mirror.get("file", "")
            )
        chain, below = 0, disk.find("backingStore")
        while below is not None and below.find("source") is not None:
            chain, below = chain + 1, below.find("backingStore")
        out.append(
            DiskInfo(
                target=target.get("dev", ""),
                alias=alias.get("name", "") if alias is not None else "",
                source=src,
                mirror_job=mj,
                mirror_ready=mr,
                mirror_dest=md,
                chain=chain,
            )
        )
    return tuple(out)


class CallCounter:
    """Counts libvirt calls by name: the engine's cost, measured rather than guessed."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def hit(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def total(self) -> int:
        return sum(self.counts.values())


def sample_domain(
    dom: libvirt.virDomain,
    *,
    read_xml: bool,
    disks: tuple[DiskInfo, ...],
    want_completed: bool,
    counter: CallCounter,
    now: float,
    ask_qemu: bool = False,
) -> DomainSample:
    """Everything the engine needs to know about `dom`'s jobs right now."""
    quick = quick_sample(dom, read_xml=read_xml, counter=counter, now=now)
    if quick.gone:
        return quick
    disks = quick.disks if quick.disks is not None else disks
    state = quick.state
    job_stats: dict[str, Any] = {}
    block: dict[str, dict[str, int]] | None = {}
    completed = None
    incoming = False
    max_speed: int | None = None
    qemu_jobs = None
    backup: BackupDesc | None = None
    # A domain starting up may be loading a restore, which holds its job: jobStats and
    # blockJobInfo would wait until the restore ends (docs/call-waits.md). A starting
    # domain runs no job libvirt could report anyway.
    starting = state == "paused" and quick.reason == libvirt.VIR_DOMAIN_PAUSED_STARTING_UP
    # The figures' time is when their call answered; how long that call took says how
    # well that time is known (a call that hung while QEMU was stopped read its figures
    # at some moment inside it). The other calls of a sample do not blur it.
    answered = time.time()
    longest = 0.0
    if state in ACTIVE_STATES and not starting:
        counter.hit("jobStats")
        t0 = time.time()
        try:
            job_stats = _job_stats(dom, 0)
        except libvirt.libvirtError as err:
            if err.get_error_code() != libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
                raise
            incoming = True
        answered = time.time()
        longest = answered - t0
        if job_stats.get("operation") == libvirt.VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT:
            counter.hit("migrateGetMaxSpeed")
            max_speed = _max_speed(dom, quick.reason == libvirt.VIR_DOMAIN_PAUSED_POSTCOPY)
        if job_stats.get("operation") == libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP:
            counter.hit("backupGetXMLDesc")
            backup = read_backup(dom)
        if incoming:
            # A migration's destination: blockJobInfo would wait for the whole
            # incoming migration (docs/call-waits.md). It runs no block job.
            block = None
        else:
            found: dict[str, dict[str, int]] = {}
            for d in disks:
                counter.hit("blockJobInfo")
                t0 = time.time()
                info = _block_info(dom, d.target)
                if info:
                    found[d.target] = info
                    answered = time.time()
                    longest = max(longest, answered - t0)
            block = found
        if ask_qemu and not incoming:
            counter.hit("qemuMonitorCommand")
            qemu_jobs = query_qemu_jobs(dom)
    if starting:
        block = None
    if want_completed:
        counter.hit("jobStats")
        completed = _job_stats(
            dom,
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED,
        )
    return DomainSample(
        uuid=quick.uuid,
        name=quick.name,
        state=state,
        taken=now,
        disks=quick.disks,
        # BOUNDED (1) and UNBOUNDED (2) are a running job, and so is COMPLETED (3)
        # here: jobStats(0) reads it while libvirt still holds the job after QEMU's part
        # is done (a save or dump waits for its file to be written out, the domain
        # paused meanwhile: minutes into a pipe or slow storage). Once the job is over
        # jobStats(0) reads NONE.
        job_stats=job_stats if job_stats.get("type", 0) in (1, 2, 3) else {},
        completed_stats=completed,
        block=block,
        reason=quick.reason,
        incoming=incoming,
        max_speed=max_speed,
        answered=answered,
        longest_call=longest,
        domain_id=quick.domain_id,
        qemu_jobs=qemu_jobs,
        backup=backup,
    )


def quick_sample(
    dom: libvirt.virDomain, *, read_xml: bool, counter: CallCounter, now: float
) -> DomainSample:
    """What libvirt answers without asking QEMU (state, id, live XML): at once even
    while QEMU is stopped or another job holds the domain. `full` is False."""
    counter.hit("state")
    try:
        st, reason = dom.state()
    except libvirt.libvirtError as err:
        if err.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return DomainSample(uuid=dom.UUIDString(), name="", state="", taken=now, gone=True)
        raise
    new_disks: tuple[DiskInfo, ...] | None = None
    if read_xml:
        counter.hit("XMLDesc")
        new_disks = parse_disks(dom.XMLDesc(0))
    return DomainSample(
        uuid=dom.UUIDString(),
        name=dom.name(),
        state=DOMAIN_STATES.get(st, "unknown"),
        taken=now,
        disks=new_disks,
        block=None,
        reason=reason,
        answered=time.time(),
        full=False,
        domain_id=dom.ID(),
    )


def _job_stats(dom: libvirt.virDomain, flags: int) -> dict[str, Any]:
    try:
        return dict(dom.jobStats(flags))
    except libvirt.libvirtError as err:
        # The domain went away under us (a save just ended it): no job to report.
        if err.get_error_code() in (libvirt.VIR_ERR_OPERATION_INVALID, libvirt.VIR_ERR_NO_DOMAIN):
            return {}
        # An incoming migration refuses even the kept stats: nothing kept to read.
        if flags and err.get_error_code() == libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
            return {}
        raise


def _max_speed(dom: libvirt.virDomain, postcopy: bool) -> int | None:
    flags = libvirt.VIR_DOMAIN_MIGRATE_MAX_SPEED_POSTCOPY if postcopy else 0
    try:
        mib = int(dom.migrateGetMaxSpeed(flags))
    except libvirt.libvirtError:
        return None  # the migration ended meanwhile: the job stats will say so
    # QEMU's post-copy default is 0, which means no limit, like libvirt's maximum.
    return None if mib <= 0 or mib >= UNLIMITED_MIB else mib * MiB


def _block_info(dom: libvirt.virDomain, disk: str) -> dict[str, int]:
    try:
        return dict(dom.blockJobInfo(disk, libvirt.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES))
    except libvirt.libvirtError as err:
        if err.get_error_code() in (
            libvirt.VIR_ERR_OPERATION_INVALID,
            libvirt.VIR_ERR_INVALID_ARG,
            libvirt.VIR_ERR_NO_DOMAIN,
        ):
            return {}
        raise
