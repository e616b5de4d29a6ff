"""Drawn cells and tree lines kept across moves (jobtui.tui.widgets.drawn): a new job
draws its own row and the lines that changed, and what moved still shows and clicks
as what it is now."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

from textual.widgets import DataTable, Tree
from tuitools import screen_text

from jobtui import recorded
from jobtui.model import JobDismissed, JobKey, JobState, JobStateChanged
from jobtui.recorded import RecordedSource
from jobtui.tui import feed
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.domain_tree import DomainTree, JobRef
from jobtui.tui.widgets.job_table import JobTable

SIZE = (120, 35)


def new_job_on_top(src: RecordedSource, n: int) -> JobKey:
    """A job on the first domain: it sorts above most rows and tree lines."""
    base = src.jobs()[0]
    key = JobKey(base.key.host, base.key.domain_uuid, f"aa-new-{n}", base.key.started + 1000 + n)
    job = base.evolve(key=key, state=JobState.RUNNING)
    src.emit(JobStateChanged(key, None, JobState.RUNNING, job, src.clock()))
    return key


class Draws:
    """How many cells and tree lines Textual drew (not taken from what was kept)."""

    def __init__(self, monkeypatch: Any) -> None:
        self.cells = self.lines = 0
        cell, line = DataTable._render_cell, Tree._render_line

        def counted_cell(table: Any, *a: Any, **k: Any) -> Any:
            self.cells += 1
            return cell(table, *a, **k)

        def counted_line(tree: Any, *a: Any) -> Any:
            self.lines += 1
            return line(tree, *a)

        monkeypatch.setattr(DataTable, "_render_cell", counted_cell)
        monkeypatch.setattr(Tree, "_render_line", counted_line)


@contextlib.asynccontextmanager
async def many_jobs(monkeypatch: Any) -> AsyncIterator[tuple[RecordedSource, JobTUI, Any, Draws]]:
    """28 running jobs on screen, loaded, with the draws counted from here on."""
    src = recorded.many(28, hosts=1)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    draws = Draws(monkeypatch)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.3)
        yield src, app, pilot, draws


async def test_a_new_job_draws_its_row_not_the_whole_table_and_tree(monkeypatch):
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table = app.query_one(JobTable)
        in_view = len(table.keys_in_view())
        assert in_view > 10
        columns = len(table.columns)
        draws.cells = draws.lines = 0
        key = new_job_on_top(src, 1)
        await pilot.pause(0.3)
        assert key in table.shown
        # Every row in view moved down one line; drawn again: the new row, the header
        # (DataTable's own) and at most one more (the cursor's), not every row in view.
        assert draws.cells <= 3 * columns < in_view * columns
        assert draws.lines <= 6  # its node, its domain's line, the cursor's


async def test_a_job_that_finishes_and_moves_down_draws_its_lines_not_its_siblings(monkeypatch):
    # Ten running jobs on one domain; the first finishes and sorts below the others.
    # Its siblings keep their tree nodes (and so their drawn lines), as they would
    # not if the nodes below it were removed and added again.
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        tree = app.query_one(DomainTree)
        first = tree.get_node_at_line(3)
        assert first is not None and isinstance(first.data, JobRef)
        siblings = [n.data for n in first.parent.children] if first.parent else []
        assert len(siblings) == 10
        draws.lines = 0
        src.set_state(first.data.key, JobState.COMPLETED)
        await pilot.pause(0.3)
        moved = tree.get_node_at_line(3)
        assert moved is not None and moved.data != first.data  # it moved down
        # Drawn again: its line (where it is now), the line it left, the cursor's.
        assert draws.lines <= 4 < len(siblings)


async def test_what_moved_shows_and_clicks_as_the_job_now_there(monkeypatch):
    src = recorded.many(28, hosts=1)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.3)
        table = app.query_one(JobTable)
        for n in range(3):
            new_job_on_top(src, n)
            await pilot.pause(0.2)
        keys = table.job_keys
        header = table.header_height
        for row in (1, 5, 9):
            job = keys[row]
            # What is drawn on that row names that job (its disk is in the job's name).
            text = table.render_line(header + row).text
            assert job.name in text
            # Its mouse metadata is its row now, not the row it was drawn for.
            await pilot.click(JobTable, offset=(2, header + row))
            await pilot.pause()
            assert table.selected_key == job
        tree = app.query_one(DomainTree)
        for y in range(2, 12):
            strip = tree.render_line(y)
            node = tree.get_node_at_line(y)
            assert node is not None
            metas = {s.style.meta.get("line") for s in strip if s.style and s.style.meta}
            assert metas == {y}
            if isinstance(node.data, JobRef):
                assert node.data.key.name in strip.text


async def test_what_only_changed_lines_repaint_shows_is_what_a_full_repaint_shows():
    # The table and the tree repaint only the lines a sync changed. Whatever a sequence
    # of jobs coming, finishing, moving and going leaves on screen must be what
    # drawing every line again shows: no line left stale.
    import random

    rnd = random.Random(7)
    src = recorded.many(12, hosts=2)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.2)
        table, tree = app.query_one(JobTable), app.query_one(DomainTree)
        n = 0
        for step in range(40):
            jobs = src.jobs()
            active = [j for j in jobs if j.state.active]
            finished = [j for j in jobs if j.state.finished]
            what = rnd.choice(["new", "new", "finish", "ready", "dismiss", "hide"])
            if what == "new" or not active:
                n += 1
                base = rnd.choice(jobs)
                key = JobKey(base.key.host, base.key.domain_uuid, f"n{n}-vd", base.key.started + n)
                job = base.evolve(key=key, state=JobState.RUNNING)
                src.emit(JobStateChanged(key, None, JobState.RUNNING, job, src.clock()))
            elif what == "finish":
                src.set_state(
                    rnd.choice(active).key, rnd.choice([JobState.COMPLETED, JobState.FAILED])
                )
            elif what == "ready":
                src.set_state(rnd.choice(active).key, JobState.READY)
            elif what == "dismiss" and finished:
                src.emit(JobDismissed(rnd.choice(finished).key))
            elif what == "hide":
                await pilot.press("h")  # finished jobs hidden, or shown again
            app.flush_updates()
            await pilot.pause(0.05)
            shown = screen_text(app)
            table.refresh()
            tree.refresh()
            await pilot.pause(0.05)
            assert shown == screen_text(app), f"a stale line after step {step} ({what})"


async def test_a_job_that_becomes_ready_draws_its_changed_cells_not_its_row(monkeypatch):
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table = app.query_one(JobTable)
        key = table.job_keys[3]
        columns = len(table.columns)
        draws.cells = 0
        src.set_state(key, JobState.READY)
        await pilot.pause(0.3)
        row = table.render_line(table.header_height + table.get_row_index(str(key))).text
        assert "ready" in row and key.name in row
        # Its state and ETA say "ready"; its name, type, progress and elapsed time were
        # drawn before and are kept.
        assert 0 < draws.cells < columns


def tree_nodes(tree: DomainTree) -> list[tuple[Any, str]]:
    out: list[tuple[Any, str]] = []

    def walk(node: Any) -> None:
        out.append((node.data, node.label.plain))
        for child in node.children:
            walk(child)

    walk(tree.root)
    return out


async def test_a_finished_job_that_keeps_its_place_leaves_the_tree_as_a_full_sync_would():
    # A job that finishes usually keeps its place among its domain's jobs (newer than
    # the finished runs of its name): the tree then only relabels it. Whether it kept
    # its place or moved, the tree must be what building it afresh gives.
    import random

    rnd = random.Random(11)
    src = recorded.many(10, hosts=1)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=SIZE) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.2)
        tree = app.query_one(DomainTree)
        n = 0
        for step in range(40):
            jobs = src.jobs()
            active = [j for j in jobs if j.state.active]
            if rnd.random() < 0.5 or not active:
                n += 1
                base = rnd.choice(jobs)
                # Half reuse a name (a rerun, newer: it keeps its place when it ends),
                # half a new one that sorts elsewhere among its domain's jobs.
                name = base.name if rnd.random() < 0.5 else f"{rnd.choice('abz')}{n}-vd"
                key = JobKey(base.key.host, base.key.domain_uuid, name, src.clock() + n)
                job = base.evolve(key=key, state=JobState.RUNNING)
                src.emit(JobStateChanged(key, None, JobState.RUNNING, job, src.clock()))
            else:
                end = rnd.choice([JobState.COMPLETED, JobState.ABORTED, JobState.FAILED])
                src.set_state(rnd.choice(active).key, end)
            app.flush_updates()
            await pilot.pause(0.05)
            synced = tree_nodes(tree)
            app._sync_tree()
            await pilot.pause(0.02)
            assert synced == tree_nodes(tree), f"the tree differs after step {step}"


def row_text(table: JobTable, key: JobKey) -> str:
    return table.render_line(table.header_height + table.get_row_index(str(key))).text


async def test_a_job_that_ends_shows_its_end_in_its_row_before_it_moves(monkeypatch):
    # The state is what the operator waits for: it is painted where the row is (two
    # cells, as a READY), and the row joins the finished jobs a moment later.
    monkeypatch.setattr(feed, "SETTLE_AFTER", 60.0)  # the move waits for flush_updates
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table, tree = app.query_one(JobTable), app.query_one(DomainTree)
        key = table.job_keys[0]
        node = tree.get_node_at_line(3)
        assert node is not None and isinstance(node.data, JobRef) and node.data.key == key
        columns = len(table.columns)
        draws.cells = 0
        src.set_state(key, JobState.ABORTED)
        await pilot.pause(0.3)
        assert table.job_keys[0] == key
        assert "aborted" in row_text(table, key)
        assert 0 < draws.cells < columns
        node = tree.get_node_at_line(3)
        assert node is not None and "aborted" in node.label.plain
        assert "1 finished" in screen_text(app)  # the counts at once
        app.flush_updates()
        await pilot.pause(0.1)
        # The only finished job: below every active one, in the table and the tree.
        assert table.job_keys[-1] == key and table.job_keys[0] != key
        assert "aborted" in str(table.get_cell(str(key), "state"))
        moved = tree.get_node_at_line(3)
        assert moved is not None and moved.data != JobRef(key)


async def test_a_row_shown_in_its_new_state_moves_by_itself(monkeypatch):
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table = app.query_one(JobTable)
        first, second = table.job_keys[:2]
        src.set_state(first, JobState.COMPLETED)
        await pilot.pause(0.1)
        src.set_state(second, JobState.FAILED)  # while the first waits to move
        for _ in range(50):
            await pilot.pause(0.1)
            if set(table.job_keys[-2:]) == {first, second}:
                break
        assert set(table.job_keys[-2:]) == {first, second}
        assert table.job_keys[0] not in (first, second)


async def test_quitting_while_a_row_waits_to_move_is_clean(monkeypatch):
    # run_test raises what the app met while closing (a row highlight handled after
    # its screens were gone would be a ScreenStackError).
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table = app.query_one(JobTable)
        await pilot.press("down")
        src.set_state(table.job_keys[1], JobState.ABORTED)
        await pilot.pause()
        app.exit()
    assert app.return_code in (0, None)


async def test_with_finished_jobs_hidden_an_ended_row_shows_its_end_then_goes(monkeypatch):
    monkeypatch.setattr(feed, "SETTLE_AFTER", 60.0)  # the move waits for flush_updates
    async with many_jobs(monkeypatch) as (src, app, pilot, draws):
        table = app.query_one(JobTable)
        await pilot.press("h")  # finished jobs hidden
        await pilot.pause(0.1)
        rows = len(table.job_keys)
        key = table.job_keys[2]
        src.set_state(key, JobState.FAILED)
        await pilot.pause(0.3)
        assert table.job_keys[2] == key and "failed" in row_text(table, key)
        app.flush_updates()
        await pilot.pause(0.1)
        assert key not in table.job_keys and len(table.job_keys) == rows - 1
        assert "1 finished (hidden" in screen_text(app)
