"""The private libvirtd of jobtui.lab.daemon, against the real libvirt and QEMU.

Every daemon is stopped by a finalizer, which also checks that neither a
libvirtd nor a QEMU of ours survived, so a failing test leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobtui.engine.eventloop import ensure_event_loop
from jobtui.lab.daemon import (
    PrivateDaemon,
    daemon_processes,
    default_caps_cache,
    start_private_daemon,
)

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("libvirtd") or not shutil.which("unshare"),
        reason="needs root, libvirtd and unshare",
    ),
]

libvirt = pytest.importorskip("libvirt")


def qemu_processes(needle: str) -> list[int]:
    """Live (non-zombie) QEMU processes whose command line mentions needle."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if "qemu-system" in cmd and needle in cmd and state != "Z":
            found.append(int(entry.name))
    return found


def domain_xml(name: str, disk: Path) -> str:
    return textwrap.dedent(f"""\
        <domain type='qemu'>
          <name>{name}</name>
          <memory unit='MiB'>64</memory>
          <vcpu>1</vcpu>
          <os><type arch='x86_64' machine='pc'>hvm</type></os>
          <devices>
            <disk type='file' device='disk'>
              <driver name='qemu' type='qcow2'/>
              <source file='{disk}'/>
              <target dev='vda' bus='virtio'/>
            </disk>
          </devices>
        </domain>""")


def host_uuid(conn: object) -> str:
    m = re.search(r"<host>\s*<uuid>([^<]+)</uuid>", conn.getCapabilities())
    assert m, "no host uuid in capabilities"
    return m.group(1)


@pytest.fixture
def base(tmp_path_factory) -> Path:
    # Short on purpose: the socket path must fit AF_UNIX's 107 bytes, and
    # tmp_path embeds the (long) test name.
    return tmp_path_factory.mktemp("d")


@pytest.fixture
def make_daemon(base) -> Iterator[Callable[..., PrivateDaemon]]:
    """Start daemons under base; stop them all and check nothing is left."""
    started: list[PrivateDaemon] = []

    def make(name: str = "host1") -> PrivateDaemon:
        d = start_private_daemon(base, name)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
    for d in started:
        assert not list(daemon_processes(d.root)), f"libvirtd of {d.name} survived stop()"
        assert not d.qemu_pids(), f"QEMU of {d.name} survived stop()"
    assert not qemu_processes(str(base)), "a QEMU using our disks survived"


@pytest.fixture
def disk(base) -> Callable[[str], Path]:
    def make(name: str) -> Path:
        path = base / f"{name}.qcow2"
        subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"],
            check=True,
            timeout=30,
        )
        return path

    return make


def open_conn(d: PrivateDaemon) -> object:
    ensure_event_loop()
    return libvirt.open(d.uri)


def virsh(d: PrivateDaemon, *args: str) -> str:
    return subprocess.run(
        ["virsh", "-c", d.uri, *args], capture_output=True, text=True, check=True, timeout=60
    ).stdout


