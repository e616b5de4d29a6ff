"""The TUI driven by keys (Textual's pilot) over a RecordedSource.

These check what the UI does with what a source tells it; they prove nothing
about libvirt (the recorded source is canned data).
"""

from __future__ import annotations

import asyncio
import gc
import threading
from datetime import UTC
from pathlib import Path

import pytest
from textual.widgets import Input, Label, Static
from tuitools import screen_text

from jobtui import recorded
from jobtui.model import ControlOp, DomainChanged, JobKey, JobState
from jobtui.recorded import ControlCall, RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.screens.bandwidth import BandwidthScreen
from jobtui.tui.screens.confirm import ConfirmScreen
from jobtui.tui.screens.help import HelpScreen
from jobtui.tui.widgets.detail import DetailPane
from jobtui.tui.widgets.domain_tree import DomainRef, DomainTree, HostRef, JobRef
from jobtui.tui.widgets.event_log import EventLog
from jobtui.tui.widgets.job_table import JobTable

CONTROL_ACTIONS = ("abort", "finalize", "pause_resume", "dismiss", "bandwidth", "postcopy")


def make_app(source: RecordedSource, **kw) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC, **kw)


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


async def loaded(app: JobTUI, pilot) -> JobTable:
    await app.wait_until_loaded()
    await pilot.pause()
    return app.query_one(JobTable)


async def select(app: JobTUI, pilot, key: JobKey) -> None:
    assert app.query_one(JobTable).select(key)
    await pilot.pause()
    assert app.selected_job is not None and app.selected_job.key == key


def row_names(table: JobTable) -> list[str]:
    return [k.name for k in table.job_keys]


def cell(table: JobTable, key: JobKey, column: str) -> str:
    return str(table.get_cell(str(key), column))


async def settle(app: JobTUI, pilot) -> None:
    """Let thread workers answer and the answers be applied."""
    await app.workers.wait_for_complete()
    await pilot.pause()
    app.flush_updates()
    await pilot.pause()


# --- destructive operations ask first ---------------------------------------------------------


async def test_finalize_ready_copy_after_yes():
    src = recorded.busy()
    copy = key_of(src, "copy-vda")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        await select(app, pilot, copy)
        assert src.focused == copy  # the engine is told which job is on screen
        await pilot.press("f")
        assert isinstance(app.screen, ConfirmScreen)
        assert str(app.screen.query_one("#question", Label).render()) == (
            "Finalize copy-vda on web1?"
        )
        await pilot.press("y")
        await settle(app, pilot)
        assert src.calls == [ControlCall(copy, ControlOp.FINALIZE, {})]
        assert cell(table, copy, "state") == "completed"
        # The cursor stayed on the job although it moved to the finished rows.
        assert table.selected_key == copy


async def test_abort_answered_no_calls_nothing():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        await pilot.press("a")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("a", "escape")
        # Enter on a reflex answers the focused button, which is No.
        await pilot.press("a", "enter")
        await settle(app, pilot)
        assert not isinstance(app.screen, ConfirmScreen)
        assert src.calls == []


async def test_confirm_says_what_abort_leaves_behind():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        await pilot.press("a")
        text = str(app.screen.query_one("#consequence", Label).render())
        assert "stays on disk" in text and "web1 keeps its disk" in text


async def test_refusal_from_the_engine_is_an_error_notification():
    src = recorded.busy()
    copy = key_of(src, "copy-vda")
    app = make_app(src)
    notes: list[tuple[str, str]] = []
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        app.notify = lambda message, **kw: notes.append((message, kw.get("severity", "")))
        await select(app, pilot, copy)
        await pilot.press("f")
        # Between the question and the answer the copy fell back from READY (no event yet).
        src._jobs[copy] = src._jobs[copy].evolve(state=JobState.RUNNING, current=1, end=4)
        await pilot.press("y")
        await settle(app, pilot)
        assert src.calls == [ControlCall(copy, ControlOp.FINALIZE, {})]
        assert notes == [("copy-vda is not ready to finalize: 25 % mirrored", "error")]


# --- which keys apply -------------------------------------------------------------------------


