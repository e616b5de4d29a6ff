"""Which libvirt call waits on which job: the measured table in docs/call-waits.md.

On real QEMU, behind two private libvirtds (`jobtui.lab.hosts.TwoHosts`, the
`qemu:///system` driver; host B is only a migration destination), every job kind
is started in turn and, while it is in progress, every libvirt call the engine
makes on that domain (and on the peer domain of a migration) is timed:

    sudo .venv/bin/python bench/call_waits.py [--out docs/call-waits.md] [--only save,restore]

Each call runs in its own thread, strictly one call at a time (never more than
one waiting call per domain: about 20 hung calls exhaust libvirtd's workers). A
call that answers within `--bound` seconds is repeated `--reps` times and its
median kept. A call that does not is waited for (up to `--max-wait` s, then the job is aborted) and
recorded as waiting, with whether it returned when the job ended; the job is
then started again for the calls still to measure. A long storage migration
(`--long`, on by default) shows what a waiting call does when the job outlasts
libvirt's 30 s state-change-lock timeout.

Jobs are made to last several seconds: bandwidth limits on block jobs, backup
and migration; `save_image_format`, `dump_image_format` and
`snapshot_image_format` = "gzip" in the daemons' qemu.conf and a guest whose
RAM is full of random data (`jobtui/lab/guest.py`) for save, dump and snapshot.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))

import libvirt  # noqa: E402

from jobtui.lab import DiskSpec, Lab, MiB  # noqa: E402
from jobtui.lab.core import BackgroundCall  # noqa: E402
from jobtui.lab.daemon import PrivateDaemon  # noqa: E402
from jobtui.lab.hosts import TwoHosts  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DISK = "vda"

# --- the calls ------------------------------------------------------------------------

Call = Callable[[libvirt.virConnect, libvirt.virDomain], object]

CALLS: list[tuple[str, Call]] = [
    ("state()", lambda c, d: d.state()),
    ("info()", lambda c, d: d.info()),
    ("XMLDesc(0)", lambda c, d: d.XMLDesc(0)),
    ("jobStats(0)", lambda c, d: d.jobStats(0)),
    (
        "jobStats(COMPLETED\\|KEEP_COMPLETED)",
        lambda c, d: d.jobStats(
            libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED | libvirt.VIR_DOMAIN_JOB_STATS_KEEP_COMPLETED
        ),
    ),
    (
        "blockJobInfo(vda, BANDWIDTH_BYTES)",
        lambda c, d: d.blockJobInfo(DISK, libvirt.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES),
    ),
    ("migrateGetMaxSpeed(0)", lambda c, d: d.migrateGetMaxSpeed(0)),
    ("conn.listAllDomains(0)", lambda c, d: c.listAllDomains(0)),
    ("blockInfo(vda)", lambda c, d: d.blockInfo(DISK)),
    ("blockStats(vda)", lambda c, d: d.blockStats(DISK)),
]
CALL_NAMES = [n for n, _ in CALLS]

# --- one job in progress ----------------------------------------------------------------


@dataclass
class Side:
    """The domain whose calls are timed (a migration has two)."""

    conn: libvirt.virConnect
    lookup: Callable[[], libvirt.virDomain | None]
    dom: libvirt.virDomain | None = None
    # When the job ended as this side sees it: a migration's destination finishes
    # (RESUMED) a moment before the source's call returns.
    ended: threading.Event = field(default_factory=threading.Event)
    end_time: float | None = None

    def mark_ended(self, when: float | None = None) -> None:
        if not self.ended.is_set():
            self.end_time = when if when is not None else time.monotonic()
            self.ended.set()


class Run:
    """One job in progress, how to tell it ended, how to abort and clean it up."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.end_time: float | None = None
        self.ended = threading.Event()
        self.sides: dict[str, Side] = {}
        self.abort: Callable[[], None] = lambda: None
        self.phase = ""  # 'READY' once a mirror is ready
        self.ready_time: float | None = None
        self.note = ""
        self.error = ""  # the job's own error, if it failed
        self._cleanups: list[Callable[[], None]] = []
        self.aborted = False
        self.events: list[tuple[float, int, int]] = []  # (s after start, event, detail)

    def mark_ended(self, when: float | None = None) -> None:
        if not self.ended.is_set():
            self.end_time = when if when is not None else time.monotonic()
            self.ended.set()
        for side in self.sides.values():
            side.mark_ended(self.end_time)

    def on_cleanup(self, fn: Callable[[], None]) -> None:
        self._cleanups.append(fn)

    def watch_call(self, bg: BackgroundCall) -> None:
        """The job ends when the blocking call that runs it returns."""

        def wait() -> None:
            bg.done.wait()
            if bg.error:
                self.error = f"code {bg.error_code}: {bg.error}"
            self.mark_ended(bg.finished)

        threading.Thread(target=wait, daemon=True).start()

    def watch_events(self, conn: libvirt.virConnect, dom: libvirt.virDomain) -> None:
        """The job ends at JOB_COMPLETED or a block job's final BLOCK_JOB_2 event."""

        def block(_c: Any, _d: Any, disk: str, _typ: int, status: int, _o: Any) -> None:
            if status == libvirt.VIR_DOMAIN_BLOCK_JOB_READY:
                self.phase = "READY"
                if self.ready_time is None:
                    self.ready_time = time.monotonic()
            elif disk == DISK:
                self.mark_ended()

        def completed(_c: Any, _d: Any, _params: Any, _o: Any) -> None:
            self.mark_ended()

        ids = [
            conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, block, None),
            conn.domainEventRegisterAny(
                dom, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, completed, None
            ),
        ]

        def deregister() -> None:
            for i in ids:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.domainEventDeregisterAny(i)

        self.on_cleanup(deregister)

    def cleanup(self) -> None:
        if not self.ended.is_set():
            self.aborted = True
            with contextlib.suppress(Exception):
                self.abort()
            self.ended.wait(30)
        for fn in reversed(self._cleanups):
            with contextlib.suppress(Exception):
                fn()


