"""A private libvirtd that tests and demos start and stop themselves.

The daemon runs in its own mount namespace with private directories bound over
libvirt's fixed state paths (/etc/libvirt, /run/libvirt, /var/lib/libvirt,
/var/cache/libvirt, /var/log/libvirt), so two of them (a two-host migration
demo), the machine's own daemon and an embedded driver never share state.
Its sockets live outside those mounts so clients in the normal namespace reach
it through the remote driver. QEMU runs as root (see `_write_configs`), and a
test or demo destroys what it started: QEMU outlives a stopped daemon.

Usage (keep base short: the socket path must fit AF_UNIX's 107 bytes)::

    with PrivateDaemon(base, "host1", caps_cache=default_caps_cache()) as d:
        conn = libvirt.open(d.uri)
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libvirt

# libvirt's fixed paths -> subdirectory of the daemon's private tree.
_BIND_DIRS: dict[str, str] = {
    "/etc/libvirt": "etc",
    "/run/libvirt": "run",
    "/var/lib/libvirt": "lib",
    "/var/cache/libvirt": "cache",
    "/var/log/libvirt": "log",
}
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCK_PATH = 107
_LOG_TAIL_CHARS = 600
_CAPS_SUBDIR = Path("cache/qemu/capabilities")


def default_caps_cache() -> Path:
    """A per-user, per-CPU place to share QEMU capability probes between daemons.

    Per CPU because the cache is only valid for the CPU the daemon is pinned
    to (see PrivateDaemon._script).
    """
    cpu = min(os.sched_getaffinity(0))
    return Path(tempfile.gettempdir()) / f"jobtui-qemu-caps-{os.getuid()}-cpu{cpu}"


class PrivateDaemon:
    """A libvirtd with its own config, state, sockets and host UUID.

    Everything lives under ``base_dir / name``: ``etc``, ``run``, ``lib``,
    ``cache``, ``log`` (bound over libvirt's paths inside the namespace),
    ``sock`` (the unix sockets), ``libvirtd.log``, ``wrapper.log`` (mount
    errors) and ``libvirtd.pid``.

    ``caps_cache``: a directory shared between daemons to seed and collect
    libvirt's QEMU capability cache; without it every fresh ``base_dir`` pays
    a ~4 s QEMU probe per binary on its first domain start (~8 s for
    ``getCapabilities``, which probes x86_64 and i386).
    """

    def __init__(
        self,
        base_dir: Path,
        name: str = "host1",
        migration_ports: tuple[int, int] | None = None,
        *,
        caps_cache: Path | None = None,
        extra_conf: Sequence[str] = (),
        listen: bool = False,
    ) -> None:
        """`extra_conf`: more libvirtd.conf lines (after ours, so they win); `listen`:
        pass --listen, so listen_tls/listen_tcp in them take effect (the TLS lab)."""
        self.name = name
        self.extra_conf = list(extra_conf)
        self.listen = listen
        self.root = Path(base_dir).resolve() / name
        self.migration_ports = migration_ports
        self.caps_cache = caps_cache
        self.sock_dir = self.root / "sock"
        self.conf_path = self.root / "etc" / "libvirtd.conf"
        self._log_path = self.root / "libvirtd.log"
        self._wrapper_log = self.root / "wrapper.log"
        self._pid_file = self.root / "libvirtd.pid"
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        sock = self.sock_dir / "libvirt-sock"
        if len(os.fsencode(str(sock))) > _MAX_SOCK_PATH:
            raise ValueError(f"socket path too long for AF_UNIX ({len(str(sock))} > 107): {sock}")
        self.host_uuid = self._existing_uuid() or str(uuid.uuid4())
        self.start_seconds: float | None = None

    # -- properties ---------------------------------------------------------

    @property
    def uri(self) -> str:
        # "qemu+unix", not "qemu": once a process has opened qemu:///embed,
        # libvirt treats it as "inside a daemon" and the remote driver
        # declines transport-less local URIs, so "qemu:///system?socket=..."
        # then fails with "Missing URI parameter 'root'". An explicit
        # transport still goes to the remote driver (measured, libvirt 9.0).
        # The same holds inside libvirtd: as a peer-to-peer migration target
        # the plain form names the source daemon itself ("Attempt to migrate
        # guest to the same host"); this one reaches the other daemon.
        return f"qemu+unix:///system?socket={self.sock_dir / 'libvirt-sock'}"

    @property
    def pid(self) -> int | None:
        """PID of libvirtd itself (unshare, sh and taskset exec into it), or None."""
        if self._proc is None or self._proc.poll() is not None:
            return None
        return self._proc.pid

    @property
    def log_path(self) -> Path:
        return self._log_path

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    # -- lifecycle ----------------------------------------------------------

    def start(self, timeout: float = 30) -> PrivateDaemon:
        """Start libvirtd and wait until a connection answers.

        Raises RuntimeError (one line, with the tail of the daemon's log) if
        it exits or does not answer within ``timeout`` seconds.
        """
        if self.running:
            return self
        other = self._foreign_daemon()
        if other is not None:
            # Another PrivateDaemon object (or process) owns these dirs; going
            # on would delete its live sockets below.
            raise RuntimeError(f"libvirtd {self.name} already runs on {self.root} (pid {other})")
        self._prepare_dirs()
        self._write_configs()
        self._seed_caps()
        # A libvirtd killed with SIGKILL leaves its socket files behind; the
        # readiness poll waits for the socket to appear, so clear them.
        for s in self.sock_dir.glob("*sock*"):
            s.unlink(missing_ok=True)
        t0 = time.monotonic()
        wrapper_log = open(self._wrapper_log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c", self._script()],
                stdin=subprocess.DEVNULL,
                stdout=wrapper_log,
                stderr=wrapper_log,
                env=self._env(),
                # Own session: a Ctrl-C in the test terminal must not kill the
                # daemon before stop() has destroyed its domains.
                start_new_session=True,
                close_fds=True,
            )
        finally:
            wrapper_log.close()
        self._paused = False
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._terminate(signal.SIGKILL)
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """Destroy every domain, undefine persistent ones, end the daemon.

        Idempotent and safe after kill(): QEMU processes a dead daemon left
        behind are killed through the pids in its status files. Nothing is
        removed outside base_dir.
        """
        if self._paused:
            self.resume()
        if self.running:
            with contextlib.suppress(Exception):
                self._destroy_all_domains()
            self._terminate(signal.SIGTERM)
        # Also covers a domain destroy() above could not get rid of; but the
        # domains of a live daemon another object started are not ours.
        if self._foreign_daemon() is None:
            self._kill_leftover_qemu()
        self._collect_caps()

    def kill(self) -> None:
        """SIGKILL libvirtd (fault tests); its QEMU processes keep running."""
        self._terminate(signal.SIGKILL)

    def restart(self, timeout: float = 30) -> PrivateDaemon:
        """Start a fresh libvirtd on the same dirs; it re-attaches running QEMUs.

        A running daemon gets SIGTERM first (libvirtd leaves QEMU running).
        """
        self._terminate(signal.SIGTERM)
        return self.start(timeout)

    def pause(self, timeout: float = 5) -> None:
        """SIGSTOP libvirtd: connections stay open but nothing answers.

        Returns once the kernel reports the process stopped (signals are
        asynchronous), so a test can rely on it at once.
        """
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGSTOP)
            self._paused = True
            _wait_state(pid, lambda st: st in "TtX", timeout)

    def resume(self, timeout: float = 5) -> None:
        pid = self.pid
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
            _wait_state(pid, lambda st: st not in "Tt", timeout)
        self._paused = False

    def qemu_pids(self) -> dict[str, int]:
        """Live QEMU processes by domain name, read from the status files.

        Works while the daemon is dead: libvirt keeps one ``<domstatus pid=...>``
        file per running domain under run/qemu.
        """
        found: dict[str, int] = {}
        for status in (self.root / "run" / "qemu").glob("*.xml"):
            try:
                text = status.read_text()
            except OSError:
                continue
            pid_m = re.search(r"<domstatus\b[^>]*\bpid='(\d+)'", text)
            uuid_m = re.search(r"<uuid>([0-9a-f-]+)</uuid>", text)
            if not pid_m or not uuid_m:
                continue
            pid = int(pid_m.group(1))
            # Guard against pid reuse: our QEMU carries the domain's UUID.
            if _pid_alive(pid) and f"-uuid {uuid_m.group(1)}" in _cmdline(pid):
                found[status.stem] = pid
        return found

    def __enter__(self) -> PrivateDaemon:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"PrivateDaemon(name={self.name!r}, pid={self.pid}, uri={self.uri!r})"

    # -- internals ----------------------------------------------------------

    def _existing_uuid(self) -> str | None:
        """Keep the host UUID of an earlier daemon on the same dirs: same host."""
        try:
            m = re.search(r'^host_uuid\s*=\s*"([^"]+)"', self.conf_path.read_text(), re.M)
        except OSError:
            return None
        return m.group(1) if m else None

    def _foreign_daemon(self) -> int | None:
        try:
            pid = int(self._pid_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if _pid_alive(pid) and str(self.conf_path) in _cmdline(pid):
            return pid
        return None

    def _prepare_dirs(self) -> None:
        for sub in (*_BIND_DIRS.values(), "sock"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # A bind mount needs its target to exist, and Debian creates these
        # only with libvirt-daemon-system (here /var/cache/libvirt was
        # missing). Creating one inside the namespace would create it on the
        # host anyway (only mounts are private), so do it openly: an empty
        # directory, what the package would have made.
        for target in _BIND_DIRS:
            Path(target).mkdir(parents=True, exist_ok=True)

    def _write_configs(self) -> None:
        daemon_conf = {
            "unix_sock_dir": str(self.sock_dir),
            "unix_sock_ro_perms": "0777",
            "unix_sock_rw_perms": "0770",
            "unix_sock_admin_perms": "0700",
            "auth_unix_ro": "none",
            "auth_unix_rw": "none",
            "host_uuid": self.host_uuid,
            # A file, not stderr, so errors can quote it.
            "log_outputs": f"3:file:{self._log_path}",
        }
        lines = [f'{k} = "{v}"' for k, v in daemon_conf.items()]
        # Only the unix socket, unless extra_conf (and --listen) says otherwise.
        lines += ["listen_tcp = 0", "listen_tls = 0"]
        # libvirt's config reader takes the first of two equal keys: drop ours instead.
        extra_keys = {line.split("=", 1)[0].strip() for line in self.extra_conf}
        lines = [line for line in lines if line.split("=", 1)[0].strip() not in extra_keys]
        lines += self.extra_conf
        self.conf_path.write_text("\n".join(lines) + "\n")

        qemu = [
            # QEMU as root: /dev/kvm may be root-only, and a QEMU that cannot
            # use it makes every start re-probe capabilities (~40 s measured).
            'user = "root"',
            'group = "root"',
            "dynamic_ownership = 0",
            "remember_owner = 0",
            # The default "logd" would need a virtlogd of our own.
            'stdio_handler = "file"',
        ]
        if self.migration_ports is not None:
            lo, hi = self.migration_ports
            qemu += [f"migration_port_min = {lo}", f"migration_port_max = {hi}"]
        (self.root / "etc" / "qemu.conf").write_text("\n".join(qemu) + "\n")

    def _script(self) -> str:
        mounts = [
            f"mount --bind {shlex.quote(str(self.root / sub))} {shlex.quote(target)}"
            for target, sub in _BIND_DIRS.items()
        ]
        # Pinned to one CPU: libvirt keys its QEMU capability cache on the
        # host cpuid, and leaf 0x1f reports the x2APIC id of the CPU the
        # calling thread happens to run on, so an unpinned daemon finds its
        # cache "outdated: host cpuid changed" at random and re-probes QEMU
        # (~4 s per binary). QEMU itself still gets every CPU: libvirt resets
        # the affinity of the processes it starts.
        cpu = min(os.sched_getaffinity(0))
        exec_line = (
            f"exec taskset -c {cpu} libvirtd -f {shlex.quote(str(self.conf_path))}"
            f" -p {shlex.quote(str(self._pid_file))}" + (" --listen" if self.listen else "")
        )
        return "set -e\n" + "\n".join(mounts) + "\n" + exec_line + "\n"

    @staticmethod
    def _env() -> dict[str, str]:
        # quiet_libvirt() may have set LIBVIRT_LOG_OUTPUTS in our process; it
        # would override the daemon's log_outputs. LISTEN_* would make
        # libvirtd believe it was socket-activated.
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("LIBVIRT_", "LISTEN_", "VIR_"))
        }
        path = env.get("PATH", "/usr/bin:/bin").split(":")
        env["PATH"] = ":".join(path + [p for p in ("/usr/sbin", "/sbin") if p not in path])
        return env

    def _open(self) -> libvirt.virConnect:
        from jobtui.engine.eventloop import ensure_event_loop

        # libvirt's event implementation must be registered before the first connection.
        ensure_event_loop()
        import libvirt

        return libvirt.open(self.uri)

    def _wait_ready(self, timeout: float) -> None:
        from jobtui.engine.eventloop import ensure_event_loop

        ensure_event_loop()
        import libvirt

        deadline = time.monotonic() + timeout
        last_err = "no socket yet"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                rc = None if self._proc is None else self._proc.returncode
                raise RuntimeError(
                    f"libvirtd {self.name} exited (rc={rc}) before answering: "
                    f"{_log_tail(self._wrapper_log, self._log_path)}"
                )
            # Probe only once the socket exists: no connect error every 20 ms.
            if (self.sock_dir / "libvirt-sock").exists():
                try:
                    libvirt.open(self.uri).close()
                    return
                except libvirt.libvirtError as e:
                    last_err = str(e)
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"libvirtd {self.name} not ready after {timeout:g}s ({last_err}): "
                    f"{_log_tail(self._wrapper_log, self._log_path)}"
                )
            time.sleep(0.02)

    def _destroy_all_domains(self) -> None:
        import libvirt

        def finish(dom: libvirt.virDomain) -> None:
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isActive():
                    dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                if dom.isPersistent():
                    dom.undefineFlags(
                        libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                        | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                        | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                        | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                    )

        conn = self._open()
        try:
            doms = conn.listAllDomains()
            # In parallel: each destroy() takes ~1.3 s here even for an idle
            # TCG guest. Stay well under libvirtd's 20 worker threads.
            with ThreadPoolExecutor(max_workers=min(8, len(doms) or 1)) as pool:
                list(pool.map(finish, doms))
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def _terminate(self, sig: signal.Signals, grace: float = 10) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if self._paused:
                    # A stopped process never acts on SIGTERM.
                    os.kill(proc.pid, signal.SIGCONT)
                proc.send_signal(sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._proc = None
        self._paused = False

    def _kill_leftover_qemu(self, grace: float = 5) -> None:
        pids = list(self.qemu_pids().values())
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + grace
        while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.02)

    def _seed_caps(self) -> None:
        src = self._usable_caps_cache()
        if src is None:
            return
        dst = self.root / _CAPS_SUBDIR
        dst.mkdir(parents=True, exist_ok=True)
        for f in src.glob("*.xml"):
            if not (dst / f.name).exists():
                with contextlib.suppress(OSError):
                    shutil.copyfile(f, dst / f.name)

    def _collect_caps(self) -> None:
        """Hand fresh probes back to the shared cache (atomically: tests race)."""
        if self.caps_cache is None:
            return
        with contextlib.suppress(OSError):
            self.caps_cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        dst = self._usable_caps_cache()
        if dst is None:
            return
        for f in (self.root / _CAPS_SUBDIR).glob("*.xml"):
            with contextlib.suppress(OSError):
                if (dst / f.name).exists() and (dst / f.name).read_bytes() == f.read_bytes():
                    continue
                tmp = dst / f".{f.name}.{os.getpid()}.tmp"
                shutil.copyfile(f, tmp)
                os.replace(tmp, dst / f.name)

    def _usable_caps_cache(self) -> Path | None:
        # libvirtd trusts this content: only a directory we own, private.
        d = self.caps_cache
        if d is None:
            return None
        try:
            st = d.stat()
        except OSError:
            return None
        if st.st_uid != os.getuid() or st.st_mode & 0o022:
            return None
        return d


def _log_tail(*paths: Path, chars: int = _LOG_TAIL_CHARS) -> str:
    """The end of the given logs on one line, for error messages."""
    text = ""
    for p in paths:
        with contextlib.suppress(OSError):
            text += p.read_text(errors="replace")
    text = " | ".join(line.strip() for line in text.splitlines() if line.strip())
    return text[-chars:] if text else "(log empty)"


def _pid_alive(pid: int) -> bool:
    # Zombies count as dead: QEMU is re-parented to PID 1, which here reaps
    # orphans only after a delay (seen: seconds), so a killed QEMU lingers
    # as a zombie.
    return _proc_state(pid) not in "ZX"


def _proc_state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def _wait_state(pid: int, ok: Callable[[str], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok(_proc_state(pid)) and time.monotonic() < deadline:
        time.sleep(0.002)


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def daemon_processes(root: Path) -> Iterator[int]:
    """PIDs of live libvirtd processes whose config lives under ``root``."""
    needle = str(Path(root).resolve())
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            pid = int(entry.name)
            cmd = _cmdline(pid)
            if "libvirtd" in cmd and needle in cmd and _pid_alive(pid):
                yield pid


def start_private_daemon(base: Path, name: str) -> PrivateDaemon:
    """Start a private daemon under ``base / name``; the caller must stop() it.

    Shares QEMU capability probes through default_caps_cache(), so only the
    first daemon on a machine pays for them.
    """
    return PrivateDaemon(base, name, caps_cache=default_caps_cache()).start()
