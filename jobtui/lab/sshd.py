"""A real sshd on a loopback port, so the lab reaches its libvirtd the way operators do.

The server (`/usr/sbin/sshd -D -f CONFIG`) and the client (`ssh -F CONFIG`) both run
from files the lab writes into its own directory: host key, client keys,
authorized_keys, known_hosts. Nothing under /etc/ssh or ~/.ssh is read or written.
It listens on 127.0.0.1 only.

libvirt's ssh transport runs the `ssh` binary (any `command=`) and, on the remote
side, `nc -U SOCKET` when the URI names a socket (`virt-ssh-helper` would connect to
the default socket, not a private daemon's: measured, libvirt 9.0). The URI's
`known_hosts=` applies only to libvirt's libssh transports, not to the ssh binary, so
the known_hosts file is given through the client config that `command=` points at.

    with LabSshd(base) as sshd:
        uri = sshd.uri(daemon.sock_dir / "libvirt-sock")   # qemu+ssh://root@127.0.0.1:PORT/...
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from jobtui.lab.daemon import _cmdline, _log_tail, _pid_alive
from jobtui.lab.images import LabError

SSHD = "/usr/sbin/sshd"
LOOPBACK = "127.0.0.1"
# sshd's privilege separation directory; Debian's unit creates it, a bare sshd needs it.
_PRIVSEP_DIR = Path("/run/sshd")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def _keygen(path: Path) -> None:
    for p in (path, path.with_suffix(".pub")):
        p.unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "jobtui-lab", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )


class LabSshd:
    """sshd on 127.0.0.1:PORT with its own host key, one authorized client key (`key`),
    one that is not authorized (`stranger_key`) and a client config (`ssh_command`)
    whose known_hosts holds the host key as it was when the lab started."""

    def __init__(self, base: Path, port: int | None = None) -> None:
        self.dir = Path(base).resolve() / "sshd"
        self.port = port or free_port()
        self.host_key = self.dir / "host_ed25519"
        self.key = self.dir / "client_ed25519"
        self.stranger_key = self.dir / "stranger_ed25519"
        self.known_hosts = self.dir / "known_hosts"
        self.ssh_command = self.dir / "ssh"
        self._config = self.dir / "sshd_config"
        self._client_config = self.dir / "ssh_config"
        self._log = self.dir / "sshd.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._made = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float = 10) -> LabSshd:
        if self.running:
            return self
        if not self._made:
            self._make_files()
        _PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        log = open(self._log, "ab")  # noqa: SIM115 - handed to the child
        try:
            self._proc = subprocess.Popen(
                # -D: stay in the foreground, our child; -e: log to stderr (our file).
                [SSHD, "-D", "-e", "-f", str(self._config)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                close_fds=True,
            )
        finally:
            log.close()
        try:
            self._wait_listening(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """End sshd and every session it started (ssh sessions outlive the listener
        otherwise: each runs in a session of its own), and what those sessions run."""
        proc = self._proc
        if proc is None:
            return
        doomed = [proc.pid, *self._descendants(proc.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in doomed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                proc.poll()
                if not any(_pid_alive(p) for p in doomed):
                    break
                time.sleep(0.02)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(1)
        self._proc = None

    def restart(self, timeout: float = 10) -> LabSshd:
        self.stop()
        return self.start(timeout)

    def new_host_key(self) -> None:
        """Give the server a new host key (the client's known_hosts keeps the old one),
        as a reinstalled or impersonated host would; takes effect at the next start."""
        _keygen(self.host_key)

    def __enter__(self) -> LabSshd:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients use -----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def uri(self, socket_path: Path, *, key: Path | None = None, user: str = "root") -> str:
        """A qemu+ssh URI to the libvirtd listening on `socket_path` behind this sshd.

        no_tty=1: ssh runs with BatchMode, so an unknown or changed host key and a
        refused key are errors, never a prompt; no_verify=0: the host key is checked."""
        params = {
            "socket": str(socket_path),
            "keyfile": str(key or self.key),
            "command": str(self.ssh_command),
            "no_tty": "1",
            "no_verify": "0",
        }
        query = "&".join(f"{k}={quote(v, safe='/')}" for k, v in params.items())
        return f"qemu+ssh://{user}@{LOOPBACK}:{self.port}/system?{query}"

    def client_pids(self) -> list[int]:
        """The ssh client processes (any process) that use this lab's client config."""
        needle = str(self._client_config)
        return [
            int(e.name)
            for e in Path("/proc").iterdir()
            if e.name.isdigit()
            and needle in _cmdline(int(e.name))
            and _cmdline(int(e.name)).startswith("/usr/bin/ssh ")
            and _pid_alive(int(e.name))
        ]

    def session_pids(self) -> list[int]:
        """sshd's per-connection processes (children of the listener)."""
        return self._descendants(self._proc.pid) if self.running and self._proc else []

    def pause_sessions(self) -> list[int]:
        """SIGSTOP sshd's per-connection processes: every client's TCP connection stays
        open but goes silent, as with a hung host. Returns them for resume_sessions()."""
        pids = [p for p in self.session_pids() if _cmdline(p).startswith("sshd:")]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        return pids

    def resume_sessions(self, pids: list[int]) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    # -- internals ------------------------------------------------------------------------

    def _make_files(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        for k in (self.host_key, self.key, self.stranger_key):
            _keygen(k)
        self.key.with_suffix(".pub").replace(self.dir / "authorized_keys")
        host_pub = self.host_key.with_suffix(".pub").read_text().split()
        self.known_hosts.write_text(f"[{LOOPBACK}]:{self.port} {host_pub[0]} {host_pub[1]}\n")
        self._config.write_text(
            "\n".join(
                [
                    f"Port {self.port}",
                    f"ListenAddress {LOOPBACK}",
                    f"HostKey {self.host_key}",
                    f"PidFile {self.dir / 'sshd.pid'}",
                    f"AuthorizedKeysFile {self.dir / 'authorized_keys'}",
                    "PermitRootLogin prohibit-password",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    # No PAM: no login records, no /etc/pam.d policy of this machine.
                    "UsePAM no",
                    # The lab's files sit under a shared temp tree.
                    "StrictModes no",
                    "X11Forwarding no",
                    "AllowTcpForwarding no",
                    "PrintMotd no",
                    "LogLevel VERBOSE",
                    # A fleet opens one connection per host at once: past 10 connections
                    # still authenticating sshd's default (10:30:100) drops new ones at
                    # random, which no real fleet (an sshd per host) would see.
                    "MaxStartups 200",
                ]
            )
            + "\n"
        )
        # -F: neither /etc/ssh/ssh_config nor ~/.ssh/config nor ~/.ssh/known_hosts is read.
        self._client_config.write_text(
            "\n".join(
                [
                    f"UserKnownHostsFile {self.known_hosts}",
                    "GlobalKnownHostsFile /dev/null",
                    "StrictHostKeyChecking yes",
                    "UpdateHostKeys no",
                    "BatchMode yes",
                    "IdentitiesOnly yes",
                    "ConnectTimeout 5",
                    # Only the verdict: libvirt passes ssh's stderr on in one error of
                    # bounded size, and the changed-host-key banner (which quotes the
                    # known_hosts path three times) overflows it into "Value too large
                    # for defined data type" (measured, libvirt 9.0).
                    "LogLevel FATAL",
                ]
            )
            + "\n"
        )
        self.ssh_command.write_text(f'#!/bin/sh\nexec /usr/bin/ssh -F {self._client_config} "$@"\n')
        os.chmod(self.ssh_command, 0o755)
        self._made = True

    def _wait_listening(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self._proc is None or self._proc.poll() is not None:
                raise LabError(f"sshd on port {self.port} exited: {_log_tail(self._log)}")
            with (
                socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s,
                contextlib.suppress(OSError),
            ):
                s.settimeout(0.5)
                s.connect((LOOPBACK, self.port))
                # sshd greets first: "SSH-2.0-...".
                if s.recv(4).startswith(b"SSH-"):
                    return
            if time.monotonic() >= deadline:
                raise LabError(f"sshd on port {self.port} not listening: {_log_tail(self._log)}")
            time.sleep(0.02)

    @staticmethod
    def _descendants(root: int) -> list[int]:
        children: dict[int, list[int]] = {}
        for e in Path("/proc").iterdir():
            if not e.name.isdigit():
                continue
            try:
                stat = (e / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(e.name))
        out: list[int] = []
        todo = [root]
        while todo:
            for c in children.get(todo.pop(), []):
                out.append(c)
                todo.append(c)
        return out