# --- results --------------------------------------------------------------------------


@dataclass
class Cell:
    kind: str  # ok, err, wait
    ms: list[float] = field(default_factory=list)
    code: int | None = None
    msg: str = ""
    wait_s: float = 0.0
    asked_at: float = 0.0  # seconds after the job started
    how: str = ""  # 'until the job ended', 'job still running', 'after abortJob'
    slow: list[float] = field(default_factory=list)  # reps that took > 100 ms but answered


@dataclass
class Row:
    label: str
    side: str
    cells: dict[str, Cell] = field(default_factory=dict)


@dataclass
class ScenarioResult:
    name: str
    rows: dict[str, Row]
    lasted: list[float] = field(default_factory=list)
    side_lasted: dict[str, list[float]] = field(default_factory=dict)  # as each side saw it
    runs: int = 0
    note: str = ""
    problems: list[str] = field(default_factory=list)


def fmt_ms(ms: float) -> str:
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 100:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"


def fmt_cell(c: Cell | None) -> str:
    if c is None:
        return "not measured"
    if c.kind == "ok":
        text = fmt_ms(statistics.median(c.ms))
        if c.slow:
            text += f" (once {fmt_ms(max(c.slow))})"
        return text
    if c.kind == "err":
        return f"fails at once: code {c.code}"
    then = f", then fails: code {c.code}" if c.code is not None else ""
    return f"**waits {c.wait_s:.1f} s**{then} ({c.how}; asked at +{c.asked_at:.1f} s)"


# --- measuring ------------------------------------------------------------------------


