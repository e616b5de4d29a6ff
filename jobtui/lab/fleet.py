"""A fleet on one machine: N private libvirtd hosts behind ONE lab sshd, M domains each.

Each host is a `PrivateDaemon` (its own libvirtd in its own mount namespace), sharing
the QEMU capability cache so only the first start on a machine probes QEMU. Every
domain is small and OS-less (KVM when /dev/kvm is usable, else TCG; 32 MiB by default)
with one qcow2 disk `vda`. 1,000 QEMUs do not fit a 2-core machine, so only `running`
domains per host are started; the others stay defined and shut off (libvirt lists them
and jobtui shows them all the same). Started domains are paused from the start by
default: their QEMU, monitor and block layer run (block jobs too) but no vCPU, since an
OS-less guest looping in SeaBIOS costs ~3 % of a core per QEMU under nested KVM.
`jobs` throttled block copies run on running domains, spread over the hosts round-robin.

Clients reach every host over the one sshd (`uris`: qemu+ssh with `socket=` naming
each daemon's socket) or directly (`local_uris`: qemu+unix); `hosts_file` names them
`h00`, `h01`, ... in group `fleet`. Everything is torn down on exit: copies end with
their domains, daemons stop (destroying and undefining their domains, killing any
QEMU left), sshd and its sessions end, the directory goes.

    with Fleet(hosts=20, domains=10, running=10, jobs=10) as fleet:
        env = {**os.environ, "JOBTUI_HOSTS": str(fleet.hosts_file)}
        subprocess.run(["jobtui", "list"], env=env)

    python -m jobtui.lab.fleet --hosts 3 --domains 3 --jobs 2   # until Ctrl-C or SIGTERM
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType

import libvirt

from jobtui.engine.eventloop import ensure_event_loop
from jobtui.lab.core import kvm_usable
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache
from jobtui.lab.images import LabError, create_image
from jobtui.lab.sshd import LabSshd
from jobtui.lab.xmlgen import DiskSpec, copy_dest_xml, domain_xml

# Starting QEMUs and creating images: a few at a time on 2 cores.
_PARALLEL = 4
_JOB_IMAGE_MIB = 128


@dataclass
class FleetHost:
    name: str  # h00, h01, ...
    daemon: PrivateDaemon
    ssh_uri: str = ""
    conn: libvirt.virConnect | None = None  # direct (unix socket): setup and the truth
    domains: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)

    @property
    def local_uri(self) -> str:
        return self.daemon.uri

    @property
    def images(self) -> Path:
        # Outside the daemon's private mounts: QEMU and we see the same path.
        return self.daemon.root / "img"

    def domain(self, name: str) -> libvirt.virDomain:
        if self.conn is None:
            raise LabError(f"host {self.name} is not started")
        return self.conn.lookupByName(name)


class Fleet:
    """`hosts` private daemons with `domains` domains each, `running` of them started
    (all by default), `jobs` throttled copies (at `job_bandwidth` bytes/s) over them."""

    def __init__(
        self,
        hosts: int,
        domains: int,
        *,
        running: int | None = None,
        jobs: int = 0,
        job_bandwidth: int = 256 * 1024,
        memory_mib: int = 32,
        paused: bool = True,
        base: Path | str | None = None,
    ) -> None:
        if hosts < 1 or domains < 0:
            raise LabError("a fleet needs at least one host and no negative domain count")
        self.running_per_host = domains if running is None else min(running, domains)
        if jobs > hosts * self.running_per_host:
            raise LabError(
                f"{jobs} jobs need {jobs} running domains; the fleet runs "
                f"{hosts * self.running_per_host}"
            )
        self.domains_per_host = domains
        self.jobs = jobs
        self.job_bandwidth = job_bandwidth
        self.memory_mib = memory_mib
        self.paused = paused
        self.kvm = kvm_usable()
        self._own_base = base is None
        # Short: each daemon's socket path must fit AF_UNIX's 107 bytes.
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="jtf-"))
        caps = default_caps_cache()
        self.hosts = [
            FleetHost(f"h{i:02d}", PrivateDaemon(self.base, f"h{i:02d}", caps_cache=caps))
            for i in range(hosts)
        ]
        self.sshd = LabSshd(self.base)
        self.hosts_file = self.base / "hosts.toml"
        self.copies: list[tuple[FleetHost, str]] = []  # (host, domain) of the fleet's jobs
        self._lock = threading.Lock()
        self._closed = False
        self.timings: dict[str, float] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Fleet:
        ensure_event_loop()
        try:
            t0 = time.monotonic()
            self.sshd.start()
            # libvirtd start is mostly waiting (socket, first answer): more at once.
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(self._start_host, self.hosts))
            self.timings["daemons"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._make_domains()
            self.timings["domains"] = time.monotonic() - t0
            t0 = time.monotonic()
            self._start_jobs()
            self.timings["jobs"] = time.monotonic() - t0
            self._write_hosts_file()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop every daemon (domains destroyed and undefined, QEMU left behind killed),
        sshd and its sessions, remove the directory. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.sshd.stop()
        with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
            list(pool.map(lambda h: h.daemon.stop(), self.hosts))
        # Only now: closing a connection under a running call crashes libvirt-python.
        for h in self.hosts:
            if h.conn is not None:
                with contextlib.suppress(libvirt.libvirtError):
                    h.conn.close()
                h.conn = None
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- what clients use --------------------------------------------------------------

    @property
    def uris(self) -> list[str]:
        return [h.ssh_uri for h in self.hosts]

    @property
    def local_uris(self) -> list[str]:
        return [h.local_uri for h in self.hosts]

    def qemu_count(self) -> int:
        return sum(len(h.daemon.qemu_pids()) for h in self.hosts)

    def start_copy(
        self, host: FleetHost, dom_name: str, bandwidth: int | None = None, tag: str = "copy"
    ) -> None:
        """A throttled block copy of `dom_name`'s vda, started on the direct connection
        (not through any jobtui): `abort_copy` ends it."""
        dest = host.images / f"{dom_name}-{tag}-{time.monotonic_ns()}.qcow2"
        params = {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: bandwidth or self.job_bandwidth}
        host.domain(dom_name).blockCopy(
            "vda", copy_dest_xml(dest), params, libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
        )

    def abort_copy(self, host: FleetHost, dom_name: str) -> None:
        host.domain(dom_name).blockJobAbort("vda", 0)

    # --- internals ---------------------------------------------------------------------

    def _start_host(self, h: FleetHost) -> None:
        h.daemon.start()
        h.images.mkdir(parents=True, exist_ok=True)
        h.conn = libvirt.open(h.local_uri)
        h.ssh_uri = self.sshd.uri(h.daemon.sock_dir / "libvirt-sock")

    def _job_domains(self) -> set[tuple[int, int]]:
        """(host index, domain index) of the domains that carry the fleet's jobs."""
        n = len(self.hosts)
        return {(k % n, k // n) for k in range(self.jobs)}

    def _make_domains(self) -> None:
        with_jobs = self._job_domains()
        todo: list[tuple[FleetHost, str, bool, bool]] = []
        for i, h in enumerate(self.hosts):
            for j in range(self.domains_per_host):
                name = f"{h.name}-d{j:02d}"
                h.domains.append(name)
                run = j < self.running_per_host
                if run:
                    h.running.append(name)
                todo.append((h, name, run, (i, j) in with_jobs))
        # Interleave hosts so every host gets its first QEMUs early.
        todo.sort(key=lambda t: (int(t[1].rsplit("d", 1)[1]), t[0].name))
        with ThreadPoolExecutor(max_workers=_PARALLEL) as pool:
            list(pool.map(lambda t: self._make_domain(*t), todo))

    def _make_domain(self, h: FleetHost, name: str, run: bool, data: bool) -> None:
        assert h.conn is not None
        # A job's disk holds real data (copies skip unallocated clusters); an idle
        # domain's disk is empty, but still a disk for the engine to look at.
        img = h.images / f"{name}.qcow2"
        if data:
            create_image(img, _JOB_IMAGE_MIB, data_mib=_JOB_IMAGE_MIB // 2)
        else:
            create_image(img, 16)
        xml = domain_xml(name, [DiskSpec("vda", img)], memory_mib=self.memory_mib, kvm=self.kvm)
        try:
            dom = h.conn.defineXML(xml)
            if run:
                dom.createWithFlags(libvirt.VIR_DOMAIN_START_PAUSED if self.paused else 0)
        except libvirt.libvirtError as err:
            reason = (err.get_error_message() or str(err)).splitlines()[0]
            raise LabError(f"cannot make {name} on {h.name}: {reason}") from None

    def _start_jobs(self) -> None:
        for i, j in sorted(self._job_domains(), key=lambda t: (t[1], t[0])):
            h = self.hosts[i]
            name = h.domains[j]
            self.start_copy(h, name, tag="job")
            self.copies.append((h, name))

    def _write_hosts_file(self) -> None:
        self.hosts_file.write_text(
            "".join(
                f'[hosts.{h.name}]\nuri = "{h.ssh_uri}"\ngroup = "fleet"\n\n' for h in self.hosts
            )
        )


@contextlib.contextmanager
def signals_end_the_run() -> Iterator[None]:
    """SIGTERM and SIGHUP end the run like Ctrl-C (KeyboardInterrupt in the main thread),
    so `with Fleet(...)` tears down on each of them."""

    said = threading.Event()

    def stop(_sig: int, _frame: FrameType | None) -> None:
        # Once: a second signal must not break the teardown the first one started.
        if not said.is_set():
            said.set()
            raise KeyboardInterrupt

    old = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m jobtui.lab.fleet", description=__doc__.split("\n")[0]
    )
    p.add_argument("--hosts", type=int, default=3)
    p.add_argument("--domains", type=int, default=3, help="domains per host")
    p.add_argument("--running", type=int, default=None, help="running domains per host (all)")
    p.add_argument("--jobs", type=int, default=0, help="throttled copies over the fleet")
    p.add_argument("--job-bandwidth", type=int, default=256 * 1024, help="bytes/s")
    p.add_argument("--memory", type=int, default=32, help="MiB per domain")
    p.add_argument("--vcpus-run", action="store_true", help="start domains running, not paused")
    args = p.parse_args(argv)
    with signals_end_the_run():
        try:
            fleet = Fleet(
                args.hosts,
                args.domains,
                running=args.running,
                jobs=args.jobs,
                job_bandwidth=args.job_bandwidth,
                memory_mib=args.memory,
                paused=not args.vcpus_run,
            )
            with fleet:
                t = fleet.timings
                print(
                    f"fleet: {len(fleet.hosts)} hosts x {args.domains} domains, "
                    f"{fleet.qemu_count()} QEMUs ({'KVM' if fleet.kvm else 'TCG'}), "
                    f"{len(fleet.copies)} copies at {args.job_bandwidth // 1024} KiB/s; "
                    f"daemons {t['daemons']:.1f} s, domains {t['domains']:.1f} s",
                    flush=True,
                )
                print(f"JOBTUI_HOSTS={fleet.hosts_file}", flush=True)
                print("Ctrl-C or SIGTERM ends the fleet.", flush=True)
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            return 0
        except LabError as err:
            print(f"fleet: {err}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Fleet", "FleetHost", "signals_end_the_run"]
