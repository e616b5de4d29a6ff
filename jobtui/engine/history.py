"""Finished jobs kept across restarts (the proposal's "keep finished jobs"), in SQLite.

A row holds the job XML of `jobxml.to_xml`, so the history has no serialisation format of its
own; the other columns exist only to upsert, dismiss, filter and order. The engine calls this
from several threads: one connection, one lock.

Whose file it is: jobtui marks the databases it creates with SQLite's `application_id`
(`_APPLICATION_ID`); a database of an older jobtui (user_version 1, exactly our `jobs` table,
application_id 0) is adopted and marked. Only such a file is ever moved aside when it turns
out damaged; anything else at the path (a text file, another program's database, a FIFO, a
link) is left untouched, and this history lives in memory for the session with `warning`
saying why. The file is created 0600, its directory (when jobtui creates it) 0700.

A history that another process holds locked never stalls the caller: `record` writes at once
when it can and otherwise queues the write for a writer thread that retries until the lock
is gone, so no finished job is lost and the engine's event path never waits. The lock is
reported once, at once, through `warning`. `dismiss` waits for its delete (bounded); `close`
gives queued writes a last chance (bounded) and says what could not be written.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from jobtui import jobxml, statefiles
from jobtui.model import SAME_RUN_SECONDS, Job, JobKey, JobState

_T = TypeVar("_T")
log = logging.getLogger(__name__)

_SCHEMA_VERSION = 1
# SQLite's application_id of a jobtui history: "jobT". Set when jobtui creates the file.
_APPLICATION_ID = 0x6A6F6254
_SQLITE_MAGIC = b"SQLite format 3\x00"
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
# SQLite's primary result codes.
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

# How long one write waits for another process's lock before the store counts as locked
# (and the write is queued): long enough for another jobtui's own short transactions.
WRITE_WAIT = 0.2
READ_WAIT = 2.0
# How long `dismiss` waits for its delete, and `close` for queued writes, on a locked store.
DISMISS_WAIT = 5.0
CLOSE_WAIT = 3.0


def default_path() -> Path:
    """$JOBTUI_HISTORY, else $XDG_STATE_HOME/jobtui/history.sqlite3 (~/.local/state/...)."""
    override = os.environ.get("JOBTUI_HISTORY")
    if override:
        return Path(override).expanduser()
    return statefiles.state_dir() / "history.sqlite3"


class _Unreadable(Exception):
    """Our database, but damaged or not shaped as we wrote it."""


class _NotOurs(Exception):
    """The file at the path was not created by jobtui: never moved, never written."""


@dataclass(eq=False)
class _Write:
    """One queued change: a record (row set) or a dismiss (row None)."""

    key: str
    apply: Callable[[sqlite3.Connection], bool]
    row: tuple[str, float | None, float | None, str] | None  # host (JSON), started, finished, xml
    done: threading.Event = field(default_factory=threading.Event)
    result: bool = False


# Open histories get their last chance to write what a lock held up when the process ends
# (the TUI never closes its history itself).
_histories: weakref.WeakSet[History] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for h in list(_histories):
        h.close()


class History:
    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.warning = ""  # one line for a person; "" while all is well
        self._lock = threading.Lock()  # the connection
        self._cond = threading.Condition()  # the queue of writes another process's lock held up
        self._queue: deque[_Write] = deque()
        self._writer: threading.Thread | None = None
        self._closing = False
        self._locked_warning = ""  # the warning while the store is locked
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the file we opened
        self._conn: sqlite3.Connection | None = self._open()
        _histories.add(self)

    # --- the API ---------------------------------------------------------------------------

    def record(self, job: Job) -> None:
        """Store a finished job, replacing an earlier record of the same run (same key).

        An orphaned job is kept too, though it still runs: libvirt forgets it, so what one
        process learned (QEMU's id, the last progress, when it was confirmed) must reach the
        next one. Its end replaces the record. Never waits for another process's lock: the
        write is then queued and retried off the caller's thread."""
        if not (job.state.finished or job.state is JobState.ORPHANED):
            raise ValueError(f"{job.key} is {job.state}: only finished or orphaned jobs are kept")
        key, host = _key(job.key), json.dumps(job.key.host)
        xml = jobxml.to_xml(job)

        def upsert(conn: sqlite3.Connection) -> bool:
            # Another jobtui process (a TUI beside a CLI) may have recorded the same
            # run under its own first-sighting time: one run, one record.
            for (other,) in conn.execute(
                "SELECT key FROM jobs WHERE host = ? AND key != ? AND abs(finished - ?) < ?",
                (host, key, job.finished or 0.0, SAME_RUN_SECONDS),
            ).fetchall():
                h, u, n, _s = json.loads(other)
                if (u, n) == (job.key.domain_uuid, job.key.name):
                    return True
            conn.execute(
                "INSERT INTO jobs (key, host, started, finished, xml) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE"
                " SET started = excluded.started, finished = excluded.finished, xml = excluded.xml",
                (key, host, job.key.started, job.finished, xml),
            )
            return True

        self._submit(_Write(key, upsert, (host, job.key.started, job.finished, xml)))

    def jobs(self, host: str | None = None) -> list[Job]:
        """Finished jobs, oldest finish first; those without a finish time by start time.

        Writes still queued behind another process's lock count as done."""
        rows: list[tuple[str, str, float | None, float | None, str, int]] = self._read(
            lambda c: c.execute(
                "SELECT key, host, started, finished, xml, rowid FROM jobs"
            ).fetchall(),
            [],
        )
        merged = {key: (h, started, finished, xml, rowid) for key, h, started, finished, xml, rowid
                  in rows}  # fmt: skip
        with self._cond:
            pending = list(self._queue)
        last = max((r[4] for r in merged.values()), default=0)
        for n, w in enumerate(pending, start=1):
            if w.row is None:
                merged.pop(w.key, None)
            else:
                rowid = merged[w.key][4] if w.key in merged else last + n
                merged[w.key] = (*w.row, rowid)
        want = None if host is None else json.dumps(host)
        chosen = [r for r in merged.values() if want is None or r[0] == want]
        chosen.sort(key=lambda r: (_order(r[2] if r[2] is not None else r[1]), _order(r[1]), r[4]))
        jobs, bad = [], 0
        for _h, _s, _f, xml, _r in chosen:  # parsed outside the lock: others need not wait
            try:
                jobs.append(jobxml.parse(xml))
            except (jobxml.JobXMLError, TypeError):  # TypeError: a non-text xml value
                bad += 1
        if bad:
            self.warning = f"history {self.path}: skipped {bad} unreadable job record(s)"
        return jobs

    def forget(self, key: JobKey) -> None:
        """Drop a record without waiting (the engine renamed a kept orphan)."""
        self._submit(_Write(_key(key), _deleter(_key(key)), None))

    def dismiss(self, key: JobKey) -> bool:
        """Forget one finished job; False if the history did not have it (another process may
        have dismissed it first: of two concurrent dismisses exactly one gets True).

        Waits up to DISMISS_WAIT for another process's lock; if it is still held then, the
        delete stays queued (written when the lock goes) and `warning` says so."""
        k = _key(key)
        w = _Write(k, _deleter(k), None)
        with self._cond:
            queued_record = any(p.key == k and p.row is not None for p in self._queue)
        self._submit(w)
        if w.done.wait(DISMISS_WAIT):
            return w.result
        with self._cond:
            if w.done.is_set():  # the lock went just now
                return w.result
            self._locked_warning = self.warning = (
                f"history {self.path} is locked by another process: the dismiss is"
                " written when it is free"
            )
        if queued_record:
            return True
        try:
            found = self._read(
                lambda c: c.execute("SELECT 1 FROM jobs WHERE key = ?", (k,)).fetchone(), None
            )
        except RuntimeError:  # closed meanwhile
            return False
        return found is not None

    def close(self) -> None:
        """Give queued writes CLOSE_WAIT to get through a lock, then close; idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: not self._queue, CLOSE_WAIT if self._queue else 0)
            lost = list(self._queue)
            self._queue.clear()
            for w in lost:
                w.done.set()
            self._cond.notify_all()
        if lost:
            self.warning = (
                f"history {self.path} stayed locked by another process: {len(lost)} change(s)"
                " not written (run the command again when it is free)"
            )
            log.warning("%s", self.warning)
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing: at once when possible, else queued for the writer thread ------------------

    def _submit(self, w: _Write) -> None:
        with self._cond:
            if self._closing:
                raise RuntimeError(f"history {self.path} is closed")
            if not self._queue and self._lock.acquire(blocking=False):
                try:
                    done = self._attempt(w, 0.0)
                finally:
                    self._lock.release()
                if done:
                    w.done.set()
                    return
            self._queue.append(w)
            if self._writer is None:
                self._writer = threading.Thread(
                    target=self._write_queued, name="jobtui history", daemon=True
                )
                self._writer.start()
            self._cond.notify_all()

    def _write_queued(self) -> None:
        delay = 0.05
        while True:
            with self._cond:
                while not self._queue:
                    if self._closing:
                        return
                    self._cond.wait()
                w = self._queue[0]
            with self._lock:
                done = self._attempt(w, WRITE_WAIT)
            with self._cond:
                if done:
                    if self._queue and self._queue[0] is w:
                        self._queue.popleft()
                    w.done.set()
                    delay = 0.05
                    if not self._queue and self._locked_warning:
                        if self.warning == self._locked_warning:
                            self.warning = ""
                        log.warning("history %s: the lock went; queued changes written", self.path)
                        self._locked_warning = ""
                    self._cond.notify_all()
                    continue
                if not self._locked_warning:
                    # Once, at once: the first write the lock held up.
                    self._locked_warning = (
                        f"history {self.path} is locked by another process:"
                        " finished jobs are kept in memory and written when it is free"
                    )
                    self.warning = self._locked_warning
                    log.warning("%s", self.warning)
                self._cond.wait(delay)
                delay = min(delay * 2, 1.0)

    def _attempt(self, w: _Write, wait: float) -> bool:
        """Apply one write (the caller holds the connection lock). False: the store is locked
        (retry later); True: done, `w.result` set (False as well when it failed for good)."""
        if self._conn is None:
            return True
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(wait * 1000)}")
            w.result = w.apply(self._conn)
            return True
        except sqlite3.DatabaseError as e:
            if _is_locked(e):
                return False
            if not _is_unreadable(e):
                # Full disk, read-only file: the engine goes on without this record, and the
                # warning says so.
                self.warning = f"history {self.path}: {_one_line(e)}"
                return True
            # Damaged under our feet (another process, a disk error): start afresh, once.
            self._conn.close()
            self._conn = self._recover(e)
        try:
            w.result = w.apply(self._conn)
        except sqlite3.Error as e:
            self.warning = f"history {self.path}: {_one_line(e)}"
        return True

    def _read(self, op: Callable[[sqlite3.Connection], _T], failed: _T) -> _T:
        with self._lock:
            if self._conn is None:
                raise RuntimeError(f"history {self.path} is closed")
            try:
                self._conn.execute(f"PRAGMA busy_timeout = {int(READ_WAIT * 1000)}")
                return op(self._conn)
            except sqlite3.DatabaseError as e:
                if not _is_unreadable(e):
                    self.warning = f"history {self.path}: {_one_line(e)}"
                    return failed
                self._conn.close()
                self._conn = self._recover(e)
            try:
                return op(self._conn)
            except sqlite3.Error as e:
                self.warning = f"history {self.path}: {_one_line(e)}"
                return failed

    # --- opening: only our own file ---------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if str(self.path) == ":memory:":
            return _connect(":memory:", fresh=True)
        try:
            fresh = self._check_file()
            conn = _connect(self.path, fresh=fresh)
        except _NotOurs as e:
            return self._in_memory(f"{e}: left it untouched")
        except (sqlite3.DatabaseError, _Unreadable) as e:
            if not _is_unreadable(e):
                return self._in_memory(_one_line(e))
            return self._recover(e)
        except (sqlite3.Error, OSError) as e:
            return self._in_memory(_one_line(e))
        return conn

    def _check_file(self) -> bool:
        """Make sure the path is (or becomes) a jobtui history; True when it is new and empty.

        Creates the directory 0700 and the file 0600 where missing; raises _NotOurs for
        anything jobtui did not create, OSError where it cannot look."""
        parent = self.path.parent
        if parent == statefiles.state_dir() or not parent.exists():
            statefiles.private_dir(parent)
        try:
            fd = statefiles.open_private(self.path, os.O_RDWR, tighten=False)
        except statefiles.UnsafeFile as e:
            raise _NotOurs(f"not a jobtui history ({e})") from None
        try:
            st = os.fstat(fd)
            header = os.pread(fd, 100, 0)
            self._ident = (st.st_dev, st.st_ino)
            if not header:
                if st.st_uid != os.geteuid():
                    raise _NotOurs(f"not a jobtui history (an empty file of uid {st.st_uid})")
                fresh = True
            else:
                _check_header(self.path, header)
                fresh = False
            if st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
                os.fchmod(fd, 0o600)  # an older jobtui left it readable to others
        finally:
            os.close(fd)
        return fresh

    def _ours_on_disk(self) -> bool:
        """Is the file now at the path still the one we opened, or marked as jobtui's?"""
        try:
            st = os.lstat(self.path)
            if self._ident == (st.st_dev, st.st_ino):
                return True
            with open(self.path, "rb") as f:
                header = f.read(100)
        except OSError:
            return False
        return len(header) == 100 and _app_id(header) == _APPLICATION_ID

    def _recover(self, reason: Exception) -> sqlite3.Connection:
        if not self._ours_on_disk():
            return self._in_memory(
                f"the file there is no longer the jobtui history ({_one_line(reason)}):"
                " left it untouched"
            )
        try:
            aside = _move_aside(self.path)
            fresh = self._check_file()
            conn = _connect(self.path, fresh=fresh)
        except (sqlite3.Error, _Unreadable, _NotOurs, OSError) as e:
            return self._in_memory(_one_line(e))
        self.warning = (
            f"history {self.path} was unreadable ({_one_line(reason)}):"
            f" moved it to {aside.name} and started a new one"
        )
        return conn

    def _in_memory(self, reason: str) -> sqlite3.Connection:
        # Jobs are still listed and dismissed this session; they just do not survive it.
        self.warning = f"history not saved: cannot use {self.path}: {reason}"
        self._ident = None
        return _connect(":memory:", fresh=True)


def _app_id(header: bytes) -> int:
    return int.from_bytes(header[68:72], "big", signed=True)


def _check_header(path: Path, header: bytes) -> None:
    """Raise _NotOurs unless the 100-byte SQLite header says jobtui wrote this file."""
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise _NotOurs("not a jobtui history (not a SQLite database)")
    app_id = _app_id(header)
    user_version = int.from_bytes(header[60:64], "big", signed=True)
    if app_id == _APPLICATION_ID:
        return
    if app_id == 0 and user_version == _SCHEMA_VERSION:
        return  # maybe an older jobtui's: _connect adopts it only if its table is ours exactly
    raise _NotOurs("not a jobtui history (another program's SQLite database)")


def _connect(path: str | Path, *, fresh: bool) -> sqlite3.Connection:
    # isolation_level=None: every statement is its own transaction, so a failure never leaves
    # one open that would block the other threads' writes.
    conn = sqlite3.connect(path, timeout=READ_WAIT, check_same_thread=False, isolation_level=None)
    try:
        if fresh:
            # Marked first: whatever else happens, the file says it is jobtui's.
            conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        else:
            _check_ours(conn, path)
        verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise _Unreadable(f"quick_check: {verdict}")
        if str(path) != ":memory:":
            # Readers are never blocked by another process's write lock (BEGIN EXCLUSIVE).
            with contextlib.suppress(sqlite3.Error):
                conn.execute("PRAGMA journal_mode = WAL")
                # A record is written on the engine's event path, before the job's end is
                # emitted: in WAL mode NORMAL commits without an fsync (a crash of jobtui loses
                # nothing; only a power cut may lose the last records), where FULL's fsync
                # per commit is the event path's slowest step on a busy disk.
                conn.execute("PRAGMA synchronous = NORMAL")
    except BaseException:
        conn.close()
        raise
    return conn


def _check_ours(conn: sqlite3.Connection, path: str | Path) -> None:
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    except sqlite3.DatabaseError as e:
        if _is_unreadable(e):
            raise _Unreadable(_one_line(e)) from None
        raise
    if app_id == _APPLICATION_ID:
        if version != _SCHEMA_VERSION:
            # A newer jobtui's: never moved aside by this one.
            raise _NotOurs(f"it has history schema {version}; this jobtui reads {_SCHEMA_VERSION}")
        if columns != set(_COLUMNS):
            raise _Unreadable(f"table 'jobs' has columns {', '.join(sorted(columns))}")
        return
    older = app_id == 0 and version == _SCHEMA_VERSION and tables == ["jobs"]
    if older and columns == set(_COLUMNS):
        conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")  # an older jobtui's: adopt it
        return
    raise _NotOurs("not a jobtui history (another program's SQLite database)")


def _is_locked(e: Exception) -> bool:
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _is_unreadable(e: Exception) -> bool:
    if isinstance(e, _Unreadable):
        return True
    code = getattr(e, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)


def _order(t: float | None) -> float:
    return float("-inf") if t is None else t


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


def _deleter(k: str) -> Callable[[sqlite3.Connection], bool]:
    return lambda conn: conn.execute("DELETE FROM jobs WHERE key = ?", (k,)).rowcount > 0


def _key(key: JobKey) -> str:
    return json.dumps([key.host, key.domain_uuid, key.name, repr(float(key.started))])


def _one_line(e: Exception | str) -> str:
    return " ".join(str(e).split()) or type(e).__name__