class Prober:
    """Times one call at a time; never leaves a call outstanding when it returns
    unless the call outlived even an aborted job (then `stuck` says so)."""

    def __init__(self, bound: float, max_wait: float, reps: int) -> None:
        self.bound = bound
        self.max_wait = max_wait
        self.reps = reps
        self.stuck: threading.Thread | None = None

    def once(
        self, fn: Call, conn: libvirt.virConnect, dom: libvirt.virDomain, wait: float
    ) -> tuple[threading.Thread, dict[str, Any]]:
        out: dict[str, Any] = {}

        def run() -> None:
            out["t0"] = time.monotonic()
            try:
                fn(conn, dom)
            except libvirt.libvirtError as err:
                out["code"] = err.get_error_code()
                out["msg"] = (err.get_error_message() or str(err)).splitlines()[0]
            finally:
                out["t1"] = time.monotonic()

        th = threading.Thread(target=run, daemon=True, name="probe")
        th.start()
        th.join(wait)
        return th, out

    def measure(self, run: Run, side: Side, fn: Call) -> Cell | None:
        """A cell, or None when the job ended before the measurement was valid."""
        assert side.dom is not None
        ms: list[float] = []
        slow: list[float] = []
        errors: list[tuple[int, str]] = []
        for _ in range(self.reps):
            if side.ended.is_set():
                return None
            th, out = self.once(fn, side.conn, side.dom, self.bound)
            if th.is_alive():
                return self._waited(run, side, th, out)
            dt = out["t1"] - out["t0"]
            if dt > 0.1:
                # A slow answer that came as the job ended waited for it.
                end = side.end_time if side.ended.wait(1.0) else None
                if end is not None and (abs(end - out["t1"]) < 0.5 or end < out["t1"]):
                    return self._cell_waited(run, out, "until the job ended")
                slow.append(dt * 1000)
            if side.ended.is_set() and side.end_time is not None and side.end_time < out["t0"]:
                return None
            if "code" in out:
                errors.append((out["code"], out["msg"]))
            else:
                ms.append(dt * 1000)
            time.sleep(0.05)
        if side.ended.is_set():
            return None  # the last answers may describe a finished job
        if errors and not ms:
            code, msg = errors[-1]
            return Cell("err", code=code, msg=msg)
        cell = Cell("ok", ms=ms, slow=slow)
        if errors:
            cell.msg = f"{len(errors)} of {self.reps} failed: code {errors[-1][0]} {errors[-1][1]}"
        return cell

    def _waited(self, run: Run, side: Side, th: threading.Thread, out: dict[str, Any]) -> Cell:
        th.join(self.max_wait - self.bound)
        how = ""
        if th.is_alive():
            run.aborted = True
            with contextlib.suppress(Exception):
                run.abort()
            th.join(30)
            how = "after the job was aborted"
            if th.is_alive():
                self.stuck = th
                return Cell(
                    "wait",
                    wait_s=time.monotonic() - out["t0"],
                    asked_at=out["t0"] - run.started,
                    how="never returned, even after abortJob",
                )
        if not how:
            side.ended.wait(1.5)
            if side.end_time is not None and side.end_time <= out["t1"] + 1.5:
                how = "until the job ended"
            else:
                how = "the job still ran when it returned"
        return self._cell_waited(run, out, how)

    def _cell_waited(self, run: Run, out: dict[str, Any], how: str) -> Cell:
        return Cell(
            "wait",
            wait_s=out["t1"] - out["t0"],
            asked_at=out["t0"] - run.started,
            how=how,
            code=out.get("code"),
            msg=out.get("msg", ""),
        )


# --- the daemons ----------------------------------------------------------------------


class SlowImageDaemon(PrivateDaemon):
    """A PrivateDaemon whose saves, dumps and memory snapshots are gzip-compressed
    (~40 MB/s here), so a guest of a few hundred MiB takes seconds to save."""

    def _write_configs(self) -> None:
        super()._write_configs()
        with open(self.root / "etc" / "qemu.conf", "a") as f:
            for key in ("save_image_format", "dump_image_format", "snapshot_image_format"):
                f.write(f'{key} = "gzip"\n')


def make_hosts() -> TwoHosts:
    hosts = TwoHosts()
    for attr in ("a", "b"):
        d: PrivateDaemon = getattr(hosts, attr)
        setattr(
            hosts,
            attr,
            SlowImageDaemon(hosts.base, d.name, d.migration_ports, caps_cache=d.caps_cache),
        )
    return hosts


# --- the scenarios --------------------------------------------------------------------


@dataclass
class Env:
    hosts: TwoHosts
    lab: Lab  # its domains live on host A
    memory_mib: int  # save, managed save, core dump, snapshot (gzip: ~13 MB/s here)
    dump_memory_mib: int  # memory-only dump (kdump-zlib is faster)
    restore_memory_mib: int
    saved: Path | None = None  # a save image for the restore runs
    restore_dom: str = ""


def _unique(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:4]}"


def _wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _lab_side(env: Env, dom: libvirt.virDomain) -> Side:
    return Side(env.lab.conn, lambda: dom, dom)


def _filled(env: Env, name: str, memory_mib: int | None = None) -> libvirt.virDomain:
    disk = env.lab.image(f"{name}-vda", 64, 16)
    return env.lab.filled_domain(name, memory_mib or env.memory_mib, disks=[DiskSpec(DISK, disk)])


