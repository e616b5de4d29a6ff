"""The Textual app: watch and steer jobs from any `JobSource`.

The view (layout, engine → screen, selection, which keys apply) is `JobView` in
jobtui/tui/view.py; this module adds what the keys do and `run_tui`, the entry point.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from textual import work
from textual.app import App
from textual.binding import BindingType
from textual.widgets import Input

from jobtui.model import (
    ControlOp,
    JobControlError,
    JobKey,
)
from jobtui.source import JobSource
from jobtui.tui import keymap
from jobtui.tui.config import default_config_path
from jobtui.tui.format import short_host
from jobtui.tui.hangup import exit_on_hangup
from jobtui.tui.key_rules import CONTROL_ACTIONS, op_for
from jobtui.tui.messages import ControlFinished
from jobtui.tui.palette import Entry, JobCommands
from jobtui.tui.screens.bandwidth import BandwidthScreen
from jobtui.tui.screens.confirm import ConfirmScreen, consequence, question
from jobtui.tui.screens.help import HelpScreen
from jobtui.tui.screenshot import save_svg
from jobtui.tui.view import JobView
from jobtui.tui.widgets.detail import DetailPane
from jobtui.tui.widgets.domain_tree import DomainRef, DomainTree, HostRef, NodeRef
from jobtui.tui.widgets.event_log import EventLog
from jobtui.tui.widgets.job_table import JobTable

HELP = "help"  # the installed help screen's name


class JobTUI(JobView):
    CSS_PATH = "jobtui.tcss"
    TITLE = "jobtui"
    ENABLE_COMMAND_PALETTE = True  # ctrl+p (keymap id "palette"): jobtui/tui/palette.py
    COMMANDS = App.COMMANDS | {JobCommands}
    AUTO_FOCUS = "#jobs"
    BINDINGS: ClassVar[list[BindingType]] = list(keymap.BINDINGS)
    _help_made: tuple[object, ...] | None = None  # what the installed help screen shows

    # --- actions ---------------------------------------------------------------------------

    def action_help(self) -> None:
        if any(isinstance(s, HelpScreen) for s in self.screen_stack):
            return  # asked for from the palette over it: it is open already
        rows = []
        readonly = self.options.readonly
        for binding in keymap.BINDINGS:
            if readonly and binding.id in keymap.CONTROL_IDS:
                continue  # no such key exists in read-only mode
            keys = keymap.keys_for(binding, self._user_keymap)
            shown = " ".join(self.get_key_display(binding.with_key(k)) for k in keys)
            rows.append((shown, binding.description, binding.id or ""))
        where = self._keymap_path or "~/.config/jobtui/keymap.toml"
        note = f'Remap a key by its id in {where}, e.g.  abort = "A"'
        if readonly:
            note = f"Read-only (-r): no key changes a job. {note}"
        # The dialog is built once and shown again while its rows, note and theme are the
        # same: composing it and styling its widgets was most of what opening help took
        # (65 ms against a bare app's 35, in tmux).
        made = (tuple(rows), note, self.theme)
        if self._help_made != made:
            if self._help_made is not None:
                self.uninstall_screen(HELP)
            self.install_screen(HelpScreen(rows, note), HELP)
            self._help_made = made
        self.push_screen(HELP)

    def action_filter(self) -> None:
        inp = self.query_one("#filter", Input)
        inp.display = True
        inp.focus()

    async def action_back(self) -> None:  # App's own is a coroutine: Textual awaits it
        inp = self.query_one("#filter", Input)
        if inp.display or self._filter:
            inp.value = ""
            inp.display = False
            self._filter = ""
            self._view_dirty = True
            self._apply_batch()
            self.query_one(JobTable).focus()
        elif self._xml_mode:
            self.action_toggle_xml()

    def action_abort(self) -> None:
        self._confirm(ControlOp.ABORT)

    def action_finalize(self) -> None:
        self._confirm(ControlOp.FINALIZE)

    def action_dismiss(self) -> None:
        self._confirm(ControlOp.DISMISS)

    def action_postcopy(self) -> None:
        self._confirm(ControlOp.POSTCOPY)

    def action_pause_resume(self) -> None:
        job = self.selected_job
        if job is not None:
            op = op_for("pause_resume", job)
            assert op is not None
            self._control(job.key, op, {})

    def action_bandwidth(self) -> None:
        job = self.selected_job
        if job is None:
            return

        def chosen(value: int | None) -> None:
            if value is not None:
                self._control(job.key, ControlOp.SET_SPEED, {"bandwidth": value})

        self.push_screen(BandwidthScreen(job), chosen)

    def action_toggle_xml(self) -> None:
        self._xml_mode = not self._xml_mode
        self.query_one(DetailPane).set_class(self._xml_mode, "-xml")
        if self._xml_mode:
            self._request_xml()

    def action_toggle_log(self) -> None:
        log = self.query_one(EventLog)
        log.display = not log.display

    def action_toggle_finished(self) -> None:
        self._show_finished = not self._show_finished
        self._view_dirty = True
        self._apply_batch()

    def action_sort_next(self) -> None:
        self._move_sort(1)

    def action_sort_previous(self) -> None:
        self._move_sort(-1)

    def _move_sort(self, step: int) -> None:
        """htop's < and >: the next shown column, the default order between the ends."""
        table = self.query_one(JobTable)
        choices: list[str | None] = [None, *(str(c.key.value) for c in table.ordered_columns)]
        column, descending = self._sort
        at = choices.index(column) if column in choices else 0
        self._set_sort(choices[(at + step) % len(choices)], descending)

    def action_sort_invert(self) -> None:
        column, descending = self._sort
        self._set_sort(column, not descending)

    def action_save_svg(self) -> None:
        """The screen as SVG in $XDG_STATE_HOME/jobtui/screenshots/ (for a ticket)."""
        try:
            path = save_svg(self.export_screenshot(), self._clock())
        except OSError as err:
            why = err.strerror or str(err)
            self.notify(f"screenshot not saved: {why}", title="screenshot", severity="error")
        else:
            self.notify(str(path), title="screenshot saved", timeout=10)

    def action_toggle_wide(self) -> None:
        table = self.query_one(JobTable)
        table.wide = not table.wide
        table.fit(table.size.width)
        shown = "every column (scroll sideways)" if table.wide else "the columns that fit"
        self.notify(shown, title="wide" if table.wide else "narrow", timeout=3)

    def action_toggle_tree(self) -> None:
        tree = self.query_one(DomainTree)
        self._tree_shown = not tree.display
        self._apply_tree_visibility()

    def action_refresh(self) -> None:
        self._load(self._store.seq)

    # --- command palette -------------------------------------------------------------------

    def palette_entries(self) -> list[Entry]:
        """The actions the footer would offer now (each with its key), then hosts and
        domains to jump to in the tree."""
        entries: list[Entry] = []
        job = self.selected_job
        subject = f"{job.domain}/{job.name}" if job is not None else "the view"
        done: set[str] = set()
        for binding in keymap.BINDINGS:
            action = binding.action
            if action in done or action in ("command_palette", "back") or not binding.id:
                continue
            if self.check_action(action, ()) is not True:
                continue  # refused or dimmed for this job, as in the footer; none if -r
            done.add(action)
            keys = keymap.keys_for(binding, self._user_keymap)
            shown = " ".join(self.get_key_display(binding.with_key(k)) for k in keys)
            about = subject if action in CONTROL_ACTIONS or action == "toggle_xml" else ""
            entries.append(
                Entry(
                    f"{binding.description} ({shown})",
                    about,
                    functools.partial(self.run_action, action),
                )
            )
        hosts = self._store.hosts
        for uri in sorted(hosts):
            name = short_host(uri, hosts[uri].hostname)
            jump = functools.partial(self._jump, HostRef(uri))
            entries.append(Entry(f"host: {name}", uri, jump))
        for domain in sorted(self._store.domains.values(), key=lambda d: (d.name, d.host)):
            known = hosts.get(domain.host)
            on = short_host(domain.host, known.hostname if known else "")
            jump = functools.partial(self._jump, DomainRef(domain.host, domain.uuid))
            entries.append(Entry(f"domain: {domain.name}", f"on {on}", jump))
        return entries

    def _jump(self, ref: NodeRef) -> None:
        """Select a host or domain in the tree (showing the tree if it is folded away)."""
        tree = self.query_one(DomainTree)
        if not tree.display:
            self._tree_shown = True
            self._apply_tree_visibility()
        tree.select_ref(ref)
        tree.focus()

    # --- control ---------------------------------------------------------------------------

    def _confirm(self, op: ControlOp) -> None:
        job = self.selected_job
        if job is None:
            return
        if not op.needs_confirmation:
            self._control(job.key, op, {})
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self._control(job.key, op, {})

        self.push_screen(ConfirmScreen(question(job, op), consequence(job, op)), answered)

    @work(thread=True, group="control")
    def _control(self, key: JobKey, op: ControlOp, args: dict[str, Any]) -> None:
        try:
            result = self.source.control(key, op, **args)
        except JobControlError as err:
            self.post_message(ControlFinished(key, op, error=str(err)))
        except Exception as err:  # noqa: BLE001 - an engine bug must not take the UI down
            self.post_message(ControlFinished(key, op, error=f"{op} failed: {err!r}"))
        else:
            self.post_message(ControlFinished(key, op, result=result))

    def on_control_finished(self, message: ControlFinished) -> None:
        if message.error:
            self.notify(message.error, title=f"{message.op} refused", severity="error")
        else:
            self.notify(message.result or f"{message.op}: done", title=str(message.op))


def run_tui(
    source: JobSource,
    *,
    readonly: bool = False,
    keymap_path: Path | None = None,
    host_names: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> None:
    """Run the TUI until the user quits, starting `source` once the first frame is up,
    then stop `source`.

    The TUI owns the source's lifecycle: hand it one that is not started yet.
    `keymap_path` defaults to ~/.config/jobtui/keymap.toml (a missing file is fine).
    """
    app = JobTUI(
        source,
        readonly=readonly,
        keymap_path=keymap_path if keymap_path is not None else keymap.default_keymap_path(),
        host_names=host_names,
        config_path=config_path if config_path is not None else default_config_path(),
        freeze_gc=True,
        start_source=True,  # hosts show as connecting until it answers
    )
    try:
        with exit_on_hangup(app):  # a closed terminal or kill -HUP: restore it, then exit
            app.run()
    finally:
        if app.source_started:
            source.stop()
