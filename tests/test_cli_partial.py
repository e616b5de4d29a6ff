"""One host of several down: the CLI goes on with the others, says which one it could not
reach, and its exit status says the answer is incomplete. A private libvirtd with a real
copy is the host that answers; a socket nobody listens on is the one that does not.
"""

# The system CLI tests' fixtures are imported below; pytest then sees them as this
# module's, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_system import (  # noqa: F401 - fixtures
    Domains,
    Watch,
    cli_env,
    conn,
    daemon,
    domains,
    history,
    start_pull,
    watches,
)

from jobtui.lab import MiB
from jobtui.lab.daemon import PrivateDaemon

pytestmark = pytest.mark.system

DOWN = "qemu+unix:///system?socket=/nonexistent/down-sock"


def two_hosts(daemon: PrivateDaemon, history: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobtui", "-c", daemon.uri, "-c", DOWN,
            "--history", str(history), *args]  # fmt: skip


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, env=cli_env(), timeout=60
    )


def test_a_host_down_hides_neither_the_others_jobs_nor_itself(
    daemon: PrivateDaemon, domains: Domains, history: Path, watches: list[Watch]
) -> None:
    dom = domains.new("part", {"vda": domains.chain("part-a", 2)})
    start_pull(dom, "vda", 1 * MiB)

    listed = run(two_hosts(daemon, history, "list", "--json"))
    assert listed.returncode == 3 and "Traceback" not in listed.stderr
    jobs = json.loads(listed.stdout)
    assert [(j["domain"], j["name"], j["state"]) for j in jobs] == [
        (dom.name(), "pull-vda", "running")
    ]
    warning, failure = listed.stderr.splitlines()
    assert warning.startswith(f"jobtui: warning: cannot connect to {DOWN}: ")
    assert warning.endswith("its jobs are not shown")
    assert failure == "jobtui: 1 of 2 hosts not reached: listed the rest"

    # A control command on the host that answers works; a domain not found there names
    # the host that could not be asked.
    missing = run(two_hosts(daemon, history, "abort", "elsewhere", "pull-vda", "--yes"))
    assert missing.returncode == 3
    assert missing.stderr.splitlines()[-1] == (
        f"jobtui: no domain 'elsewhere' on the hosts reached; not reached: {DOWN}"
    )

    # A watch starts anyway; its stream says the host is down, in the stream's own shape.
    w = Watch(two_hosts(daemon, history, "watch", "--json"))
    watches.append(w)
    down = json.loads(w.wait_for(lambda x: json.loads(x)["type"] == "host", 20))
    assert (down["host"], down["new"]) == (DOWN, "disconnected") and down["message"]
    w.wait_for(lambda x: json.loads(x)["name"] == "pull-vda", 20)
    aborted = run(two_hosts(daemon, history, "abort", dom.name(), "pull-vda", "--yes"))
    assert aborted.returncode == 0, aborted.stderr
    w.wait_for(lambda x: json.loads(x)["name"] == "pull-vda" and json.loads(x)["new"] == "aborted")
    rc, err = w.stop(signal.SIGINT)
    assert rc == 0 and f"lost {DOWN}" in err and "Traceback" not in err