def _remove_lab_domain(env: Env, name: str) -> Callable[[], None]:
    return lambda: env.lab.remove(name)


def start_idle(env: Env) -> Run:
    name = _unique("idle")
    run = Run()
    run.on_cleanup(_remove_lab_domain(env, name))
    dom = env.lab.domain(name, [DiskSpec(DISK, env.lab.image(f"{name}-vda", 64, 16))])
    run.sides["domain"] = _lab_side(env, dom)
    run.abort = run.mark_ended
    run.note = "an idle running domain (KVM if usable), no job"
    return run


def _domain_job(
    env: Env,
    stem: str,
    start: Callable[[libvirt.virDomain], BackgroundCall],
    memory_mib: int | None = None,
) -> Run:
    name = _unique(stem)
    run = Run()
    run.on_cleanup(_remove_lab_domain(env, name))
    dom = _filled(env, name, memory_mib)
    run.started = time.monotonic()
    bg = start(dom)
    run.watch_call(bg)
    run.abort = dom.abortJob
    run.sides["domain"] = _lab_side(env, dom)
    time.sleep(0.5)
    return run


def start_save(env: Env) -> Run:
    run = _domain_job(env, "save", lambda d: env.lab.start_save(d))
    run.note = f"`save()` of a {env.memory_mib} MiB TCG guest full of random data, gzip"
    return run


def start_managed_save(env: Env) -> Run:
    run = _domain_job(env, "msave", lambda d: env.lab.start_managed_save(d))
    run.note = f"`managedSave(0)` of a {env.memory_mib} MiB random-RAM guest, gzip"
    return run


def start_core_dump(env: Env) -> Run:
    run = _domain_job(env, "dump", lambda d: env.lab.start_dump(d))
    run.note = (
        f"`coreDumpWithFormat(RAW, LIVE)` (migration-based) of a {env.memory_mib} MiB"
        " random-RAM guest, gzip (`dump_image_format`)"
    )
    return run


def start_memory_dump(env: Env) -> Run:
    run = _domain_job(
        env,
        "mdump",
        lambda d: env.lab.start_dump(d, memory_only=True),
        memory_mib=env.dump_memory_mib,
    )
    run.note = (
        f"`coreDumpWithFormat(KDUMP_ZLIB, MEMORY_ONLY\\|LIVE)` of a {env.dump_memory_mib} MiB"
        " random-RAM guest"
    )
    return run


def start_snapshot(env: Env) -> Run:
    name = _unique("snap")
    root = env.lab.root

    def snap(dom: libvirt.virDomain) -> BackgroundCall:
        mem = root / f"{name}.mem"
        overlay = env.lab.images / f"{name}-vda.snap.qcow2"
        xml = (
            f"<domainsnapshot><name>s1</name><memory snapshot='external' file='{mem}'/>"
            f"<disks><disk name='{DISK}' snapshot='external'><driver type='qcow2'/>"
            f"<source file='{overlay}'/></disk></disks></domainsnapshot>"
        )
        flags = libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_LIVE
        bg = BackgroundCall(f"snapshot {name}", lambda: dom.snapshotCreateXML(xml, flags), mem)
        bg.thread.start()
        return bg

    run = Run()
    run.on_cleanup(_remove_lab_domain(env, name))
    dom = _filled(env, name)
    run.started = time.monotonic()
    bg = snap(dom)
    run.watch_call(bg)
    run.abort = dom.abortJob
    run.sides["domain"] = _lab_side(env, dom)
    time.sleep(0.5)
    run.note = (
        "`snapshotCreateXML(LIVE)`, external memory + external disk, of a"
        f" {env.memory_mib} MiB random-RAM guest, gzip (`snapshot_image_format`)"
    )
    return run


def start_restore(env: Env) -> Run:
    if env.saved is None:
        env.restore_dom = _unique("rest")
        dom = _filled(env, env.restore_dom, memory_mib=env.restore_memory_mib)
        env.saved = env.lab.root / f"{env.restore_dom}.save"
        t0 = time.monotonic()
        dom.save(str(env.saved))
        print(f"    (saved {env.restore_dom} in {time.monotonic() - t0:.1f} s)", flush=True)
    dom = env.lab.conn.lookupByName(env.restore_dom)
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    run = Run()

    def stop() -> None:
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()

    run.on_cleanup(stop)
    saved = env.saved
    run.started = time.monotonic()
    bg = BackgroundCall("restore", lambda: env.lab.conn.restore(str(saved)), saved)
    bg.thread.start()
    run.watch_call(bg)
    run.abort = stop
    _wait_for(lambda: bool(dom.isActive()) or bg.done.is_set(), 20, "the restore to begin")
    run.sides["domain"] = _lab_side(env, dom)
    run.note = (
        f"`conn.restore()` of a {env.restore_memory_mib} MiB random-RAM guest from a gzip image"
    )
    return run


