"""How the engine's events and pictures reach the TUI's store: engine threads only
queue (the inbox), the UI thread folds what is queued into the store and paints once for
all of it, at once on a quiet screen or when the coalescing window closes."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from textual import work
from textual.app import App
from textual.timer import Timer

from jobtui.model import EngineEvent, HostChanged, HostState, Job, JobKey
from jobtui.source import JobSource
from jobtui.tui import textual_fixes
from jobtui.tui.attention import Watcher
from jobtui.tui.collector import PaintHold
from jobtui.tui.inbox import Inbox
from jobtui.tui.messages import EngineEventsPending, SnapshotLoaded, XmlLoaded
from jobtui.tui.store import JobStore
from jobtui.tui.widgets.detail import DetailPane

# How long a job that finished stays in its row, in its new state, before it moves.
SETTLE_AFTER = 0.3


class EngineFeed(App[None]):
    """JobView's engine side (events, pictures, a job's raw XML); JobView sets these up
    and paints (`_apply_batch`)."""

    source: JobSource
    _inbox: Inbox
    _clock: Callable[[], float]
    _store: JobStore
    _watcher: Watcher
    _paint_timer: Timer | None
    _paint_due: float
    _paint_hold: PaintHold | None
    _settle_timer: Timer | None
    _settle_due: bool
    _last_second: int | None
    _engine_up: bool
    _baselined: bool
    _freeze_gc: bool
    _view_dirty: bool
    _loaded: asyncio.Event

    _xml_loading: bool
    _xml_stale: bool
    _xml_mode: bool

    @property
    def selected_job(self) -> Job | None:
        raise NotImplementedError

    def _apply_batch(self) -> None:
        raise NotImplementedError

    def flush_updates(self) -> None:
        """Apply every engine event handed over so far, now, and redraw what moves with
        the clock as of now (a test's or a screenshot's moment, whatever ticked before)."""
        self._drain()
        self._last_second = None
        self._apply_batch()
        if self._settle_timer is not None:
            # Rows shown in their new state where they were: in order now, not later.
            self._settle_timer.stop()
            self._settle()

    def _on_second(self) -> None:
        if self._paint_hold is not None:
            self._paint_hold.expire(time.monotonic())
        self._apply_batch()

    def _pending_writes(self) -> int:
        writer = getattr(self._driver, "_writer_thread", None)
        return textual_fixes.pending_writes(writer) if writer is not None else 0

    def _settle_later(self) -> None:
        if self._settle_timer is None:
            # Not pushed back by later moves: under a stream of ends rows still settle.
            self._settle_timer = self.set_timer(SETTLE_AFTER, self._settle)

    def _settle(self) -> None:
        self._settle_timer = None
        self._settle_due = True
        self._apply_batch()

    def _hand_off(self, event: EngineEvent) -> None:
        # Runs on an engine thread: stamp and queue (the inbox wakes the UI). Nothing else.
        self._inbox.put(event, self._clock())

    def on_engine_events_pending(self, message: EngineEventsPending) -> None:
        news = self._inbox.news_waiting
        due = self._inbox.due(news=news)
        now = time.monotonic()
        if due <= now:
            # The screen has been quiet long enough for this: paint it now. Progress
            # that waits for a paint already scheduled stays for it (only this news is
            # painted now: one row, not every figure of a storm).
            self._drain(split=self._paint_timer is not None)
            self._apply_batch()
            return
        # Events keep coming: one paint when the window closes takes them all (sooner
        # if news came in behind a progress window).
        self._inbox.leave()
        if self._paint_timer is None or due < self._paint_due:
            if self._paint_timer is not None:
                self._paint_timer.stop()
            self._paint_due = due
            self._paint_timer = self.set_timer(due - now, self._coalesced_paint)

    def _coalesced_paint(self) -> None:
        self._paint_timer = None
        self._drain()
        self._apply_batch()

    def _drain(self, *, split: bool = False) -> bool:
        """Fold the queued engine events into the store (cheap: dict writes); True if
        any of them is news rather than progress. With `split` (a paint of progress is
        pending), the progress of jobs without news stays queued for that paint."""
        items, news = self._inbox.take_news() if split else self._inbox.take()
        for event, at in items:
            if isinstance(event, HostChanged):
                before = self._store.hosts.get(event.host.uri)
                if (
                    event.host.state is HostState.CONNECTED
                    and before is not None
                    and before.state is not HostState.CONNECTED
                ):
                    # Back from a lost connection: rebuild from a fresh list (keyed rows).
                    self._load(self._store.seq)
            self._store.apply(event, at)
        return news

    @work(thread=True, group="engine")
    def _start_engine(self) -> None:
        # A deferred source (jobtui.deferred) is built here: imports and the history.
        since_seq = self._store.seq
        self.source.start()
        self._engine_up = True
        # What the source knew before it started (the history's jobs) is loaded now.
        self._post_snapshot(since_seq, engine_started=True)

    @work(thread=True, exclusive=True, group="load")
    def _load(self, since_seq: int) -> None:
        self._post_snapshot(since_seq, engine_started=self._engine_up)

    def _post_snapshot(self, since_seq: int, *, engine_started: bool) -> None:
        """On a worker thread: the source's whole picture, handed to the UI."""
        try:
            hosts = self.source.hosts()
            domains = self.source.domains()
            jobs = self.source.jobs()
        except Exception as err:  # noqa: BLE001 - any engine failure is shown, never fatal
            error = str(err) or repr(err)
            self.post_message(SnapshotLoaded([], [], [], since_seq, engine_started, error))
            return
        self.post_message(SnapshotLoaded(hosts, domains, jobs, since_seq, engine_started))

    def on_snapshot_loaded(self, message: SnapshotLoaded) -> None:
        first = False  # the engine's first picture, applied now
        if message.error:
            self.notify(message.error, title="cannot list jobs", severity="error")
        else:
            self._store.load(
                message.hosts,
                message.domains,
                message.jobs,
                at=self._clock(),
                since_seq=message.since_seq,
            )
            first = not self._baselined and message.engine_started
            if first:
                # What jobs already are when the TUI starts is not news (nor what the
                # engine finds before its first picture comes).
                self._baselined = True
                self._watcher.baseline(self._store.jobs.values(), self._clock())
        self._view_dirty = True
        self._apply_batch()
        self._loaded.set()
        if first and self._freeze_gc:
            # The engine's first picture made the rows and tree lines of every job and
            # domain, which live on; frozen like Textual's own (view.on_ready), a full
            # collection no longer scans them (measured with 2000 jobs: 118,000 such
            # objects, 27-73 ms pauses). What they hold that later dies uncollectably
            # in a cycle is bounded by that first picture (docs/decisions.md).
            gc.freeze()

    # --- raw XML ---------------------------------------------------------------------------

    def _request_xml(self) -> None:
        job = self.selected_job
        detail = self.query_one(DetailPane)
        if job is None:
            detail.show_xml("no job selected", error=True)
            return
        if self._xml_loading:
            # One request in flight at a time; a blocked engine must not pile up threads.
            self._xml_stale = True
            return
        self._xml_loading = True
        self._fetch_xml(job.key)

    @work(thread=True, group="xml")
    def _fetch_xml(self, key: JobKey) -> None:
        try:
            text = self.source.job_xml(key)
        except Exception as err:  # noqa: BLE001 - shown in the pane instead
            self.post_message(XmlLoaded(key, error=str(err) or repr(err)))
        else:
            self.post_message(XmlLoaded(key, text=text))

    def on_xml_loaded(self, message: XmlLoaded) -> None:
        self._xml_loading = False
        job = self.selected_job
        if self._xml_stale or job is None or job.key != message.key:
            self._xml_stale = False
            if self._xml_mode:
                self._request_xml()
            return
        detail = self.query_one(DetailPane)
        if message.error:
            detail.show_xml(message.error, error=True)
        else:
            detail.show_xml(message.text)
