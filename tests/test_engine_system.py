"""The engine on qemu:///system (a private libvirtd the tests start): the same
jobs as on the embedded driver, plus what only a daemon can do to a client —
die, come back, stop answering."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import libvirt
import pytest
from enginetools import Stream
from labtools import wait_until
from test_cli_system import cli_env
from test_remote_ssh import Watch

from jobtui.engine.early_open import EarlyOpen
from jobtui.engine.monitor import JobMonitor
from jobtui.lab import DiskSpec, Lab, MiB
from jobtui.lab.daemon import PrivateDaemon, start_private_daemon
from jobtui.lab.images import image_info
from jobtui.model import ControlOp, DomainChanged, HostState, JobState, JobType


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = start_private_daemon(tmp_path_factory.mktemp("d"), "sys1")
    try:
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="module")
def syslab(daemon: PrivateDaemon):
    lab = Lab(uri=daemon.uri, prefix="jobtui-lab-sys-")
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture
def sysname(syslab: Lab):
    name = f"s-{uuid.uuid4().hex[:6]}"
    yield name
    syslab.remove(name)


def monitor_for(uri: str, **kw) -> JobMonitor:
    m = JobMonitor([uri], active_interval=0.5, idle_interval=1.0, **kw)
    m.start()
    assert m.wait_ready(20)
    return m


def virsh(uri: str, *args: str) -> str:
    out = subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_virsh_copy_is_found_fast_and_finalized(syslab: Lab, sysname: str) -> None:
    syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 128, 64))])
    m = monitor_for(syslab.uri)
    stream = Stream(m)
    try:
        dest = syslab.images / f"{sysname}-copy.qcow2"
        t0 = time.time()
        virsh(
            syslab.uri,
            "blockcopy",
            sysname,
            "vda",
            str(dest),
            "--transient-job",
            "--bandwidth",
            "16",
        )
        job = stream.wait_state(sysname, "copy-vda", JobState.RUNNING, 5)
        # QEMU's job events find it well before the 1 s idle poll would.
        assert job.type is JobType.BLOCK_COPY
        assert job.key.started - t0 < 1.0
        ready = stream.wait_state(sysname, "copy-vda", JobState.READY, 30)
        m.control(ready.key, ControlOp.FINALIZE)
        stream.wait_state(sysname, "copy-vda", JobState.COMPLETED, 10)
        assert str(dest) in virsh(syslab.uri, "domblklist", sysname)
    finally:
        m.stop()


def test_daemon_killed_and_restarted_rebuilds_without_duplicates(
    daemon: PrivateDaemon, syslab: Lab, sysname: str
) -> None:
    chain = syslab.chain(sysname, 2, 128, 64)
    dom = syslab.domain(sysname, [DiskSpec("vda", chain[-1])])
    syslab.start_pull(dom, "vda", bandwidth=2 * MiB)
    m = monitor_for(syslab.uri)
    try:
        before = wait_until(lambda: m.find(sysname, "pull-vda"), 10, "the pull")
        daemon.kill()
        wait_until(
            lambda: m.hosts()[0].state is HostState.DISCONNECTED, 5, "host shown disconnected"
        )
        assert m.hosts()[0].error  # libvirt's reason is kept for the user
        daemon.restart()
        syslab.reconnect()
        wait_until(lambda: m.hosts()[0].state is HostState.CONNECTED, 20, "reconnected")
        wait_until(
            lambda: (j := m.find(sysname, "pull-vda")) and j.current and j.current > before.current,
            20,
            "the pull updating again",
        )
        pulls = [j for j in m.jobs() if j.domain == sysname and j.name == "pull-vda"]
        assert len(pulls) == 1 and pulls[0].key == before.key
        assert pulls[0].state is JobState.RUNNING
    finally:
        m.stop()


def test_a_stopped_daemon_that_wakes_up_under_waiting_calls_is_taken_up_again(
    daemon: PrivateDaemon, syslab: Lab, sysname: str, tmp_path
) -> None:
    """libvirtd stopped (SIGSTOP) while a copy runs, for longer than the engine waits
    for it, then continued: the calls that waited on the given-up connection come back
    and the engine goes on with a new one. (With libvirt's client keepalive on, its
    timeout closed that connection under those calls and the process died of SIGSEGV
    when the daemon answered them: 3 runs of 3.) Run as `jobtui watch`, so that a crash
    is this test's failure, not the test run's end."""
    dom = syslab.domain(sysname, [DiskSpec("vda", syslab.image(sysname, 128, 64))])
    syslab.start_copy(dom, "vda", bandwidth=1 * MiB)
    argv = [sys.executable, "-m", "jobtui", "-c", daemon.uri, "--history", str(tmp_path / "h")]
    w = Watch([*argv, "watch", "--json"], cli_env())
    try:
        w.event(domain=sysname, name="copy-vda", new="running")
        daemon.pause()
        try:
            gone = w.event(type="host", host=daemon.uri, new="disconnected")
            assert "not answering" in gone["message"], gone
            time.sleep(6.0)  # past where a keepalive of (2, 3) would have given up
        finally:
            daemon.resume()
        w.event(type="host", host=daemon.uri, new="connected")
        time.sleep(2.0)  # the old connection's calls come back meanwhile
        assert w.proc.poll() is None, f"the watch ended: {w.proc.returncode} {w.seen}"
        dom.blockJobAbort("vda", 0)
        w.event(domain=sysname, name="copy-vda", new="aborted")
    finally:
        w.close()
    assert w.proc.returncode == 0, w.seen


def test_a_pull_that_finished_while_the_daemon_was_down_ends_completed_as_the_xml_shows(
    daemon: PrivateDaemon, syslab: Lab, sysname: str
) -> None:
    # libvirt sends no event for a job that ended while it was down, not even after its
    # restart; the disk's XML (the chain flattened) is the only witness.
    chain = syslab.chain(sysname, 2, 128, 32)
    dom = syslab.domain(sysname, [DiskSpec("vda", chain[-1])])
    assert virsh(syslab.uri, "dumpxml", sysname).count("<backingStore type=") == 1
    m = monitor_for(syslab.uri)
    try:
        syslab.start_pull(dom, "vda", bandwidth=16 * MiB)
        job = wait_until(lambda: m.find(sysname, "pull-vda"), 10, "the pull")
        daemon.kill()
        # QEMU, on its own, finishes the pull meanwhile: the top image then names no
        # backing file (8 s were not always enough on a loaded machine).
        wait_until(
            lambda: "backing-filename" not in image_info(chain[-1]), 60, "the pull done in QEMU"
        )
        daemon.restart()
        syslab.reconnect()
        # The restarted daemon finds the concluded job as it reconnects to QEMU (a
        # thread of its own, slower under load) and flattens the chain in its XML.
        wait_until(
            lambda: "<backingStore type=" not in virsh(syslab.uri, "dumpxml", sysname),
            30,
            "libvirt's XML to show the pull done",
        )
        end = wait_until(
            lambda: (j := m.job(job.key)) is not None and j.state.finished and j, 30, "its end"
        )
        assert end.state is JobState.COMPLETED, end
        assert "backing chain went from 1 to 0" in end.message
    finally:
        m.stop()


def test_one_engine_watches_two_hosts(lab: Lab, domname: str, syslab: Lab, sysname: str) -> None:
    local = lab.domain(domname, [DiskSpec("vda", lab.image(f"{domname}-a", 128, 64))])
    remote = syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 128, 64))])
    m = JobMonitor([lab.uri, syslab.uri], active_interval=0.5, idle_interval=1.0)
    m.start()
    try:
        assert m.wait_ready(20)
        assert {h.uri for h in m.hosts()} == {lab.uri, syslab.uri}
        lab.start_copy(local, "vda", bandwidth=2 * MiB)
        syslab.start_copy(remote, "vda", bandwidth=2 * MiB)
        a = wait_until(lambda: m.find(domname, "copy-vda"), 10, "the local job")
        b = wait_until(lambda: m.find(sysname, "copy-vda"), 10, "the remote job")
        # Same job name on both hosts: the key tells them apart.
        assert a.key.host == lab.uri and b.key.host == syslab.uri
        assert {d.host for d in m.domains() if d.name in (domname, sysname)} == {
            lab.uri,
            syslab.uri,
        }
        m.control(b.key, ControlOp.ABORT)
        wait_until(lambda: remote.blockJobInfo("vda", 0) == {}, 10, "remote abort")
        assert local.blockJobInfo("vda", 0)  # the local one is untouched
    finally:
        m.stop()


def clients(daemon: PrivateDaemon) -> int:
    """The connections libvirtd has open now, as its admin interface lists them."""
    admin = f"libvirtd:///system?socket={daemon.sock_dir / 'libvirt-admin-sock'}"
    out = subprocess.run(
        ["virt-admin", "-c", admin, "srv-clients-list", "libvirtd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(1 for line in out.splitlines()[2:] if line.strip())


def test_the_engine_adopts_the_early_connection_and_its_listing(
    daemon: PrivateDaemon, syslab: Lab, sysname: str
) -> None:
    syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 64, 0))])
    before = clients(daemon)
    early = EarlyOpen([daemon.uri], readonly=False).start()
    (opened,) = wait_until(early.answered, 20, "the early open")
    assert opened.error is None and sysname in {d.name for d in opened.previews()}
    assert clients(daemon) == before + 1
    m = JobMonitor([daemon.uri], early=early, idle_interval=1.0)
    heard: list[object] = []
    m.subscribe(heard.append)
    m.start()
    try:
        # Known from start(), before the engine has listed anything itself.
        assert sysname in {d.name for d in m.domains()}
        assert m.wait_ready(20)
        running = wait_until(
            lambda: any(
                isinstance(e, DomainChanged)
                and e.domain.name == sysname
                and e.domain.state == "running"
                for e in heard
            ),
            20,
            "its first look",
        )
        assert running
        # One connection: the early one, adopted; not a second beside it.
        assert clients(daemon) == before + 1
    finally:
        m.stop()


def test_an_early_open_that_failed_is_reported_then_retried_by_the_engine(
    daemon: PrivateDaemon, syslab: Lab, sysname: str
) -> None:
    syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 64, 0))])
    daemon.kill()  # its QEMUs keep running
    try:
        early = EarlyOpen([daemon.uri], readonly=False).start()
        (opened,) = wait_until(early.answered, 20, "the early open")
        assert opened.error is not None
        m = JobMonitor([daemon.uri], early=early, idle_interval=1.0)
        m.start()
        host = wait_until(
            lambda: (h := m.hosts()[0]).state is HostState.DISCONNECTED and h, 10, "the error"
        )
        assert "libvirt-sock" in host.error, host.error  # libvirt's own words, the socket named
    finally:
        daemon.restart()
        syslab.reconnect()
    try:
        # The early open's error is the engine's first; its own retries then connect.
        wait_until(lambda: sysname in {d.name for d in m.domains()}, 30, "the domain listed")
        assert m.hosts()[0].state is HostState.CONNECTED
    finally:
        m.stop()


def test_an_engine_that_ends_with_its_process_stops_without_waiting_for_a_hung_host(
    syslab: Lab, sysname: str
) -> None:
    # A listener that accepts and never answers: libvirt's open waits on it for ever.
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(4)
    silent = f"qemu+tcp://127.0.0.1:{hung.getsockname()[1]}/system"
    syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 64, 0))])
    m = JobMonitor([syslab.uri, silent], ends_with_process=True)
    m.start()
    try:
        wait_until(lambda: sysname in {d.name for d in m.domains()}, 20, "the other host")
        assert {h.uri: h.state for h in m.hosts()}[silent] is HostState.CONNECTING
        t0 = time.monotonic()
        m.stop()
        # A quit (the TUI's q) waited 5 s here for the hung open's thread; now it goes
        # at once, and the process's exit takes the thread.
        assert time.monotonic() - t0 < 4.0  # the thread alone was waited for 5 s
    finally:
        hung.close()


def test_a_dump_libvirt_holds_for_its_file_is_one_running_job_until_let_go(
    syslab: Lab, sysname: str
) -> None:
    """On a daemon libvirt writes a dump through its file helper: QEMU's part ends at
    once, libvirt sends JOB_COMPLETED and jobStats reads COMPLETED, but holds the job
    (the domain paused) until the file is written. Into a pipe nobody reads: forever."""
    dom = syslab.domain(sysname, [DiskSpec("vda", syslab.image(f"{sysname}-a", 64, 0))])
    fifo = syslab.images / f"{sysname}.fifo"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    m = monitor_for(syslab.uri)
    stream = Stream(m)
    try:
        bg = syslab.start_dump(dom, fifo)
        held = wait_until(
            lambda: (j := m.find(sysname, "dump")) and j.message.startswith("QEMU's part") and j,
            30,
            "the dump shown held",
        )
        assert held.state is JobState.RUNNING and held.current == held.end
        # What libvirt says meanwhile: a completed job, and the domain paused.
        assert dom.jobStats()["type"] == libvirt.VIR_DOMAIN_JOB_COMPLETED
        assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
        time.sleep(2)
        assert m.find(sysname, "dump").state is JobState.RUNNING
        os.set_blocking(fd, True)
        while os.read(fd, 1 << 20):
            pass
        bg.wait()
        assert bg.error is None
        end = stream.wait_state(sysname, "dump", JobState.COMPLETED, 30)
        assert end.key == held.key and end.finished >= held.sampled
        assert dom.jobStats()["type"] == libvirt.VIR_DOMAIN_JOB_NONE
        time.sleep(1.5)
        # One dump, from its start to libvirt letting go: no second job for its tail.
        assert stream.transitions(sysname, "dump") == [
            (None, "running"),
            ("running", "completed"),
        ]
    finally:
        m.stop()
        os.close(fd)