async def test_check_action_shows_dims_and_hides_by_job():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))  # READY
        assert app.check_action("finalize", ()) is True
        assert app.check_action("abort", ()) is True
        assert app.check_action("bandwidth", ()) is True
        assert app.check_action("dismiss", ()) is None  # once it has finished
        # Pause needs the QEMU monitor opt-in, which this source does not give.
        assert app.check_action("pause_resume", ()) is False
        await select(app, pilot, key_of(src, "pull-vdb"))
        assert app.check_action("finalize", ()) is False  # a pull never finalizes
        await select(app, pilot, key_of(src, "copy-vdb"))  # failed
        assert app.check_action("dismiss", ()) is True
        assert app.check_action("abort", ()) is False  # a finished job never runs again
        footer_actions = {b.binding.action for b in app.screen.active_bindings.values()}
        assert "dismiss" in footer_actions and "finalize" not in footer_actions


async def test_readonly_shows_no_control_key_and_a_does_nothing():
    src = recorded.busy(readonly=True)
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        for action in CONTROL_ACTIONS:
            assert app.check_action(action, ()) is False
        shown = {b.binding.action for b in app.screen.active_bindings.values()}
        assert not shown & set(CONTROL_ACTIONS)
        await pilot.press("a", "f", "d", "b")
        await settle(app, pilot)
        assert app.screen is app.screen_stack[0]
        assert src.calls == []


