"""The picture drawn before Textual is up (jobtui/tui/splash.py): what it shows, where, and
that the real `jobtui` command draws it first and leaves the terminal as it found it."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import pytest
from systemtools import connection, private_daemon

from jobtui.lab import kvm_usable
from jobtui.lab.daemon import PrivateDaemon
from jobtui.lab.images import create_image
from jobtui.lab.xmlgen import DiskSpec, domain_xml
from jobtui.tui.splash import NARROW, TREE_WIDTH, cells, picture

MOUSE_ON = b"\x1b[?1000h"  # Textual's driver, as it starts


@dataclass(frozen=True)
class Listed:
    uri: str
    domains: tuple[tuple[str, str, Any], ...] = ()
    error: BaseException | None = None


def doms(*names: str) -> tuple[tuple[str, str, Any], ...]:
    return tuple((f"uuid-{n}", n, None) for n in names)


def test_hosts_and_their_domains_sit_where_the_tree_draws_them() -> None:
    a, b = "qemu:///system", "qemu+ssh://root@kvm2/system"
    rows = picture(
        [Listed(b, doms("web2", "db")), Listed(a, doms("web1"))],
        [b, a],
        {b: "kvm2"},
        os.terminal_size((120, 35)),
    )
    tree = [r[: TREE_WIDTH - 1].rstrip() for r in rows[1:]]
    # In URI order, as the host bar and the tree sort them ("qemu+ssh" < "qemu:").
    assert rows[0].rstrip() == " jobtui  │  ● kvm2  │  ● system"
    assert tree == [
        "▼ all jobs",
        "├ ▼ ● kvm2",
        "│ ├ db unknown",
        "│ └ web2 unknown",
        "└ ▼ ● system",
        "  └ web1 unknown",
    ]
    assert cells(rows[0]) == 120
    assert all(r[TREE_WIDTH - 1] == "│" for r in rows[1:])


def test_a_host_not_answered_or_failed_says_so_and_odd_names_keep_the_border() -> None:
    a, b, c = "qemu:///a", "qemu:///b", "qemu:///c"
    odd = ("new\nline", "界" * 20, "e\u0301" * 40)
    rows = picture(
        [Listed(a, doms(*odd)), Listed(b, error=RuntimeError("refused"))],
        [a, b, c],
        {},
        os.terminal_size((120, 35)),
    )
    text = "\n".join(rows)
    assert "● b disconnected" in text and "● c connecting" in text
    assert rows[0].rstrip() == " jobtui  │  ● a  │  ● b disconnected  │  ● c connecting"
    assert "new\\nline" in text  # escaped, never a line break on the terminal
    for r in rows[1:]:
        # Wide characters count two cells, a combining accent none: the border stays put.
        assert r.endswith("│") and cells(r) == TREE_WIDTH, r
    assert "│ └ " + "界" * 13 + "…│" in rows, rows


def test_a_short_terminal_gets_no_more_rows_than_fit_and_a_narrow_one_no_tree() -> None:
    # Below NARROW columns the app folds the tree away: its domains would show, then go.
    names = [f"d{i:02d}" for i in range(40)]
    listed = [Listed("qemu:///system", doms(*names))]
    rows = picture(listed, ["qemu:///system"], {}, os.terminal_size((120, 24)))
    assert len(rows) == 22  # the status line and the key bar stay free
    assert rows[-1].startswith("  ├ d18 unknown")  # the bar, "all jobs", the host, 19
    narrow = picture(listed, ["qemu:///system"], {}, os.terminal_size((NARROW - 1, 24)))
    assert [r.rstrip() for r in narrow] == [" jobtui  │  ● system"]


# --- the real command on a pseudo-terminal ------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDaemon]:
    yield from private_daemon(tmp_path_factory.mktemp("d"), "sp")


def test_jobtui_draws_the_domains_before_textual_starts_and_restores_the_terminal(
    daemon: PrivateDaemon, tmp_path: Path
) -> None:
    name = "splash-ü界"
    for c in connection(daemon.uri):
        image = create_image(tmp_path / "sp.qcow2", 16, data_mib=0)
        c.defineXML(domain_xml(name, [DiskSpec("vda", image)], kvm=kvm_usable()))
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    before = termios.tcgetattr(slave)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LIBVIRT_", "JOBTUI_"))},
        "TERM": "xterm-256color",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    argv = [sys.executable, "-m", "jobtui", "-c", daemon.uri, "--history", str(tmp_path / "h")]
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env)
    out = bytearray()

    def read() -> None:
        with contextlib.suppress(OSError):
            while chunk := os.read(master, 65536):
                out.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while b"Quit" not in out:  # the key bar: the app is up
            assert proc.poll() is None and time.monotonic() < deadline, bytes(out[-2000:])
            time.sleep(0.05)
        first = out.index(name.encode())
        assert first < out.index(MOUSE_ON), "the domain was on screen only once Textual was"
        assert b"\x1b[?1049h" in out[:first]  # on the alternate screen, as the app is
        os.write(master, b"q")
        assert proc.wait(30) == 0
        after = termios.tcgetattr(slave)
        assert after[3] & (termios.ECHO | termios.ICANON) == before[3] & (
            termios.ECHO | termios.ICANON
        ), "the terminal was left without echo"
        assert b"Traceback" not in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(slave)
        reader.join(5)
        os.close(master)
        with contextlib.suppress(libvirt.libvirtError):
            for c in connection(daemon.uri):
                c.lookupByName(name).undefine()
