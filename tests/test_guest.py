"""The lab guest: build it, boot it under TCG, and check a save moves real RAM.

The libvirt part runs in a child interpreter (this file run as a script): a
process can only ever open one embedded-driver root, even after closing it
("already open with path ..."), so opening a private root here would break, or
be broken by, any other test in the same pytest process.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jobtui.lab.guest import (
    DIRTYING_TEXT,
    DONE_TEXT,
    KERNEL_NAME,
    build_guest,
    guest_os_xml,
    serial_xml,
    wait_for_serial,
)

GUEST_MIB = 256
QEMU_CONF = (
    'user = "root"\ngroup = "root"\ndynamic_ownership = 0\nremember_owner = 0\n'
    'stdio_handler = "file"\n'
)


def test_build_caches_and_rebuilds_stale(tmp_path):
    elf = build_guest(tmp_path)
    assert elf == tmp_path / KERNEL_NAME
    head = elf.read_bytes()[:20]
    # ELF, 32-bit, little endian, executable, i386: what QEMU's multiboot loader wants.
    assert head[:4] == b"\x7fELF" and head[4] == 1 and head[5] == 1
    assert int.from_bytes(head[16:18], "little") == 2
    assert int.from_bytes(head[18:20], "little") == 3

    mtime = elf.stat().st_mtime_ns
    assert build_guest(tmp_path) == elf
    assert elf.stat().st_mtime_ns == mtime  # fresh: not rebuilt

    os.utime(elf, (0, 0))  # now older than every source
    build_guest(tmp_path)
    assert elf.stat().st_mtime_ns > 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build-")]


def test_build_names_missing_tool(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(RuntimeError, match="'gcc' not found") as info:
        build_guest(tmp_path / "cache")
    assert "\n" not in str(info.value)


def test_xml_fragments_escape_and_parse():
    os_el = ET.fromstring(guest_os_xml(Path("/x&y/fill.elf"), "dirty=8 rate=<4>"))
    assert os_el.tag == "os"
    assert os_el.findtext("type") == "hvm"
    assert os_el.findtext("kernel") == "/x&y/fill.elf"
    assert os_el.findtext("cmdline") == "dirty=8 rate=<4>"
    assert ET.fromstring(guest_os_xml(Path("/k"))).find("cmdline") is None

    fragment = serial_xml('/l/o"g')
    devices = ET.fromstring(f"<devices>{fragment}</devices>")
    serial, console = devices
    assert serial.tag == "serial" and serial.get("type") == "file"
    assert serial.find("source").get("path") == '/l/o"g'
    assert serial.find("target").get("port") == "0"
    assert console.tag == "console" and console.find("target").get("type") == "serial"


def test_wait_for_serial_needs_a_whole_line(tmp_path):
    log = tmp_path / "serial.log"
    with pytest.raises(TimeoutError, match="no line"):
        wait_for_serial(log, DONE_TEXT, 0.1)  # no file yet
    log.write_text(f"{DONE_TEXT} 2")  # caught mid-line
    with pytest.raises(TimeoutError, match="log ends"):
        wait_for_serial(log, DONE_TEXT, 0.1)
    log.write_text(f"boot\n{DONE_TEXT} 254 MiB\n")
    wait_for_serial(log, DONE_TEXT, 0.1)


def _qemu_pids(root: Path) -> list[int]:
    """QEMU processes of this embedded root: libvirt puts paths under it on their command line."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and str(root).encode() in b" ".join(argv):
            pids.append(int(entry.name))
    return pids


def _domain_xml(name: str, mib: int, os_xml: str, log: Path) -> str:
    return (
        f"<domain type='qemu'><name>{name}</name>"
        f"<memory unit='MiB'>{mib}</memory><vcpu>1</vcpu>{os_xml}"
        "<on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"{serial_xml(log)}<memballoon model='none'/></devices></domain>"
    )