async def test_readonly_option_overrides_a_writable_source():
    src = recorded.busy()
    app = make_app(src, readonly=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        assert all(app.check_action(a, ()) is False for a in CONTROL_ACTIONS)


# --- filter, tree, finished jobs --------------------------------------------------------------


async def test_filter_narrows_rows_and_tree_and_enter_keeps_it():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        assert len(table.job_keys) == 9
        await pilot.press("slash", *"web2")
        assert {k.domain_uuid for k in table.job_keys} == {key_of(src, "save").domain_uuid}
        assert row_names(table) == ["copy-sda", "save", "commit-vda", "copy-vdb"]
        tree_refs = {n.data for n in _nodes(app.query_one(DomainTree))}
        assert not any(isinstance(r, DomainRef) and r.uuid.endswith("01") for r in tree_refs)
        assert JobRef(key_of(src, "save")) in tree_refs
        await pilot.press("down", "enter")
        assert app.focused is table
        assert table.cursor_row == 0
        assert app.query_one("#filter", Input).value == "web2"
        assert len(table.job_keys) == 4
        await pilot.press("escape")
        assert len(table.job_keys) == 9
        assert not app.query_one("#filter", Input).display


async def test_tree_selects_what_the_table_shows():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        tree = app.query_one(DomainTree)
        db1 = key_of(src, "migration-out")
        tree.select_ref(DomainRef(db1.host, db1.domain_uuid))
        await pilot.pause()
        assert row_names(table) == ["migration-out"]
        tree.select_ref(HostRef(recorded.KVM2))
        await pilot.pause()
        assert row_names(table) == []
        tree.select_ref(JobRef(key_of(src, "save")))
        await pilot.pause()
        assert table.selected_key == key_of(src, "save")
        assert set(row_names(table)) == {"copy-sda", "save", "commit-vda", "copy-vdb"}


async def test_h_hides_and_shows_finished_jobs():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        await pilot.press("h")
        assert "commit-vda" not in row_names(table) and "copy-vdb" not in row_names(table)
        assert len(table.job_keys) == 7
        await pilot.press("h")
        assert len(table.job_keys) == 9


# --- live updates -----------------------------------------------------------------------------


async def test_cursor_stays_on_its_job_when_rows_resort():
    src = recorded.busy()
    save = key_of(src, "save")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        await select(app, pilot, save)
        before = table.cursor_row
        # Jobs above it finish (they sort below the active ones) and a new one appears.
        src.set_state(key_of(src, "dump"), JobState.COMPLETED)
        src.set_state(key_of(src, "backup"), JobState.FAILED, message="No space left on device")
        new = src.job(key_of(src, "pull-vdb")).evolve(
            key=JobKey(recorded.KVM1, save.domain_uuid, "backup", recorded.EPOCH)
        )
        src.progress(save, current=800 * recorded.MiB)
        from jobtui.model import JobStateChanged

        src.emit(JobStateChanged(new.key, None, JobState.RUNNING, new, recorded.EPOCH))
        await pilot.pause()
        app.flush_updates()
        await pilot.pause()
        assert table.selected_key == save
        assert table.cursor_row != before
        names = row_names(table)
        assert names.index("dump") > names.index("save")


async def test_events_from_another_thread_show_after_a_tick():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        assert cell(table, pull, "progress").endswith("42%")
        end = src.job(pull).end

        def engine() -> None:
            for pct in (50, 60, 70):
                src.progress(pull, current=end * pct // 100)

        thread = threading.Thread(target=engine)
        thread.start()
        thread.join()
        await pilot.pause(0.6)  # more than two ticks of 0.25 s
        assert cell(table, pull, "progress").endswith("70%")


async def test_updates_that_follow_a_paint_closely_are_coalesced():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    flushes = []
    # A coalescing window that never closes by itself: the load's paint opened it.
    app = make_app(src, coalesce=3600, on_flush=flushes.append)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        flushes.clear()
        end = src.job(pull).end
        thread = threading.Thread(
            target=lambda: [src.progress(pull, current=end * p // 100) for p in (45, 48, 50)]
        )
        thread.start()
        thread.join()
        await pilot.pause()
        assert cell(table, pull, "progress").endswith("42%")
        app.flush_updates()
        assert cell(table, pull, "progress").endswith("50%")
        # Three events, one paint.
        assert [f.touched for f in flushes] == [frozenset({pull})]


async def test_rate_and_eta_are_the_engines_and_old_figures_say_so():
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        assert cell(table, pull, "rate") == "—"
        now = src.clock()
        src.progress(
            pull,
            current=src.job(pull).current + 48 * recorded.MiB,
            rate=48 * recorded.MiB,
            sampled=now,
        )
        await pilot.pause()
        app.flush_updates()
        assert cell(table, pull, "rate") == "48.0 MiB/s"
        # (8 GiB − 42 % − 48 MiB) at 48 MiB/s
        assert cell(table, pull, "eta") == "1m37s"
        # Its domain stops answering: the figures are 30 s old by the next paint.
        src.clock.advance(30.0)
        src.progress(pull, stale=True, rate=None)
        await pilot.pause()
        app.flush_updates()
        assert cell(table, pull, "rate") == "— 30s old"
        assert cell(table, pull, "eta") == "—"


async def test_a_job_running_before_it_was_seen_says_it_ran_at_least_that_long():
    # libvirt keeps no start time for a block job: one found running has an elapsed time
    # counted from when it was first seen, which is a lower bound, and says so.
    src = recorded.busy()
    pull = key_of(src, "pull-vdb")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        await select(app, pilot, pull)
        plain = cell(table, pull, "elapsed")
        assert plain[0].isdigit(), plain
        src.progress(pull, started_before_seen=True)
        await pilot.pause()
        app.flush_updates()
        assert cell(table, pull, "elapsed") == f"≥{plain}"
        shot = app.export_screenshot().replace("&#160;", " ")
        assert shot.count(f"≥{plain}") == 2, "the table's cell and the detail pane's field"


async def test_event_log_lists_transitions():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        log = app.query_one(EventLog)
        assert not log.display
        await pilot.press("e")
        assert log.display
        src.set_state(key_of(src, "save"), JobState.COMPLETED)
        await pilot.pause()
        app.flush_updates()
        await pilot.pause()
        assert [str(line.text) for line in log.lines] == [
            "22:13:20 kvm1.lab web2 save running → completed"
        ]


async def test_x_shows_the_job_xml():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        await pilot.press("x")
        await settle(app, pilot)
        detail = app.query_one(DetailPane)
        assert detail.has_class("-xml")
        xml = detail.query_one("#detail-xml", Static).content.code
        assert "<job" in xml and "copy-vda" in xml and "block-copy" in xml
        await pilot.press("x")
        assert not detail.has_class("-xml")


# --- bandwidth --------------------------------------------------------------------------------


async def test_bandwidth_dialog_rejects_garbage_then_sets_speed():
    src = recorded.busy()
    copy = key_of(src, "copy-vda")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, copy)
        await pilot.press("b")
        assert isinstance(app.screen, BandwidthScreen)
        await pilot.press(*"fast", "enter")
        assert isinstance(app.screen, BandwidthScreen)
        error = str(app.screen.query_one("#error", Label).render())
        assert "not a bandwidth" in error and "\n" not in error
        assert src.calls == []
        app.screen.query_one("#value", Input).value = ""
        await pilot.press(*"16MiB/s", "enter")
        await settle(app, pilot)
        assert src.calls == [ControlCall(copy, ControlOp.SET_SPEED, {"bandwidth": 16 * 1024**2})]
        assert cell(app.query_one(JobTable), copy, "bandwidth") == "16.0 MiB/s"


# --- keys -------------------------------------------------------------------------------------


async def test_user_keymap_remaps_by_id_and_refuses_chords_for_destructive_ops(tmp_path: Path):
    path = tmp_path / "keymap.toml"
    path.write_text('abort = "A"\nfinalize = "ctrl+f"\nnope = "z"\n')
    src = recorded.busy()
    app = make_app(src, keymap_path=path)
    notes: list[str] = []
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        app.notify = lambda message, **kw: notes.append(message)
        await select(app, pilot, key_of(src, "copy-vda"))
        await pilot.press("a")
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("A")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n", "f")
        assert isinstance(app.screen, ConfirmScreen)  # finalize kept its default key
        await pilot.press("n", "question_mark")
        assert isinstance(app.screen, HelpScreen)
        rows = {r[2]: r[0] for r in app.screen.rows}
        assert rows["abort"] == "A" and rows["finalize"] == "f"


async def test_keymap_problems_are_reported():
    from jobtui.tui.keymap import load_keymap

    keymap, problems = load_keymap(Path(__file__).with_name("no-such-keymap.toml"))
    assert (keymap, problems) == ({}, [])


async def test_help_lists_every_binding():
    from jobtui.tui.keymap import BINDINGS

    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert [r[2] for r in app.screen.rows] == [b.id for b in BINDINGS]
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_narrow_terminal_folds_tree_and_optional_columns():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(80, 24)) as pilot:
        table = await loaded(app, pilot)
        assert not app.query_one(DomainTree).display
        assert [str(c.key.value) for c in table.ordered_columns] == [
            "domain", "job", "state", "progress", "rate", "eta"
        ]  # fmt: skip
        await pilot.press("t")
        assert app.query_one(DomainTree).display
        await pilot.resize_terminal(140, 40)
        await pilot.pause()
        # Beside the tree the table has 108 cells: everything but the type fits.
        assert "type" not in [str(c.key.value) for c in table.ordered_columns]
        await pilot.press("t")
        await pilot.pause()
        assert len(table.ordered_columns) == 9
        assert cell(table, key_of(src, "copy-vda"), "type") == "block-copy"


async def test_tab_cycles_focus_without_a_mouse():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        assert app.focused is table
        seen = []
        for _ in range(3):
            await pilot.press("tab")
            seen.append(type(app.focused).__name__)
        assert seen == ["DetailPane", "DomainTree", "JobTable"]


async def test_a_detail_longer_than_its_pane_scrolls_from_the_keyboard():
    # At 80x24 the pane has a few lines; a copy's fields, paths and hints take more.
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(80, 24)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, key_of(src, "copy-vda"))
        pane = app.query_one(DetailPane)
        assert pane.max_scroll_y > 0 and pane.scroll_y == 0
        shown = screen_text(app)
        assert "web1-vda.copy.qcow2" not in shown  # below the pane's last line
        await pilot.press("tab")
        assert app.focused is pane
        await pilot.press("end")
        await pilot.pause(0.2)
        assert pane.scroll_y == pane.max_scroll_y
        # What the operator sees at the bottom: the copy's destination path.
        shown = screen_text(app)
        assert "web1-vda.copy.qcow2" in shown


def _nodes(tree: DomainTree):
    out, todo = [], [tree.root]
    while todo:
        node = todo.pop()
        out.append(node)
        todo.extend(node.children)
    return out


async def test_reconnected_host_is_reloaded_without_duplicate_rows():
    from jobtui.model import Host, HostChanged, HostState
    from jobtui.tui.widgets.status_line import StatusLine

    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        status = app.query_one(StatusLine)
        assert status.has_class("-error")
        src.emit(HostChanged(Host(recorded.KVM2, HostState.CONNECTED, hostname="kvm2.lab")))
        await settle(app, pilot)
        assert not status.has_class("-error")
        assert len(table.job_keys) == len(set(table.job_keys)) == 9


async def test_domain_turning_unresponsive_shows_in_the_tree():
    from dataclasses import replace

    from jobtui.model import DomainChanged

    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        web1 = next(d for d in src.domains() if d.name == "web1")
        src.emit(DomainChanged(replace(web1, responsive=False)))
        await pilot.pause()
        app.flush_updates()
        tree = app.query_one(DomainTree)
        labels = [str(n.label) for n in _nodes(tree) if n.data == DomainRef(web1.host, web1.uuid)]
        assert labels == ["web1 ⚠ unresponsive"]


def test_run_tui_starts_the_source_once_the_first_frame_is_up_then_stops_it(monkeypatch):
    from jobtui.tui import app as app_module
    from jobtui.tui.view import JobView

    src = recorded.empty()
    seen = {}
    mount = JobView.on_mount

    def on_mount(self: JobView) -> None:
        seen["at mount"] = src.started
        mount(self)

    def fake_run(self: JobTUI) -> None:
        async def headless() -> None:
            async with self.run_test() as pilot:
                for _ in range(200):  # started by a worker once the first frame is up
                    if src.started:
                        break
                    await pilot.pause(0.01)
                seen["after ready"] = src.started
                seen["keymap"] = self._keymap_path

        asyncio.run(headless())
        raise KeyboardInterrupt  # even when the app dies, the source is stopped

    monkeypatch.setattr(JobView, "on_mount", on_mount)
    monkeypatch.setattr(JobTUI, "run", fake_run)
    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    gc.disable()  # as the `jobtui` command starts it (jobtui.cli.entry)
    try:
        with pytest.raises(KeyboardInterrupt):
            app_module.run_tui(src)
        # Ready turned the collector back on.
        assert gc.isenabled()
    finally:
        gc.enable()
    # The real TUI's long-lived objects leave the collector's scans. (At least once: in
    # one CI run this test saw two calls, which the app now guards against; freezing
    # twice is harmless.)
    assert frozen and all(frozen)
    assert (seen["at mount"], seen["after ready"], src.started) == (False, True, False)
    assert seen["keymap"].name == "keymap.toml"


def test_run_tui_quit_before_the_first_frame_never_starts_the_source(monkeypatch):
    from jobtui.tui import app as app_module

    src = recorded.empty()
    stops = []
    monkeypatch.setattr(src, "stop", lambda: stops.append(True))
    monkeypatch.setattr(JobTUI, "run", lambda self: None)
    app_module.run_tui(src)
    assert (src.started, stops) == (False, [])


async def test_c_asks_then_switches_a_migration_to_postcopy() -> None:
    src = recorded.busy()
    mig = key_of(src, "migration-out")
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        await select(app, pilot, mig)
        await pilot.press("c")
        assert isinstance(app.screen, ConfirmScreen)
        assert "no longer be aborted" in str(app.screen.query_one("#consequence", Label).render())
        await pilot.press("n")
        await settle(app, pilot)
        assert src.calls == []
        await pilot.press("c", "y")
        await settle(app, pilot)
        assert src.calls == [ControlCall(mig, ControlOp.POSTCOPY, {})]


async def test_a_stray_print_does_not_take_the_ui_down():
    # Textual captures prints while an app runs and calls App._flush(stderr=...) on a
    # flush (logging flushes): an app method of that name once broke this.
    import sys

    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await loaded(app, pilot)
        print("something a library printed", file=sys.stderr, flush=True)
        print("and to stdout", flush=True)
        await pilot.pause(0.5)
        assert app.is_running


async def test_a_domain_that_went_keeps_its_jobs_in_the_tree_and_says_gone():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        key = key_of(src, "save")
        dom = next(d for d in src.domains() if d.uuid == key.domain_uuid)
        tree = app.query_one(DomainTree)
        assert f"{dom.name} {dom.state}" in {str(n.label) for n in _nodes(tree)}
        src.emit(DomainChanged(dom, removed=True))  # undefined, or migrated away
        await pilot.pause(0.6)
        labels = {str(n.label) for n in _nodes(tree)}
        assert f"{dom.name} gone" in labels and f"{dom.name} {dom.state}" not in labels
        assert key in table.job_keys
