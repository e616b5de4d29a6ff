"""The `jobtui` command as a separate process against a private libvirtd with real jobs.

Every job here runs in QEMU; what the CLI prints or changes is checked against what
libvirt itself reports (blockJobInfo, jobStats, the live XML, virsh).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import queue
import signal
import struct
import subprocess
import sys
import termios
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import pytest
from labtools import wait_until
from lxml import etree
from systemtools import Domains, connection, made_domains, private_daemon

from jobtui.lab import MiB
from jobtui.lab.daemon import PrivateDaemon
from jobtui.lab.xmlgen import copy_dest_xml, push_backup_xml

pytestmark = pytest.mark.system

BYTES = libvirt.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES
BLOCK_TYPE_NAMES = {1: "block-pull", 2: "block-copy", 3: "block-commit", 4: "block-commit-active"}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory) -> Iterator[PrivateDaemon]:
    yield from private_daemon(tmp_path_factory.mktemp("d"), "h1")


@pytest.fixture(scope="module")
def conn(daemon: PrivateDaemon) -> Iterator[libvirt.virConnect]:
    yield from connection(daemon.uri)


@pytest.fixture
def domains(conn: libvirt.virConnect, tmp_path: Path) -> Iterator[Domains]:
    yield from made_domains(conn, tmp_path)


@pytest.fixture
def history(tmp_path: Path) -> Path:
    return tmp_path / "history.sqlite3"


# --- running the CLI ------------------------------------------------------------------------


def cli_argv(daemon: PrivateDaemon, history: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobtui", "-c", daemon.uri, "--history", str(history), *args]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_cli(
    daemon: PrivateDaemon, history: Path, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli_argv(daemon, history, *args),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=cli_env(),
        timeout=timeout,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode} stderr={proc.stderr!r}"
    assert "Traceback" not in proc.stderr
    return proc.stdout


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, f"rc={proc.returncode} stderr={proc.stderr!r}"
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobtui: "), proc.stderr
    return lines[0]


def list_json(daemon: PrivateDaemon, history: Path, *extra: str) -> list[dict[str, Any]]:
    return json.loads(ok(run_cli(daemon, history, "list", "--json", *extra)))


class Watch:
    """`jobtui watch` running in the background; its stdout lines collected as they come."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
            # As from a terminal: Ctrl-C (SIGINT) stops it. A test run started in the
            # background of a non-interactive shell ignores SIGINT, and children inherit that.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.seen: list[str] = []
        assert self.proc.stdout is not None
        out = self.proc.stdout
        threading.Thread(
            target=lambda: [self.lines.put(x.rstrip("\n")) for x in out], daemon=True
        ).start()

    def wait_for(self, pred: Callable[[str], bool], timeout: float = 30) -> str:
        def look() -> str | None:
            while True:
                try:
                    self.seen.append(self.lines.get_nowait())
                except queue.Empty:
                    break
            return next((x for x in self.seen if pred(x)), None)

        return wait_until(look, timeout, f"a watch line (seen: {self.seen})")

    def stop(self, sig: signal.Signals) -> tuple[int, str]:
        self.proc.send_signal(sig)
        rc = self.proc.wait(20)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def watches() -> Iterator[list[Watch]]:
    started: list[Watch] = []
    yield started
    for w in started:
        w.kill()


class Terminal:
    """A command on a pseudo-terminal, as a person at a shell would run it."""

    def __init__(self, argv: list[str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.proc = subprocess.Popen(
            argv,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**cli_env(), "TERM": "xterm-256color"},
            start_new_session=True,
        )
        os.close(slave)
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO once the command has exited
            while chunk := os.read(self.master, 65536):
                self.screen.extend(chunk)

    def wait_for(self, *texts: bytes, timeout: float = 30) -> None:
        wait_until(lambda: all(t in self.screen for t in texts), timeout, f"{texts} on screen")

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 20) -> int:
        rc = self.proc.wait(timeout)
        # What the command wrote last may still be in the pty: the reader ends at EIO,
        # once the command (the slave's last holder) is gone and all of it was read.
        self._reader.join(5)
        return rc

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        os.close(self.master)


@pytest.fixture
def terminals() -> Iterator[Callable[[list[str]], Terminal]]:
    opened: list[Terminal] = []

    def open_(argv: list[str]) -> Terminal:
        opened.append(Terminal(argv))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


# --- starting jobs through libvirt ----------------------------------------------------------


