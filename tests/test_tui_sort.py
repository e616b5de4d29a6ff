"""Sorting the job table (htop's < > I, a click on a header) over a RecordedSource."""

from __future__ import annotations

from datetime import UTC

from jobtui import recorded
from jobtui.model import JobKey
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import JobTable


def make_app(source: RecordedSource) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC)


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


def names(table: JobTable) -> list[str]:
    return [f"{table._cells[k]['domain']}/{k.name}" for k in table.job_keys]


def headers(table: JobTable) -> list[str]:
    return [c.label.plain for c in table.ordered_columns]


async def loaded(app: JobTUI, pilot) -> JobTable:
    await app.wait_until_loaded()
    await pilot.pause()
    return app.query_one(JobTable)


DEFAULT = [
    "build1/dump", "db1/migration-out", "web1/backup", "web1/copy-vda", "web1/pull-vdb",
    "web2/copy-sda", "web2/save", "web2/commit-vda", "web2/copy-vdb",
]  # fmt: skip


async def test_default_order_is_active_first_with_no_arrow() -> None:
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        assert names(table) == DEFAULT
        assert not any("▲" in h or "▼" in h for h in headers(table))


async def test_greater_than_sorts_by_the_next_column_and_i_inverts_keeping_the_cursor() -> None:
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        save = key_of(src, "save")
        assert table.select(save)
        await pilot.press("greater_than_sign")  # domain
        await pilot.pause()
        assert "domain ▲" in headers(table)
        assert names(table)[:3] == ["build1/dump", "db1/migration-out", "web1/backup"]
        await pilot.press("greater_than_sign")  # job
        await pilot.pause()
        assert "job ▲" in headers(table) and "domain" in headers(table)
        assert [k.name for k in table.job_keys][:3] == ["backup", "commit-vda", "copy-sda"]
        assert table.selected_key == save
        await pilot.press("I")
        await pilot.pause()
        assert "job ▼" in headers(table)
        assert [k.name for k in table.job_keys][:2] == ["save", "pull-vdb"]
        assert table.selected_key == save
        assert app.selected_job is not None and app.selected_job.key == save


async def test_less_than_from_the_default_wraps_to_the_last_column_then_back() -> None:
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        last = headers(table)[-1]
        await pilot.press("less_than_sign")
        await pilot.pause()
        assert headers(table)[-1] == f"{last} ▲"
        await pilot.press("greater_than_sign")
        await pilot.pause()
        assert names(table) == DEFAULT
        assert not any("▲" in h or "▼" in h for h in headers(table))


async def test_a_click_on_a_header_sorts_by_it_and_a_second_click_inverts() -> None:
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        table.post_message(
            JobTable.HeaderSelected(
                table, table.ordered_columns[5].key, 5, table.ordered_columns[5].label
            )
        )
        await pilot.pause()
        column = str(table.ordered_columns[5].key.value)
        assert app._sort == (column, False)
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:5]) + 1
        await pilot.click(JobTable, offset=(x, 0))
        await pilot.pause()
        assert app._sort == (column, True)
        assert f"{table.ordered_columns[5].label.plain}".endswith("▼")


async def test_a_figure_sort_is_by_value_and_follows_progress() -> None:
    src = recorded.busy()
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        table = await loaded(app, pilot)
        app._set_sort("progress", True)
        await pilot.pause()
        assert "progress ▼" in headers(table)
        order = [k.name for k in table.job_keys]
        # 100 % first (the READY copy, the commit), a job without a total last.
        assert order[:2] == ["commit-vda", "copy-vda"] or order[:2] == ["copy-vda", "commit-vda"]
        dump = key_of(src, "dump")
        before = order.index("dump")
        # The dump races ahead: its row climbs without any job coming or going.
        src.progress(dump, current=int(7.9 * recorded.GiB))
        await pilot.pause()
        app.flush_updates()
        await pilot.pause()
        assert [k.name for k in table.job_keys].index("dump") < before
