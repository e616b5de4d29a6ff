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
from jobtui.lab.images import create_chain, create_image
from jobtui.lab.xmlgen import DiskSpec, domain_xml


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
