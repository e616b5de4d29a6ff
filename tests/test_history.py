"""Finished-job history: survives restarts, dismisses, shrugs off damaged files, takes threads."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

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


def test_garbage_file_is_moved_aside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database\n" * 100)
    h = History(path)
    assert "unreadable" in h.warning and "\n" not in h.warning
    aside = list(path.parent.glob("history.sqlite3.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not")
    assert aside[0].name in h.warning
    h.record(job(1))
    assert h.jobs() == [job(1)]
    h.close()
    assert History(path).warning == ""


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


def test_somebody_elses_database_is_moved_aside(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as other:
        other.execute("CREATE TABLE jobs (id INTEGER, payload BLOB)")
    with History(path) as h:
        assert "columns" in h.warning
        h.record(job(1))
        assert h.jobs() == [job(1)]


def test_damage_while_running_does_not_raise(path: Path) -> None:
    with History(path) as h:
        h.record(job(1))
        path.write_bytes(b"\0garbage" * 2000)
        h.record(job(2))  # must not raise
        assert "unreadable" in h.warning and "\n" not in h.warning
        assert h.jobs() == [job(2)]  # job 1 went with the damaged file, which is kept aside
        assert len(list(path.parent.glob("*.corrupt-*"))) == 1


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
