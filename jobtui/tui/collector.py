"""Python's automatic garbage collections held off while a change is painted.

CPython starts a collection at whichever allocation tips its count, from any thread. In
a storm of progress its pauses (young passes of 4-8 ms, middle ones of 13-20 ms,
measured with `gc.callbacks`) landed inside the very paint that was to show a state
change, and were the tail of event -> screen (docs/performance.md). So while the app
paints news (a job started, READY, ended; a host changed), automatic collection is off;
it comes back once that frame is written to the terminal, and the collection that fell
due meanwhile runs then, before the next frame instead of inside this one. Progress
paints, keys and dialogs are untouched: CPython's own schedule, thresholds and passes.

A hold never outlives `MAX_HOLD`: the clock tick ends it, if a frame never came.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

MAX_HOLD = 0.5  # seconds


class PaintHold:
    def __init__(self, pending_writes: Callable[[], int]) -> None:
        """`pending_writes`: how many writes the terminal's writer has still to make."""
        self._pending_writes = pending_writes
        self._lock = threading.Lock()
        self._since: float | None = None  # monotonic start of the hold; None: not held
        self._armed = False  # the frame is queued: the writer ends the hold

    @property
    def held(self) -> bool:
        return self._since is not None

    def hold(self) -> None:
        """UI thread, before news is applied."""
        with self._lock:
            if self._since is None and gc.isenabled():
                gc.disable()
                self._since = time.monotonic()

    def painted(self) -> None:
        """UI thread, after the screen refresh that drew the news: its frame is queued."""
        with self._lock:
            if self._since is None:
                return
            if self._pending_writes() == 0:
                self._release()
            else:
                self._armed = True

    def written(self) -> None:
        """Writer thread, after a flush with nothing more queued."""
        with self._lock:
            if self._armed:
                self._release()

    def expire(self, now: float) -> None:
        with self._lock:
            if self._since is not None and now - self._since > MAX_HOLD:
                self._release()

    def release(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._since is not None:
            self._since = None
            self._armed = False
            gc.enable()
