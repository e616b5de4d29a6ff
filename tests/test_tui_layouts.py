"""What an event or a key re-arranges on screen: whole-screen layouts are counted.

A layout of the screen re-arranges and repaints every widget (at 2000 jobs it was
most of an event's time to the screen). These tests count layouts and key-bar redraws
(never milliseconds) for what needs none: a state flip of the selected job, a copy
becoming READY, the cursor moving between jobs of other kinds, a row added or moved,
a help dialog opened and closed. And they check that what the user sees still
follows: the row is there, the keys that apply, the tree scrolls to its end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from typing import Any

from textual.screen import Screen
from tuitools import screen_text

from jobtui import recorded
from jobtui.model import JobKey, JobState, JobStateChanged
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.screens.confirm import ConfirmScreen
from jobtui.tui.screens.help import HelpScreen
from jobtui.tui.widgets.detail import DetailPane
from jobtui.tui.widgets.domain_tree import DomainTree
from jobtui.tui.widgets.footer import KeyFooter
from jobtui.tui.widgets.job_table import JobTable

SIZE = (120, 35)


def make_app(source: RecordedSource) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC)


@contextmanager
def layouts(app: JobTUI) -> Iterator[list[Screen[Any]]]:
    """Every whole-screen layout (not a scroll) of any screen while inside."""
    seen: list[Screen[Any]] = []
    real = Screen._refresh_layout

    def counting(screen: Screen[Any], size: Any = None, scroll: bool = False) -> None:
        if not scroll:
            seen.append(screen)
        real(screen, size, scroll)

    Screen._refresh_layout = counting  # type: ignore[method-assign]
    try:
        yield seen
    finally:
        Screen._refresh_layout = real  # type: ignore[method-assign]


async def settle(app: JobTUI, pilot: Any) -> None:
    await app.wait_until_loaded()
    for _ in range(3):
        await pilot.pause(0.2)


def new_job(src: RecordedSource, like: JobKey, name: str) -> None:
    base = src.job(like)
    assert base is not None
    key = JobKey(like.host, like.domain_uuid, name, like.started + 1000)
    src.emit(JobStateChanged(key, None, JobState.RUNNING, base.evolve(key=key), src.clock()))


async def test_a_state_flip_of_the_selected_job_lays_out_nothing():
    src = recorded.many(2000)
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        job = app.selected_job
        assert job is not None
        footer = app.query_one(KeyFooter)
        redrawn = footer.redraws
        with layouts(app) as seen:
            for state in (JobState.PAUSED, JobState.RUNNING, JobState.PAUSED):
                src.set_state(job.key, state)
                app.flush_updates()
                await pilot.pause(0.1)
                # What the user sees: the new state, in the row and in the detail pane.
                assert str(app.query_one(JobTable).get_cell(str(job.key), "state")) == state
        assert seen == []
        # Pause/resume stays as dimmed as it was (no --allow-qemu-monitor): same keys.
        assert footer.redraws == redrawn


def key_bar(footer: KeyFooter) -> str:
    return footer.render_line(0).text


def dimmed(footer: KeyFooter, action: str) -> bool:
    """Whether the key for `action` is drawn dimmed, read off the drawn line."""
    for segment in footer.render_line(0):
        meta = segment.style.meta if segment.style is not None else {}
        if meta.get("footer_action") == action:
            return bool(segment.style and segment.style.dim)
    raise AssertionError(f"{action} is not on the key bar: {key_bar(footer)!r}")


async def test_a_copy_becoming_ready_undims_finalize_without_a_layout():
    src = recorded.busy()
    copy = next(j.key for j in src.jobs() if j.name == "copy-vda")
    src.set_state(copy, JobState.RUNNING)
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.query_one(JobTable).select(copy)
        await pilot.pause(0.2)
        footer = app.query_one(KeyFooter)
        assert "f Finalize" in key_bar(footer) and dimmed(footer, "finalize")  # not READY
        with layouts(app) as seen:
            src.set_state(copy, JobState.READY)
            app.flush_updates()
            await pilot.pause(0.2)
        assert not dimmed(footer, "finalize")
        assert seen == []
        # And it acts as the key: a click on it asks to finalize.
        x = key_bar(footer).index("f Finalize")
        await pilot.click(KeyFooter, offset=(x, 0))
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Finalize copy-vda" in str(app.screen.query_one("#question").render())


async def test_moving_between_jobs_of_other_kinds_changes_the_keys_without_a_layout():
    src = recorded.busy()
    names = {j.name: j.key for j in src.jobs()}
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table, footer = app.query_one(JobTable), app.query_one(KeyFooter)
        bars = []
        with layouts(app) as seen:
            # A READY copy (finalize), a pull (no finalize), a failed copy (dismiss only).
            for name in ("copy-vda", "pull-vdb", "copy-vdb"):
                assert table.select(names[name])
                await pilot.pause(0.2)
                bars.append(key_bar(footer))
        assert "f Finalize" in bars[0] and "a Abort" in bars[0]
        assert "Finalize" not in bars[1] and "a Abort" in bars[1]
        assert "Abort" not in bars[2] and "d Dismiss" in bars[2]
        assert seen == []


async def test_a_dimmed_key_clicked_rings_the_bell_and_does_nothing():
    src = recorded.busy()
    copy = next(j.key for j in src.jobs() if j.name == "copy-vda")  # READY: not finished
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        assert app.query_one(JobTable).select(copy)
        await pilot.pause(0.2)
        footer = app.query_one(KeyFooter)
        assert dimmed(footer, "dismiss")
        bells = []
        app.bell = lambda: bells.append(1)  # type: ignore[method-assign]
        await pilot.click(KeyFooter, offset=(key_bar(footer).index("d Dismiss"), 0))
        await pilot.pause()
        assert bells == [1]
        assert not isinstance(app.screen, ConfirmScreen) and src.calls == []


async def test_a_row_added_or_moved_in_a_full_table_lays_out_nothing():
    src = recorded.many(2000)
    keys = [j.key for j in src.jobs()]
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(JobTable)
        tree = app.query_one(DomainTree)
        height = table.outer_size.height
        with layouts(app) as seen:
            new_job(src, keys[0], "new-vdz")
            src.set_state(keys[100], JobState.COMPLETED, current=src.job(keys[100]).end)
            app.flush_updates()
            await pilot.pause(0.2)
        assert seen == []
        assert table.row_count == 2001
        assert any(k.name == "new-vdz" for k in table.job_keys)
        # The finished job moved below every active one (the default order).
        assert table.job_keys[-1] == keys[100]
        assert table.outer_size.height == height
        # The scrollbars know the new size: the last row can be scrolled to.
        for widget in (table, tree):
            room = widget.scrollable_content_region.height
            assert widget.max_scroll_y == widget.virtual_size.height - room
        tree.scroll_end(animate=False)
        await pilot.pause()
        assert tree.scroll_y == tree.max_scroll_y > 0


async def test_a_row_added_while_the_table_has_room_moves_nothing_else():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        table = app.query_one(JobTable)
        detail = app.query_one(DetailPane)
        box, pane = table.region, detail.region
        rows = table.row_count
        with layouts(app) as seen:
            new_job(src, table.job_keys[0], "new-vdz")
            app.flush_updates()
            await pilot.pause(0.2)
        # The table's box is fixed: the new row is there, the detail pane stays put.
        assert table.row_count == rows + 1
        assert any(k.name == "new-vdz" for k in table.job_keys)
        assert "new-vdz" in app.export_screenshot().replace("&#160;", " ")
        assert (table.region, detail.region) == (box, pane)
        assert seen == []


async def test_help_opens_and_closes_without_redrawing_the_key_bar():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        footer = app.query_one(KeyFooter)
        redrawn, bar = footer.redraws, key_bar(footer)
        for _ in range(2):
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.pause(0.1)
            await pilot.press("question_mark")
            assert not isinstance(app.screen, HelpScreen)
            await pilot.pause(0.1)
        # Suspending and resuming the main screen leaves its keys as they were.
        assert (footer.redraws, key_bar(footer)) == (redrawn, bar)


async def test_the_first_frame_has_its_keys_and_columns_and_nothing_is_rebuilt_after_it():
    # Textual's Footer draws no key until the bindings are first announced, after the
    # first frame, then rebuilds; a table fitted on its first resize re-adds columns.
    # Either lays the whole screen out again just as the engine starts. (No job: a job
    # selected later brings its own keys, a real change.)
    src = recorded.empty()
    app = JobTUI(src, clock=src.clock, tz=UTC, start_source=True)
    frames: list[tuple[int, list[str]]] = []
    ready = JobTUI.on_ready

    def on_ready(self: JobTUI) -> None:
        footer, table = self.query_one(KeyFooter), self.query_one(JobTable)
        frames.append((len(footer.keys), [str(c.label) for c in table.columns.values()]))
        ready(self)

    JobTUI.on_ready = on_ready  # type: ignore[method-assign]
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settle(app, pilot)
            footer, table = app.query_one(KeyFooter), app.query_one(JobTable)
            keys, columns = frames[0]
            assert keys == len(footer.keys) > 3  # drawn with the first frame
            assert columns == [str(c.label) for c in table.columns.values()]
            assert "domain" in columns and len(columns) < 12  # fitted to 88 cells, not all
            assert footer.redraws == 0
    finally:
        JobTUI.on_ready = ready  # type: ignore[method-assign]


async def test_help_draws_its_key_table_once_for_its_keys_and_width(monkeypatch):
    # Rich measures every cell of a table each time it is laid out, and the dialog is laid
    # out three times to open: opened again with the same keys, nothing is drawn anew.
    from jobtui.tui.screens import help as help_module

    help_module._drawn.clear()
    help_module._measured.clear()
    built = []
    real = help_module._table
    monkeypatch.setattr(help_module, "_table", lambda rows: built.append(rows) or real(rows))
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        for _ in range(3):
            await pilot.press("question_mark")
            await pilot.pause(0.1)
            assert isinstance(app.screen, HelpScreen)
            shown = app.screen.query_one("#help-table").render_line(0).text
            await pilot.press("question_mark")
            await pilot.pause(0.1)
        assert "key" in shown and "id (keymap)" in shown
        assert 1 <= len(built) <= 2  # measured once, drawn once at this width


async def test_the_key_bar_follows_the_terminal_width():
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=SIZE) as pilot:
        await settle(app, pilot)
        footer = app.query_one(KeyFooter)
        assert len(key_bar(footer)) == SIZE[0]
        await pilot.resize_terminal(80, 24)
        await pilot.pause(0.2)
        assert len(key_bar(footer)) == 80 and "q Quit" in key_bar(footer)


async def test_a_selected_job_whose_end_overflows_the_detail_pane_lays_out_once():
    # Textual sets the new virtual size a layout gives as a reactive that asks for
    # another layout: the pane and its fields did, 2-3 whole-screen layouts per event.
    src = recorded.busy()
    copy = next(j.key for j in src.jobs() if j.name == "copy-vda")
    src.set_state(copy, JobState.RUNNING)
    app = make_app(src)
    async with app.run_test(size=(120, 33)) as pilot:
        await settle(app, pilot)
        assert app.query_one(JobTable).select(copy)
        await pilot.pause(0.2)
        pane = app.query_one(DetailPane)
        assert pane.max_scroll_y == 0  # the running copy fits
        end = "aborted after READY: " + "/var/lib/libvirt/images/web1-vda-copy.qcow2 " * 3
        with layouts(app) as seen:
            src.set_state(copy, JobState.ABORTED, message=end.strip())
            app.flush_updates()
            await pilot.pause(0.3)
        assert seen == [app.screen]
        # What the user sees: the pane scrolls, and at its end is the message.
        assert pane.max_scroll_y > 0
        pane.scroll_end(animate=False)
        await pilot.pause(0.2)
        shown = screen_text(app)
        assert "web1-vda-copy.qcow2" in shown and "aborted after READY" in shown