def _block_domain(env: Env, stem: str, chain_layers: int, data_mib: int) -> tuple[Run, Any, str]:
    name = _unique(stem)
    run = Run()
    run.on_cleanup(_remove_lab_domain(env, name))
    if chain_layers:
        layers = env.lab.chain(name, chain_layers, data_mib * chain_layers + 64, data_mib)
        disk = layers[-1]
    else:
        disk = env.lab.image(f"{name}-vda", data_mib + 64, data_mib)
    dom = env.lab.domain(name, [DiskSpec(DISK, disk)])
    run.watch_events(env.lab.conn, dom)
    run.sides["domain"] = _lab_side(env, dom)
    run.abort = lambda: dom.blockJobAbort(DISK, 0)
    return run, dom, name


def start_copy(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "copy", 0, 64)
    run.started = time.monotonic()
    env.lab.start_copy(dom, DISK, bandwidth=4 * MiB)
    run.note = "`blockCopy` of 64 MiB at 4 MiB/s (measured before READY)"
    return run


def start_commit(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "commit", 3, 48)
    run.started = time.monotonic()
    env.lab.start_commit(dom, DISK, bandwidth=4 * MiB)
    run.note = "`blockCommit` of a middle layer (48 MiB) at 4 MiB/s"
    return run


def start_active_commit(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "acommit", 2, 48)
    run.started = time.monotonic()
    env.lab.start_active_commit(dom, DISK, bandwidth=4 * MiB)
    # QEMU 7.2 ignores an active commit's bandwidth: it is READY at once and then
    # waits for a pivot; that is the phase an operator sees it in.
    _wait_for(lambda: run.phase == "READY" or run.ended.is_set(), 30, "active commit READY")
    run.note = "`blockCommit(ACTIVE)` of 48 MiB, measured at READY (QEMU ignores its bandwidth)"
    return run


def start_pull(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "pull", 2, 48)
    run.started = time.monotonic()
    env.lab.start_pull(dom, DISK, bandwidth=4 * MiB)
    run.note = "`blockPull` of 48 MiB at 4 MiB/s"
    return run


def start_push_backup(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "backup", 0, 64)
    run.abort = dom.abortJob
    run.started = time.monotonic()
    env.lab.start_backup(dom, [DISK], bandwidth=4 * MiB)
    run.note = "push `backupBegin` of 64 MiB, throttled to 4 MiB/s by `blockJobSetSpeed`"
    return run


def start_pull_backup(env: Env) -> Run:
    run, dom, _ = _block_domain(env, "pbackup", 0, 64)
    run.abort = dom.abortJob
    run.started = time.monotonic()
    env.lab.start_pull_backup(dom, [DISK])
    run.note = "pull `backupBegin` (NBD export over a unix socket; runs until `abortJob`)"
    return run


def _migration(
    env: Env,
    *,
    storage: bool,
    memory_mib: int,
    disk_data_mib: int,
    bandwidth_mib: int,
) -> Run:
    hosts = env.hosts
    name = _unique("mig")
    run = Run()
    run.on_cleanup(lambda: hosts.remove(name))
    dom = hosts.filled_guest(
        name, memory_mib, disk_mib=disk_data_mib + 64, disk_data_mib=disk_data_mib
    )
    conn_a, conn_b = hosts.conn_a, hosts.conn_b
    assert conn_a is not None and conn_b is not None
    run.sides["source"] = Side(conn_a, lambda: dom, dom)
    dest = run.sides["destination"] = Side(conn_b, lambda: hosts.domain_b(name))

    def lifecycle(_c: Any, d: libvirt.virDomain, event: int, detail: int, _o: Any) -> None:
        if d.name() != name:
            return
        run.events.append((time.monotonic() - run.started, event, detail))
        # The incoming side's job is over when the guest resumes there (or dies).
        if event in (libvirt.VIR_DOMAIN_EVENT_RESUMED, libvirt.VIR_DOMAIN_EVENT_STOPPED):
            dest.mark_ended()

    cb = conn_b.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)
    run.on_cleanup(lambda: conn_b.domainEventDeregisterAny(cb))
    run.started = time.monotonic()
    mig = hosts.start_migration(dom, bandwidth_mib=bandwidth_mib, storage=storage)
    run.watch_call(mig)
    run.abort = dom.abortJob
    _wait_for(
        lambda: hosts.domain_b(name) is not None or mig.done.is_set(), 20, "the destination domain"
    )
    time.sleep(0.3)
    return run