def start_copy(dom: libvirt.virDomain, disk: str, dest: Path, bandwidth: int = 0) -> None:
    params = {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: bandwidth} if bandwidth else {}
    dom.blockCopy(disk, copy_dest_xml(dest), params, libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB)


def start_pull(dom: libvirt.virDomain, disk: str, bandwidth: int) -> None:
    dom.blockPull(disk, bandwidth, libvirt.VIR_DOMAIN_BLOCK_PULL_BANDWIDTH_BYTES)


def start_commit(dom: libvirt.virDomain, disk: str, bandwidth: int) -> None:
    # The middle layer of a three-layer chain into the base (vda[1] is the active layer).
    flags = libvirt.VIR_DOMAIN_BLOCK_COMMIT_BANDWIDTH_BYTES
    dom.blockCommit(disk, f"{disk}[3]", f"{disk}[2]", bandwidth, flags)


def start_backup(dom: libvirt.virDomain, disk: str, target: Path, bandwidth: int) -> None:
    dom.backupBegin(push_backup_xml({disk: target}), None, 0)
    dom.blockJobSetSpeed(disk, bandwidth, libvirt.VIR_DOMAIN_BLOCK_JOB_SPEED_BANDWIDTH_BYTES)


def disk_xml(dom: libvirt.virDomain, disk: str) -> Any:
    root = etree.fromstring(dom.XMLDesc(0).encode())
    return root.xpath(f"./devices/disk[target/@dev='{disk}']")[0]


def wait_ready(dom: libvirt.virDomain, disk: str) -> None:
    def ready() -> bool:
        mirror = disk_xml(dom, disk).find("mirror")
        return mirror is not None and mirror.get("ready") == "yes"

    wait_until(ready, 30, f"{dom.name()}/{disk} mirror ready")


def disk_source(dom: libvirt.virDomain, disk: str) -> str:
    return disk_xml(dom, disk).find("source").get("file")


# --- tests ----------------------------------------------------------------------------------


def test_list_json_matches_what_libvirt_reports(
    daemon: PrivateDaemon, domains: Domains, history: Path, tmp_path: Path
) -> None:
    a = domains.new("la", {"vda": domains.image("la-a"), "vdb": domains.chain("la-b", 2)})
    b = domains.new("lb", {"vda": domains.chain("lb-a", 3)})
    c = domains.new("lc", {"vda": domains.image("lc-a", 8), "vdb": domains.image("lc-b")})
    start_copy(a, "vda", tmp_path / "la-copy.qcow2")
    start_pull(a, "vdb", 1 * MiB)
    start_commit(b, "vda", 1 * MiB)
    start_backup(c, "vdb", tmp_path / "lc-backup.qcow2", 1 * MiB)
    wait_ready(a, "vda")
    blocks = {(a, "vda"), (a, "vdb"), (b, "vda")}
    before = {(d.name(), k): d.blockJobInfo(k, BYTES) for d, k in blocks}
    backup_before = c.jobStats()

    jobs = list_json(daemon, history)

    after = {(d.name(), k): d.blockJobInfo(k, BYTES) for d, k in blocks}
    ours = {
        (j["domain"], j["name"]): j for j in jobs if j["domain"] in (a.name(), b.name(), c.name())
    }
    assert set(ours) == {
        (a.name(), "copy-vda"),
        (a.name(), "pull-vdb"),
        (b.name(), "commit-vda"),
        (c.name(), "backup"),
    }
    uuids = {d.name(): d.UUIDString() for d in (a, b, c)}
    for (dom, name), j in ours.items():
        assert j["host"] == daemon.uri and j["uuid"] == uuids[dom]
        assert j["finished"] is None and j["started"].endswith("+00:00")
        assert isinstance(j["stats"], dict) and isinstance(j["message"], str)
        # libvirt gives a domain job's elapsed time, a block job's nothing: a block job
        # running before `list` looked says its "started" is only when it was seen.
        assert j["started_before_seen"] is (name != "backup"), (name, j)
        if name == "backup":
            continue
        disk = j["config"]["disk"]
        lo, hi = before[(dom, disk)], after[(dom, disk)]
        assert j["type"] == BLOCK_TYPE_NAMES[lo["type"]]
        assert j["end"] == hi["end"]
        assert lo["cur"] <= j["current"] <= hi["cur"]
        assert j["bandwidth"] == (hi["bandwidth"] or None)
    assert ours[(a.name(), "copy-vda")]["state"] == "ready"
    assert ours[(a.name(), "pull-vdb")]["bandwidth"] == 1 * MiB
    assert ours[(a.name(), "pull-vdb")]["state"] == "running"
    assert ours[(b.name(), "commit-vda")]["state"] == "running"
    backup = ours[(c.name(), "backup")]
    assert backup_before["operation"] == libvirt.VIR_DOMAIN_JOB_OPERATION_BACKUP
    assert backup["type"] == "backup" and backup["state"] == "running"
    assert backup["stats"]["disk_total"] == c.jobStats()["disk_total"] == backup["end"]
    assert "vdb" in backup["config"]["disks"].split(",")
    assert backup["bandwidth"] == c.blockJobInfo("vdb", BYTES)["bandwidth"] == 1 * MiB

    # The text table: one aligned row per job, the same facts.
    text = ok(run_cli(daemon, history, "list")).splitlines()
    header = text[0]
    assert header.split() == ["Domain", "Job", "Type", "State", "Progress", "Rate", "Bandwidth"]
    rows = {tuple(r.split()[:4]) for r in text[2:]}
    assert (a.name(), "copy-vda", "block-copy", "ready") in rows
    assert (a.name(), "pull-vdb", "block-pull", "running") in rows
    assert (c.name(), "backup", "backup", "running") in rows
    job_col = header.index("Job")
    assert all(r[job_col - 1] == " " and r[job_col] != " " for r in text[2:])
    pull_row = next(r for r in text if "pull-vdb" in r and a.name() in r)
    assert pull_row.endswith("1.0 MiB/s")

    # The job XML document of one of them.
    xml = etree.fromstring(ok(run_cli(daemon, history, "xml", a.name(), "copy-vda")).encode())
    assert (xml.tag, xml.get("name"), xml.get("type"), xml.get("state")) == (
        "job",
        "copy-vda",
        "block-copy",
        "ready",
    )
    assert xml.find("domain").get("uuid") == a.UUIDString()
    assert xml.findtext("config/disk") == "vda"


