"""The files jobtui creates: where, with which rights, and what it refuses to touch.

Every check runs `jobtui` as a separate process, as a shell would. `test:///default` is
libvirt's built-in test driver (its domain `test`): a connection that needs no daemon.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jobtui.engine.history import History
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType

NOWHERE = "qemu+unix:///system?socket=/nonexistent/sock"
TEST_URI = "test:///default"
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # the test driver's domain 'test'


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG", "JOBTUI_LOG", "JOBTUI_HISTORY")
        and not k.startswith("LIBVIRT_LOG")
    }
    env.update(XDG_STATE_HOME=str(tmp / "state"), HOME=str(tmp / "home"), TMPDIR=str(tmp / "t"))
    env.update(extra)
    (tmp / "t").mkdir(exist_ok=True)
    return env


def jobtui(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    # The lab's private config files (hosts.toml, keymap) are not the user's.
    return subprocess.run(
        [sys.executable, "-m", "jobtui", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env=env,
        timeout=60,
        preexec_fn=lambda: os.umask(0o022),
    )


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobtui: "), proc.stderr
    return lines[0]


def test_nothing_is_opened_in_tmpdir_and_plants_are_left_alone(tmp_path: Path) -> None:
    env = env_for(tmp_path)
    uid = os.getuid()
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    tmpdir = tmp_path / "t"
    (tmpdir / f"jobtui-{uid}.log").symlink_to(victim)
    (tmpdir / f"jobtui-libvirt-{uid}.log").symlink_to(tmp_path / "created-by-root")
    msg = one_line(jobtui(env, "-c", NOWHERE, "list"), 3)
    assert msg.startswith(f"jobtui: cannot connect to {NOWHERE}")
    assert victim.read_text() == "precious\n"
    assert not (tmp_path / "created-by-root").exists()
    assert sorted(p.name for p in tmpdir.iterdir()) == [
        f"jobtui-{uid}.log",
        f"jobtui-libvirt-{uid}.log",
    ]
    state = tmp_path / "state" / "jobtui"
    assert state.stat().st_mode & 0o777 == 0o700
    for name in ("jobtui.log", "libvirt.log"):
        assert (state / name).stat().st_mode & 0o777 == 0o600, name


def test_a_fifo_or_link_as_a_log_neither_hangs_nor_fails_the_command(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    state = tmp_path / "state" / "jobtui"
    state.mkdir(parents=True)
    os.mkfifo(state / "jobtui.log")  # opened plainly, this blocks forever
    (state / "libvirt.log").symlink_to(victim)
    os.mkfifo(tmp_path / "fifo")
    for extra in ({}, {"JOBTUI_LOG": str(tmp_path / "fifo")}):
        msg = one_line(jobtui(env_for(tmp_path, **extra), "-c", NOWHERE, "list"), 3)
        assert msg.startswith(f"jobtui: cannot connect to {NOWHERE}")
    assert victim.read_text() == "precious\n"


def test_a_state_directory_of_another_user_is_not_used_for_logs(tmp_path: Path) -> None:
    state = tmp_path / "state" / "jobtui"
    state.mkdir(parents=True, mode=0o777)
    os.chown(state, 65534, 65534)
    state.chmod(0o777)
    proc = jobtui(env_for(tmp_path), "-c", NOWHERE, "list")
    assert proc.returncode == 3
    assert proc.stderr.splitlines() == [
        f"jobtui: warning: history not saved: cannot use {state / 'history.sqlite3'}:"
        " a directory of uid 65534, not of this user",
        f"jobtui: cannot connect to {NOWHERE}: Failed to connect socket to"
        " '/nonexistent/sock': No such file or directory",
    ]
    assert list(state.iterdir()) == []


def test_a_wrong_history_path_is_one_line_and_left_untouched(tmp_path: Path) -> None:
    passwd = tmp_path / "p"
    passwd.write_bytes(Path("/etc/passwd").read_bytes())
    before = passwd.read_bytes()
    proc = jobtui(env_for(tmp_path), "-r", "-c", NOWHERE, "--history", str(passwd), "list", "--all")
    assert proc.returncode == 3
    lines = proc.stderr.splitlines()
    assert lines[0].startswith(f"jobtui: warning: history not saved: cannot use {passwd}")
    assert "not a jobtui history" in lines[0] and "left it untouched" in lines[0]
    assert lines[1].startswith(f"jobtui: cannot connect to {NOWHERE}") and len(lines) == 2
    assert passwd.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "state", "t"]


# --- dismiss: two at once, and behind another process's lock -------------------------------


def finished_job() -> Job:
    return Job(
        key=JobKey(TEST_URI, TEST_UUID, "copy-vda", 1700000000.0),
        domain="test",
        type=JobType.BLOCK_COPY,
        state=JobState.COMPLETED,
        config=FrozenMap(disk="vda", destination="/var/lib/copy.qcow2"),
        stats=FrozenMap(),
        current=1,
        end=1,
        finished=1700000100.0,
        message="done",
    )


@pytest.fixture
def history(tmp_path: Path) -> Path:
    path = tmp_path / "history.sqlite3"
    with History(path) as h:
        h.record(finished_job())
    return path


def dismiss_argv(history: Path) -> list[str]:
    return [
        sys.executable, "-m", "jobtui", "-c", TEST_URI, "--history", str(history),
        "--wait", "2", "dismiss", "test", "copy-vda", "--yes",
    ]  # fmt: skip


# What libvirt's test driver, used here for a domain with no QEMU behind it, is told as.
NO_JOB_API = (
    f"jobtui: warning: {TEST_URI}: this driver has no job API: this function is not supported"
    " by the connection driver: virDomainGetJobStats\n"
)


def test_two_dismisses_at_once_only_one_says_dismissed(tmp_path: Path, history: Path) -> None:
    env = env_for(tmp_path)
    procs = [
        subprocess.Popen(
            dismiss_argv(history),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    results = [(p.returncode, out, err) for p in procs for out, err in [p.communicate(timeout=60)]]
    dismissed = [r for r in results if r == (0, "dismissed copy-vda on test\n", NO_JOB_API)]
    assert len(dismissed) == 1, results
    # The other one either read the job before the dismiss landed (and finds it gone when
    # it dismisses), or read the history after it (and finds no such job): never twice.
    other = next(r for r in results if r is not dismissed[0])
    assert other in (
        (0, "copy-vda on test was already gone from the history\n", NO_JOB_API),
        (4, "", NO_JOB_API + "jobtui: no job 'copy-vda' on domain 'test' (it has no jobs)\n"),
    ), other
    with History(history) as h:
        assert h.jobs() == []


_LOCK_FOR = """
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
c.execute("COMMIT")
"""


def test_dismiss_behind_a_lock_is_done_when_the_lock_goes(tmp_path: Path, history: Path) -> None:
    # Another process holds the history for 3 s, within SQLite's 5 s wait: the command
    # reaches the dismiss while the lock is held, waits, and dismisses when it goes.
    holder = subprocess.Popen(
        [sys.executable, "-c", _LOCK_FOR, str(history), "3"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        cli = subprocess.run(
            dismiss_argv(history),
            capture_output=True,
            stdin=subprocess.DEVNULL,
            text=True,
            env=env_for(tmp_path),
            timeout=60,
        )
    finally:
        assert holder.wait(30) == 0
    assert (cli.returncode, cli.stdout, cli.stderr) == (
        0,
        "dismissed copy-vda on test\n",
        NO_JOB_API,
    )
    with History(history) as h:
        assert h.jobs() == []
