"""The `jobtui` command without a libvirt daemon: grammar, exit statuses, output formats.

Where the behaviour is about the process (exit status, one line on stderr, no
traceback) the CLI runs as a subprocess, exactly as a shell would run it.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from datetime import datetime

import pytest

from jobtui.cli.args import build_parser, default_uris
from jobtui.cli.format import event_line, event_to_dict, human_rate, job_table, job_to_dict
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobStateChanged, JobType

NOWHERE = "qemu+unix:///system?socket=/nonexistent/sock"
MiB = 1024 * 1024


def jobtui(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "jobtui", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**base, **(env or {})},
        timeout=60,
    )


def one_line_error(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobtui: "), proc.stderr
    assert proc.stdout == ""
    return lines[0]


def copy_job(**changes: object) -> Job:
    job = Job(
        key=JobKey("qemu:///system", "0b9f7c4e-1111-2222-3333-444455556666", "copy-vda", 1.7e9),
        domain="web1",
        type=JobType.BLOCK_COPY,
        state=JobState.READY,
        config=FrozenMap(disk="vda", destination="/var/lib/libvirt/images/copy.qcow2"),
        stats=FrozenMap(rate=33554432),
        current=256 * MiB,
        end=256 * MiB,
        bandwidth=32 * MiB,
        qemu_id="copy-vda-libvirt-1-format",
    )
    return job.evolve(**changes)


# --- the grammar ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (["abort", "web1"], "the following arguments are required: JOB"),
        (["list", "--bogus"], "unrecognized arguments: --bogus"),
        (["watch", "--timeout", "-1"], "must be a positive number of seconds"),
        (["--wait", "soon", "list"], "not a number of seconds: 'soon'"),
        (["set-speed", "web1", "copy-vda"], "required: BYTES/S"),
    ],
)
def test_usage_errors_are_one_line_with_status_2(argv: list[str], words: str) -> None:
    msg = one_line_error(jobtui(*argv), 2)
    assert words in msg
    assert "--help" in msg


@pytest.mark.parametrize("bad", ["fast", "-5M", "12Q", "nan"])
def test_malformed_bandwidth_is_refused_before_connecting(bad: str) -> None:
    # The URI is unreachable: status 2, not 3, proves nothing was connected.
    msg = one_line_error(jobtui("-c", NOWHERE, "set-speed", "web1", "copy-vda", "--", bad), 2)
    assert "not a bandwidth" in msg


def test_destructive_op_without_terminal_needs_yes() -> None:
    # Post-copy too: there is no way back from it (the migration can no longer be aborted).
    for op in ("abort", "finalize", "dismiss", "postcopy"):
        msg = one_line_error(jobtui("-c", NOWHERE, op, "web1", "copy-vda"), 2)
        assert "pass --yes" in msg and op in msg


def test_tui_needs_a_terminal() -> None:
    msg = one_line_error(jobtui("-c", NOWHERE), 2)
    assert "needs a terminal" in msg


def test_unreachable_uri_is_status_3_with_libvirts_reason() -> None:
    t0 = time.monotonic()
    for argv in (["list"], ["xml", "web1", "copy-vda"], ["abort", "web1", "copy-vda", "--yes"]):
        msg = one_line_error(jobtui("-c", NOWHERE, "--wait", "10", *argv), 3)
        assert msg.startswith(f"jobtui: cannot connect to {NOWHERE}: ")
        assert "/nonexistent/sock" in msg and "No such file or directory" in msg
    # A refused connection is known at once: no waiting out --wait.
    assert time.monotonic() - t0 < 15


def test_watch_on_unreachable_uri_is_status_3() -> None:
    msg = one_line_error(jobtui("-c", NOWHERE, "watch", "--json", "--timeout", "5"), 3)
    assert "No such file or directory" in msg


def test_libvirt_default_uri_is_the_default_connection() -> None:
    msg = one_line_error(jobtui("list", env={"LIBVIRT_DEFAULT_URI": NOWHERE}), 3)
    assert NOWHERE in msg


def test_help_lists_exit_statuses_and_the_taint() -> None:
    out = jobtui("--help")
    assert out.returncode == 0
    for line in ("0  done", "1  refused", "2  usage error", "3  connection failure", "4  no such"):
        assert line in out.stdout
    assert "TAINTED" in out.stdout
    for cmd in ("list", "xml", "watch", "abort", "set-speed", "postcopy", "tui", "demo"):
        assert f"    {cmd} " in out.stdout
    sub = jobtui("pause", "--help")
    assert sub.returncode == 0 and "--allow-qemu-monitor" in sub.stdout
    assert "-y, --yes" in jobtui("abort", "--help").stdout
    assert "-y, --yes" in jobtui("postcopy", "--help").stdout
    assert "-y, --yes" not in jobtui("set-speed", "--help").stdout


# --- options, parsed in process -------------------------------------------------------------


def test_shared_options_go_before_or_after_the_command() -> None:
    p = build_parser()
    a = p.parse_args(["-c", "qemu:///a", "-r", "list", "--json"])
    assert (a.uris, a.readonly, a.json, a.command) == (["qemu:///a"], True, True, "list")
    b = p.parse_args(["list", "-c", "qemu:///a", "-c", "qemu:///b", "--history", "/tmp/h"])
    assert (b.uris, b.readonly, str(b.history), b.wait) == (
        ["qemu:///a", "qemu:///b"],
        False,
        "/tmp/h",
        15.0,
    )
    c = p.parse_args(["set-speed", "web1", "copy-vda", "32M", "--allow-qemu-monitor"])
    assert (c.bandwidth, c.allow_qemu_monitor) == (32 * MiB, True)
    assert p.parse_args([]).command == "tui"


def test_default_uri(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIBVIRT_DEFAULT_URI", "qemu+ssh://kvm1/system")
    assert default_uris() == ["qemu+ssh://kvm1/system"]
    monkeypatch.delenv("LIBVIRT_DEFAULT_URI")
    assert default_uris() == ["qemu:///system" if os.geteuid() == 0 else "qemu:///session"]


# --- output formats -------------------------------------------------------------------------


def test_job_json_has_every_field() -> None:
    d = job_to_dict(copy_job())
    assert d == {
        "host": "qemu:///system",
        "host_name": "system",
        "domain": "web1",
        "uuid": "0b9f7c4e-1111-2222-3333-444455556666",
        "name": "copy-vda",
        "type": "block-copy",
        "state": "ready",
        "current": 256 * MiB,
        "end": 256 * MiB,
        "progress": 1.0,
        "bandwidth": 32 * MiB,
        "started": "2023-11-14T22:13:20.000+00:00",
        "started_before_seen": False,
        "finished": None,
        "config": {"disk": "vda", "destination": "/var/lib/libvirt/images/copy.qcow2"},
        "stats": {"rate": 33554432},
        "message": "",
        "stalled": False,
        "qemu_id": "copy-vda-libvirt-1-format",
        "rate": None,
        "sampled": None,
        "stale": False,
    }
    assert json.loads(json.dumps(d)) == d
    assert datetime.fromisoformat(d["started"]).timestamp() == 1.7e9


def test_job_json_of_a_finished_domain_job() -> None:
    job = Job(
        key=JobKey("qemu+ssh://kvm1/system", "u-1", "backup", 1.7e9 + 0.25),
        domain="db1",
        type=JobType.BACKUP,
        state=JobState.FAILED,
        config=FrozenMap(disks="vda,vdb"),
        stats=FrozenMap(disk_total=10, disk_processed=4, errmsg="No space left", odd=math.nan),
        finished=1.7e9 + 60.5,
        message="No space left on device",
    )
    d = json.loads(json.dumps(job_to_dict(job), allow_nan=False))
    assert (d["current"], d["end"], d["bandwidth"], d["progress"]) == (None, None, None, None)
    assert d["started"] == "2023-11-14T22:13:20.250+00:00"
    assert d["finished"] == "2023-11-14T22:14:20.500+00:00"
    assert d["stats"] == {
        "disk_total": 10,
        "disk_processed": 4,
        "errmsg": "No space left",
        "odd": None,
    }
    assert d["config"] == {"disks": "vda,vdb"}
    assert (d["state"], d["message"], d["qemu_id"]) == ("failed", "No space left on device", None)


def test_event_json_and_text() -> None:
    job = copy_job(state=JobState.RUNNING)
    first = JobStateChanged(job.key, None, JobState.RUNNING, job, 1.7e9 + 1)
    d = event_to_dict(first)
    assert {k: d[k] for k in ("time", "host", "domain", "name", "type", "old", "new")} == {
        "time": "2023-11-14T22:13:21.000+00:00",
        "host": "qemu:///system",
        "domain": "web1",
        "name": "copy-vda",
        "type": "block-copy",
        "old": None,
        "new": "running",
    }
    line = event_line(first)
    when = datetime.fromtimestamp(1.7e9 + 1).strftime("%Y-%m-%d %H:%M:%S")
    assert line == f"{when}.000 qemu:///system web1 copy-vda: new -> running"
    gone = job.evolve(state=JobState.ABORTED, message="aborted")
    last = JobStateChanged(job.key, JobState.RUNNING, JobState.ABORTED, gone, 1.7e9 + 2)
    assert event_line(last).endswith("web1 copy-vda: running -> aborted (aborted)")
    assert event_to_dict(last)["old"] == "running"


def test_a_migrations_rate_is_what_libvirt_says_it_sends_as_in_the_tui() -> None:
    """Its progress (total - remaining) stalls or goes back while the guest dirties
    memory; libvirt's memory_bps + disk_bps is what moves. A one-shot `list` has no
    measured rate of its own, and showed none where the TUI showed libvirt's."""
    from jobtui.model import FrozenMap
    from jobtui.tui.widgets.row_cells import row_cells

    moving = copy_job(
        key=JobKey("qemu:///system", "u3", "migration-out", 1.7e9),
        type=JobType.MIGRATION_OUT,
        state=JobState.RUNNING,
        stats=FrozenMap(memory_bps=96 * MiB, disk_bps=4 * MiB, data_total=512 * MiB),
        rate=None,
        sampled=1.7e9 + 10,
    )
    row = job_table([moving], show_host=False, now=1.7e9 + 11).splitlines()[2].split()
    assert row[5:7] == ["100.0", "MiB/s"]
    cells = row_cells(moving, None, 1.7e9 + 11)
    assert str(cells["rate"]).strip() == "100 MiB/s"  # the TUI's cell (3 figures)


