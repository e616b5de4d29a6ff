"""A thread per domain for every libvirt call that may touch its QEMU monitor.

One stuck QEMU blocks the first monitor call until it dies, then every later
call for 30 s, and ~20 hung calls exhaust libvirtd's workers (facts §8). So
each domain gets exactly one thread and at most one outstanding call; a
domain whose call hangs just stops updating, and the watchdog reports it.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class DomainWorker:
    def __init__(self, label: str) -> None:
        self.label = label
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self.busy_since: float | None = None  # monotonic start of the call in progress
        self.poll_pending = False
        self._thread = threading.Thread(target=self._run, name=f"domain {label}", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        self._tasks.put((fn, fut))
        return fut

    def stop(self) -> None:
        self._tasks.put(None)

    def join(self, timeout: float) -> bool:
        """True when the thread ended (no call of ours is still running)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stuck_for(self, now: float) -> float:
        since = self.busy_since
        return 0.0 if since is None else now - since

    def _run(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            fn, fut = item
            if not fut.set_running_or_notify_cancel():
                continue
            self.busy_since = time.monotonic()
            try:
                fut.set_result(fn())
            except BaseException as err:  # noqa: BLE001 - handed to whoever waits
                fut.set_exception(err)
            finally:
                self.busy_since = None
