"""Finished-job history: survives restarts, dismisses, shrugs off damaged files, takes threads."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jobtui.engine import history
from jobtui.engine.history import History, default_path
from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType


def job(n: int, host: str = "qemu:///system", *, finished: float | None = None,
        state: JobState = JobState.COMPLETED, name: str = "copy-vda") -> Job:  # fmt: skip
    return Job(
        key=JobKey(host, f"uuid-{n % 3}", name, 1700000000.0 + n / 7),
        domain=f"web{n % 3}",
        type=JobType.BLOCK_COPY,
        state=state,
        config=FrozenMap(disk="vda", destination=f"/var/lib/copy-{n}.qcow2"),
        stats=FrozenMap(time_elapsed=1000 * n, ok=True, rate=1.5),
        current=n,
        end=n,
        finished=1700001000.0 + n if finished is None else finished,
        message="done",
    )


def raw_sql(path: Path, *statements: str) -> None:
    """What another program does to the file, its connection closed after."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in statements:
            raw.execute(statement)
    finally:
        raw.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "jobtui" / "history.sqlite3"


def test_survives_a_restart(path: Path) -> None:
    with History(path) as h:
        for n in (3, 1, 2):
            h.record(job(n))
        assert h.warning == ""
    assert path.exists()  # parent directories were created
    with History(path) as again:
        assert again.jobs() == [job(1), job(2), job(3)]  # ordered by finish time
        assert again.warning == ""


def test_record_replaces_the_same_run(path: Path) -> None:
    with History(path) as h:
        h.record(job(1).evolve(state=JobState.UNKNOWN, finished=None))
        h.record(job(1).evolve(state=JobState.FAILED, message="gone"))
        assert h.jobs() == [job(1).evolve(state=JobState.FAILED, message="gone")]
        # Same name, later start: a different job.
        later = job(1).evolve(
            key=JobKey("qemu:///system", "uuid-1", "copy-vda", 1800000000.0),
            finished=1800000100.0,
        )
        h.record(later)
        assert len(h.jobs()) == 2


def test_same_run_seen_by_two_processes_is_one_record(path: Path) -> None:
    # Each process keys a block job by its own first sighting; the end is the same.
    first = job(1)
    second = first.evolve(
        key=JobKey(first.host, first.key.domain_uuid, first.name, first.started + 40.0),
        finished=first.finished + 0.01,
    )
    with History(path) as a, History(path) as b:
        a.record(first)
        b.record(second)
        assert a.jobs() == [first]


def test_only_finished_and_orphaned_jobs(path: Path) -> None:
    with History(path) as h:
        with pytest.raises(ValueError, match="only finished or orphaned jobs"):
            h.record(job(1, state=JobState.RUNNING))
        h.record(job(2, state=JobState.ORPHANED).evolve(finished=None))
    with History(path) as h:
        assert [(j.current, j.state) for j in h.jobs()] == [(2, JobState.ORPHANED)]


def test_filter_by_host_and_order_without_finish_time(path: Path) -> None:
    with History(path) as h:
        h.record(job(1, host="qemu+ssh://b/system"))
        h.record(job(2, state=JobState.UNKNOWN).evolve(finished=None))
        h.record(job(3))
        assert [j.current for j in h.jobs()] == [2, 1, 3]  # no finish time: its start counts
        assert [j.current for j in h.jobs("qemu:///system")] == [2, 3]
        assert [j.current for j in h.jobs("qemu+ssh://b/system")] == [1]
        assert h.jobs("qemu:///session") == []


