"""Finished jobs kept across restarts (the proposal's "keep finished jobs"), in SQLite.

A row holds the job XML of `jobxml.to_xml`, so the history has no serialisation format of its
own; the other columns exist only to upsert, dismiss, filter and order. The engine calls this
from several threads: one connection, one lock. A history that cannot be read must never take
the engine down: it is moved aside, a fresh one is started, and `warning` says why.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from jobtui import jobxml
from jobtui.model import SAME_RUN_SECONDS, Job, JobKey, JobState

_T = TypeVar("_T")

_SCHEMA_VERSION = 1
_COLUMNS = ("key", "host", "started", "finished", "xml")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    key      TEXT PRIMARY KEY,  -- JSON [host, domain uuid, name, repr(started)]: exact, ASCII
    host     TEXT NOT NULL,     -- JSON string of the host URI (lone surrogates survive JSON)
    started  REAL,
    finished REAL,
    xml      TEXT NOT NULL
);
"""
# SQLite's primary result codes for "this file is not a (sound) database".
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26


def default_path() -> Path:
    """$JOBTUI_HISTORY, else $XDG_STATE_HOME/jobtui/history.sqlite3 (~/.local/state/...)."""
    override = os.environ.get("JOBTUI_HISTORY")
    if override:
        return Path(override).expanduser()
    state = os.environ.get("XDG_STATE_HOME", "")
    # The XDG spec says to ignore a relative value.
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / "jobtui" / "history.sqlite3"


class _Unreadable(Exception):
    """The file is a database we cannot use: corrupt, or not ours."""


class History:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.warning = ""  # one line for a person; "" while all is well
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = self._open()

    # --- the API ---------------------------------------------------------------------------

    def record(self, job: Job) -> None:
        """Store a finished job, replacing an earlier record of the same run (same key).

        An orphaned job is kept too, though it still runs: libvirt forgets it, so what one
        process learned (QEMU's id, the last progress, when it was confirmed) must reach the
        next one. Its end replaces the record."""
        if not (job.state.finished or job.state is JobState.ORPHANED):
            raise ValueError(f"{job.key} is {job.state}: only finished or orphaned jobs are kept")
        row = (_key(job.key), json.dumps(job.key.host), job.key.started, job.finished)
        xml = jobxml.to_xml(job)

        def upsert(conn: sqlite3.Connection) -> None:
            # Another jobtui process (a TUI beside a CLI) may have recorded the same
            # run under its own first-sighting time: one run, one record.
            for (other,) in conn.execute(
                "SELECT key FROM jobs WHERE host = ? AND key != ? AND abs(finished - ?) < ?",
                (row[1], row[0], job.finished or 0.0, SAME_RUN_SECONDS),
            ).fetchall():
                h, u, n, _s = json.loads(other)
                if (u, n) == (job.key.domain_uuid, job.key.name):
                    return
            conn.execute(
                "INSERT INTO jobs (key, host, started, finished, xml) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET started = excluded.started, finished = excluded.finished, xml = excluded.xml",
                (*row, xml),
            )

        self._run(upsert, None)

    def jobs(self, host: str | None = None) -> list[Job]:
        """Finished jobs, oldest finish first; those without a finish time by start time."""
        query = "SELECT xml FROM jobs"
        args: tuple[str, ...] = ()
        if host is not None:
            query += " WHERE host = ?"
            args = (json.dumps(host),)
        query += " ORDER BY coalesce(finished, started), started, rowid"
        rows: list[tuple[str]] = self._run(lambda c: c.execute(query, args).fetchall(), [])
        jobs, bad = [], 0
        for (xml,) in rows:  # parsed outside the lock: the other threads need not wait for it
            try:
                jobs.append(jobxml.parse(xml))
            except (jobxml.JobXMLError, TypeError):  # TypeError: a non-text xml value
                bad += 1
        if bad:
            self.warning = f"history {self.path}: skipped {bad} unreadable job record(s)"
        return jobs

    def dismiss(self, key: JobKey) -> bool:
        """Forget one finished job; False if the history did not have it."""

        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM jobs WHERE key = ?", (_key(key),)).rowcount > 0

        return self._run(delete, False)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- keeping it working ----------------------------------------------------------------

    def _run(self, op: Callable[[sqlite3.Connection], _T], failed: _T) -> _T:
        with self._lock:
            if self._conn is None:
                raise RuntimeError(f"history {self.path} is closed")
            try:
                return op(self._conn)
            except sqlite3.DatabaseError as e:
                if not _is_unreadable(e):
                    # Full disk, read-only file, another process holding the lock too long:
                    # the engine goes on without this record, and the warning says so.
                    self.warning = f"history {self.path}: {_one_line(e)}"
                    return failed
                # Damaged under our feet (another process, a disk error): start afresh, once.
                self._conn.close()
                self._conn = self._recover(e)
            try:
                return op(self._conn)
            except sqlite3.Error as e:
                self.warning = f"history {self.path}: {_one_line(e)}"
                return failed

    def _open(self) -> sqlite3.Connection:
        if str(self.path) == ":memory:":
            return _connect(":memory:")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return _connect(self.path)
        except (sqlite3.DatabaseError, _Unreadable) as e:
            if not _is_unreadable(e):
                return self._in_memory(e)
            return self._recover(e)
        except (sqlite3.Error, OSError) as e:
            return self._in_memory(e)

    def _recover(self, reason: Exception) -> sqlite3.Connection:
        try:
            aside = _move_aside(self.path)
            conn = _connect(self.path)
        except (sqlite3.Error, _Unreadable, OSError) as e:
            return self._in_memory(e)
        self.warning = (
            f"history {self.path} was unreadable ({_one_line(reason)}):"
            f" moved it to {aside.name} and started a new one"
        )
        return conn

    def _in_memory(self, reason: Exception) -> sqlite3.Connection:
        # Jobs are still listed and dismissed this session; they just do not survive it.
        self.warning = f"history not saved: cannot use {self.path}: {_one_line(reason)}"
        return _connect(":memory:")


def _connect(path: str | Path) -> sqlite3.Connection:
    # isolation_level=None: every statement is its own transaction, so a failure never leaves
    # one open that would block the other threads' writes.
    conn = sqlite3.connect(path, timeout=5.0, check_same_thread=False, isolation_level=None)
    try:
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise _Unreadable(f"quick_check: {verdict}")
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
        if columns != set(_COLUMNS):
            raise _Unreadable(f"table 'jobs' has columns {', '.join(sorted(columns))}")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        elif version != _SCHEMA_VERSION:
            raise _Unreadable(f"schema version {version}, this jobtui reads {_SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def _is_unreadable(e: Exception) -> bool:
    if isinstance(e, _Unreadable):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _move_aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while aside.exists():
        aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.replace(path, aside)
    # A journal left beside a new, empty file would be "replayed" into it: move it along.
    for suffix in ("-journal", "-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + suffix))
    return aside


def _key(key: JobKey) -> str:
    return json.dumps([key.host, key.domain_uuid, key.name, repr(float(key.started))])


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__
