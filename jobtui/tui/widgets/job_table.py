"""The job table: one row per job, updated cell by cell, never rebuilt.

Rows are keyed by the job's key, so an update finds its row however the table
is sorted, and the cursor follows its job (not its row number) when rows come,
go or move.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterable, KeysView, Mapping
from dataclasses import dataclass
from typing import Any, Self

from rich.cells import cell_len
from rich.style import Style
from textual import events
from textual._two_way_dict import TwoWayDict  # what DataTable.sort itself sets
from textual.cache import LRUCache
from textual.coordinate import Coordinate
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import Row, RowKey

from jobtui.model import JobKey
from jobtui.tui.widgets.boxed import ContentBoxed
from jobtui.tui.widgets.drawn import Drawn, Lines, restamp
from jobtui.tui.widgets.row_cells import Cell, Cells, shown


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int | None  # None: as wide as its widest cell (the cell never changes)


COLUMNS: tuple[Column, ...] = (
    Column("domain", "domain", None),
    Column("job", "job", None),
    Column("type", "type", None),
    Column("state", "state", 9),
    Column("progress", "progress", 15),
    Column("rate", "rate", 10),
    Column("eta", "ETA", 7),
    Column("elapsed", "elapsed", 7),
    Column("bandwidth", "bandwidth", 10),
)
# When the table is too narrow these go, in this order: the job's name already says
# most of its type, and elapsed time matters less than the bandwidth one may steer; the
# ETA and rate go last. Domain, job, state and progress always stay. `w` shows them all.
DROP_ORDER = ("type", "elapsed", "bandwidth", "eta", "rate")
_SCROLLBAR = 2


# The sort column's header ends with one of these (ascending, descending).
UP, DOWN = "▲", "▼"


# More lines than any terminal shows the table at once.
SCREENFUL = 256


class JobTable(DataTable[Cell], ContentBoxed):
    # While set, sync() repaints the cells it changed itself instead of the whole table.
    # A class default: DataTable.__init__ already refreshes.
    _hold_refresh = False
    _hold_layout = False
    # DataTable's rows in display order, and the line offsets made from them, are cached
    # on its update count, which every cell update bumps: each paint of a storm rebuilt
    # both, 2000 lookups each. Here they are kept until a row comes, goes or moves (the
    # methods that do bump the version). Class defaults: DataTable.__init__ reads them.
    _rows_version = 0
    _rows_cache: tuple[int, list[Row], list[tuple[RowKey, int]]] = (-1, [], [])

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=False)
        # DataTable's own caches of drawn cells, rows and lines key on its update
        # count, which every cell update bumps: under the caches here (_drawn, _lines)
        # they only held drawings no paint would ask for again, 10,000 cells and 1000
        # rows and lines of them, for the garbage collector to scan. A screenful each.
        self._cell_render_cache = LRUCache(SCREENFUL * 16)
        self._row_render_cache = LRUCache(SCREENFUL)
        self._row_renderable_cache = LRUCache(SCREENFUL)
        self._line_cache = LRUCache(SCREENFUL)
        self._cells: dict[JobKey, Cells] = {}
        self._columns: list[Column] = list(COLUMNS)
        self._by_row: dict[str, JobKey] = {}
        self._order: list[JobKey] = []  # the display order last applied
        self.sorted_by: tuple[str | None, bool] = (None, False)  # column, descending
        self.wide = False  # every column, the table scrolling sideways (k9s's `w`)
        # Rendered cells, kept across row changes (see _render_cell): a row's version is
        # new with the row, a cell's with its text.
        self._drawn = Drawn(20_000)
        self._row_version: dict[str, int] = {}
        self._cell_version: dict[str, dict[str, int]] = {}
        # Whole drawn lines, for rows that only moved (a job that finished and sorts
        # below, the rows between): one restamp instead of a cell-by-cell rebuild.
        self._lines = Drawn(2_000)
        self._line_version: dict[str, int] = {}
        self._widths: tuple[int, ...] = ()
        self._versions = itertools.count()

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._hold_refresh and not regions and not layout and not recompose:
            return self
        if self._hold_layout and layout and not recompose:
            # A row removed: the new virtual size decides on a layout (ContentBoxed).
            layout = False
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def expect_width(self, width: int) -> None:
        """Before mounting: the columns for `width` cells, so the first frame has them
        (refitting on the first resize redraws the table and lays out the screen)."""
        if not self.is_mounted:
            self._columns = self._fitting(width)

    def on_mount(self) -> None:
        for col in self._columns:
            self.add_column(self._label(col), key=col.key, width=self._width(col))

    def _label(self, col: Column) -> str:
        column, descending = self.sorted_by
        return f"{col.label} {DOWN if descending else UP}" if col.key == column else col.label

    def _width(self, col: Column) -> int | None:
        """A fixed column widens for its label's sort arrow (`elapsed ▲`)."""
        return None if col.width is None else max(col.width, cell_len(self._label(col)))

    def show_sort(self, column: str | None, descending: bool) -> None:
        """Mark `column`'s header with ▲/▼ (None: the default order, no mark).

        The rows themselves follow the order sync() is given."""
        if (column, descending) == self.sorted_by:
            return
        marked = {self.sorted_by[0], column}
        self.sorted_by = (column, descending)
        # A header's label and width are fixed once added: re-add from the first one
        # that changed (DataTable can only append columns).
        first = next((i for i, c in enumerate(self._columns) if c.key in marked), None)
        if first is not None:
            self._set_columns(list(self._columns), rebuild_from=first)
        self.fit(self.size.width)

    def on_resize(self, event: events.Resize) -> None:
        self.fit(event.size.width)

    @property
    def selected_key(self) -> JobKey | None:
        if not self.row_count:
            return None
        row_key = self.coordinate_to_cell_key(Coordinate(self.cursor_row, 0)).row_key
        return self._by_row[str(row_key.value)]

    @property
    def shown(self) -> KeysView[JobKey]:
        """Jobs that have a row."""
        return self._cells.keys()

    @property
    def job_keys(self) -> list[JobKey]:
        """Keys in display order."""
        return [self._by_row[str(row.key.value)] for row in self.ordered_rows]

    def keys_in_view(self) -> set[JobKey]:
        """Jobs whose row is on screen now (rows are one line high)."""
        window = self.window_region
        header = self.header_height if self.show_header else 0
        rows = self.ordered_rows[max(0, window.y - header) : max(0, window.bottom - header)]
        return {self._by_row[str(row.key.value)] for row in rows}

    def select(self, key: JobKey) -> bool:
        if key not in self._cells:
            return False
        self.move_cursor(row=self.get_row_index(str(key)), animate=False)
        return True

    def sync(
        self, visible: Iterable[JobKey], cells: Mapping[JobKey, Cells], *, same_rows: bool = False
    ) -> set[JobKey]:
        """Make the rows exactly `visible`, repainting only cells whose text changed.

        `cells` must hold every visible job without a row yet, and any other job
        whose cells may have changed. With `same_rows`, the caller vouches that
        `visible` is what the last sync made, in its order: only `cells` is looked at.
        Returns the jobs whose row was touched.
        """
        selected, index = self.selected_key, self.cursor_row
        order = self._order if same_rows else list(visible)
        rows: Collection[JobKey] = self._cells.keys() if same_rows else set(order)
        touched: set[JobKey] = set()
        added = removed = False
        dirty: list[tuple[str, str]] = []  # (row key, column key) of cells changed in place
        stale = [] if same_rows else [k for k in self._cells if k not in rows]
        for key in stale:
            removed = True
            self._hold_layout = True
            try:
                self.remove_row(str(key))
            finally:
                self._hold_layout = False
            del self._cells[key]
            del self._by_row[str(key)]
            self._row_version.pop(str(key), None)
            self._cell_version.pop(str(key), None)
            self._line_version.pop(str(key), None)
            touched.add(key)
        for key, new in cells.items():
            if key not in rows:
                continue
            old = self._cells.get(key)
            if old is None:
                self.add_row(*(new[c.key] for c in self._columns), key=str(key))
                self._by_row[str(key)] = key
                self._row_version[str(key)] = next(self._versions)
                self._cell_version[str(key)] = {}
                added = True
            else:
                changed = [c.key for c in self._columns if old[c.key] != new[c.key]]
                if not changed:
                    continue
                # update_cell() repaints the whole table; only these cells changed.
                self._hold_refresh = True
                try:
                    for col in changed:
                        self.update_cell(str(key), col, new[col])
                finally:
                    self._hold_refresh = False
                dirty += [(str(key), col) for col in changed]
                versions = self._cell_version[str(key)]
                for col in changed:
                    versions[col] = next(self._versions)
                self._line_version[str(key)] = next(self._versions)
            self._cells[key] = new
            touched.add(key)
        before = self._order
        reordered = not same_rows and order != before
        if added or reordered:
            self._apply_order(order)
        if added or removed:
            # Rows that came or went change the widest name: what fits depends on the
            # rows shown now, not on those there when the terminal was last resized.
            # (New columns repaint the whole table.)
            self.fit(self.size.width)
        if reordered:
            # A job that came, went or finished: only the lines whose row changed are
            # drawn again (those below a new row, between a finished job's old and new
            # place), and the lines left empty at the end.
            self._repaint_lines(
                [
                    i
                    for i in range(max(len(before), len(order)))
                    if i >= len(before) or i >= len(order) or before[i] != order[i]
                ]
            )
        if dirty:
            self._repaint_cells(dirty)
        self._restore_cursor(selected, index)
        return touched

    @property
    def ordered_rows(self) -> list[Row]:
        return self._rows_in_order()[1]

    @property
    def _y_offsets(self) -> list[tuple[RowKey, int]]:
        return self._rows_in_order()[2]

    def _rows_in_order(self) -> tuple[int, list[Row], list[tuple[RowKey, int]]]:
        if self._rows_cache[0] != self._rows_version:
            keys = self._row_locations
            rows = [self.rows[keys.get_key(i)] for i in range(len(self.rows))]  # type: ignore[index]
            offsets = [(row.key, y) for row in rows for y in range(row.height)]
            self._rows_cache = (self._rows_version, rows, offsets)
        return self._rows_cache

    def add_row(self, *cells: Any, **kwargs: Any) -> RowKey:
        self._rows_version += 1
        return super().add_row(*cells, **kwargs)

    def remove_row(self, row_key: RowKey | str) -> None:
        self._rows_version += 1
        super().remove_row(row_key)

    def clear(self, columns: bool = False) -> Self:
        self._rows_version += 1
        return super().clear(columns)

    def sort(self, *args: Any, **kwargs: Any) -> Self:
        self._rows_version += 1
        return super().sort(*args, **kwargs)

    def _apply_order(self, order: list[JobKey]) -> None:
        """Rows in `order` (the caller's sort), as DataTable.sort would place them."""
        self._order = order
        self._row_locations = TwoWayDict({self._row_key(k): i for i, k in enumerate(order)})
        self._update_count += 1
        self._rows_version += 1

    def _row_key(self, key: JobKey) -> RowKey:
        return RowKey(str(key))

    def _repaint_lines(self, rows: list[int]) -> None:
        """Repaint these rows (by index), those in view."""
        window = self.window_region
        header = self.header_height if self.show_header else 0
        scroll = self.scroll_offset
        for index in rows:
            y = header + index
            if window.y <= y < window.bottom:
                self.refresh(Region(0, y, window.width + scroll.x, 1).translate(-scroll))

    def _repaint_cells(self, cells: list[tuple[str, str]]) -> None:
        """Repaint only these cells, and only those in view: an unchanged cell is not
        sent to the terminal again. (DataTable.refresh_coordinate sums the heights of
        every row above the cell; here every row is one line high and there are no row
        labels, so a cell's place is arithmetic.)"""
        window = self.window_region
        header = self.header_height if self.show_header else 0
        spans: dict[str, tuple[int, int]] = {}
        x = 0
        for column in self.ordered_columns:
            width = column.get_render_width(self)
            spans[str(column.key.value)] = (x, width)
            x += width
        scroll = self.scroll_offset
        for row, col in cells:
            y = header + self.get_row_index(row)
            if window.y <= y < window.bottom and col in spans:
                x, width = spans[col]
                self.refresh(Region(x, y, width, 1).translate(-scroll))

    def fit(self, width: int) -> None:
        """Show every column that fits in `width` cells, dropping DROP_ORDER first
        (every column when wide)."""
        if width > 0:
            self._set_columns(self._fitting(width))

    def _fitting(self, width: int) -> list[Column]:
        wanted = list(COLUMNS)
        for key in DROP_ORDER:
            if self.wide or self._needs(wanted) <= width:
                break
            wanted = [c for c in wanted if c.key != key]
        return wanted

    def _needs(self, columns: list[Column]) -> int:
        pad = 2 * self.cell_padding
        return sum(self._natural_width(c) + pad for c in columns) + _SCROLLBAR

    def _natural_width(self, col: Column) -> int:
        if col.width is not None:
            return self._width(col) or col.width
        cells = [cell_len(shown(c[col.key])) for c in self._cells.values()]
        return max([cell_len(self._label(col)), *cells])

    def _set_columns(self, wanted: list[Column], *, rebuild_from: int | None = None) -> None:
        if wanted == self._columns and rebuild_from is None:
            return
        selected, index = self.selected_key, self.cursor_row
        # DataTable can only append columns: keep the common prefix, rebuild the rest.
        keep = 0
        limit = min(len(wanted), len(self._columns))
        if rebuild_from is not None:
            limit = min(limit, rebuild_from)
        while keep < limit and wanted[keep] == self._columns[keep]:
            keep += 1
        for col in self._columns[keep:]:
            self.remove_column(col.key)
        for col in wanted[keep:]:
            column_key = self.add_column(
                self._label(col), key=col.key, width=self._width(col), default=""
            )
            # Its width is measured here, once. DataTable would measure it at idle, for
            # every row add_column filled, re-measuring the whole column for each cell
            # narrower than the widest: quadratic, minutes of a frozen UI at 2000 rows.
            self._updated_cells = {c for c in self._updated_cells if c.column_key != column_key}
            # One repaint for the column, not one per cell.
            self._hold_refresh = True
            try:
                for key, cells in self._cells.items():
                    self.update_cell(str(key), col.key, cells[col.key])
            finally:
                self._hold_refresh = False
            if col.width is None:
                self.columns[column_key].content_width = self._natural_width(col)
        self._columns = wanted
        self._drawn.clear()
        self._lines.clear()
        self.refresh()
        self._restore_cursor(selected, index)

    # --- rendered cells, kept while they are the same --------------------------------

    def _render_cell(
        self,
        row_index: int,
        column_index: int,
        base_style: Style,
        width: int,
        cursor: bool = False,
        hover: bool = False,
    ) -> Lines:
        """DataTable's cell, drawn again only when the cell or its look changed (see
        jobtui.tui.widgets.drawn): a cell keys on its row's and its own version (new
        when the row came, and when the cell's text changed: a READY redraws its row's
        state and ETA, not its name) and everything else DataTable's drawing reads; a
        cell whose row only moved gets its new row index in its mouse metadata. Header
        cells are left to DataTable."""
        if row_index < 0 or column_index < 0:
            return super()._render_cell(row_index, column_index, base_style, width, cursor, hover)
        row = self._row_locations.get_key(row_index)
        column = self._column_locations.get_key(column_index)
        name = str(row.value) if row is not None else ""
        slot = (row, column, cursor, hover, self._pseudo_class_state)
        look = (
            self._row_version.get(name),
            self._cell_version.get(name, {}).get(str(column.value) if column else ""),
            base_style,
            width,
            self.show_cursor,
            self._show_hover_cursor,
        )
        return self._drawn.get(  # type: ignore[no-any-return]
            slot,
            look,
            {"row": row_index, "column": column_index},
            lambda: super(JobTable, self)._render_cell(
                row_index, column_index, base_style, width, cursor, hover
            ),
            lambda lines, meta: [restamp(line, meta) for line in lines],
        )

    def render_lines(self, crop: Region) -> list[Strip]:
        # The columns' widths, once for all the lines of this paint (a longer name
        # widens its column and changes every line).
        self._widths = tuple(c.get_render_width(self) for c in self.ordered_columns)
        return super().render_lines(crop)

    def _render_line(self, y: int, x1: int, x2: int, base_style: Style) -> Strip:
        """DataTable's line of a row, kept whole under what it shows (its row's version,
        the cursor and hover on it, the crop) and restamped with its new row index when
        the row only moved. The header is left to DataTable."""
        index = y - (self.header_height if self.show_header else 0)
        if index < 0 or index >= self.row_count or self.cursor_type != "row":
            return super()._render_line(y, x1, x2, base_style)
        row = self._row_locations.get_key(index)
        if row is None:
            return super()._render_line(y, x1, x2, base_style)
        name = str(row.value)
        slot = (
            row,
            self.show_cursor and self.cursor_coordinate.row == index,
            self._show_hover_cursor and self.hover_coordinate.row == index,
            self._pseudo_class_state,
        )
        look = (
            self._row_version.get(name),
            self._line_version.get(name),
            x1,
            x2,
            self.size.width,
            base_style,
            self.show_cursor,
            self._widths,
        )
        return self._lines.get(  # type: ignore[no-any-return]
            slot,
            look,
            {"row": index},
            lambda: super(JobTable, self)._render_line(y, x1, x2, base_style),
            lambda strip, meta: Strip(restamp(strip, meta), strip.cell_length),
        )

    def _clear_caches(self) -> None:
        super()._clear_caches()
        self._drawn.clear()
        self._lines.clear()

    def notify_style_update(self) -> None:
        # A theme or class change: every colour may differ.
        self._drawn.clear()
        self._lines.clear()
        super().notify_style_update()

    def _restore_cursor(self, selected: JobKey | None, index: int) -> None:
        if selected is not None and selected in self._cells:
            row = self.get_row_index(str(selected))
        elif self.row_count:
            # The selected job left the view: stay near where the cursor was.
            row = min(index, self.row_count - 1)
        else:
            return
        if row != self.cursor_row:
            self.move_cursor(row=row, animate=False)
