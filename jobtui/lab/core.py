"""The embedded QEMU lab: real domains and real jobs, torn down on every exit.

`qemu:///embed?root=DIR` runs libvirt's whole QEMU driver inside this process;
no daemon is needed. The demo runs on it and the tests use it as their
fixture. Everything the lab makes lives under its root directory, and
`close()` (also on Ctrl-C and at interpreter exit) destroys the domains, so
no QEMU process outlives it (embedded QEMUs otherwise survive the client).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import libvirt

from jobtui.engine.connection import release_shared
from jobtui.engine.eventloop import ensure_event_loop, open_connection
from jobtui.lab import xmlgen
from jobtui.lab.images import LabError, MiB, create_chain, create_image
from jobtui.lab.xmlgen import DiskSpec

QEMU_CONF = """\
# Written by jobtui's lab. QEMU as root with no ownership games: the lab's
# images live in a private directory, and a QEMU running as libvirt-qemu
# could not use a root-only /dev/kvm, and every start would take ~40 s re-probing.
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
# The default "logd" needs a reachable virtlogd; the lab has none.
stdio_handler = "file"
"""

_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
)


def kvm_usable() -> bool:
    return os.access("/dev/kvm", os.R_OK | os.W_OK)


def _libvirt_reason(err: libvirt.libvirtError) -> str:
    return (err.get_error_message() or str(err)).splitlines()[0]


class Lab:
    """A lab root with a connection to its embedded QEMU driver."""

    def __init__(
        self,
        root: Path | str | None = None,
        *,
        kvm: bool | None = None,
        save_image_format: str = "raw",
        prefix: str = "jobtui-lab-",
        uri: str | None = None,
    ) -> None:
        """`uri` puts the lab's domains on an existing libvirt (a private libvirtd);
        without it the lab runs its own embedded driver under `root`."""
        self._own_root = root is None
        self.root = Path(root) if root else Path(tempfile.mkdtemp(prefix=prefix))
        self.kvm = kvm_usable() if kvm is None else kvm
        self.images = self.root / "images"
        self._domains: list[str] = []
        self._mounts: list[Path] = []
        self._threads: list[threading.Thread] = []
        self._closed = False
        self._lock = threading.Lock()
        try:
            self.images.mkdir(parents=True, exist_ok=True)
            (self.root / "etc").mkdir(exist_ok=True)
            conf = QEMU_CONF + f'save_image_format = "{save_image_format}"\n'
            (self.root / "etc" / "qemu.conf").write_text(conf)
            ensure_event_loop()
            self.uri = uri or f"qemu:///embed?root={self.root}"
            self.embedded = uri is None
            try:
                # Shared with every JobMonitor of this process (see open_connection).
                self.conn = open_connection(self.uri)
            except libvirt.libvirtError as err:
                raise LabError(f"cannot open {self.uri}: {_libvirt_reason(err)}") from None
        except BaseException:
            self._remove_root()
            raise
        atexit.register(self.close)

    # --- lifecycle -------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Destroy every domain, unmount, remove the root. Idempotent, never raises."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # In parallel: a destroy takes about a second each.
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(self._destroy, list(self._domains)))
        for t in self._threads:
            t.join(timeout=15)
        if self.embedded:
            release_shared(self.uri)
        else:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.close()
        for mnt in reversed(self._mounts):
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        self._remove_root()
        atexit.unregister(self.close)

    def reconnect(self) -> None:
        """A new connection after the daemon behind `uri` restarted."""
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.close()
        try:
            self.conn = open_connection(self.uri)
        except libvirt.libvirtError as err:
            raise LabError(f"cannot open {self.uri}: {_libvirt_reason(err)}") from None

    def remove(self, name: str) -> None:
        """Destroy and undefine one domain the lab made (its images stay until close)."""
        self._destroy(name)
        if name in self._domains:
            self._domains.remove(name)

    def _destroy(self, name: str) -> None:
        try:
            dom = self.conn.lookupByName(name)
        except libvirt.libvirtError:
            return
        with contextlib.suppress(libvirt.libvirtError):
            dom.abortJob()
        with contextlib.suppress(libvirt.libvirtError):
            if dom.isActive():
                dom.destroy()
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefineFlags(_UNDEFINE_FLAGS)

    def _remove_root(self) -> None:
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            # A caller-given root keeps its directory; only what the lab made goes.
            for sub in ("images", "etc", "lib", "cache", "run", "log", "guest"):
                shutil.rmtree(self.root / sub, ignore_errors=True)

    # --- images and domains ----------------------------------------------------------

    def image(self, name: str, size_mib: int, data_mib: int = 0, **kw: Any) -> Path:
        return create_image(self.images / f"{name}.qcow2", size_mib, data_mib=data_mib, **kw)

    def chain(self, stem: str, layers: int, size_mib: int, data_mib: int) -> list[Path]:
        return create_chain(self.images, stem, layers, size_mib, data_mib)

    def tmpfs(self, name: str, size_mib: int) -> Path:
        """A small tmpfs for a real ENOSPC. Mount it before the domain starts:
        QEMU runs in a private mount namespace and would not see a later mount."""
        if os.geteuid() != 0:
            raise LabError("a full-filesystem job needs root to mount a tmpfs")
        mnt = self.root / f"tmpfs-{name}"
        mnt.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(mnt)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise LabError(f"cannot mount tmpfs at {mnt}: {proc.stderr.strip()}")
        self._mounts.append(mnt)
        return mnt

    def domain(
        self,
        name: str,
        disks: list[DiskSpec] | None = None,
        *,
        memory_mib: int = 64,
        os_xml: str = "",
        extra_devices: str = "",
        kvm: bool | None = None,
        start: bool = True,
    ) -> libvirt.virDomain:
        """Define (persistent, so managed save and kept stats work) and start a domain.

        Without `disks`, one 256 MiB disk with 128 MiB of data is made.
        """
        self._check_open()
        with contextlib.suppress(libvirt.libvirtError):
            self.conn.lookupByName(name)
            raise LabError(f"domain {name!r} already exists in {self.uri}")
        if disks is None:
            disks = [DiskSpec("vda", self.image(f"{name}-vda", 256, 128))]
        for d in disks:
            if not d.path.exists():
                raise LabError(f"disk image {d.path} for {name}/{d.target} does not exist")
        xml = xmlgen.domain_xml(
            name,
            disks,
            memory_mib=memory_mib,
            kvm=self.kvm if kvm is None else kvm,
            os_xml=os_xml,
            extra_devices=extra_devices,
        )
        try:
            dom = self.conn.defineXML(xml)
            self._domains.append(name)
            if start:
                dom.create()
        except libvirt.libvirtError as err:
            raise LabError(f"cannot start domain {name!r}: {_libvirt_reason(err)}") from None
        return dom

    def filled_domain(
        self,
        name: str,
        memory_mib: int = 256,
        *,
        dirty_mib: int = 0,
        disks: list[DiskSpec] | None = None,
        wait: float = 120.0,
    ) -> libvirt.virDomain:
        """A TCG domain whose tiny guest fills its RAM with data (save/dump/migration
        then move real bytes); returns once the guest says it is done."""
        from jobtui.lab import guest

        kernel = guest.build_guest(self.root / "guest")
        log = self.root / f"{name}-serial.log"
        cmdline = f"dirty={dirty_mib}" if dirty_mib else ""
        dom = self.domain(
            name,
            disks if disks is not None else [],
            memory_mib=memory_mib,
            os_xml=guest.guest_os_xml(kernel, cmdline),
            extra_devices=guest.serial_xml(log),
            # Nested KVM touches guest RAM at ~1 MiB/s here; TCG is far faster.
            kvm=False,
        )
        guest.wait_for_serial(log, "jobtui-fill: done", wait)
        return dom

    def _check_open(self) -> None:
        if self._closed:
            raise LabError("the lab is closed")

    # --- block jobs ------------------------------------------------------------------

    def start_copy(
        self,
        dom: libvirt.virDomain,
        disk: str,
        *,
        bandwidth: int = 8 * MiB,
        dest: Path | None = None,
    ) -> Path:
        """A block copy (mirror); reaches READY and waits for pivot or abort."""
        dest = dest or self.images / f"{dom.name()}-{disk}-copy-{uuid.uuid4().hex[:6]}.qcow2"
        params = {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: bandwidth} if bandwidth else {}
        # libvirt refuses a copy on a persistent domain unless the job is transient
        # (it would not survive a restart of the domain).
        flags = libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        self._block_call(
            dom,
            disk,
            "copy",
            lambda: dom.blockCopy(disk, xmlgen.copy_dest_xml(dest), params, flags),
        )
        return dest

    def start_pull(self, dom: libvirt.virDomain, disk: str, *, bandwidth: int = 8 * MiB) -> None:
        flags = libvirt.VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES
        self._block_call(dom, disk, "pull", lambda: dom.blockPull(disk, bandwidth, flags))

    def start_commit(
        self, dom: libvirt.virDomain, disk: str, *, bandwidth: int = 8 * MiB, top: int = 1
    ) -> None:
        """Commit the layer `top` levels below the active one into the layer below it.

        libvirt numbers a chain from the active layer: `vda[1]` is the top.
        """
        flags = libvirt.VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES
        self._block_call(
            dom,
            disk,
            "commit",
            lambda: dom.blockCommit(
                disk, f"{disk}[{top + 2}]", f"{disk}[{top + 1}]", bandwidth, flags
            ),
        )

    def start_active_commit(
        self, dom: libvirt.virDomain, disk: str, *, bandwidth: int = 8 * MiB
    ) -> None:
        flags = (
            libvirt.VIR_DOMAIN_BLOCK_COMMIT_ACTIVE | libvirt.VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES
        )
        self._block_call(
            dom, disk, "active commit", lambda: dom.blockCommit(disk, None, None, bandwidth, flags)
        )

    def _block_call(
        self, dom: libvirt.virDomain, disk: str, what: str, call: Callable[[], object]
    ) -> None:
        self._check_open()
        try:
            call()
        except libvirt.libvirtError as err:
            raise LabError(
                f"cannot start {what} on {dom.name()}/{disk}: {_libvirt_reason(err)}"
            ) from None

    # --- domain jobs -----------------------------------------------------------------

    def start_backup(
        self, dom: libvirt.virDomain, disks: list[str], *, bandwidth: int = 8 * MiB
    ) -> dict[str, Path]:
        """Push-mode backup of `disks`, throttled per disk right after it starts."""
        self._check_open()
        stamp = uuid.uuid4().hex[:6]
        targets = {d: self.images / f"{dom.name()}-{d}-backup-{stamp}.qcow2" for d in disks}
        try:
            dom.backupBegin(xmlgen.push_backup_xml(targets), None, 0)
            for d in disks:
                with contextlib.suppress(libvirt.libvirtError):
                    dom.blockJobSetSpeed(
                        d, bandwidth, libvirt.VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES
                    )
        except libvirt.libvirtError as err:
            raise LabError(f"cannot start backup on {dom.name()}: {_libvirt_reason(err)}") from None
        return targets

    def start_pull_backup(self, dom: libvirt.virDomain, disks: list[str]) -> Path:
        """Pull-mode backup: an NBD export that runs until aborted (an endless job)."""
        self._check_open()
        stamp = uuid.uuid4().hex[:6]
        sock = self.root / f"nbd-{dom.name()}-{stamp}.sock"
        scratch = {d: self.images / f"{dom.name()}-{d}-scratch-{stamp}.qcow2" for d in disks}
        try:
            dom.backupBegin(xmlgen.pull_backup_xml(sock, scratch), None, 0)
        except libvirt.libvirtError as err:
            raise LabError(
                f"cannot start pull backup on {dom.name()}: {_libvirt_reason(err)}"
            ) from None
        return sock

    def start_save(self, dom: libvirt.virDomain, path: Path | None = None) -> BackgroundCall:
        """`dom.save()` blocks for the whole job: run it in a thread."""
        path = path or self.root / f"{dom.name()}-{uuid.uuid4().hex[:6]}.save"
        return self._background(f"save {dom.name()}", lambda: dom.save(str(path)), path)

    def start_restore(self, path: Path) -> BackgroundCall:
        """`conn.restore()` blocks until the domain runs again."""
        return self._background(f"restore {path.name}", lambda: self.conn.restore(str(path)), path)

    def start_managed_save(self, dom: libvirt.virDomain) -> BackgroundCall:
        return self._background(f"managed save {dom.name()}", lambda: dom.managedSave(0), None)

    def start_dump(
        self, dom: libvirt.virDomain, path: Path | None = None, *, memory_only: bool = False
    ) -> BackgroundCall:
        path = path or self.root / f"{dom.name()}-{uuid.uuid4().hex[:6]}.core"
        if memory_only:
            fmt = libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_KDUMP_ZLIB
            flags = libvirt.VIR_DUMP_MEMORY_ONLY | libvirt.VIR_DUMP_LIVE
        else:
            fmt = libvirt.VIR_DOMAIN_CORE_DUMP_FORMAT_RAW
            flags = libvirt.VIR_DUMP_LIVE
        return self._background(
            f"dump {dom.name()}",
            lambda: dom.coreDumpWithFormat(str(path), fmt, flags),
            path,
        )

    def _background(
        self, what: str, call: Callable[[], object], path: Path | None
    ) -> BackgroundCall:
        self._check_open()
        bg = BackgroundCall(what, call, path)
        self._threads.append(bg.thread)
        bg.thread.start()
        return bg


class BackgroundCall:
    """A blocking libvirt call (save, dump) running in its own thread."""

    def __init__(self, what: str, call: Callable[[], object], path: Path | None) -> None:
        self.what = what
        self.path = path
        self.error: str | None = None
        self.error_code: int | None = None
        self.done = threading.Event()
        self.started = time.monotonic()
        self.finished: float | None = None

        def run() -> None:
            try:
                call()
            except libvirt.libvirtError as err:
                self.error = _libvirt_reason(err)
                self.error_code = err.get_error_code()
            finally:
                self.finished = time.monotonic()
                self.done.set()

        self.thread = threading.Thread(target=run, name=what, daemon=True)

    def wait(self, timeout: float = 120.0) -> None:
        if not self.done.wait(timeout):
            raise LabError(f"{self.what} did not finish within {timeout:.0f} s")