def test_daemon_answers_in_its_own_namespace(make_daemon):
    d = make_daemon()
    conn = open_conn(d)
    try:
        assert conn.getHostname()
        assert conn.getURI() == d.uri
        assert conn.listAllDomains() == []
        assert host_uuid(conn) == d.host_uuid
    finally:
        conn.close()
    # pid is libvirtd itself (so kill/pause hit it), in a mount namespace of its own.
    assert Path(f"/proc/{d.pid}/comm").read_text().strip() == "libvirtd"
    assert os.readlink(f"/proc/{d.pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    assert d.log_path.exists()
    assert "Id" in virsh(d, "list")


def test_domain_survives_kill_and_is_reattached(make_daemon, disk):
    d = make_daemon()
    conn = open_conn(d)
    dom = conn.createXML(domain_xml("t1", disk("t1")), 0)
    assert dom.isActive()
    assert re.search(r"\bt1\s+running", virsh(d, "list"))
    (qemu_pid,) = d.qemu_pids().values()
    assert qemu_processes(str(d.root.parent)) == [qemu_pid]

    d.kill()
    with pytest.raises(libvirt.libvirtError):
        conn.listAllDomains()
    conn.close()
    assert d.pid is None
    assert d.qemu_pids() == {"t1": qemu_pid}, "QEMU must outlive libvirtd"

    d.restart()
    conn = open_conn(d)
    try:
        assert [x.name() for x in conn.listAllDomains()] == ["t1"]
        again = conn.lookupByName("t1")
        assert again.isActive()
        assert again.info()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert d.qemu_pids() == {"t1": qemu_pid}, "the same QEMU, re-attached"
    finally:
        conn.close()

    d.stop()
    assert d.pid is None
    assert not list(daemon_processes(d.root))
    assert not qemu_processes(str(d.root.parent))
    d.stop()  # idempotent


def test_stop_after_kill_leaves_no_qemu(make_daemon, disk):
    d = make_daemon()
    conn = open_conn(d)
    conn.createXML(domain_xml("t1", disk("t1")), 0)
    conn.close()
    assert d.qemu_pids()
    d.kill()
    d.stop()
    assert not d.qemu_pids()
    assert not qemu_processes(str(d.root.parent))


def test_stop_destroys_and_undefines_persistent_domains(make_daemon, disk):
    d = make_daemon()
    conn = open_conn(d)
    dom = conn.defineXML(domain_xml("p1", disk("p1")))
    dom.create()
    conn.defineXML(domain_xml("p2", disk("p2")))  # defined, never started
    conn.close()
    assert sorted(p.name for p in (d.root / "etc" / "qemu").glob("*.xml")) == ["p1.xml", "p2.xml"]
    d.stop()
    assert not list((d.root / "etc" / "qemu").glob("*.xml"))
    assert not qemu_processes(str(d.root.parent))
    # The same dirs come back empty.
    d.start()
    conn = open_conn(d)
    try:
        assert conn.listAllDomains() == []
    finally:
        conn.close()


def test_two_daemons_are_two_hosts(make_daemon, disk):
    d1 = make_daemon("host1")
    d2 = make_daemon("host2")
    assert d1.uri != d2.uri and d1.pid != d2.pid
    c1, c2 = open_conn(d1), open_conn(d2)
    try:
        assert host_uuid(c1) == d1.host_uuid
        assert host_uuid(c2) == d2.host_uuid
        assert d1.host_uuid != d2.host_uuid
        caps_uuid = re.search(r"<uuid>([^<]+)</uuid>", virsh(d2, "capabilities"))
        assert caps_uuid and caps_uuid.group(1) == d2.host_uuid
        # Separate state: the same domain name on both, each sees only its own.
        c1.createXML(domain_xml("same", disk("a")), 0)
        assert [x.name() for x in c2.listAllDomains()] == []
        c2.createXML(domain_xml("same", disk("b")), 0)
        assert c1.lookupByName("same").UUIDString() != c2.lookupByName("same").UUIDString()
    finally:
        c1.close()
        c2.close()


def test_migration_between_two_daemons_both_ways(base, disk):
    """The two-host demo's premise: managed there, peer-to-peer back.

    Peer-to-peer hands d.uri to the *source daemon*; a plain
    qemu:///system?socket=... would resolve to that daemon's own driver
    ("Attempt to migrate guest to the same host"), qemu+unix:// does not.
    """
    caps = default_caps_cache()
    a = PrivateDaemon(base, "a", (49300, 49309), caps_cache=caps)
    b = PrivateDaemon(base, "b", (49310, 49319), caps_cache=caps)
    try:
        a.start()
        b.start()
        ca, cb = open_conn(a), open_conn(b)
        dom = ca.createXML(domain_xml("mig", disk("mig")), 0)
        params = {libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1"}
        # The disk is one local file seen by both "hosts": tell libvirt so.
        flags = libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_UNSAFE
        moved = dom.migrate3(cb, params, flags)
        assert [x.name() for x in cb.listAllDomains()] == ["mig"]
        assert ca.listAllDomains() == []
        moved.migrateToURI3(a.uri, params, flags | libvirt.VIR_MIGRATE_PEER2PEER)
        assert [x.name() for x in ca.listAllDomains()] == ["mig"]
        assert cb.listAllDomains() == []
        ca.close()
        cb.close()
    finally:
        a.stop()
        b.stop()
    assert not qemu_processes(str(base))


def test_pause_and_resume(make_daemon):
    d = make_daemon()

    def state() -> str:
        return Path(f"/proc/{d.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

    d.pause()
    assert state() == "T"
    d.resume()
    assert state() not in "Tt"
    conn = open_conn(d)
    try:
        assert conn.listAllDomains() == []
    finally:
        conn.close()
    # stop() must work on a paused daemon too.
    d.pause()
    d.stop()
    assert d.pid is None


def test_failed_start_raises_with_log_tail(base):
    # The QEMU driver rejects this range, so libvirtd exits during startup.
    d = PrivateDaemon(base, "bad", migration_ports=(0, 10))
    try:
        with pytest.raises(RuntimeError) as exc:
            d.start(timeout=10)
        msg = str(exc.value)
        assert "\n" not in msg and msg.startswith("libvirtd bad exited")
        assert "migration" in msg.lower(), msg
        assert d.pid is None
    finally:
        d.stop()


def test_start_timeout_kills_the_daemon(base):
    d = PrivateDaemon(base, "slow")
    try:
        with pytest.raises(RuntimeError, match="not ready after 0s"):
            d.start(timeout=0)
        assert d.pid is None
        assert not list(daemon_processes(d.root))
    finally:
        d.stop()


def test_second_object_on_same_dirs_is_refused(make_daemon, base):
    d = make_daemon()
    with pytest.raises(RuntimeError, match="already runs"):
        PrivateDaemon(base, d.name).start()
    assert list(daemon_processes(d.root)) == [d.pid]
    conn = open_conn(d)  # its socket is untouched
    conn.close()


def test_socket_path_too_long_is_refused(tmp_path):
    with pytest.raises(ValueError, match="too long"):
        PrivateDaemon(tmp_path / ("x" * 100))


_EMBED_SCRIPT = """
import sys, libvirt
from jobtui.engine.eventloop import ensure_event_loop
ensure_event_loop()
root, uri = sys.argv[1], sys.argv[2]
emb = libvirt.open("qemu:///embed?root=" + root)
for u in (uri, uri.replace("qemu+unix://", "qemu://")):
    try:
        c = libvirt.open(u)
        print("OK", len(c.listAllDomains()))
        c.close()
    except libvirt.libvirtError as e:
        print("ERR", e.get_error_code(), str(e).replace("\\n", " "))
emb.close()
"""


def test_daemon_uri_still_opens_after_embedded_driver(make_daemon, base):
    """Facts §7: after qemu:///embed, a process cannot open qemu:///system.

    Run in a child process: the embedded driver's effect is process-global.
    Our qemu+unix:// URI still reaches the daemon; the transport-less
    qemu:///system?socket= form does not (the remote driver declines it).
    """
    d = make_daemon()
    root = base / "embed"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "qemu.conf").write_text(
        'user = "root"\ngroup = "root"\ndynamic_ownership = 0\n'
        'remember_owner = 0\nstdio_handler = "file"\n'
    )
    env = dict(os.environ, LIBVIRT_LOG_OUTPUTS=f"3:file:{base / 'embed.log'}")
    out = subprocess.run(
        [sys.executable, "-c", _EMBED_SCRIPT, str(root), d.uri],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    ours, plain = out.stdout.splitlines()
    assert ours == "OK 0"
    assert plain.startswith("ERR"), plain


def test_restart_time_is_small(make_daemon):
    d = make_daemon()
    t0 = time.monotonic()
    d.restart()
    assert time.monotonic() - t0 < 5
    assert d.start_seconds is not None and d.start_seconds < 5