def test_table_is_aligned_and_shows_hosts_only_when_several() -> None:
    jobs = [
        copy_job(),
        copy_job(
            key=JobKey("qemu:///system", "u2", "pull-vdb", 1.7e9),
            domain="database-primary",
            type=JobType.BLOCK_PULL,
            state=JobState.RUNNING,
            current=3 * MiB,
            end=12 * MiB,
            bandwidth=None,
        ),
    ]
    lines = job_table(jobs, show_host=False).splitlines()
    assert lines[0].split() == [
        "Domain", "Job", "Type", "State", "Progress", "Rate", "Bandwidth"
    ]  # fmt: skip
    assert set(lines[1]) == {"-"}
    assert lines[2].split() == [
        "web1", "copy-vda", "block-copy", "ready", "100%", "-", "32.0", "MiB/s"
    ]  # fmt: skip
    assert lines[3].split() == [
        "database-primary", "pull-vdb", "block-pull", "running", "25%", "-", "-"
    ]  # fmt: skip
    moving = jobs[1].evolve(rate=4 * MiB, sampled=1.7e9 + 10)
    assert job_table([moving], show_host=False, now=1.7e9 + 11).splitlines()[2].split()[5:7] == [
        "4.0", "MiB/s"
    ]  # fmt: skip
    old = moving.evolve(stale=True, rate=None)
    assert "stale 42s" in job_table([old], show_host=False, now=1.7e9 + 52)
    # Every column starts at the same offset on every line.
    col = lines[0].index("Job")
    assert lines[2][col:].startswith("copy-vda") and lines[3][col:].startswith("pull-vdb")
    assert len(lines[2]) == len(lines[3]) == len(lines[0])
    with_host = job_table(jobs, show_host=True).splitlines()
    assert with_host[0].split()[0] == "Host" and with_host[2].split()[0] == "qemu:///system"
    assert job_table([], show_host=False).splitlines()[0].split()[0] == "Domain"