def _scenario(root: Path) -> dict[str, float | int | str]:
    """Child side: fill a 256 MiB TCG guest, save it, then try the dirty mode."""
    from jobtui.engine.eventloop import ensure_event_loop

    ensure_event_loop()  # the embedded driver refuses to open without one
    import libvirt

    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / "qemu.conf").write_text(QEMU_CONF)
    kernel = build_guest(root / "cache")
    result: dict[str, float | int | str] = {}

    conn = libvirt.open(f"qemu:///embed?root={root}")
    dom = None
    try:
        log = root / "fill.log"
        dom = conn.defineXML(_domain_xml("fill", GUEST_MIB, guest_os_xml(kernel), log))
        t0 = time.monotonic()
        dom.create()
        wait_for_serial(log, DONE_TEXT, 60)
        result["fill_s"] = time.monotonic() - t0
        result["serial"] = log.read_text()

        save = root / "fill.save"
        t0 = time.monotonic()
        dom.save(str(save))
        result["save_s"] = time.monotonic() - t0
        result["save_bytes"] = save.stat().st_size
        with save.open("rb") as f:
            # A sample from the middle is guest RAM, past libvirt's XML header.
            f.seek(result["save_bytes"] // 2)
            sample = f.read(4 << 20)
        result["gzip_ratio"] = len(gzip.compress(sample, 1)) / len(sample)
        save.unlink()
        result["active_after_save"] = int(dom.isActive())
        dom.undefine()
        dom = None

        # Dirty mode: transient domain, only check that the guest gets there.
        log = root / "dirty.log"
        xml = _domain_xml("dirty", 64, guest_os_xml(kernel, "dirty=16 rate=8"), log)
        dom = conn.createXML(xml)
        wait_for_serial(log, DIRTYING_TEXT, 60)
        result["dirty_serial"] = log.read_text()
    finally:
        # Embedded QEMUs outlive their client (re-attached when the root reopens): destroy.
        for d in conn.listAllDomains():
            persistent = d.isPersistent()  # a transient one is gone once destroyed
            if d.isActive():
                d.destroy()
            if persistent:
                d.undefine()
        conn.close()
    return result


@pytest.mark.timeout(240)
def test_fill_then_save_moves_real_ram():
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed")
    root = Path(tempfile.mkdtemp(prefix="jobtui-guest-"))
    leftovers: list[int] = []
    try:
        proc = subprocess.run(
            [sys.executable, __file__, str(root)],
            capture_output=True,
            text=True,
            timeout=200,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        deadline = time.monotonic() + 5
        while (leftovers := _qemu_pids(root)) and time.monotonic() < deadline:
            time.sleep(0.1)  # destroy() may still be reaping
        for pid in leftovers:  # only if the child died mid-way: never leak a QEMU
            os.kill(pid, 9)
        shutil.rmtree(root, ignore_errors=True)
    assert leftovers == [], f"QEMU of {root} still running: {leftovers}"
    assert not root.exists()

    print(
        f"\nfill {GUEST_MIB} MiB: {result['fill_s']:.2f} s (start included); "
        f"save: {result['save_s']:.2f} s, {result['save_bytes'] / 2**20:.1f} MiB, "
        f"gzip ratio {result['gzip_ratio']:.3f}"
    )
    done = [ln for ln in str(result["serial"]).splitlines() if DONE_TEXT in ln]
    assert len(done) == 1
    assert int(done[0].split()[2]) >= GUEST_MIB - 8  # all but the low 2 MiB and BIOS areas
    assert not result["active_after_save"]
    # QEMU writes all-zero pages as a flag: an unfilled 256 MiB guest saves to
    # ~1 MiB, so the size alone proves the RAM was filled...
    assert result["save_bytes"] >= 200 * 2**20
    # ...and incompressible content that it was filled with pseudo-random data.
    assert result["gzip_ratio"] > 0.95
    assert f"{DIRTYING_TEXT} 16 MiB at 8 MiB/s" in str(result["dirty_serial"])


if __name__ == "__main__":
    print(json.dumps(_scenario(Path(sys.argv[1]))))