def start_migration(env: Env) -> Run:
    run = _migration(env, storage=False, memory_mib=256, disk_data_mib=0, bandwidth_mib=24)
    run.note = (
        "peer-to-peer live `migrateToURI3` of a 256 MiB random-RAM TCG guest at 24 MiB/s"
        " (disk `vda` on storage both hosts see at the same path)"
    )
    return run


def start_storage_migration(env: Env) -> Run:
    run = _migration(env, storage=True, memory_mib=64, disk_data_mib=64, bandwidth_mib=8)
    run.note = (
        "peer-to-peer live `migrateToURI3(NON_SHARED_DISK, MIGRATE_DISKS=vda)`: 64 MiB of disk"
        " data, then 64 MiB of random RAM, at 8 MiB/s"
    )
    return run


def start_long_storage_migration(env: Env) -> Run:
    run = _migration(env, storage=True, memory_mib=64, disk_data_mib=192, bandwidth_mib=4)
    run.note = (
        "the storage migration above with 192 MiB of disk data at 4 MiB/s: longer than"
        " libvirt's 30 s wait for a domain's job lock"
    )
    return run


@dataclass
class Scenario:
    name: str
    label: str
    start: Callable[[Env], Run]
    sides: tuple[tuple[str, str], ...] = (("domain", ""),)  # (side key, row label suffix)
    calls: tuple[str, ...] = tuple(CALL_NAMES)
    ends: str = "end"  # 'end': runs to its end; 'ready': a mirror, waits at READY; 'never'


MIG_SIDES = (("source", "source (migration-out)"), ("destination", "destination (migration-in)"))

SCENARIOS: list[Scenario] = [
    Scenario("idle", "no job (baseline)", start_idle, ends="never"),
    Scenario("migration", "migration, memory only", start_migration, MIG_SIDES),
    Scenario("storage-migration", "migration with storage", start_storage_migration, MIG_SIDES),
    Scenario("save", "save", start_save),
    Scenario("managed-save", "managed save", start_managed_save),
    Scenario("restore", "restore", start_restore),
    Scenario("core-dump", "core dump (live, migration-based)", start_core_dump),
    Scenario("memory-dump", "memory-only dump (kdump-zlib)", start_memory_dump),
    Scenario("snapshot", "snapshot with memory (external, live)", start_snapshot),
    Scenario("push-backup", "push backup", start_push_backup),
    Scenario("pull-backup", "pull backup", start_pull_backup, ends="never"),
    Scenario("block-copy", "block copy", start_copy, ends="ready"),
    Scenario("block-commit", "block commit", start_commit),
    Scenario("active-commit", "active commit (READY)", start_active_commit, ends="ready"),
    Scenario("block-pull", "block pull", start_pull),
]


