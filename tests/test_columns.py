"""Column widths for people: a very long or very wide name must not take the table over.

Widths are terminal cells (a CJK character takes two), in `jobtui list` and in the TUI.
"""

from __future__ import annotations

from datetime import UTC

import pytest
from rich.cells import cell_len

from jobtui import recorded
from jobtui.cli.format import job_table
from jobtui.model import Domain, FrozenMap, Job, JobKey, JobState, JobType
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.widgets.job_table import JobTable

LONG = "d" * 200 + "-tail07"  # 207 characters, as libvirt allows
WIDE = "数据库服务器" * 4  # 24 characters, 48 cells


def job(domain: str, n: int, host: str = "qemu:///system") -> Job:
    return Job(
        key=JobKey(host, f"uuid-{n}", "copy-vda", 1.7e9 + n),
        domain=domain,
        type=JobType.BLOCK_COPY,
        state=JobState.RUNNING,
        config=FrozenMap(disk="vda"),
        stats=FrozenMap(),
        current=n,
        end=4,
    )


def column_of(line: str, text: str) -> int:
    """Where `text` starts on `line`, in terminal cells."""
    return cell_len(line[: line.index(text)])


def test_list_does_not_pad_every_row_to_the_longest_name() -> None:
    lines = job_table([job("web1", 1), job(LONG, 2), job("db1", 3)], show_host=False).splitlines()
    long_row = next(line for line in lines if LONG in line)
    assert long_row.split()[:2] == [LONG, "copy-vda"]  # printed whole, for copy and paste
    others = [line for line in lines if line is not long_row]
    assert max(len(line) for line in others) < 100
    # The rows that fit are aligned with the header.
    col = column_of(lines[0], "Job")
    assert column_of(lines[2], "copy-vda") == column_of(lines[4], "copy-vda") == col


def test_list_aligns_wide_characters_by_terminal_cells() -> None:
    lines = job_table([job(WIDE[:3], 1), job("web1", 2)], show_host=False).splitlines()
    col = column_of(lines[0], "Job")
    assert column_of(lines[2], "copy-vda") == column_of(lines[3], "copy-vda") == col
    col = column_of(lines[0], "State")
    assert column_of(lines[2], "running") == column_of(lines[3], "running") == col


def source_with(*names: str) -> RecordedSource:
    base = recorded.busy()
    host = base.hosts()[0].uri
    doms = [Domain(host, f"6b3cffff-0000-0000-0000-0000000000{i:02x}", n, "running")
            for i, n in enumerate(names)]  # fmt: skip
    jobs = [job(d.name, i, host).evolve(key=JobKey(host, d.uuid, "copy-vda", 1.7e9))
            for i, d in enumerate(doms)]  # fmt: skip
    return RecordedSource(
        base.hosts(), [*base.domains(), *doms], [*base.jobs(), *jobs], clock=base.clock
    )


@pytest.mark.parametrize("width", [120, 160])
async def test_a_207_character_domain_does_not_hide_the_table(width: int) -> None:
    src = source_with(LONG, WIDE)
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(width, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        table = app.query_one(JobTable)
        shown = [str(c.key.value) for c in table.ordered_columns]
        assert {"domain", "job", "state", "progress", "rate", "eta"} <= set(shown)
        used = sum(c.get_render_width(table) for c in table.ordered_columns)
        assert used <= table.size.width
        cells = {
            str(table.get_cell(row.key, "domain"))
            for row in table.ordered_rows
            if str(table.get_cell(row.key, "job")) == "copy-vda"
        }
        long_cell = next(c for c in cells if c.startswith("ddd"))
        wide_cell = next(c for c in cells if c.startswith("数"))
        assert long_cell.endswith("…") and cell_len(long_cell) <= 20
        assert wide_cell.endswith("…") and cell_len(wide_cell) <= 20
