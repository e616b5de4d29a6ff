"""The TUI's view of a `JobSource`: layout, the engine → screen path, selection.

Data flows one way. The engine's callbacks (on its threads) only queue the
immutable event and wake the app (one wake-up message for however many events
are queued); the app folds the queued events into its `JobStore` and paints at
once when the screen is idle, a change of state within a frame, and progress at
most once per `coalesce` seconds while events keep coming (jobtui.tui.inbox).
Everything that may block on the engine (the job
list, control, job XML) runs in a thread worker that answers with a typed
message. The event loop never waits on libvirt.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import tzinfo
from pathlib import Path

from textual import events, on
from textual.app import ComposeResult, ScreenStackError
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.notifications import SeverityLevel
from textual.theme import Theme
from textual.timer import Timer
from textual.widgets import DataTable, Input, Tree

from jobtui.inventory import NamedHosts
from jobtui.model import (
    Job,
    JobKey,
    JobState,
)
from jobtui.source import JobSource
from jobtui.support import Options, refusal
from jobtui.tui import keymap, textual_fixes
from jobtui.tui.attention import Alert, Kind, Watcher, terminal_escape
from jobtui.tui.collector import PaintHold
from jobtui.tui.config import Config, load_config, save_theme
from jobtui.tui.feed import EngineFeed
from jobtui.tui.format import short_host
from jobtui.tui.inbox import Inbox
from jobtui.tui.key_rules import CONTROL_ACTIONS, control_key, op_for
from jobtui.tui.messages import EngineEventsPending
from jobtui.tui.splash import NARROW, TREE_WIDTH
from jobtui.tui.store import ALL, Changes, JobStore, Scope, matches, sort_key
from jobtui.tui.styles import palette
from jobtui.tui.widgets.detail import DetailPane
from jobtui.tui.widgets.domain_tree import DomainTree, JobRef, NodeRef, describe
from jobtui.tui.widgets.event_log import EventLog, log_line
from jobtui.tui.widgets.footer import KeyFooter
from jobtui.tui.widgets.host_bar import HostBar
from jobtui.tui.widgets.job_table import JobTable
from jobtui.tui.widgets.row_cells import MOVING, row_cells, sort_value
from jobtui.tui.widgets.status_line import StatusLine

textual_fixes.apply()

# Below NARROW columns the tree folds away (80×24 must work); the table itself drops
# optional columns to fit whatever width it gets. (In splash.py: it draws the tree too.)


@dataclass(frozen=True)
class FlushReport:
    """What one repaint changed: for benchmarks and tests (`JobTUI(on_flush=...)`)."""

    touched: frozenset[JobKey]  # jobs whose row was added, updated or removed
    at: float  # time.perf_counter() when the table had been updated
    took: float  # seconds spent applying this batch (table, tree, detail, log)


class JobView(EngineFeed):
    """Everything but the keys' actions (jobtui.tui.app.JobTUI): what is shown, and
    which keys apply to it."""

    def __init__(
        self,
        source: JobSource,
        *,
        readonly: bool = False,
        keymap_path: Path | None = None,
        clock: Callable[[], float] = time.time,
        tz: tzinfo | None = None,
        coalesce: float = 0.04,
        on_flush: Callable[[FlushReport], None] | None = None,
        host_names: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        freeze_gc: bool = False,
        start_source: bool = False,
    ) -> None:
        """`clock` stamps rate samples and elapsed times; `tz` the event log (None: local).

        `coalesce`: while events keep coming, paint at most once per this many seconds
        (an event that finds the screen idle for that long is painted at once).
        `freeze_gc`: once the first frame is up, exempt everything made so far from the
        garbage collector (a process-wide setting: for the real TUI, not for tests).
        `start_source`: the app starts `source` once its first frame is up (see on_ready);
        `source_started` says whether it did.
        """
        super().__init__()
        self._freeze_gc = freeze_gc
        self._start_source = start_source
        self.source_started = False
        self._engine_up = not start_source  # a source the caller started is up
        self._gc_frozen = False
        # Off until Ready, with the freeze (freeze_gc): process-wide, for the real TUI.
        self._paint_hold: PaintHold | None = None
        # host_names (URI → name, from hosts.toml) reach every view as Host.hostname.
        self.source = NamedHosts(source, host_names) if host_names else source
        self._force_readonly = readonly
        self._keymap_path = keymap_path
        self._config_path = config_path
        self.config = Config()
        self._kept_theme = ""  # the theme the config file holds (or the default)
        # What needs an operator (failed, stalled, orphaned, long at READY): notified once.
        self._watcher = Watcher(self.config.attention)
        self._baselined = False
        # Where the bell and desktop-notification escapes go (tests record them here).
        self.terminal_write: Callable[[str], None] = self._write_to_terminal
        self._user_keymap: dict[str, str] = {}
        self._clock = clock
        self._tz = tz
        self._coalesce = coalesce
        self._on_flush = on_flush
        self._inbox = Inbox(lambda: self.post_message(EngineEventsPending()), coalesce=coalesce)
        self._paint_timer: Timer | None = None
        self._paint_due = 0.0  # when the pending timer fires (time.monotonic())
        # Rows shown in a new state where they were, to be put in order (_settle).
        self._settle_timer: Timer | None = None
        self._settle_due = False
        self._visible_keys: list[JobKey] | None = None  # jobs with a row, in display order
        self._visible_set: set[JobKey] = set()
        self._store = JobStore()
        self._scope: Scope = ALL
        self._filter = ""
        self._show_finished = True
        self._tree_shown: bool | None = None  # None: follow the terminal width
        # The table's order: a column key (None: the default, active first) and direction.
        self._sort: tuple[str | None, bool] = (None, False)
        self._narrow = False
        self._xml_mode = False
        self._xml_loading = False
        self._xml_stale = False
        self._view_dirty = True
        self._last_second: int | None = None
        self._selected: tuple[JobKey | None, JobState | None] = (None, None)
        self._pending_select: JobKey | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._loaded = asyncio.Event()

    # --- public ----------------------------------------------------------------------------

    @property
    def options(self) -> Options:
        opts = self.source.options
        return replace(opts, readonly=True) if self._force_readonly else opts

    @property
    def selected_job(self) -> Job | None:
        try:
            key = self.query_one(JobTable).selected_key
        except NoMatches:  # bindings are checked while the screen is still being built
            return None
        return self._store.jobs.get(key) if key is not None else None

    async def wait_until_loaded(self) -> None:
        """Until the first job list is on screen."""
        await self._loaded.wait()

    # --- layout ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield HostBar(id="host-bar")
        with Horizontal(id="body"):
            tree = DomainTree(id="tree")
            tree.styles.width = TREE_WIDTH
            yield tree
            with Vertical(id="main"):
                yield Input(placeholder="filter: domain, job, type, state, host", id="filter")
                table = JobTable(id="jobs")
                width = self.size.width
                table.expect_width(width - TREE_WIDTH if width >= NARROW else width)
                yield table
                yield DetailPane(id="detail")
        yield EventLog(id="event-log")
        yield StatusLine(id="status")
        yield KeyFooter()

    def on_mount(self) -> None:
        if self._keymap_path is not None:
            self._user_keymap, problems = keymap.load_keymap(self._keymap_path)
            self.set_keymap(self._user_keymap)
            for problem in problems:
                self.notify(problem, title="keymap", severity="warning", timeout=10)
        if self._config_path is not None:
            self.config, bad = load_config(self._config_path)
            self._watcher.config = self.config.attention
            if bad:
                self.notify(bad, title="config", severity="warning", timeout=10)
            self._apply_theme(self.config.theme)
            self._kept_theme = self.theme
            self.theme_changed_signal.subscribe(self, self._keep_theme)
        self._unsubscribe = self.source.subscribe(self._hand_off)
        # Elapsed times and ETAs move with the clock, not only with events. A tick
        # that finds nothing changed on screen paints nothing.
        self.set_interval(1.0, self._on_second)
        self._apply_width(self.size.width)
        self._load(self._store.seq)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Textual's notify, plain text by default: messages carry domain names, paths and
        libvirt's errors, where `[x]` would vanish and `[/]` would crash the app."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    def on_ready(self) -> None:
        if self._start_source and not self.source_started:
            # Started earlier, the engine's threads (connecting, listing, first looks at
            # every domain) took the interpreter from the first frame: 0.83 s to it with
            # 50 domains, 0.45 s when the engine starts here.
            self.source_started = True
            self._start_engine()
        if self._freeze_gc and not self._gc_frozen:
            self._gc_frozen = True  # once: Ready can come again (seen in CI)
            # Textual, libvirt and the first frame leave ~10^5 long-lived objects that
            # every full collection scanned again: 30-90 ms pauses every few seconds,
            # the slowest event -> screen times (docs/performance.md). Frozen, a full
            # collection scans only what came later.
            gc.freeze()
            self._paint_hold = PaintHold(self._pending_writes)
            textual_fixes.flushed_hooks.append(self._paint_hold.written)
        if not gc.isenabled():
            # The `jobtui` command starts with collection off (jobtui.cli.entry): the
            # objects made until now are the ones that live as long as the app.
            gc.enable()

    def _apply_theme(self, name: str | None) -> None:
        if name is None:
            return
        if name in self.available_themes:
            self.theme = name
        else:
            self.notify(
                f"unknown theme {name!r}: ctrl+p → Theme lists them",
                title="config",
                severity="warning",
                timeout=10,
            )

    def _keep_theme(self, theme: Theme) -> None:
        """A theme chosen in the palette is kept in the config file for the next start."""
        if self._config_path is None or theme.name == self._kept_theme:
            return
        self._kept_theme = theme.name
        problem = save_theme(self._config_path, theme.name)
        if problem:
            self.notify(problem, title="theme", severity="warning", timeout=10)

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._paint_hold is not None:
            with contextlib.suppress(ValueError):
                textual_fixes.flushed_hooks.remove(self._paint_hold.written)
            self._paint_hold.release()

    def on_resize(self, event: events.Resize) -> None:
        self._apply_width(event.size.width)

    def _apply_width(self, width: int) -> None:
        self._narrow = width < NARROW
        self._apply_tree_visibility()

    def _apply_tree_visibility(self) -> None:
        tree = self.query_one(DomainTree)
        shown = self._tree_shown if self._tree_shown is not None else not self._narrow
        tree.display = shown
        if not shown and tree.has_focus:
            self.query_one(JobTable).focus()

    # --- one paint for whatever changed ----------------------------------------------------

    def _visible(self, job: Job) -> bool:
        return (
            job in self._scope
            and (self._show_finished or job.state.active)
            and matches(job, self._filter)
        )

    def _apply_batch(self) -> None:
        try:
            self._apply_batch_now()
        except (NoMatches, ScreenStackError):
            # The timer fired while the screen is being torn down (quitting): the
            # widgets are gone and nothing is left to update.
            return

    def _apply_batch_now(self) -> None:
        started = time.perf_counter()
        changes = self._store.take()
        now = self._clock()
        second = int(now)
        new_second = second != self._last_second
        self._last_second = second
        if not changes and not new_second and not self._view_dirty and not self._settle_due:
            return
        if changes:
            # Clock ticks do not count: only engine news opens a coalescing window.
            self._inbox.painted(time.monotonic(), news=changes.news)
            if changes.news and self._paint_hold is not None:
                # No collection inside the paint of news (jobtui.tui.collector).
                self._paint_hold.hold()
                self.call_after_refresh(self._paint_hold.painted)
        store = self._store
        table = self.query_one(JobTable)

        column, descending = self._sort
        settling, self._settle_due = self._settle_due, False
        same_rows = not (
            self._visible_keys is None
            or changes.structure
            or self._view_dirty
            or settling
            or (changes.states and self._filter)
            or (column is not None and changes.jobs)
            or (column in MOVING and new_second)
        )
        # A job that finished (or runs again) is first shown in its new state where the
        # operator saw it, and moved among the others a moment later: the move redraws
        # every row it passes, and the state is what the operator waits for.
        in_place = same_rows and bool(changes.moved) and changes.moved <= self._visible_set
        if in_place:
            self._settle_later()
        elif changes.moved:
            same_rows = False
        if not same_rows:
            # Which jobs have a row changes only with these; a progress storm reuses it
            # (unless the rows are sorted by a figure it moves).
            visible = sorted(
                (j for j in store.jobs.values() if self._visible(j)),
                key=self._row_order(now),
                reverse=descending,
            )
            self._visible_keys = [j.key for j in visible]
            self._visible_set = set(self._visible_keys)
        jobs = store.jobs
        assert self._visible_keys is not None
        if same_rows and not new_second:
            # The rows of the last paint, in its order: only the jobs that changed are
            # drawn again, without a walk over every row (2000 of them in a storm).
            render = [jobs[k] for k in changes.jobs if k in self._visible_set]
        else:
            shown = table.shown
            # Elapsed and ETA of active jobs move with the clock, not only with events:
            # the tick redraws the rows in view (all 2000 of a storm would take 100 ms).
            clocked = table.keys_in_view() if new_second else set()
            render = []
            for key in self._visible_keys:
                job = jobs[key]
                ticks = new_second and job.state.active and (job.stale or key in clocked)
                if key not in shown or key in changes.jobs or ticks:
                    # A stale row's age moves every second, wherever the row is.
                    render.append(job)
        pal = palette(self.no_color)
        cells = {j.key: row_cells(j, store.rates[j.key].rate, now, pal) for j in render}
        touched = table.sync(self._visible_keys, cells, same_rows=same_rows)
        if self._pending_select is not None and table.select(self._pending_select):
            self._pending_select = None

        tree = self.query_one(DomainTree)
        if (
            changes.structure
            or self._view_dirty
            or (changes.states and self._filter)
            or settling
            or (
                changes.moved
                and not in_place
                and not (self._show_finished and tree.keeps_places(changes.moved, store.jobs))
            )
        ):
            self._sync_tree()
        elif changes.states:
            # Only labels changed (running ↔ paused, ready; a finished job that keeps its
            # place): no node comes, goes or moves.
            pal = palette(self.no_color)
            tree.relabel([store.jobs[k] for k in changes.states], pal)
        if changes.hosts or changes.structure or changes.moved or self._view_dirty:
            # Counts of active and finished jobs: a running ↔ paused flip leaves them.
            self._sync_status()
        if changes.transitions:
            log = self.query_one(EventLog)
            for t in changes.transitions:
                host = store.hosts.get(t.key.host)
                name = short_host(t.key.host, host.hostname if host is not None else "")
                log.write(log_line(t, name, self._tz, pal))
        # Only an active job's figures (elapsed) move with the clock alone.
        selected = self.selected_job
        ticking = new_second and selected is not None and selected.state.active
        self._sync_detail(changed=changes.jobs, force=ticking or self._view_dirty)
        self._view_dirty = False
        self._attend(changes, now, new_second)
        if self._on_flush is not None:
            done = time.perf_counter()
            self._on_flush(FlushReport(frozenset(touched), done, done - started))

    def _row_order(self, now: float) -> Callable[[Job], tuple[object, ...]]:
        column = self._sort[0]
        if column is None:
            return sort_key
        rates = self._store.rates
        return lambda j: sort_value(column, j, rates[j.key].rate, now)

    def _set_sort(self, column: str | None, descending: bool) -> None:
        self._sort = (column, descending)
        self.query_one(JobTable).show_sort(column, descending)
        self._view_dirty = True
        self._apply_batch()

    # --- attention ---------------------------------------------------------------------------

    def _attend(self, changes: Changes, now: float, new_second: bool) -> None:
        if not self._baselined:
            return
        watcher = self._watcher
        for key in changes.removed:
            watcher.forget(key)
        jobs = self._store.jobs
        alerts = watcher.seen([jobs[k] for k in changes.jobs if k in jobs], now)
        if new_second:
            alerts += watcher.tick(jobs, now)
        for alert in alerts:
            self._alert(alert)

    def _alert(self, alert: Alert) -> None:
        host = self._store.hosts.get(alert.job.host)
        name = short_host(alert.job.host, host.hostname if host is not None else "")
        bad = alert.kind in (Kind.FAILED, Kind.ORPHANED)
        severity: SeverityLevel = "error" if bad else "warning"
        self.notify(alert.body(name), title=alert.title(), severity=severity, timeout=30)
        att = self._watcher.config
        out = ("\a" if att.bell else "") + terminal_escape(alert, name, att.desktop)
        if out:
            self.terminal_write(out)

    def _write_to_terminal(self, text: str) -> None:
        driver = self._driver
        if driver is not None and not self.is_headless:
            driver.write(text)
            driver.flush()

    def _sync_tree(self) -> None:
        store = self._store
        jobs = sorted(
            (
                j
                for j in store.jobs.values()
                if (self._show_finished or j.state.active) and matches(j, self._filter)
            ),
            key=sort_key,
        )
        keep = None
        if self._filter:
            needle = self._filter.lower()
            keep = {dk for dk, d in store.domains.items() if needle in d.name.lower()}
        specs = describe(
            list(store.hosts.values()),
            list(store.domains.values()),
            jobs,
            keep_domain=keep,
            pal=palette(self.no_color),
        )
        self.query_one(DomainTree).sync(specs)

    def _sync_status(self) -> None:
        store = self._store
        hosts = list(store.hosts.values())
        pal = palette(self.no_color)
        self.query_one(HostBar).show(hosts, readonly=self.options.readonly, pal=pal)
        active = sum(1 for j in store.jobs.values() if j.state.active)
        self.query_one(StatusLine).show(
            hosts,
            active=active,
            finished=len(store.jobs) - active,
            finished_hidden=not self._show_finished,
            filter_text=self._filter,
            readonly=self.options.readonly,
            pal=pal,
        )

    def _sync_detail(self, *, changed: set[JobKey], force: bool = False) -> None:
        job = self.selected_job
        key = job.key if job is not None else None
        state = job.state if job is not None else None
        selection_moved = key != self._selected[0]
        if not (force or selection_moved or key in changed):
            return
        if selection_moved or state != self._selected[1]:
            # What a/f/p/d/b may do depends on the selected job and its state.
            self.refresh_bindings()
        if selection_moved:
            # The engine samples the job on screen faster.
            self.source.focus(key)
        self._selected = (key, state)
        detail = self.query_one(DetailPane)
        if job is None:
            table = self.query_one(JobTable)
            if table.row_count:
                detail.show_job(None)
            elif self._filter:
                detail.show_job(None, empty=f"no job matches “{self._filter}” (esc clears)")
            else:
                detail.show_job(None, empty="no jobs here")
        else:
            detail.show_job(
                job,
                domain=self._store.domain_of(job),
                track=self._store.rates.get(job.key),
                now=self._clock(),
                hints=self._hints(job),
            )
        if self._xml_mode and (selection_moved or key in changed):
            self._request_xml()

    def _hints(self, job: Job) -> list[str]:
        """Why a key shown dimmed in the footer does nothing right now."""
        hints = []
        for binding in keymap.BINDINGS:
            if self.check_action(binding.action, ()) is None:
                op = op_for(binding.action, job)
                reason = refusal(job, op, self.options) if op is not None else None
                if reason:
                    key = keymap.keys_for(binding, self._user_keymap)[0]
                    hints.append(f"{self.get_key_display(binding.with_key(key))}: {reason}")
        return hints

    # --- selection -------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # The event may name a row the cursor only passed while rows were re-sorted:
        # read the table's current selection instead.
        if self.screen_stack:  # not handled after the app's last screen went (quitting)
            self._sync_detail(changed=set())

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        """A click on a header sorts by it; a second click inverts."""
        column = str(event.column_key.value)
        column_now, descending = self._sort
        self._set_sort(column, not descending if column == column_now else False)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[NodeRef]) -> None:
        tree = self.query_one(DomainTree)
        scope = tree.scope
        node = tree.cursor_node
        if node is not None and isinstance(node.data, JobRef):
            self._pending_select = node.data.key
        if scope != self._scope or self._pending_select is not None:
            self._scope = scope
            self._view_dirty = True
            self._apply_batch()

    def on_tree_node_selected(self, event: Tree.NodeSelected[NodeRef]) -> None:
        self.query_one(JobTable).focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._filter = event.value.strip()
        self._view_dirty = True
        self._apply_batch()

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        table = self.query_one(JobTable)
        table.focus()
        if table.row_count:
            table.move_cursor(row=0, animate=False)

    # --- which keys apply ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "toggle_xml":
            return self.selected_job is not None or self._xml_mode
        if action not in CONTROL_ACTIONS:
            return True
        return control_key(action, self.selected_job, self.options)
