"""`w` (k9s): every column, or those that fit; narrow columns drop in DROP_ORDER."""

from __future__ import annotations

from datetime import UTC

from jobtui import recorded
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import COLUMNS, DROP_ORDER, JobTable


def shown(table: JobTable) -> list[str]:
    return [str(c.key.value) for c in table.ordered_columns]


async def test_w_shows_every_column_at_80x24_and_back() -> None:
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        table = app.query_one(JobTable)
        fitted = ["domain", "job", "state", "progress", "rate", "eta"]
        assert shown(table) == fitted
        selected = table.selected_key
        await pilot.press("w")
        await pilot.pause()
        assert shown(table) == [c.key for c in COLUMNS]
        assert table.selected_key == selected
        await pilot.press("w")
        await pilot.pause()
        assert shown(table) == fitted


async def test_columns_drop_in_the_documented_order_as_the_terminal_narrows() -> None:
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(140, 24)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        table = app.query_one(JobTable)
        dropped: list[str] = []
        for width in range(140, 40, -4):
            await pilot.resize_terminal(width, 24)
            await pilot.pause()
            gone = [c.key for c in COLUMNS if c.key not in shown(table)]
            # Always the first few of DROP_ORDER, whatever the width.
            assert set(gone) == set(DROP_ORDER[: len(gone)])
            dropped = gone
        assert set(dropped) == set(DROP_ORDER)
        assert shown(table) == ["domain", "job", "state", "progress"]
