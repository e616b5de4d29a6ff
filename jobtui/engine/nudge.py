"""A wake-up call for libvirt's remote client while one of its calls hangs.

libvirt's remote client (libvirt 9.0, Debian 12) lets one thread at a time drive a
connection's socket — it "holds the buck" — while the threads of other calls sleep until
it has sent their requests and read their replies. Another thread wakes the holder with
`g_main_loop_quit()`; but the holder lets go of the client's lock *before* it enters
`g_main_loop_run()`, and a quit that falls between the two is lost (the run starts by
marking the loop running). A holder whose own reply comes soon goes round its loop
anyway. One whose call hangs — a stopped QEMU, libvirt's 30 s wait for a domain's job
lock — sleeps until its next keepalive or until yet another call is made, and the
request queued behind it is not even sent: a healthy domain's 1 ms calls took exactly
1 or 2 s (the keepalive interval) in about one `jobtui list` of two beside a stopped
QEMU (docs/decisions.md, "A hung call must not stall the others").

So when a call on a connection has waited `NUDGE_AFTER` while an older one has been
running for `HUNG_AFTER`, one cheap call (`virConnectGetLibVersion`, a round trip that touches no
domain) is made from a thread of its own: its own quit wakes the holder, which then
sends and reads everything queued. While the same calls stay stuck, nudges back off.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence

import libvirt

# Ordinary calls take a millisecond on a UNIX socket and tens over SSH: a call running
# for HUNG_AFTER may be a hung holder; one behind it, waiting NUDGE_AFTER, may be stalled.
HUNG_AFTER = 0.3
NUDGE_AFTER = 0.05
MAX_BACKOFF = 2.0  # while nothing changes, nudges come at most this far apart
MAX_IN_FLIGHT = 2  # nudges of one connection that may wait at once (a dead daemon)


class Nudger:
    """One connection's nudges; `check` is called often, from one thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._last = 0.0
        self._gap = NUDGE_AFTER
        self._seen: tuple[float, ...] = ()

    def check(self, conn: libvirt.virConnect | None, starts: Sequence[float], now: float) -> bool:
        """`starts`: when each call now running on `conn` began (monotonic). True when
        a nudge was sent."""
        if conn is None or len(starts) < 2:
            self._seen = ()
            return False
        running = tuple(sorted(starts))
        if now - running[0] < HUNG_AFTER or now - running[1] < NUDGE_AFTER:
            return False  # no call hangs, or nothing has waited behind it yet
        # Calls that come and go quickly change nothing: only a new call waiting behind
        # the hung ones (or one of them ending) is a fresh stall, nudged at once.
        waiting = tuple(t for t in running if now - t >= NUDGE_AFTER)
        if waiting != self._seen:
            self._seen = waiting
            self._gap = NUDGE_AFTER
        elif now - self._last < self._gap:
            return False
        with self._lock:
            if self._in_flight >= MAX_IN_FLIGHT:
                return False
            self._in_flight += 1
        self._last = now
        self._gap = min(self._gap * 2, MAX_BACKOFF)
        self.sent += 1
        threading.Thread(
            target=self._nudge, args=(conn.getLibVersion,), name=f"nudge {self.name}", daemon=True
        ).start()
        return True

    def _nudge(self, call: Callable[[], int]) -> None:
        try:
            with contextlib.suppress(libvirt.libvirtError):
                call()
        finally:
            with self._lock:
                self._in_flight -= 1
