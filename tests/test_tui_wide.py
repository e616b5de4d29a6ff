"""`w` (k9s): every column, or those that fit; narrow columns drop in DROP_ORDER."""

from __future__ import annotations

from datetime import UTC

from hypothesis import given
from hypothesis import strategies as st
from rich.text import Text

from jobtui import recorded
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import COLUMNS, DROP_ORDER, JobTable
from jobtui.tui.widgets.row_cells import fit_cells
from jobtui.units import printable


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


async def test_names_with_brackets_are_shown_as_written_and_sized_by_what_shows() -> None:
    # DataTable reads a str cell as markup: `[b]` vanished from a domain's name and made
    # the rest bold (libvirt's QEMU driver takes such names); a `[/b]` stopped the TUI.
    src = recorded.busy()
    odd = {"web1": "db [b]1 [red]x:zap:", "web2": "bad [/b] name\\"}
    for job in src.jobs():
        if job.domain in odd:
            src.set_state(job.key, job.state, domain=odd[job.domain])
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(160, 30)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        table = app.query_one(JobTable)
        lines = [strip.text for strip in table.render_lines(table.region.reset_offset)]
        for name in odd.values():
            assert any(f" {name} " in line for line in lines), (name, lines)
        header = lines[0]
        # The domain column is as wide as the longest name shown, not its escaped form.
        widest = max(len(name) for name in [*odd.values(), *(j.domain for j in src.jobs())])
        assert header.index("job") - header.index("domain") == widest + 2


@given(st.text(alphabet=st.sampled_from("ab[]/\\@#=x :"), max_size=24))
def test_a_name_cell_shows_the_name_whatever_brackets_colons_and_backslashes_it_holds(
    name: str,
) -> None:
    cell = fit_cells(name, 100)
    # As DataTable turns a cell into what it draws.
    drawn = Text.from_markup(cell, end="") if isinstance(cell, str) else cell
    assert drawn.plain == printable(name)
