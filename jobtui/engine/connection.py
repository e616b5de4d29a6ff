"""One libvirt connection: open, close callback, reconnect with back-off.

Opening and reconnecting run on the connection's own thread, so a host that
does not answer never delays the others or the front end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import libvirt

from jobtui.engine.eventloop import (
    drop_shared,
    ensure_event_loop,
    is_shared,
    open_connection,
    shared_lock,
)
from jobtui.engine.events import (
    LibvirtEvent,
    Post,
    QemuEv,
    register_domain_events,
    register_qemu_events,
)

BACKOFF = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0)


def libvirt_reason(err: BaseException) -> str:
    if isinstance(err, libvirt.libvirtError):
        msg = err.get_error_message() or str(err)
    else:
        msg = str(err)
    lines = [line.strip() for line in msg.strip().splitlines() if line.strip()]
    if not lines:
        return type(err).__name__
    told = [line.strip("@ \t") for line in lines]
    told = [line for line in told if any(c.isalnum() for c in line)]
    if len(told) == len(lines) or len(told) < 3:
        return lines[0]
    # A banner (ssh's "@@@ REMOTE HOST IDENTIFICATION HAS CHANGED! @@@" warning, which
    # libvirt passes on whole): its headline and its last two lines, the verdict.
    head = f"{told[0]} {told[1]}" if told[0].endswith(":") else told[0]
    return " … ".join([head, *told[-2:]])


def is_local_driver(uri: str) -> bool:
    """Embedded and test drivers have no daemon and so no keepalive."""
    return uri.startswith(("qemu:///embed", "test:"))


class HostConnection:
    def __init__(
        self,
        uri: str,
        *,
        readonly: bool,
        post: Post,
        on_up: Callable[[HostConnection], None],
        on_down: Callable[[HostConnection, str], None],
        keepalive: tuple[int, int] | None = None,
        qemu_events: bool = True,
        early: Callable[[], libvirt.virConnect | None] | None = None,
    ) -> None:
        """`early`: the first open's connection, opened before the engine was built
        (jobtui.engine.early_open); it raises that open's error, or gives None."""
        self.uri = uri
        self.readonly = readonly
        self.conn: libvirt.virConnect | None = None
        self.qemu_events_active = False
        self.last_error = ""
        self._post = post
        self._on_up = on_up
        self._on_down = on_down
        self._keepalive = keepalive
        self._want_qemu_events = qemu_events
        self._early = early
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._generation = 0
        self._domain_cb_ids: list[int] = []
        self._qemu_cb_ids: list[int] = []
        self._post_fn: Post | None = None
        self._thread = threading.Thread(target=self._run, name=f"conn {uri}", daemon=True)

    def start(self) -> None:
        ensure_event_loop()
        self._thread.start()

    def abandon(self) -> None:
        """Stop reconnecting; leave the connection as it is (the process is ending)."""
        self._stop.set()
        self._wake.set()

    def stop(self, *, close: bool = True) -> None:
        """`close=False` when calls may still be running on the connection."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=5)
        if close:
            self._close()
        else:
            self.conn = None

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            if self.conn is None:
                try:
                    self._open()
                    attempt = 0
                    self._on_up(self)
                except Exception as err:  # noqa: BLE001 - any failure is shown, then retried
                    self.last_error = libvirt_reason(err)
                    self._close()
                    self._on_down(self, self.last_error)
                    delay = BACKOFF[min(attempt, len(BACKOFF) - 1)]
                    attempt += 1
                    self._wake.wait(delay)
                    self._wake.clear()
                    continue
            self._wake.wait(1.0)
            self._wake.clear()

    def _open(self) -> None:
        early, self._early = self._early, None
        conn = early() if early is not None else None
        if conn is None:
            conn = open_connection(self.uri, readonly=self.readonly)
        shared = is_shared(conn)
        self._generation += 1
        gen = self._generation
        if self._keepalive is not None and not is_local_driver(self.uri):
            # Off by default: libvirt 9.0's client crashes (SIGSEGV) when a keepalive
            # timeout closes a connection with calls in flight and the daemon then
            # answers them (a stopped libvirtd resumed: 3 of 3 runs). The monitor's
            # watchdog finds a host that does not answer (docs/decisions.md).
            conn.setKeepAlive(*self._keepalive)
        if not shared:
            # A connection has one close callback; a shared embedded one never closes.
            conn.registerCloseCallback(lambda _c, reason, _o: self._closed(gen, reason), None)

        def post(e: LibvirtEvent) -> None:
            # A connection given up for dead may wake up again: ignore its events.
            if gen == self._generation:
                self._post(e)

        want_qemu = self._want_qemu_events and not self.readonly
        if shared:
            self.qemu_events_active = fanout_for(conn, self.uri).add(post, qemu=want_qemu)
            self._post_fn = post
        else:
            self._domain_cb_ids = register_domain_events(conn, self.uri, post)
            self._qemu_cb_ids = []
            self.qemu_events_active = False
            if want_qemu:
                try:
                    self._qemu_cb_ids = register_qemu_events(conn, self.uri, post)
                    self.qemu_events_active = True
                except libvirt.libvirtError:
                    # Not every driver or URI allows it; polling alone still finds every job.
                    self.qemu_events_active = False
        self.conn = conn
        self.last_error = ""

    def _closed(self, gen: int, reason: int) -> None:
        """Close callback (libvirt's event thread): hand off, reconnect on our thread."""
        if gen != self._generation or self._stop.is_set():
            return
        reasons = {0: "connection error", 1: "end of file", 2: "keepalive timeout", 3: "client"}
        why = f"connection lost ({reasons.get(reason, reason)})"
        self.last_error = why
        self.conn = None
        self._on_down(self, why)
        self._wake.set()

    def lost(self, why: str, conn: libvirt.virConnect | None = None) -> None:
        """A call failed with a connection error the close callback has not reported.
        `conn`: the connection the call ran on; a failure on one given up before (its
        calls come back when the host wakes up) says nothing of the current one."""
        if self.conn is None or (conn is not None and conn is not self.conn):
            return
        self._generation += 1
        # Not closed here: another thread may still be inside a call on it, and
        # closing under it crashes libvirt-python. It is freed when the last
        # reference goes; the bumped generation silences its callbacks.
        self.conn = None
        self.last_error = why
        self._on_down(self, why)
        self._wake.set()

    def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if is_shared(conn):
            # Shared with the rest of the process: stop only our share of its events.
            fan = _fanouts.get(id(conn))
            if fan is not None and self._post_fn is not None:
                fan.remove(self._post_fn)
            return
        with contextlib.suppress(libvirt.libvirtError):
            conn.unregisterCloseCallback()
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


class _FanOut:
    """libvirt tracks one callback per event and connection ("event callback already
    tracked"), so the users of a shared connection get its events from here."""

    def __init__(self, conn: libvirt.virConnect, uri: str) -> None:
        self._posts: list[Post] = []
        self._qemu_posts: list[Post] = []
        self._lock = threading.Lock()
        self._conn = conn
        self._uri = uri
        self._qemu_state: bool | None = None  # None: not tried yet
        register_domain_events(conn, uri, self._deliver)

    def _deliver(self, e: LibvirtEvent) -> None:
        with self._lock:
            posts = list(self._qemu_posts if isinstance(e, QemuEv) else self._posts)
        for post in posts:
            post(e)

    def add(self, post: Post, *, qemu: bool) -> bool:
        """Subscribe; returns whether QEMU's job events reach `post`."""
        with self._lock:
            self._posts.append(post)
            if not qemu:
                return False
            if self._qemu_state is None:
                try:
                    register_qemu_events(self._conn, self._uri, self._deliver)
                    self._qemu_state = True
                except libvirt.libvirtError:
                    self._qemu_state = False
            if self._qemu_state:
                self._qemu_posts.append(post)
            return self._qemu_state

    def remove(self, post: Post) -> None:
        with self._lock:
            for lst in (self._posts, self._qemu_posts):
                if post in lst:
                    lst.remove(post)


_fanouts: dict[int, _FanOut] = {}


def fanout_for(conn: libvirt.virConnect, uri: str) -> _FanOut:
    with shared_lock:
        fan = _fanouts.get(id(conn))
        if fan is None:
            fan = _fanouts[id(conn)] = _FanOut(conn, uri)
        return fan


def release_shared(uri: str) -> None:
    """Close the process's connections to an embedded root (its lab is done)."""
    with shared_lock:
        conns = drop_shared(uri)
        for conn in conns:
            _fanouts.pop(id(conn), None)
    for conn in conns:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()
