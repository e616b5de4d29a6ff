"""Two libvirt hosts on one machine, and live migrations between them.

Each host is a `PrivateDaemon`: its own libvirtd in its own mount namespace,
its own host UUID and its own migration port range, QEMU as root (post-copy
needs userfaultfd, which unprivileged QEMU may not use). Migration
data goes over TCP on 127.0.0.1.

Disks are truly shared-nothing: an image lives under /var/lib/libvirt/images,
which each daemon sees bound to its own private directory, so the same path
names a different file on each host. A storage migration then copies the disk
for real into the destination's (pre-created, empty) image, the way an
operator does it between two machines.

Everything is torn down on exit: migrations aborted, domains destroyed and
undefined, daemons stopped, the directory removed.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import libvirt

from jobtui.engine.eventloop import ensure_event_loop
from jobtui.lab import guest, xmlgen
from jobtui.lab.core import BackgroundCall
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache
from jobtui.lab.images import LabError, create_image

# Where disk images live, as every daemon (and so QEMU) sees the path; outside
# the daemons' namespaces it is `<host root>/lib/images`.
IMAGE_DIR = Path("/var/lib/libvirt/images")
# Ports per host for migration streams and storage-migration NBD servers.
PORTS_PER_HOST = 10
_PORT_LOW, _PORT_HIGH = 49400, 60000


def _ports_free(lo: int, hi: int) -> bool:
    for port in range(lo, hi + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port_ranges(count: int, size: int = PORTS_PER_HOST) -> list[tuple[int, int]]:
    """`count` disjoint ranges of `size` free TCP ports, picked at random so that
    labs running side by side (parallel tests) rarely collide; a collision costs
    only a failed migration, since libvirt binds the port when it needs it."""
    rng = random.Random()
    out: list[tuple[int, int]] = []
    for _ in range(200):
        lo = rng.randrange(_PORT_LOW, _PORT_HIGH - size) // size * size
        rng_ = (lo, lo + size - 1)
        if any(not (rng_[1] < a or rng_[0] > b) for a, b in out):
            continue
        if _ports_free(*rng_):
            out.append(rng_)
            if len(out) == count:
                return out
    raise LabError(
        f"no {count} free ranges of {size} TCP ports between {_PORT_LOW} and {_PORT_HIGH}"
    )


def guest_cache() -> Path:
    """One build of the lab guest kernel per user, shared by all labs."""
    return Path(tempfile.gettempdir()) / f"jobtui-guest-{os.getuid()}"


class Migration(BackgroundCall):
    """A running `migrateToURI3`/`migrate3` call and what it was started with."""

    def __init__(
        self,
        dom: libvirt.virDomain,
        what: str,
        call: Callable[[], object],
        flags: int,
        params: dict[str, Any],
    ) -> None:
        super().__init__(what, call, None)
        self.dom = dom
        self.flags = flags
        self.params = params

    @property
    def postcopy(self) -> bool:
        return bool(self.flags & libvirt.VIR_MIGRATE_POSTCOPY)


class TwoHosts:
    """Hosts A and B, a connection to each, and helpers to migrate from A to B.

    ::

        with TwoHosts() as hosts:
            dom = hosts.filled_guest("g1", memory_mib=256, dirty_mib=64, rate_mib=32)
            mig = hosts.start_migration(dom, bandwidth_mib=32)
            mig.wait()
    """

    def __init__(
        self,
        base: Path | str | None = None,
        names: tuple[str, str] = ("hosta", "hostb"),
        *,
        caps_cache: Path | None = None,
    ) -> None:
        self._own_base = base is None
        # Short: each daemon's socket path must fit AF_UNIX's 107 bytes.
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="jth-"))
        a_ports, b_ports = free_port_ranges(2)
        caps = caps_cache or default_caps_cache()
        self.a = PrivateDaemon(self.base, names[0], a_ports, caps_cache=caps)
        self.b = PrivateDaemon(self.base, names[1], b_ports, caps_cache=caps)
        self.conn_a: libvirt.virConnect | None = None
        self._dead: list[libvirt.virConnect] = []  # connections to a killed daemon
        self.conn_b: libvirt.virConnect | None = None
        self.migrations: list[Migration] = []
        self._lock = threading.Lock()
        self._closed = False

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> TwoHosts:
        ensure_event_loop()
        try:
            with ThreadPoolExecutor(max_workers=2) as pool:
                list(pool.map(lambda d: d.start(), (self.a, self.b)))
            for d in (self.a, self.b):
                (d.root / "lib" / "images").mkdir(parents=True, exist_ok=True)
            self.conn_a = libvirt.open(self.a.uri)
            self.conn_b = libvirt.open(self.b.uri)
        except BaseException:
            self.close()
            raise
        return self

    def __enter__(self) -> TwoHosts:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Abort migrations, stop both daemons (they destroy and undefine their
        domains and kill any QEMU left), remove the directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for m in self.migrations:
            if not m.done.is_set():
                with contextlib.suppress(libvirt.libvirtError):
                    m.dom.abortJob()
        for m in self.migrations:
            m.thread.join(timeout=10)
        # A post-copy migration cannot be aborted: destroying its domains ends it.
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda d: d.stop(), (self.a, self.b)))
        for m in self.migrations:
            m.thread.join(timeout=10)
        # Only now: closing a connection under a running call crashes libvirt-python.
        for conn in (self.conn_a, self.conn_b):
            if conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    conn.close()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def crash_a(self, down: float = 1.0) -> None:
        """SIGKILL host A's libvirtd, start a new one `down` seconds later (it re-attaches
        the running QEMUs) and open a new `conn_a`. The old connection is dead but kept:
        a migration call may still be returning on it."""
        self.conn_a = self._crash(self.a, self.conn_a, down)

    def crash_b(self, down: float = 1.0) -> None:
        """As crash_a, for host B (and `conn_b`)."""
        self.conn_b = self._crash(self.b, self.conn_b, down)

    def _crash(
        self, daemon: PrivateDaemon, conn: libvirt.virConnect | None, down: float
    ) -> libvirt.virConnect:
        daemon.kill()
        time.sleep(down)
        daemon.start()
        if conn is not None:
            self._dead.append(conn)
        return libvirt.open(daemon.uri)

    # --- names -----------------------------------------------------------------------

    @property
    def uri_a(self) -> str:
        return self.a.uri

    @property
    def uri_b(self) -> str:
        return self.b.uri

    def image_path(self, daemon: PrivateDaemon, name: str) -> Path:
        """The file behind IMAGE_DIR/name on `daemon`'s host."""
        return daemon.root / "lib" / "images" / name

    # --- domains ---------------------------------------------------------------------

    def filled_guest(
        self,
        name: str,
        memory_mib: int = 256,
        *,
        dirty_mib: int = 0,
        rate_mib: int = 0,
        disk_mib: int = 0,
        disk_data_mib: int = 0,
        wait: float = 60.0,
    ) -> libvirt.virDomain:
        """A persistent TCG domain on host A whose guest fills its RAM (and with
        `dirty_mib` keeps that much dirty at `rate_mib` MiB/s); returns once the
        fill is done.

        `disk_mib` adds a qcow2 disk `vda` holding `disk_data_mib` of data on A,
        with an empty image of the same size at the same path on B: what a
        storage migration (`storage=True`) copies. Without it the guest is
        diskless and migrates its memory only.
        """
        if self.conn_a is None:
            raise LabError("the hosts are not started")
        kernel = guest.build_guest(guest_cache())
        log = self.base / f"{name}-serial.log"
        args = []
        if dirty_mib:
            args.append(f"dirty={dirty_mib}")
        if rate_mib:
            args.append(f"rate={rate_mib}")
        disks: list[xmlgen.DiskSpec] = []
        if disk_mib:
            fname = f"{name}-vda.qcow2"
            create_image(self.image_path(self.a, fname), disk_mib, data_mib=disk_data_mib)
            create_image(self.image_path(self.b, fname), disk_mib)
            disks.append(xmlgen.DiskSpec("vda", IMAGE_DIR / fname))
        xml = xmlgen.domain_xml(
            name,
            disks,
            memory_mib=memory_mib,
            # Nested KVM touches guest RAM at ~1 MiB/s here; TCG is far faster.
            kvm=False,
            os_xml=guest.guest_os_xml(kernel, " ".join(args)),
            extra_devices=guest.serial_xml(log),
        )
        try:
            dom = self.conn_a.defineXML(xml)
            dom.create()
        except libvirt.libvirtError as err:
            raise LabError(f"cannot start {name} on host A: {_reason(err)}") from None
        guest.wait_for_serial(log, guest.DONE_TEXT, wait)
        if dirty_mib:
            guest.wait_for_serial(log, guest.DIRTYING_TEXT, wait)
        return dom

    # --- migration -------------------------------------------------------------------

    def start_migration(
        self,
        dom: libvirt.virDomain,
        dest_uri: str | None = None,
        bandwidth_mib: int = 32,
        *,
        postcopy: bool = False,
        postcopy_bandwidth_mib: int = 0,
        storage: bool = False,
        peer2peer: bool = True,
        resume: bool = False,
    ) -> Migration:
        """Live-migrate `dom` to `dest_uri` (host B by default) in a background thread.

        Peer-to-peer (`migrateToURI3`: the source daemon talks to the destination
        daemon) or managed (`migrate3`: this process drives both, B only). UNSAFE
        because libvirt cannot tell that a local file disk is not shared; with
        `storage` the disks are copied (NON_SHARED_DISK, MIGRATE_DISKS=vda...).
        `postcopy` allows a switch to post-copy (`migrateStartPostCopy`), whose
        bandwidth is `postcopy_bandwidth_mib` (0: QEMU's default, unlimited).
        `resume` recovers a post-copy migration that failed (`virsh migrate
        --postcopy --postcopy-resume`): libvirt continues the same migration job.
        """
        if self._closed:
            raise LabError("the hosts are closed")
        dest_uri = dest_uri or self.b.uri
        params: dict[str, object] = {
            libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1",
            libvirt.VIR_MIGRATE_PARAM_BANDWIDTH: bandwidth_mib,
        }
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNSAFE
        if resume:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY_RESUME
            postcopy = True
        if postcopy:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY
            if postcopy_bandwidth_mib:
                params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = postcopy_bandwidth_mib
        if storage:
            flags |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
            disks = _disk_targets(dom)
            if not disks:
                raise LabError(f"{dom.name()} has no disk to migrate")
            params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = disks
        if peer2peer:
            flags |= libvirt.VIR_MIGRATE_PEER2PEER

            def call() -> None:
                dom.migrateToURI3(dest_uri, params, flags)

        else:
            if dest_uri != self.b.uri or self.conn_b is None:
                raise LabError("a managed migration goes to host B only")
            conn_b = self.conn_b

            def call() -> None:
                dom.migrate3(conn_b, params, flags)

        m = Migration(dom, f"migrate {dom.name()}", call, flags, params)
        self.migrations.append(m)
        m.thread.start()
        return m

    def remove(self, name: str) -> None:
        """Destroy and undefine `name` on both hosts (after its migration ended)."""
        running = [m for m in self.migrations if not m.done.is_set() and m.dom.name() == name]
        for m in running:
            with contextlib.suppress(libvirt.libvirtError):
                m.dom.abortJob()
            m.thread.join(timeout=10)
        # Post-copy refuses abort: destroying the domain on both hosts ends it.
        for conn in (self.conn_a, self.conn_b):
            if conn is None:
                continue
            try:
                dom = conn.lookupByName(name)
            except libvirt.libvirtError:
                continue
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isPersistent():
                    dom.undefine()
        for m in running:
            m.thread.join(timeout=10)

    def domain_b(self, name: str) -> libvirt.virDomain | None:
        """The domain named `name` on host B, or None."""
        if self.conn_b is None:
            return None
        try:
            return self.conn_b.lookupByName(name)
        except libvirt.libvirtError:
            return None


def _disk_targets(dom: libvirt.virDomain) -> list[str]:
    from jobtui.engine.sample import parse_disks

    return [d.target for d in parse_disks(dom.XMLDesc(0))]


def _reason(err: libvirt.libvirtError) -> str:
    return (err.get_error_message() or str(err)).splitlines()[0]