def test_watch_sees_a_virsh_blockcopy_then_the_abort(
    daemon: PrivateDaemon, domains: Domains, history: Path, tmp_path: Path, watches: list[Watch]
) -> None:
    dom = domains.new("wa", {"vda": domains.image("wa-a"), "vdb": domains.chain("wa-b", 2)})
    # A job already running when the watch starts: its first line says the watch is live.
    start_pull(dom, "vdb", 1 * MiB)
    # The watcher keeps its own history: two processes that both see a block job end
    # record it under two keys (each keys it by its own first sighting).
    w = Watch(cli_argv(daemon, tmp_path / "watch.sqlite3", "watch", "--json", "--timeout", "120"))
    watches.append(w)

    def event(line: str) -> dict[str, Any]:
        return json.loads(line)

    def line_of(name: str, new: str) -> Callable[[str], bool]:
        return lambda x: (
            (event(x)["domain"], event(x)["name"], event(x)["new"])
            == (
                dom.name(),
                name,
                new,
            )
        )

    assert event(w.wait_for(line_of("pull-vdb", "running")))["old"] is None
    dest = tmp_path / "wa-copy.qcow2"
    virsh = subprocess.run(
        ["virsh", "-c", daemon.uri, "blockcopy", dom.name(), "vda", str(dest)]
        + ["--transient-job", "--bandwidth", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert virsh.returncode == 0, virsh.stderr

    # virsh first has QEMU create the destination (a blockdev-create job the stream shows too).
    first = event(w.wait_for(line_of("copy-vda", "running")))
    assert first["type"] == "block-copy" and first["old"] is None
    assert first["host"] == daemon.uri and "T" in first["time"]

    # Aborted through the CLI: libvirt's view empties, the stream says so, history keeps it.
    out = ok(run_cli(daemon, history, "abort", dom.name(), "copy-vda", "--yes"))
    assert "abort" in out and "copy-vda" in out
    wait_until(lambda: not dom.blockJobInfo("vda", 0), 10, "the copy gone from blockJobInfo")
    done = event(w.wait_for(line_of("copy-vda", "aborted")))
    assert done["old"] == "running"
    copy_lines = [event(x) for x in w.seen if event(x)["name"] == "copy-vda"]
    assert [(e["old"], e["new"]) for e in copy_lines] == [(None, "running"), ("running", "aborted")]

    rc, err = w.stop(signal.SIGTERM)
    assert rc == 0 and err == "", err

    finished = [
        j
        for j in list_json(daemon, history, "--all")
        if j["name"] == "copy-vda" and j["domain"] == dom.name()
    ]
    assert [j["state"] for j in finished] == ["aborted"]
    assert finished[0]["finished"] is not None

    # Dismissed: gone from the history, so from `list --all` too.
    out = ok(run_cli(daemon, history, "dismiss", dom.name(), "copy-vda", "--yes"))
    assert "dismissed" in out
    left = [(j["domain"], j["name"]) for j in list_json(daemon, history, "--all")]
    assert (dom.name(), "copy-vda") not in left and (dom.name(), "pull-vdb") in left
    gone = one_line_error(run_cli(daemon, history, "dismiss", dom.name(), "copy-vda", "--yes"), 4)
    assert "no job 'copy-vda'" in gone


def test_watch_text_lines_and_ctrl_c(
    daemon: PrivateDaemon, domains: Domains, history: Path, watches: list[Watch]
) -> None:
    dom = domains.new("wt", {"vda": domains.chain("wt-a", 2)})
    start_pull(dom, "vda", 1 * MiB)
    w = Watch(cli_argv(daemon, history, "watch"))
    watches.append(w)
    line = w.wait_for(lambda x: f" {dom.name()} pull-vda:" in x)
    assert line.endswith("pull-vda: new -> running"), line
    # Text is for people: the host by its name (here the short name of the URI).
    assert f" system@h1 {dom.name()} " in line
    rc, err = w.stop(signal.SIGINT)
    assert rc == 0 and err == "", err


def test_finalize_pivots_a_ready_copy_and_refuses_an_unready_one(
    daemon: PrivateDaemon, domains: Domains, history: Path, tmp_path: Path
) -> None:
    dom = domains.new("fa", {"vda": domains.image("fa-a"), "vdb": domains.image("fa-b")})
    dest = tmp_path / "fa-copy.qcow2"
    start_copy(dom, "vda", dest)
    start_copy(dom, "vdb", tmp_path / "fa-slow.qcow2", 1 * MiB)
    wait_ready(dom, "vda")

    refused = one_line_error(run_cli(daemon, history, "finalize", dom.name(), "copy-vdb", "-y"), 1)
    assert "not ready to finalize" in refused and "mirrored" in refused

    out = ok(run_cli(daemon, history, "finalize", dom.name(), "copy-vda", "--yes"))
    assert "pivoted" in out
    assert disk_source(dom, "vda") == str(dest)
    assert not dom.blockJobInfo("vda", 0)
    assert dom.blockJobInfo("vdb", 0)  # the other copy is untouched
    jobs = {j["name"]: j for j in list_json(daemon, history, "--all") if j["domain"] == dom.name()}
    assert jobs["copy-vda"]["state"] == "completed"
    assert jobs["copy-vdb"]["state"] == "running"


def test_set_speed_pause_resume_and_refusals(
    daemon: PrivateDaemon, domains: Domains, history: Path
) -> None:
    dom = domains.new("sa", {"vda": domains.chain("sa-a", 2)})
    start_pull(dom, "vda", 1 * MiB)

    # By UUID, with a suffix: libvirt reports the new bandwidth.
    ok(run_cli(daemon, history, "set-speed", dom.UUIDString(), "pull-vda", "2M"))
    assert dom.blockJobInfo("vda", BYTES)["bandwidth"] == 2 * MiB
    ok(run_cli(daemon, history, "set-speed", dom.name(), "pull-vda", "512K"))
    assert dom.blockJobInfo("vda", BYTES)["bandwidth"] == 512 * 1024

    # Read-only: refused by the engine, nothing changes.
    ro = run_cli(daemon, history, "-r", "set-speed", dom.name(), "pull-vda", "4M")
    assert "read-only" in one_line_error(ro, 1)
    assert dom.blockJobInfo("vda", BYTES)["bandwidth"] == 512 * 1024

    msg = one_line_error(run_cli(daemon, history, "postcopy", dom.name(), "pull-vda", "--yes"), 1)
    assert "not an outgoing migration" in msg
    msg = one_line_error(run_cli(daemon, history, "pause", dom.name(), "pull-vda"), 1)
    assert "taints" in msg

    # With the opt-in, pause goes through QEMU's monitor: QEMU itself says it is paused.
    def qemu_paused() -> bool:
        out = subprocess.run(
            ["virsh", "-c", daemon.uri, "qemu-monitor-command", dom.name()]
            + ['{"execute": "query-block-jobs"}'],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        return json.loads(out)["return"][0]["paused"]

    msg = one_line_error(
        run_cli(daemon, history, "resume", "--allow-qemu-monitor", dom.name(), "pull-vda"), 1
    )
    assert msg == "jobtui: pull-vda is not paused"
    out = ok(run_cli(daemon, history, "--allow-qemu-monitor", "pause", dom.name(), "pull-vda"))
    assert "tainted" in out
    assert qemu_paused()
    # A later process cannot resume it: its engine learns of a pause only from QEMU's
    # event, which it never saw, so it takes the job for running (reported as an engine gap).
    msg = one_line_error(
        run_cli(daemon, history, "resume", "--allow-qemu-monitor", dom.name(), "pull-vda"), 1
    )
    assert "not paused" in msg


def test_bad_input_is_one_line_and_its_exit_status(
    daemon: PrivateDaemon, domains: Domains, history: Path
) -> None:
    dom = domains.new("ba", {"vda": domains.chain("ba-a", 2), "vdb": domains.chain("ba-b", 2)})
    start_pull(dom, "vda", 1 * MiB)
    start_pull(dom, "vdb", 1 * MiB)

    msg = one_line_error(run_cli(daemon, history, "abort", "nope", "copy-vda", "--yes"), 4)
    assert msg == f"jobtui: no domain 'nope' on {daemon.uri}"
    msg = one_line_error(run_cli(daemon, history, "abort", dom.name(), "copy-vdz", "--yes"), 4)
    assert msg == f"jobtui: no job 'copy-vdz' on domain '{dom.name()}' (jobs: pull-vda, pull-vdb)"
    msg = one_line_error(run_cli(daemon, history, "xml", dom.name(), "copy-vdz"), 4)
    assert "no job 'copy-vdz'" in msg

    # Malformed bandwidth: refused before connecting, nothing changed.
    msg = one_line_error(run_cli(daemon, history, "set-speed", dom.name(), "pull-vda", "fast"), 2)
    assert "not a bandwidth: 'fast'" in msg
    assert dom.blockJobInfo("vda", BYTES)["bandwidth"] == 1 * MiB

    # No terminal and no --yes: refused before anything happens.
    msg = one_line_error(run_cli(daemon, history, "abort", dom.name(), "pull-vda"), 2)
    assert "--yes" in msg
    assert dom.blockJobInfo("vda", 0)

    # A daemon that is not there (next to ours): libvirt's reason, exit status 3.
    missing = Path(daemon.sock_dir) / "missing-sock"
    proc = subprocess.run(
        [sys.executable, "-m", "jobtui", "-c", f"qemu+unix:///system?socket={missing}", "list"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    msg = one_line_error(proc, 3)
    assert "No such file or directory" in msg and str(missing) in msg


def test_no_command_opens_the_tui_on_the_connection(
    daemon: PrivateDaemon, domains: Domains, history: Path, terminals: Callable[..., Terminal]
) -> None:
    dom = domains.new("ta", {"vda": domains.chain("ta-a", 2)})
    start_pull(dom, "vda", 1 * MiB)
    term = terminals(cli_argv(daemon, history))
    term.wait_for(b"pull-vda", dom.name().encode())
    term.type(b"q")
    assert term.wait() == 0
    assert b"Traceback" not in term.screen


def test_abort_asks_on_a_terminal_and_no_is_the_default(
    daemon: PrivateDaemon, domains: Domains, history: Path, terminals: Callable[..., Terminal]
) -> None:
    dom = domains.new("pa", {"vda": domains.chain("pa-a", 2)})
    start_pull(dom, "vda", 1 * MiB)
    argv = cli_argv(daemon, history, "abort", dom.name(), "pull-vda")

    term = terminals(argv)
    term.wait_for(f"Abort pull-vda on {dom.name()} (block-pull, running, ".encode(), b"[y/N] ")
    term.type(b"\n")
    assert term.wait() == 1
    assert b"not confirmed" in term.screen
    assert dom.blockJobInfo("vda", 0)

    term = terminals(argv)
    term.wait_for(b"[y/N] ")
    term.type(b"y\n")
    assert term.wait() == 0
    assert b"aborting pull-vda" in term.screen
    wait_until(lambda: not dom.blockJobInfo("vda", 0), 10, "the pull gone")


def test_a_control_commands_answer_names_an_odd_domain_printably(
    daemon: PrivateDaemon, domains: Domains, history: Path
) -> None:
    # libvirt takes a tab in a domain name; the answer to `abort` names the domain.
    dom = domains.new("tab\there", {"vda": domains.chain("tab", 2)})
    start_pull(dom, "vda", 1 * MiB)
    out = ok(run_cli(daemon, history, "abort", dom.name(), "pull-vda", "--yes"))
    assert "\t" not in out and f"on tab\\there-{dom.name()[-4:]}" in out, out