def test_human_rate() -> None:
    assert human_rate(None) == "-"
    assert human_rate(512) == "512 B/s"
    assert human_rate(1536) == "1.5 KiB/s"
    assert human_rate(32 * MiB) == "32.0 MiB/s"


def test_a_driver_without_the_job_api_is_named_not_waited_for(tmp_path) -> None:
    """libvirt's test driver implements no job API: the listing says so at once rather
    than waiting out --wait for a domain that can never answer, and exiting 3."""
    proc = jobtui("list", "-c", "test:///default", "--wait", "45", "--history", str(tmp_path / "h"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == (
        "jobtui: warning: test:///default: this driver has no job API: this function is not "
        "supported by the connection driver: virDomainGetJobStats"
    )
    assert "Domain" in proc.stdout


def test_commands_other_than_the_tui_run_with_the_garbage_collector_on() -> None:
    # `jobtui` starts with the collector off (jobtui.cli.entry) for the TUI's first
    # frame; a long `watch` or `exporter` must not run without it.
    import gc

    from jobtui.cli import main

    for argv in (["-c", NOWHERE, "list"], ["-c", NOWHERE, "watch", "--timeout", "1"]):
        gc.disable()
        try:
            assert main(argv) == 3
            assert gc.isenabled(), argv
        finally:
            gc.enable()


def test_control_characters_in_names_never_reach_the_terminal_raw() -> None:
    # libvirt accepts a newline, a tab or an ESC in a domain name. Printed raw, a
    # newline split a row of `list` in two, and an ESC would be obeyed by the terminal.
    odd = copy_job(domain="nl\nname\tx\x1b]0;owned\x07")
    table = job_table([odd, copy_job()], show_host=False)
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, one line per job
    assert "nl\\nname\\tx\\x1b]0;owned\\x07" in lines[2]
    assert "\x1b" not in table and "\t" not in table
    e = JobStateChanged(odd.key, JobState.RUNNING, JobState.READY, odd, 1.7e9)
    line = event_line(e)
    assert "\n" not in line and "\x1b" not in line and "nl\\nname" in line


def test_a_plain_name_is_printed_as_it_is() -> None:
    from jobtui.units import printable

    for name in ("web1", "my dom", "日本語-vm", "quo'te\"d", "--help"):
        assert printable(name) == name


def test_a_domain_named_like_another_domains_uuid_resolves_as_that_uuid_as_virsh_does() -> None:
    from types import SimpleNamespace

    from jobtui.cli.session import Session, resolve_domain
    from jobtui.model import Domain

    host = "qemu:///system"
    d2 = Domain(host, "5f3c0b6e-0000-4000-8000-00000000d002", "d2", "running")
    impostor = Domain(host, "5f3c0b6e-0000-4000-8000-0000000000ff", d2.uuid, "running")
    monitor = SimpleNamespace(domains=lambda: [d2, impostor], jobs=lambda **_: [])
    s = Session(monitor, [host], {}, True)  # type: ignore[arg-type]
    assert resolve_domain(s, d2.uuid) == d2
    assert resolve_domain(s, d2.uuid.upper()) == d2
    assert resolve_domain(s, "d2") == d2
