"""The CLI and the TUI over qemu+tls: a private libvirtd listening on 127.0.0.1 with
certificates from a lab-made CA, the client's through `pkipath=`; real block jobs.

What jobtui prints or changes over TLS is checked against what libvirt reports on a
direct (unix socket) connection to the same daemon.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import libvirt
import pytest
from systemtools import (
    Domains,
    connection,
    made_domains,
    run_jobtui,
    tui_shows_a_copy_under_the_hosts_name,
)
from test_cli_system import cli_env, disk_source, ok, one_line_error, start_copy
from test_cli_system import wait_ready as wait_mirror_ready
from test_remote_ssh import Watch

from jobtui.lab import MiB
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache
from jobtui.lab.sshd import free_port
from jobtui.lab.tls import LabPki

pytestmark = pytest.mark.system

NAME = "lab-tls"


@dataclass
class Remote:
    daemon: PrivateDaemon
    pki: LabPki
    port: int
    uri: str  # qemu+tls://127.0.0.1:PORT/system?pkipath=...
    hosts: Path


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> Iterator[Remote]:
    base = tmp_path_factory.mktemp("t")  # short: the unix socket path must fit 107 bytes
    pki = LabPki(base / "pki")
    port = free_port()
    daemon = PrivateDaemon(
        base, "h1", caps_cache=default_caps_cache(), extra_conf=pki.daemon_conf(port), listen=True
    )
    try:
        daemon.start()
        uri = pki.uri(port)
        hosts = base / "hosts.toml"
        hosts.write_text(f'[hosts.{NAME}]\nuri = "{uri}"\n')
        yield Remote(daemon, pki, port, uri, hosts)
    finally:
        daemon.stop()
    assert not daemon.qemu_pids(), "a QEMU of the TLS tests survived"


@pytest.fixture(scope="module")
def conn(remote: Remote) -> Iterator[libvirt.virConnect]:
    yield from connection(remote.daemon.uri)


@pytest.fixture
def domains(conn: libvirt.virConnect, tmp_path: Path) -> Iterator[Domains]:
    yield from made_domains(conn, tmp_path)


def env(remote: Remote) -> dict[str, str]:
    return {**cli_env(), "JOBTUI_HOSTS": str(remote.hosts)}


def jobtui(remote: Remote, history: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_jobtui(env(remote), history, *args)


def test_the_daemon_listens_on_loopback_only(remote: Remote) -> None:
    out = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True).stdout
    mine = [
        line.split()[3] for line in out.splitlines() if line.split()[3].endswith(f":{remote.port}")
    ]
    assert mine == [f"127.0.0.1:{remote.port}"]


def test_list_watch_finalize_and_abort_over_tls(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    dom = domains.new("ta", {"vda": domains.image("ta-a"), "vdb": domains.image("ta-b")})
    history = tmp_path / "h.sqlite3"
    w = Watch(
        [sys.executable, "-m", "jobtui", "-c", NAME, "--history", str(history), "watch", "--json"],
        env(remote),
    )
    try:
        dest = tmp_path / "ta-a-copy.qcow2"
        start_copy(dom, "vda", dest)
        start_copy(dom, "vdb", tmp_path / "ta-b-copy.qcow2", 1 * MiB)
        wait_mirror_ready(dom, "vda")
        e = w.event(domain=dom.name(), name="copy-vda", new="ready")
        assert (e["host"], e["host_name"]) == (remote.uri, NAME)

        jobs = {
            j["name"]: j
            for j in json.loads(ok(jobtui(remote, history, "list", "--json")))
            if j["domain"] == dom.name()
        }
        assert {n: j["state"] for n, j in jobs.items()} == {
            "copy-vda": "ready",
            "copy-vdb": "running",
        }
        assert {(j["host"], j["host_name"]) for j in jobs.values()} == {(remote.uri, NAME)}

        assert "pivoted" in ok(jobtui(remote, history, "finalize", dom.name(), "copy-vda", "-y"))
        assert disk_source(dom, "vda") == str(dest)
        ok(jobtui(remote, history, "-c", NAME, "abort", dom.name(), "copy-vdb", "--yes"))
        assert not dom.blockJobInfo("vdb", 0)
        w.event(domain=dom.name(), name="copy-vda", new="completed")
        w.event(domain=dom.name(), name="copy-vdb", new="aborted")
    finally:
        w.close()
    assert w.proc.returncode == 0


def test_a_certificate_from_another_ca_is_one_line_exit_3(remote: Remote, tmp_path: Path) -> None:
    stranger = LabPki(tmp_path / "pki", name="another CA")
    uri = remote.pki.uri(remote.port, stranger.client_dir)
    msg = one_line_error(jobtui(remote, tmp_path / "h", "-c", uri, "list"), 3)
    assert msg.endswith("authentication failed: Failed to verify peer's certificate")
    # No pkipath at all: libvirt looks in /etc/pki, where the lab put nothing.
    plain = f"qemu+tls://127.0.0.1:{remote.port}/system?pkipath={tmp_path / 'empty'}"
    msg = one_line_error(jobtui(remote, tmp_path / "h", "-c", plain, "list"), 3)
    assert "cacert.pem" in msg


async def test_tui_pilot_over_tls_shows_the_name(
    remote: Remote, domains: Domains, tmp_path: Path
) -> None:
    await tui_shows_a_copy_under_the_hosts_name(remote.uri, NAME, domains, tmp_path, "tt")