def test_dismiss(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
        h.record(job(2))
        assert h.dismiss(job(1).key) is True
        assert h.dismiss(job(1).key) is False
        assert h.jobs() == [job(2)]
    with History(path) as again:
        assert again.jobs() == [job(2)]


def test_odd_keys_round_trip(path: Path) -> None:
    odd = job(1).evolve(key=JobKey("qemu:///\ud800", "'\"; DROP TABLE jobs; --", "\x00", -0.0))
    with History(path) as h:
        h.record(odd)
        assert h.jobs() == [odd]
        assert h.jobs("qemu:///\ud800") == [odd]
        assert h.dismiss(odd.key)


def test_a_file_jobtui_did_not_create_is_left_untouched(path: Path) -> None:
    # A wrong --history (a copy of /etc/passwd): one line, the file untouched, no history.
    path.parent.mkdir(parents=True)
    text = b"root:x:0:0:root:/root:/bin/bash\n" * 100
    path.write_bytes(text)
    path.chmod(0o644)
    h = History(path)
    assert h.warning == (
        f"history not saved: cannot use {path}: not a jobtui history"
        " (not a SQLite database): left it untouched"
    )
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3"]
    h.record(job(1))
    assert h.jobs() == [job(1)]  # this session only
    h.close()
    assert path.read_bytes() == text and (path.stat().st_mode & 0o777) == 0o644


def test_damaged_pages_are_moved_aside(path: Path) -> None:
    with History(path) as h:
        for n in range(300):
            h.record(job(n, name=f"job-{n}"))
    data = bytearray(path.read_bytes())
    data[4096 : len(data) - 4096] = b"\xff" * (len(data) - 8192)  # keep the header, wreck pages
    path.write_bytes(bytes(data))
    with History(path) as h:
        assert "unreadable" in h.warning
        assert h.jobs() == []
        h.record(job(1))
        assert h.jobs() == [job(1)]


def test_somebody_elses_database_is_left_untouched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE jobs (id INTEGER, payload BLOB)")
        other.execute("INSERT INTO jobs VALUES (1, x'00')")
    before = path.read_bytes()
    with History(path) as h:
        assert "not a jobtui history (another program's SQLite database)" in h.warning
        h.record(job(1))
        assert h.jobs() == [job(1)]
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3"]


def test_a_damaged_file_of_ours_with_a_wrong_table_is_moved_aside(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
    raw_sql(path, "ALTER TABLE jobs ADD COLUMN extra TEXT")
    with History(path) as h:
        assert "columns" in h.warning and "moved it to" in h.warning
        assert h.jobs() == []
    assert len(list(path.parent.glob("history.sqlite3.corrupt-*[0-9]"))) == 1


def test_an_older_jobtui_history_is_adopted(path: Path) -> None:
    # Before application_id: user_version 1, our table, application_id 0.
    path.parent.mkdir(parents=True)
    with History(":memory:") as mem:
        mem.record(job(1))
        xml = mem._read(lambda c: c.execute("SELECT * FROM jobs").fetchall(), [])
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TABLE jobs (key TEXT PRIMARY KEY, host TEXT NOT NULL, started REAL,"
            " finished REAL, xml TEXT NOT NULL)"
        )
        raw.executemany("INSERT INTO jobs VALUES (?, ?, ?, ?, ?)", xml)
        raw.execute("PRAGMA user_version = 1")
    with History(path) as h:
        assert h.warning == ""
        assert h.jobs() == [job(1)]
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA application_id").fetchone()[0] != 0


def test_a_newer_jobtui_history_is_not_moved(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
    raw_sql(path, "PRAGMA user_version = 2")
    with History(path) as h:
        assert "has history schema 2; this jobtui reads 1: left it untouched" in h.warning
        assert h.jobs() == []
    assert list(path.parent.glob("*.corrupt-*")) == []
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM jobs").fetchone()[0] == 1


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_a_history_path_that_is_no_regular_file_is_refused(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True)
    target = path.parent / "target"
    target.write_text("keep me\n")
    if kind == "fifo":
        os.mkfifo(path)  # must not block
    elif kind == "symlink":
        path.symlink_to(target)
    else:
        path.mkdir()
    with History(path) as h:
        assert h.warning.startswith(f"history not saved: cannot use {path}: ")
        assert "\n" not in h.warning
        h.record(job(1))
        assert h.jobs() == [job(1)]
    assert target.read_text() == "keep me\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["history.sqlite3", "target"]


def test_damage_while_running_does_not_raise(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
        path.write_bytes(b"\0garbage" * 2000)
        h.record(job(2))  # must not raise; SQLite may go on from its cache and its WAL
        h.jobs()
        h.dismiss(job(1).key)
        assert "\n" not in h.warning


def test_only_the_file_this_process_opened_is_moved_aside_when_damaged(path: Path) -> None:
    # What the engine does when SQLite reports the open file damaged (CORRUPT, NOTADB).
    damaged = sqlite3.DatabaseError("database disk image is malformed")
    with History(path) as h:
        h.record(job(1))
        path.write_bytes(b"\0garbage" * 2000)  # the same file, overwritten in place
        h._recover(damaged).close()
        assert "moved it to" in h.warning
        assert len(list(path.parent.glob("history.sqlite3.corrupt-*[0-9]"))) == 1
    with History(path) as h:
        elsewhere = path.parent / "other"
        elsewhere.write_text("someone else's\n")
        os.replace(elsewhere, path)  # another file put in its place: not ours
        h._recover(damaged).close()
        assert "no longer the jobtui history" in h.warning and "untouched" in h.warning
    assert path.read_text() == "someone else's\n"
    assert len(list(path.parent.glob("history.sqlite3.corrupt-*[0-9]"))) == 1


def test_unusable_path_falls_back_to_memory(tmp_path: Path) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir()
    with History(directory) as h:  # a directory cannot be a database file
        assert h.warning.startswith("history not saved")
        h.record(job(1))
        assert h.jobs() == [job(1)]


def test_unreadable_xml_row_is_skipped(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
        h.record(job(2))
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE jobs SET xml = '<job>' WHERE finished = ?", (job(1).finished,))
    with History(path) as h:
        assert h.jobs() == [job(2)]
        assert "skipped 1" in h.warning


def test_closed_history_says_so(path: Path) -> None:
    h = History(path)
    h.close()
    h.close()
    with pytest.raises(RuntimeError, match="closed"):
        h.jobs()


def test_concurrent_writers(path: Path) -> None:
    h = History(path)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer(t: int) -> None:
        try:
            start.wait()
            for i in range(50):
                n = t * 1000 + i
                h.record(job(n, name=f"t{t}-{i}"))
                if i % 10 == 0:
                    h.jobs()
                if i % 7 == 0:
                    assert h.dismiss(job(n, name=f"t{t}-{i}").key)
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    kept = 8 * (50 - len(range(0, 50, 7)))
    assert len(h.jobs()) == kept
    h.close()
    assert len(History(path).jobs()) == kept


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("JOBTUI_HISTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_path() == tmp_path / "xdg" / "jobtui" / "history.sqlite3"
    monkeypatch.setenv("XDG_STATE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_path() == tmp_path / "home" / ".local" / "state" / "jobtui" / "history.sqlite3"
    monkeypatch.setenv("JOBTUI_HISTORY", str(tmp_path / "mine.db"))
    assert default_path() == tmp_path / "mine.db"
    with History() as h:
        h.record(job(1))
    assert (tmp_path / "mine.db").exists()


# --- another process holding the database ------------------------------------------------

_LOCKER = """
import sqlite3, sys
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
c.execute("COMMIT")
"""


@contextlib.contextmanager
def held(path: Path) -> Iterator[Callable[[], None]]:
    """Another process holds `path` with BEGIN EXCLUSIVE until the returned call releases it."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _LOCKER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "locked\n"

    def release() -> None:
        if proc.poll() is None:
            with contextlib.suppress(BrokenPipeError):
                proc.stdin.write("\n")  # type: ignore[union-attr]
                proc.stdin.flush()  # type: ignore[union-attr]
            assert proc.wait(30) == 0

    try:
        yield release
    finally:
        release()


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def in_thread(fn: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    return t, out


def test_a_locked_history_queues_finished_jobs_and_says_so_at_once(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
    h = History(path)
    with held(path) as release:
        # The engine's event path: it must come back while the lock is still held
        # (it used to wait SQLite's 5 s, then drop the job).
        t, _ = in_thread(lambda: h.record(job(2)))
        t.join(2.5)
        assert not t.is_alive()
        wait_for(lambda: "locked by another process" in h.warning)
        first = h.warning
        h.record(job(3))
        assert h.warning == first  # said once
        assert h.jobs() == [job(1), job(2), job(3)]  # still listed meanwhile
        with History(path) as other:  # nothing written yet: the lock holds
            assert other.jobs() == [job(1)]
        release()
        wait_for(lambda: h.warning == "")
    h.close()
    with History(path) as again:
        assert again.jobs() == [job(1), job(2), job(3)]


def test_dismiss_waits_for_a_lock_that_goes(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
        h.record(job(2))
    h = History(path)
    with held(path) as release:
        t, result = in_thread(lambda: h.dismiss(job(1).key))
        wait_for(lambda: "locked by another process" in h.warning)
        release()
        t.join(30)
    assert result == [True]
    h.close()
    with History(path) as again:
        assert again.jobs() == [job(2)]


def test_dismiss_on_a_lock_that_stays_is_written_later_or_said_lost(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "DISMISS_WAIT", 0.5)
    monkeypatch.setattr(history, "CLOSE_WAIT", 0.5)
    with History(path) as h:
        h.record(job(1))
        h.record(job(2))
    h = History(path)
    with held(path) as release:
        assert h.dismiss(job(1).key) is True
        assert h.warning.endswith("the dismiss is written when it is free")
        assert h.jobs() == [job(2)]
        release()
    h.close()  # the lock went: written
    assert h.warning == ""
    with History(path) as again:
        assert again.jobs() == [job(2)]
        with held(path):
            assert again.dismiss(job(2).key) is True
            again.close()  # the lock stays: said, in one line
            assert again.warning == (
                f"history {path} stayed locked by another process: 1 change(s) not written"
                " (run the command again when it is free)"
            )
    with History(path) as last:
        assert last.jobs() == [job(2)]


_DISMISSER = """
import sys
sys.path.insert(0, sys.argv[2])
from test_history import job
from jobtui.engine.history import History
h = History(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
print(h.dismiss(job(1).key), flush=True)
h.close()
"""


def test_of_two_processes_dismissing_one_record_exactly_one_did_it(path: Path) -> None:
    for _ in range(5):
        with History(path) as h:
            h.record(job(1))
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _DISMISSER, str(path), str(Path(__file__).parent)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("\n")
            p.stdin.flush()
        said = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
        assert said == ["False", "True"]


def test_private_files_whatever_the_umask(tmp_path: Path) -> None:
    state = tmp_path / "state"
    script = (
        "import os, sys; sys.path.insert(0, sys.argv[1]); os.umask(0o022)\n"
        "from test_history import job\n"
        "from jobtui.engine.history import History\n"
        "h = History(); h.record(job(1)); h.close()\n"
    )
    env = {**os.environ, "XDG_STATE_HOME": str(state)}
    env.pop("JOBTUI_HISTORY", None)
    subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], env=env, check=True)
    assert (state / "jobtui").stat().st_mode & 0o777 == 0o700
    assert (state / "jobtui" / "history.sqlite3").stat().st_mode & 0o777 == 0o600
    # An older jobtui's loose directory and file are tightened.
    (state / "jobtui").chmod(0o755)
    (state / "jobtui" / "history.sqlite3").chmod(0o644)
    subprocess.run([sys.executable, "-c", script, str(Path(__file__).parent)], env=env, check=True)
    assert (state / "jobtui").stat().st_mode & 0o777 == 0o700
    for f in (state / "jobtui").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f
