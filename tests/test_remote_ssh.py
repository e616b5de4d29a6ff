"""The CLI and the TUI over a real qemu+ssh transport: a lab sshd on 127.0.0.1 in front
of a private libvirtd, real block jobs in QEMU.

What jobtui prints or changes over ssh is checked against what libvirt itself reports
on a direct (unix socket) connection to the same daemon.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from labtools import wait_until
from systemtools import (
    Domains,
    connection,
    made_domains,
    run_jobtui,
    tui_shows_a_copy_under_the_hosts_name,
)
from test_cli_system import (
    Terminal,
    cli_env,
    disk_source,
    ok,
    one_line_error,
    start_copy,
    wait_ready,
)

from jobtui.lab import MiB
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache
from jobtui.lab.sshd import LabSshd

pytestmark = pytest.mark.system

NAME = "lab-ssh"


@dataclass
class Remote:
    daemon: PrivateDaemon
    sshd: LabSshd
    uri: str  # qemu+ssh://root@127.0.0.1:PORT/system?socket=...
    hosts: Path  # a hosts.toml naming it NAME


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Iterator[Remote]:
    # mktemp("s"): a short base, the daemon's socket path must fit AF_UNIX's 107 bytes.
    base = tmp_path_factory.mktemp("s")
    daemon = PrivateDaemon(base, "h1", caps_cache=default_caps_cache())
    sshd = LabSshd(base)
    try:
        daemon.start()
        sshd.start()
        uri = sshd.uri(daemon.sock_dir / "libvirt-sock")
        hosts = base / "hosts.toml"
        hosts.write_text(f'[hosts.{NAME}]\nuri = "{uri}"\ngroup = "lab"\n')
        yield Remote(daemon, sshd, uri, hosts)
    finally:
        sshd.stop()
        daemon.stop()
    assert not daemon.qemu_pids(), "a QEMU of the ssh tests survived"
    assert not sshd.client_pids(), "an ssh client of the tests survived"


@pytest.fixture(scope="module")
def conn(remote: Remote) -> Iterator[libvirt.virConnect]:
    """The truth: a direct connection to the daemon, not through ssh."""
    yield from connection(remote.daemon.uri)


@pytest.fixture
def domains(conn: libvirt.virConnect, tmp_path: Path) -> Iterator[Domains]:
    yield from made_domains(conn, tmp_path)


def env(remote: Remote) -> dict[str, str]:
    return {**cli_env(), "JOBTUI_HOSTS": str(remote.hosts)}


def jobtui(remote: Remote, history: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_jobtui(env(remote), history, *args)


class Watch:
    """`jobtui watch --json` in the background; stdout and stderr lines as they come."""

    def __init__(self, argv: list[str], environ: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ,
        )
        self.lines: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self.seen: list[tuple[str, str]] = []
        for name, stream in (("out", self.proc.stdout), ("err", self.proc.stderr)):
            assert stream is not None
            threading.Thread(
                target=lambda n=name, s=stream: [self.lines.put((n, x.rstrip("\n"))) for x in s],
                daemon=True,
            ).start()

    def _drain(self) -> None:
        while True:
            try:
                self.seen.append(self.lines.get_nowait())
            except queue.Empty:
                return

    def wait_for(self, stream: str, pred: Callable[[str], bool], timeout: float = 30) -> str:
        def look() -> str | None:
            self._drain()
            return next((x for s, x in self.seen if s == stream and pred(x)), None)

        return wait_until(look, timeout, f"a {stream} line (seen: {self.seen})")

    def wait_count(self, stream: str, prefix: str, count: int, timeout: float = 60) -> None:
        def enough() -> bool:
            self._drain()
            return sum(1 for s, x in self.seen if s == stream and x.startswith(prefix)) >= count

        wait_until(enough, timeout, f"{count} × {prefix!r} (seen: {self.seen})")

    def event(self, **fields: Any) -> dict[str, Any]:
        def match(line: str) -> bool:
            with contextlib.suppress(ValueError):
                d = json.loads(line)
                return all(d.get(k) == v for k, v in fields.items())
            return False

        return json.loads(self.wait_for("out", match))

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def ssh_children(remote: Remote, pid: int) -> list[int]:
    """The ssh client processes libvirt started inside process `pid`."""

    def parent(p: int) -> int:
        with contextlib.suppress(OSError, IndexError, ValueError):
            return int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        return 0

    return [p for p in remote.sshd.client_pids() if parent(p) == pid]


# --- tests ------------------------------------------------------------------------------------


def test_list_finalize_and_abort_by_name_over_ssh(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    dom = domains.new("sa", {"vda": domains.image("sa-a"), "vdb": domains.image("sa-b")})
    dest = tmp_path / "sa-copy.qcow2"
    start_copy(dom, "vda", dest)
    start_copy(dom, "vdb", tmp_path / "sa-slow.qcow2", 1 * MiB)
    wait_ready(dom, "vda")
    history = tmp_path / "h.sqlite3"

    # By name, and as the file's default host: both go over ssh to the same daemon.
    for argv in (["-c", NAME, "list", "--json"], ["list", "--json"], ["--group", "lab", "list"]):
        out = ok(jobtui(remote, history, *argv))
    jobs = {
        j["name"]: j
        for j in json.loads(ok(jobtui(remote, history, "-c", NAME, "list", "--json")))
        if j["domain"] == dom.name()
    }
    assert {n: j["state"] for n, j in jobs.items()} == {"copy-vda": "ready", "copy-vdb": "running"}
    assert {(j["host"], j["host_name"]) for j in jobs.values()} == {(remote.uri, NAME)}
    assert dom.name() in out  # the text table of --group lab

    out = ok(jobtui(remote, history, "-c", NAME, "finalize", dom.name(), "copy-vda", "--yes"))
    assert "pivoted" in out
    assert disk_source(dom, "vda") == str(dest)
    ok(jobtui(remote, history, "-c", NAME, "abort", dom.name(), "copy-vdb", "--yes"))
    assert not dom.blockJobInfo("vdb", 0)
    assert not dom.blockJobInfo("vda", 0)


def test_watch_over_ssh_survives_a_killed_ssh_and_a_restarted_sshd(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    dom = domains.new("sw", {"vda": domains.image("sw-a"), "vdb": domains.image("sw-b")})
    argv = [sys.executable, "-m", "jobtui", "-c", NAME, "--history", str(tmp_path / "h")]
    w = Watch([*argv, "watch", "--json"], env(remote))
    try:
        start_copy(dom, "vda", tmp_path / "sw-a-copy.qcow2", 1 * MiB)
        e = w.event(domain=dom.name(), name="copy-vda", new="running")
        assert (e["host"], e["host_name"]) == (remote.uri, NAME)

        # The ssh process dies (an OOM kill, a network drop): lost, said so, back again.
        clients = wait_until(lambda: ssh_children(remote, w.proc.pid), 10, "watch's ssh client")
        for pid in clients:
            os.kill(pid, signal.SIGKILL)
        w.wait_count("err", f"jobtui: lost {remote.uri}: ", 1)
        w.wait_count("err", f"jobtui: reconnected to {remote.uri}", 1)
        # A script reading only stdout sees it too, in the shape of a job's line.
        gone = w.event(type="host", host=remote.uri, new="disconnected")
        assert gone["host_name"] == NAME and gone["old"] == "connected" and gone["message"]
        assert gone["domain"] is None and gone["name"] is None
        w.event(type="host", host=remote.uri, old="disconnected", new="connected")
        # Events after the reconnection still arrive, once.
        dom.blockJobAbort("vda", 0)
        w.event(domain=dom.name(), name="copy-vda", new="aborted")

        # sshd goes away (its sessions with it) and comes back on the same port.
        remote.sshd.stop()
        w.wait_count("err", f"jobtui: lost {remote.uri}: ", 2)
        remote.sshd.start()
        w.wait_count("err", f"jobtui: reconnected to {remote.uri}", 2)
        start_copy(dom, "vdb", tmp_path / "sw-b-copy.qcow2", 1 * MiB)
        w.event(domain=dom.name(), name="copy-vdb", new="running")
        aborted = [
            json.loads(x)
            for s, x in w.seen
            if s == "out" and '"copy-vda"' in x and '"aborted"' in x
        ]
        assert len(aborted) == 1, aborted
    finally:
        w.close()
    assert w.proc.returncode == 0


def test_a_hung_ssh_host_is_shown_lost_and_the_other_host_goes_on(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    """A stopped sshd child: the socket stays open and says nothing. The engine's
    watchdog gives the host up with its reason; the other host's events arrive
    meanwhile. The old session then wakes up under calls still waiting on it: the watch
    goes on (libvirt's client keepalive, on before, crashed the process there)."""
    dom = domains.new("sh", {"vda": domains.image("sh-a"), "vdb": domains.image("sh-b")})
    start_copy(dom, "vdb", tmp_path / "sh-b-copy.qcow2", 1 * MiB)
    local = remote.daemon.uri  # the same daemon, straight through its unix socket
    argv = [sys.executable, "-m", "jobtui", "-c", NAME, "-c", local]
    w = Watch([*argv, "--history", str(tmp_path / "h"), "watch", "--json"], env(remote))
    stopped: list[int] = []
    try:
        # Both hosts listed: the watch is past its start, where it waits for every host.
        for host in (remote.uri, local):
            w.event(host=host, domain=dom.name(), name="copy-vdb", new="running")
        stopped = remote.sshd.pause_sessions()
        assert stopped
        start_copy(dom, "vda", tmp_path / "sh-a-copy.qcow2", 1 * MiB)
        w.event(host=local, domain=dom.name(), name="copy-vda", new="running")
        lost = w.wait_for("err", lambda x: x.startswith(f"jobtui: lost {remote.uri}: "))
        assert "not answering" in lost, lost
        gone = w.event(type="host", host=remote.uri, new="disconnected")
        assert "not answering" in gone["message"], gone
        order = [x for s, x in w.seen if (s == "err" and x == lost) or local in x]
        assert local in order[0], "the local host's event waited for the hung one"
        # A new ssh session is not hung: the host comes back while the old one still is,
        # and sees the job that started meanwhile.
        w.wait_count("err", f"jobtui: reconnected to {remote.uri}", 1)
        w.event(host=remote.uri, domain=dom.name(), name="copy-vda", new="running")
        remote.sshd.resume_sessions(stopped)
        stopped = []
        time.sleep(3.0)  # the old session's waiting calls come back meanwhile
        assert w.proc.poll() is None, "the watch ended when the old session woke up"
        dom.blockJobAbort("vda", 0)
        w.event(host=remote.uri, domain=dom.name(), name="copy-vda", new="aborted")
    finally:
        w.close()
        remote.sshd.resume_sessions(stopped)
    assert w.proc.returncode == 0


def test_a_changed_host_key_and_a_refused_key_are_one_line_exit_3(
    remote: Remote, tmp_path: Path
) -> None:
    history = tmp_path / "h.sqlite3"
    sock = remote.daemon.sock_dir / "libvirt-sock"
    stranger = remote.sshd.uri(sock, key=remote.sshd.stranger_key)
    msg = one_line_error(jobtui(remote, history, "-c", stranger, "list"), 3)
    assert "Permission denied (publickey)" in msg

    # Its own sshd: the module's keeps its key. Same known_hosts entry, new host key.
    other = LabSshd(tmp_path)
    try:
        other.start()
        other.stop()
        other.new_host_key()
        other.start()
        msg = one_line_error(jobtui(remote, history, "-c", other.uri(sock), "list"), 3)
    finally:
        other.stop()
    assert msg.endswith("Cannot recv data: Host key verification failed.: Connection reset by peer")


async def test_tui_pilot_over_ssh_shows_the_name_and_the_job(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    await tui_shows_a_copy_under_the_hosts_name(remote.uri, NAME, domains, tmp_path, "st")


def test_tui_in_a_terminal_over_ssh(
    remote: Remote, domains: Domains, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JOBTUI_HOSTS", str(remote.hosts))  # Terminal's env is os.environ's
    dom = domains.new("sx", {"vda": domains.image("sx-a")})
    start_copy(dom, "vda", tmp_path / "sx.qcow2", 1 * MiB)
    t = Terminal([sys.executable, "-m", "jobtui", "--history", str(tmp_path / "h"), "-c", NAME])
    try:
        t.wait_for(NAME.encode(), b"copy-vda", dom.name().encode(), timeout=60)
        # The connection opened at launch (before Textual) is the engine's: one ssh.
        assert len(ssh_children(remote, t.proc.pid)) == 1
        t.type(b"q")
        assert t.wait() == 0
    finally:
        t.close()


def test_ssh_banner_becomes_one_line_with_its_verdict() -> None:
    # What libvirt passes on when the operator's ssh prints its changed-host-key banner
    # (the lab's client config keeps ssh to the verdict; see jobtui/lab/sshd.py).
    from jobtui.engine.connection import libvirt_reason

    banner = (
        "Cannot recv data: @@@@@@@@@@@@@@@@\r\n"
        "@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\r\n"
        "@@@@@@@@@@@@@@@@\r\nIT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!\r\n"
        "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.\r\n"
        "Host key verification failed.: Connection reset by peer"
    )
    assert libvirt_reason(RuntimeError(banner)) == (
        "Cannot recv data: WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! … "
        "Host key for [127.0.0.1]:2222 has changed and you have requested strict checking. … "
        "Host key verification failed.: Connection reset by peer"
    )
    assert libvirt_reason(RuntimeError("first line\nsecond line")) == "first line"
