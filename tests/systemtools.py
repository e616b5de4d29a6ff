"""What the tests against a private libvirtd share: a direct connection (the truth to check
jobtui against), small domains with real data, and the jobtui command as a process."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt

from jobtui.engine.eventloop import ensure_event_loop
from jobtui.lab import kvm_usable
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache
from jobtui.lab.images import create_chain, create_image
from jobtui.lab.xmlgen import DiskSpec, copy_dest_xml, domain_xml


def connection(uri: str) -> Iterator[libvirt.virConnect]:
    """For a fixture: `yield from connection(uri)`."""
    ensure_event_loop()
    c = libvirt.open(uri)
    try:
        yield c
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            c.close()


class Domains:
    """Makes small persistent domains with real data on their disks; removes them after."""

    def __init__(self, conn: libvirt.virConnect, images: Path) -> None:
        self.conn = conn
        self.images = images
        self.made: list[libvirt.virDomain] = []

    def image(self, name: str, data_mib: int = 64) -> Path:
        return create_image(self.images / f"{name}.qcow2", 128, data_mib=data_mib)

    def chain(self, name: str, layers: int) -> Path:
        return create_chain(self.images, name, layers, 128, 32)[-1]

    def new(self, prefix: str, disks: dict[str, Path]) -> libvirt.virDomain:
        name = f"{prefix}-{uuid.uuid4().hex[:4]}"
        specs = [DiskSpec(t, p) for t, p in disks.items()]
        dom = self.conn.defineXML(domain_xml(name, specs, kvm=kvm_usable()))
        self.made.append(dom)
        dom.create()
        return dom

    def remove_all(self) -> None:
        for dom in self.made:
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefine()


def made_domains(conn: libvirt.virConnect, images: Path) -> Iterator[Domains]:
    """For a fixture: `yield from made_domains(conn, tmp_path)`; removed afterwards."""
    d = Domains(conn, images)
    try:
        yield d
    finally:
        d.remove_all()


def run_jobtui(
    env: dict[str, str], history: Path, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtui", "--history", str(history), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=timeout,
    )


async def tui_shows_a_copy_under_the_hosts_name(
    uri: str, name: str, domains: Domains, tmp_path: Path, prefix: str
) -> None:
    """The TUI on a real engine over `uri`: a throttled copy shows up, and the host bar
    names the host by its inventory name, not its URI."""
    from jobtui.engine.monitor import JobMonitor
    from jobtui.lab import MiB
    from jobtui.model import JobState
    from jobtui.tui.app import JobTUI
    from jobtui.tui.widgets.host_bar import HostBar

    dom = domains.new(prefix, {"vda": domains.image(f"{prefix}-a")})
    dom.blockCopy(
        "vda",
        copy_dest_xml(tmp_path / f"{prefix}-copy.qcow2"),
        {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: 1 * MiB},
        libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB,
    )
    monitor = JobMonitor([uri], active_interval=0.5, idle_interval=1.0)
    monitor.start()
    try:
        app = JobTUI(monitor, host_names={uri: name})
        async with app.run_test(size=(120, 35)) as pilot:
            for _ in range(300):
                if monitor.find(dom.name(), "copy-vda") is not None:
                    break
                await pilot.pause(0.1)
            job = monitor.find(dom.name(), "copy-vda")
            assert job is not None and job.state is JobState.RUNNING
            await pilot.pause(0.5)
            bar = str(app.query_one(HostBar).render())
            assert name in bar and uri not in bar
    finally:
        monitor.stop()


def private_daemon(base: Path, name: str) -> Iterator[PrivateDaemon]:
    """For a module fixture: `yield from private_daemon(tmp_path_factory.mktemp("d"), "h1")`
    (a short base: the socket path must fit AF_UNIX's 107 bytes). No QEMU may survive it."""
    d = PrivateDaemon(base, name, caps_cache=default_caps_cache())
    d.start()
    try:
        yield d
    finally:
        d.stop()
    assert not d.qemu_pids(), f"a QEMU of {name}'s tests survived"
