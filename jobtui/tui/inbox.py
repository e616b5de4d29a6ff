"""Engine events on their way to the screen, and when the next paint is due.

Engine threads put events here; the UI thread takes them all at once. One wake-up is
in flight at most, however many events queue behind it. When to apply what was taken:

- on a screen that has been quiet, at once: that event is the news;
- a change of state (a job started, READY, finished, paused; a domain or host
  changed) at once too, unless another change of state was painted less than a frame
  ago: it never waits behind a progress window — an operator waiting for READY to
  pivot sees it as libvirt says it — and a burst of them is still painted once a frame;
- progress alone once per coalescing window while events keep coming: a storm of
  figures is painted a few times a second, not once per event;
- news that comes while progress waits out its window is painted alone: the figures
  of other jobs stay queued for the paint that closes the window (`take_news`), so a
  state change in a storm costs the paint of one row, not of every figure that moved.

No Textual here: the app owns the timer, this owns the arithmetic.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from jobtui.model import EngineEvent, JobDismissed, JobKey, JobProgress, JobStateChanged

# About one frame at Textual's 60 frames a second: a state change is never held longer
# than the screen itself would hold it.
NEWS_GAP = 1 / 60


class Inbox:
    def __init__(self, wake: Callable[[], object], *, coalesce: float) -> None:
        """`wake` is called on the engine thread when the first event of a batch comes
        (it must be thread-safe: Textual's post_message is)."""
        self._wake = wake
        self._coalesce = coalesce
        self._items: deque[tuple[EngineEvent, float]] = deque()
        self._lock = threading.Lock()
        self._wake_posted = False
        self._news = 0  # queued events that are not progress
        # Monotonic times of the last applied batch, and of the last one with news.
        self._last_paint = float("-inf")
        self._last_news = float("-inf")

    def put(self, event: EngineEvent, at: float) -> None:
        """Engine thread: queue, and wake the UI unless a wake-up is on its way."""
        with self._lock:
            self._items.append((event, at))
            if not isinstance(event, JobProgress):
                self._news += 1
            if self._wake_posted:
                return
            self._wake_posted = True
        self._wake()

    def take(self) -> tuple[list[tuple[EngineEvent, float]], bool]:
        """UI thread: everything queued, and whether any of it is news (not progress)."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._wake_posted = False
            news, self._news = self._news > 0, 0
        return items, news

    @property
    def news_waiting(self) -> bool:
        """Whether anything but progress is queued."""
        return self._news > 0

    def leave(self) -> None:
        """UI thread: what is queued stays for the paint already scheduled; the next
        event wakes the UI again."""
        with self._lock:
            self._wake_posted = False

    def take_news(self) -> tuple[list[tuple[EngineEvent, float]], bool]:
        """UI thread, while a paint of progress is pending: like `take`, but the progress
        of jobs that have no news in the batch stays queued, in order, for that paint.
        A job's progress queued before its news goes with the news, so no job ever
        shows older figures after newer ones."""
        with self._lock:
            items = list(self._items)
            self._items.clear()
            self._wake_posted = False
            self._news = 0
            with_news: set[JobKey] = set()
            for event, _at in items:
                if isinstance(event, JobStateChanged | JobDismissed):
                    with_news.add(event.key)
                elif not isinstance(event, JobProgress):
                    # A domain or host changed: the whole batch, as `take` gives it.
                    return items, True
            now: list[tuple[EngineEvent, float]] = []
            later: deque[tuple[EngineEvent, float]] = deque()
            for event, at in items:
                if isinstance(event, JobProgress) and event.job.key not in with_news:
                    later.append((event, at))
                else:
                    now.append((event, at))
            self._items = later  # the pending paint takes them; new events wake the UI
        return now, bool(with_news)

    def due(self, *, news: bool) -> float:
        """The monotonic time a batch holding news (or only progress) may be applied."""
        if news:
            return self._last_news + min(NEWS_GAP, self._coalesce)
        return self._last_paint + self._coalesce

    def painted(self, now: float, *, news: bool) -> None:
        """A batch with changes was applied at `now` (monotonic): it opens a window."""
        self._last_paint = now
        if news:
            self._last_news = now
