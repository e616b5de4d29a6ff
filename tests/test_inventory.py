"""Hosts by name: hosts.toml, -c NAME, --group, the short-name rule; no libvirt needed.

Where the behaviour is about the process (exit status 2, one line naming the file and
line, no traceback) the CLI runs as a subprocess, as a shell would run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobtui.cli.format import event_line, event_to_dict, job_table, job_to_dict
from jobtui.inventory import (
    Inventory,
    InventoryError,
    host_names,
    inventory_path,
    load_inventory,
    resolve_hosts,
    short_name,
)
from jobtui.model import Job, JobKey, JobState, JobStateChanged, JobType

NOWHERE_A = "qemu+unix:///system?socket=/nonexistent/a/sock"
NOWHERE_B = "qemu+unix:///system?socket=/nonexistent/b/sock"
GOOD = f"""
# two racks
[hosts.kvm1]
uri = "{NOWHERE_A}"
group = "rack1"

[hosts.kvm2]
uri = "{NOWHERE_B}"
group = "rack2"
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "hosts.toml"
    p.write_text(text)
    return p


def jobtui(*args: str, hosts: Path | None) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG", "JOBTUI_HOSTS")
    }
    if hosts is not None:
        env["JOBTUI_HOSTS"] = str(hosts)
    return subprocess.run(
        [sys.executable, "-m", "jobtui", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=60,
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# --- the short-name rule ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("qemu:///system", "system"),
        ("qemu:///session", "session"),
        ("qemu:///embed?root=/tmp/jobtui-demo-x1y2", "embed:jobtui-demo-x1y2"),
        ("qemu+unix:///system?socket=/tmp/jth-1/hosta/sock/libvirt-sock", "system@hosta"),
        ("qemu+ssh://root@hosta/system", "ssh:hosta"),
        ("qemu+ssh://root@127.0.0.1:2222/system?no_tty=1&keyfile=/k", "ssh:127.0.0.1:2222"),
        ("qemu+libssh://root@hosta/system", "ssh:hosta"),
        ("qemu+tls://127.0.0.1:16514/system?pkipath=/p", "tls:127.0.0.1:16514"),
        ("qemu://kvm1.lab/system", "tls:kvm1.lab"),
        ("qemu+ssh://kvm1/session", "ssh:kvm1/session"),
        ("qemu+tcp://kvm1/system", "tcp:kvm1"),
        ("test:///default", "test:default"),
        ("lxc:///", "lxc"),
    ],
)
def test_short_name(uri: str, name: str) -> None:
    assert short_name(uri) == name


# --- the file -----------------------------------------------------------------------------


def test_names_groups_and_defaults(tmp_path: Path) -> None:
    inv = load_inventory(write(tmp_path, GOOD))
    assert [(h.name, h.group) for h in inv.hosts] == [("kvm1", "rack1"), ("kvm2", "rack2")]
    default = ["qemu:///system"]
    # Neither -c nor --group: the file's hosts, before LIBVIRT_DEFAULT_URI.
    assert resolve_hosts(inv, None, None, default) == [NOWHERE_A, NOWHERE_B]
    assert resolve_hosts(inv, ["kvm2"], None, default) == [NOWHERE_B]
    assert resolve_hosts(inv, None, "rack1", default) == [NOWHERE_A]
    # A URI is taken as it is, and -c plus --group open both, once each.
    assert resolve_hosts(inv, ["qemu:///x", "kvm1"], "rack1", default) == ["qemu:///x", NOWHERE_A]
    assert resolve_hosts(Inventory(None), None, None, default) == default
    names = host_names(inv, [NOWHERE_A, "qemu+ssh://root@h9/system"])
    assert names == {NOWHERE_A: "kvm1", "qemu+ssh://root@h9/system": "ssh:h9"}