def run_scenario(
    env: Env, sc: Scenario, prober: Prober, calls: tuple[str, ...] | None = None
) -> ScenarioResult:
    calls = calls or sc.calls
    rows = {
        key: Row(f"{sc.label} — {suffix}" if suffix else sc.label, key) for key, suffix in sc.sides
    }
    res = ScenarioResult(sc.name, rows)
    pending = [(key, c) for key, _ in sc.sides for c in calls]
    fns = dict(CALLS)
    max_runs = len(pending) + 3
    while pending and res.runs < max_runs and prober.stuck is None:
        res.runs += 1
        run = sc.start(env)
        res.note = run.note
        try:
            if run.ended.is_set():
                res.problems.append(f"run {res.runs}: the job ended before any call ({run.error})")
                continue
            while pending and not run.ended.is_set():
                key, cname = pending[0]
                side = run.sides[key]
                if side.ended.is_set():
                    break  # this side is done (a destination finishes first): a new run
                if side.dom is None:
                    side.dom = side.lookup()
                    if side.dom is None:
                        res.problems.append(f"run {res.runs}: no {key} domain")
                        break
                cell = prober.measure(run, side, fns[cname])
                if cell is None:
                    break  # the job ended under the measurement: again in a new run
                rows[key].cells[cname] = cell
                pending.pop(0)
                print(f"    {key:12} {cname:36} {fmt_cell(cell)}", flush=True)
                if prober.stuck is not None:
                    break
            if not pending and sc.ends == "end":
                run.ended.wait(120)  # let it end by itself: how long it lasts goes in the table
            elif not pending and sc.ends == "ready":
                _wait_for(lambda r=run: r.ready_time is not None or r.ended.is_set(), 120, "READY")
        finally:
            run.cleanup()
        if run.events:
            ends = ", ".join(
                f"{k} +{v.end_time - run.started:.1f} s"
                for k, v in run.sides.items()
                if v.end_time is not None
            )
            print(f"    destination events (s, event, detail): {run.events}; ended: {ends}")
        if sc.ends == "ready" and run.ready_time is not None:
            res.lasted.append(run.ready_time - run.started)
        elif run.end_time is not None and not run.aborted and sc.ends == "end":
            res.lasted.append(run.end_time - run.started)
            for k, v in run.sides.items():
                if v.end_time is not None:
                    res.side_lasted.setdefault(k, []).append(v.end_time - run.started)
            if run.error:
                res.problems.append(f"run {res.runs}: the job failed: {run.error}")
    for key, c in pending:
        res.problems.append(f"{key} {c}: not measured")
    return res


# --- the report -----------------------------------------------------------------------


