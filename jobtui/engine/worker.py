"""Where the libvirt calls that may touch a QEMU monitor run.

One stuck QEMU blocks the first monitor call until it dies, then every later
call for 30 s, and ~20 hung calls exhaust libvirtd's workers. So each domain
gets a *lane*: at most one outstanding call, its calls in order; a domain whose
call hangs just stops updating, and the watchdog reports it.

Lanes share one elastic pool of threads per monitor: a thread is taken only
while a call runs; when work waits and no thread is free, another is started —
at once while fewer than `MAX_RUNNING` run calls younger than `SLOW_CALL`, else
as soon as one of them turns slow (a hung call keeps its thread, so it delays
another domain by half a second at most); a thread idle for `IDLE_EXIT`
seconds ends. Threads therefore follow what is busy or stuck — a handful for a
fleet of idle domains — not the number of domains.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

IDLE_EXIT = 10.0  # seconds a pool thread waits for work before it ends
MAX_RUNNING = 16  # threads running calls that are not (yet) slow; more only for slow ones
# A call running this long no longer counts against MAX_RUNNING. Over SSH on a loaded
# machine ordinary calls took over 0.25 s and grew the pool to 112 threads at idle.
SLOW_CALL = 0.5
T = TypeVar("T")
_WATCH_EVERY = 0.05


class CallPool:
    def __init__(
        self, name: str, idle_exit: float = IDLE_EXIT, slow_call: float = SLOW_CALL
    ) -> None:
        self.name = name
        self.idle_exit = idle_exit
        self.slow_call = slow_call
        self._cv = threading.Condition()
        self._ready: deque[DomainWorker] = deque()  # lanes with a call waiting for a thread
        self._idle = 0  # threads waiting for work
        self._busy: dict[int, float] = {}  # thread number -> monotonic start of its call
        self._watching = False
        self._serial = 0
        self.threads = 0  # threads alive
        self.peak = 0

    def schedule(self, lane: DomainWorker) -> None:
        with self._cv:
            self._ready.append(lane)
            if len(self._ready) <= self._idle:
                self._cv.notify()
            elif not self._grow() and not self._watching:
                # All threads run fresh calls: wait for one, unless they turn out slow.
                self._watching = True
                threading.Thread(target=self._watch, name=f"{self.name} watch", daemon=True).start()

    def _grow(self) -> bool:
        """Start a thread if fewer than MAX_RUNNING run calls that are not slow (lock held)."""
        now = time.monotonic()
        # Called when more calls wait than threads do: every thread runs a call or is
        # about to take one. All count against MAX_RUNNING but those whose call turned slow.
        slow = sum(1 for t0 in self._busy.values() if now - t0 >= self.slow_call)
        fresh = self.threads - slow
        if fresh >= MAX_RUNNING:
            return False
        self.threads += 1
        self._serial += 1
        self.peak = max(self.peak, self.threads)
        n = self._serial
        threading.Thread(target=self._run, args=(n,), name=f"{self.name} {n}", daemon=True).start()
        return True

    def _watch(self) -> None:
        """While work waits and no thread is free: a slow call must not hold it up."""
        while True:
            time.sleep(_WATCH_EVERY)
            with self._cv:
                if len(self._ready) <= self._idle:
                    self._watching = False
                    return
                self._grow()

    def _run(self, n: int) -> None:
        while True:
            with self._cv:
                while not self._ready:
                    self._idle += 1
                    woke = self._cv.wait(self.idle_exit)
                    self._idle -= 1
                    if not woke and not self._ready:
                        self.threads -= 1
                        return
                lane = self._ready.popleft()
                self._busy[n] = time.monotonic()
            try:
                lane.run_one()
            finally:
                with self._cv:
                    del self._busy[n]


class DomainWorker:
    """A lane: one domain's calls (or one host's listing), one at a time, in order."""

    def __init__(self, label: str, pool: CallPool | None = None) -> None:
        self.label = label
        # A lane of its own pool (tests, one-off use) still gets threads on demand.
        self._pool = pool if pool is not None else CallPool(f"lane {label}")
        self._lock = threading.Lock()
        self._tasks: deque[tuple[Callable[[], Any], Future[Any]]] = deque()
        self._scheduled = False  # a pool thread has (or will have) this lane's next call
        self._drained = threading.Event()
        self._drained.set()
        self._stopped = False
        self.busy_since: float | None = None  # monotonic start of the call in progress
        self.poll_pending = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        fut: Future[T] = Future()
        with self._lock:
            if self._stopped:
                fut.cancel()
                return fut
            self._tasks.append((fn, fut))
            self._drained.clear()
            start = not self._scheduled
            self._scheduled = True
        if start:
            self._pool.schedule(self)
        return fut

    def stop(self) -> None:
        """Take no new calls; those already queued still run, in order."""
        with self._lock:
            self._stopped = True

    def join(self, timeout: float) -> bool:
        """True when none of this lane's calls is still running or waiting."""
        return self._drained.wait(timeout)

    def stuck_for(self, now: float) -> float:
        since = self.busy_since
        return 0.0 if since is None else now - since

    def run_one(self) -> None:
        """Run the next call (on a pool thread), then hand the lane back if more wait."""
        with self._lock:
            fn, fut = self._tasks.popleft()
        if fut.set_running_or_notify_cancel():
            self.busy_since = time.monotonic()
            try:
                fut.set_result(fn())
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits
                fut.set_exception(err)
            finally:
                self.busy_since = None
        with self._lock:
            more = bool(self._tasks)
            self._scheduled = more
            if not more:
                self._drained.set()
        if more:
            self._pool.schedule(self)
