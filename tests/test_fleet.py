"""The lab's fleet (jobtui/lab/fleet.py): three private daemons behind one sshd, three
domains each; `jobtui list --json` over SSH sees every host up and the fleet's copies,
and nothing is left behind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from test_cli_system import cli_env

from jobtui.lab.fleet import Fleet

pytestmark = pytest.mark.system


def test_fleet_of_three_hosts_over_one_sshd(tmp_path) -> None:
    fleet = Fleet(3, 3, running=2, jobs=3)
    with fleet:
        assert fleet.qemu_count() == 6
        assert len({h.ssh_uri for h in fleet.hosts}) == 3
        assert all(u.startswith("qemu+ssh://root@127.0.0.1:") for u in fleet.uris)
        proc = subprocess.run(
            [sys.executable, "-m", "jobtui", "--history", str(tmp_path / "h.sqlite3")]
            + ["list", "--json"],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env={**cli_env(), "JOBTUI_HOSTS": str(fleet.hosts_file)},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        jobs = json.loads(proc.stdout)
        got = {(j["host_name"], j["domain"], j["name"], j["state"]) for j in jobs}
        assert got == {(h.name, d, "copy-vda", "running") for h, d in fleet.copies}
        # Every domain of every host, listed through the same ssh transport.
        for h in fleet.hosts:
            out = subprocess.run(
                ["virsh", "-c", h.ssh_uri, "list", "--all", "--name"],
                capture_output=True,
                text=True,
                timeout=30,
            )
            assert sorted(out.stdout.split()) == h.domains, out.stderr
        base = fleet.base
    assert not base.exists()
    assert fleet.qemu_count() == 0
    assert not fleet.sshd.client_pids()