def versions(conn: libvirt.virConnect) -> tuple[str, str]:
    def dotted(v: int) -> str:
        return f"{v // 1000000}.{v // 1000 % 1000}.{v % 1000}"

    qemu = subprocess.run(
        ["qemu-system-x86_64", "--version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    return dotted(conn.getLibVersion()), qemu


def report(
    results: list[ScenarioResult],
    scenarios: dict[str, Scenario],
    *,
    command: str,
    started: datetime.datetime,
    libvirt_version: str,
    qemu_version: str,
    long_result: ScenarioResult | None,
) -> str:
    out: list[str] = []
    out.append("# Which libvirt call waits on which job (measured)\n")
    out.append(
        f"Produced by `{command}` on {started:%Y-%m-%d %H:%M} (host `{socket.gethostname()}`,"
        f" {os.cpu_count()} CPUs), libvirt {libvirt_version}, {qemu_version},"
        f" libvirt-python {importlib.metadata.version('libvirt-python')}."
        " Real QEMU behind two private `libvirtd`s (`qemu:///system` driver, started by"
        " `jobtui.lab.hosts.TwoHosts`): every job ran on host A; host B was only a migration"
        " destination. Nothing mocked.\n"
    )
    out.append(
        "Each cell: the median time of the call while the job was in progress (5 calls), or"
        " **waits N s** when the call did not answer within 2 s — how long it really took, and"
        " whether it came back when the job ended — or *fails at once: code X* (messages below)."
        " Calls ran one at a time; after a waiting call the job was started again for the"
        " calls still to measure.\n"
    )
    header = ["job (side)", *CALL_NAMES, "job lasted"]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    errors: dict[tuple[int, str], set[str]] = {}
    for r in results:
        lasted = "/".join(f"{x:.0f}" for x in r.lasted) + " s" if r.lasted else "—"
        ends = scenarios[r.name].ends
        if ends == "never":
            lasted = "until aborted" if r.name != "idle" else "—"
        elif ends == "ready" and r.lasted:
            lasted = "READY after " + lasted
        for row in r.rows.values():
            if ends == "end" and r.side_lasted.get(row.side) and len(r.rows) > 1:
                lasted = "/".join(f"{x:.0f}" for x in r.side_lasted[row.side]) + " s"
            cells = []
            for cname in CALL_NAMES:
                c = row.cells.get(cname)
                cells.append(fmt_cell(c))
                if c is not None and c.code is not None:
                    errors.setdefault((c.code, c.msg), set()).add(cname.replace("\\", ""))
                if c is not None and c.kind == "ok" and c.msg:
                    cells[-1] += f" ({c.msg})"
            out.append(f"| {row.label} | " + " | ".join(cells) + f" | {lasted} |")
    out.append("")
    out.append(
        "`job lasted`: start to end of each undisturbed run of the job (one figure per run);"
        " for a migration's destination, until the guest resumed there."
    )
    out.append("")
    if long_result is not None:
        out.append("## When the job outlasts libvirt's 30 s wait for the job lock\n")
        out.append(f"Job: {long_result.note}.\n")
        out.append("| side | call | result |")
        out.append("|---|---|---|")
        for row in long_result.rows.values():
            for cname, c in row.cells.items():
                out.append(f"| {row.side} | {cname} | {fmt_cell(c)} |")
                if c.code is not None:
                    errors.setdefault((c.code, c.msg), set()).add(cname.replace("\\", ""))
        dest = long_result.side_lasted.get("destination")
        if dest:
            out.append(f"\nThe guest resumed on the destination at +{dest[0]:.0f} s.")
        out.append("")
    out.append("## Error messages\n")
    for (code, msg), names in sorted(errors.items()):
        out.append(f'- code {code} ({", ".join(sorted(names))}): "{msg}"')
    out.append("")
    out.append("## How each job was made\n")
    for r in results:
        sc = scenarios[r.name]
        runs = f"{r.runs} run{'s' if r.runs != 1 else ''}"
        out.append(f"- **{sc.label}** ({runs}): {r.note}.")
        for p in r.problems:
            out.append(f"  - {p}")
    out.append("")
    return "\n".join(out)


# --- main -----------------------------------------------------------------------------


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    def handler(_sig: int, _frame: object) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "call-waits.md")
    ap.add_argument("--only", default="", help="comma-separated scenario names")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--bound", type=float, default=2.0, help="seconds before a call 'waits'")
    ap.add_argument("--max-wait", type=float, default=40.0)
    ap.add_argument("--memory", type=int, default=128, help="MiB: save, dump, snapshot guests")
    ap.add_argument("--dump-memory", type=int, default=384, help="MiB: memory-only dump guest")
    ap.add_argument("--restore-memory", type=int, default=512, help="MiB: restored guest")
    ap.add_argument("--no-long", dest="long", action="store_false")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (private libvirtds, QEMU as root)", file=sys.stderr)
        return 2
    by_name = {s.name: s for s in SCENARIOS}
    chosen = SCENARIOS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            ap.error(f"unknown scenario(s) {unknown}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in names]
    command = "sudo .venv/bin/python bench/call_waits.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    started = datetime.datetime.now()
    prober = Prober(args.bound, args.max_wait, args.reps)
    results: list[ScenarioResult] = []
    long_result: ScenarioResult | None = None
    hosts = make_hosts()
    lab: Lab | None = None
    lv = qv = "?"
    with sigterm_as_interrupt():
        try:
            hosts.start()
            lab = Lab(hosts.base / "lab", uri=hosts.uri_a)
            env = Env(hosts, lab, args.memory, args.dump_memory, args.restore_memory)
            for sc in chosen:
                print(f"== {sc.name}", flush=True)
                t0 = time.monotonic()
                results.append(run_scenario(env, sc, prober))
                print(f"   {time.monotonic() - t0:.0f} s", flush=True)
                if prober.stuck is not None:
                    print("a call never returned: stopping here", flush=True)
                    break
            mig = next((r for r in results if r.name == "storage-migration"), None)
            if args.long and mig is not None and prober.stuck is None:
                waiting = tuple(
                    n for n, c in mig.rows["destination"].cells.items() if c.kind == "wait"
                )
                if waiting:
                    print("== long storage migration", flush=True)
                    sc = Scenario(
                        "long-storage-migration",
                        "migration with storage, ~60 s",
                        start_long_storage_migration,
                        (("destination", "destination (migration-in)"),),
                    )
                    long_result = run_scenario(env, sc, prober, waiting)
            if hosts.conn_a is not None:
                lv, qv = versions(hosts.conn_a)
        finally:
            if prober.stuck is not None:
                prober.stuck.join(30)
            if lab is not None:
                lab.close()
            hosts.close()
    text = report(
        results,
        by_name,
        command=command,
        started=started,
        libvirt_version=lv,
        qemu_version=qv,
        long_result=long_result,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