def test_where_the_file_is(tmp_path: Path) -> None:
    assert inventory_path({"XDG_CONFIG_HOME": "/x"}) == Path("/x/jobtui/hosts.toml")
    assert inventory_path({"JOBTUI_HOSTS": "/y.toml", "XDG_CONFIG_HOME": "/x"}) == Path("/y.toml")
    home = Path(os.path.expanduser("~"))
    assert inventory_path({}) == home / ".config/jobtui/hosts.toml"
    # No file where none was asked for is no inventory; a named file that is missing is an error.
    assert load_inventory(env={"XDG_CONFIG_HOME": str(tmp_path)}).hosts == ()
    with pytest.raises(InventoryError, match="no such file"):
        load_inventory(env={"JOBTUI_HOSTS": str(tmp_path / "nope.toml")})


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ('[hosts.a]\nuri = "qemu:///system"\n\nuri2 = oops\n', ":4", "Invalid value"),
        ('[hosts.a]\nuri = "qemu:///system"\ncolour = "red"\n', ":3", "unknown key 'colour'"),
        ('[hosts."qemu:///system"]\nuri = "qemu:///system"\n', ":1", "is a URI"),
        ('[hosts.a]\ngroup = "r1"\n', ":1", "needs uri"),
        ('[hosts.a]\nuri = "kvm1"\n', ":1", "is not a libvirt URI"),
        (
            '[hosts.a]\nuri = "qemu:///system"\n[hosts.b]\nuri = "qemu:///system"\n',
            ":3",
            "listed twice",
        ),
        ('[host.a]\nuri = "qemu:///system"\n', ":1", "unknown key 'host'"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_and_line(
    tmp_path: Path, text: str, where: str, says: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        load_inventory(path)
    assert str(err.value).startswith(f"{path}{where}: ") and says in str(err.value)
    # The command says the same, exit status 2, before opening any connection.
    msg = one_line(jobtui("list", hosts=path), 2)
    assert msg == f"jobtui: {err.value}"


# --- the command -----------------------------------------------------------------------------


def test_cli_names_groups_and_refusals(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    # A name reaches its URI: the connection failure (status 3) names the URI libvirt tried.
    msg = one_line(jobtui("-c", "kvm2", "list", "--wait", "5", hosts=path), 3)
    assert NOWHERE_B in msg and NOWHERE_A not in msg
    msg = one_line(jobtui("--group", "rack1", "list", "--wait", "5", hosts=path), 3)
    assert NOWHERE_A in msg and NOWHERE_B not in msg
    # Without -c or --group every host of the file, even with LIBVIRT_DEFAULT_URI set.
    msg = one_line(jobtui("list", "--wait", "5", hosts=path), 3)
    assert NOWHERE_A in msg and NOWHERE_B in msg
    msg = one_line(jobtui("-c", "kvm9", "list", hosts=path), 2)
    assert msg == (
        f"jobtui: unknown host 'kvm9': not a name in {path} (names: kvm1, kvm2) and not a URI"
    )
    msg = one_line(jobtui("--group", "rack9", "watch", hosts=path), 2)
    assert msg == f"jobtui: unknown group 'rack9' in {path} (groups: rack1, rack2)"
    # `-c ''` would be libvirt's default URI reported as a host named '': a usage error.
    msg = one_line(jobtui("-c", "", "list", hosts=None), 2)
    assert msg == "jobtui: -c '' names no host: give a host name or a URI"


# --- what the output calls a host -----------------------------------------------------------


def test_json_keeps_the_uri_and_adds_the_name() -> None:
    job = Job(
        key=JobKey(NOWHERE_A, "u-1", "copy-vda", 1.7e9),
        domain="web1",
        type=JobType.BLOCK_COPY,
        state=JobState.RUNNING,
    )
    names = {NOWHERE_A: "kvm1"}
    d = json.loads(json.dumps(job_to_dict(job, names)))
    assert (d["host"], d["host_name"]) == (NOWHERE_A, "kvm1")
    assert job_to_dict(job)["host_name"] == "system@a"
    e = JobStateChanged(job.key, None, JobState.RUNNING, job, 1.7e9 + 1)
    assert (event_to_dict(e, names)["host"], event_to_dict(e, names)["host_name"]) == (
        NOWHERE_A,
        "kvm1",
    )
    assert " kvm1 web1 copy-vda: new -> running" in event_line(e, names)
    assert job_table([job], show_host=True, names=names).splitlines()[2].split()[0] == "kvm1"
