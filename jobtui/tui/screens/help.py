"""Every key, as the user's keymap has it now, with the id to remap it by."""

from __future__ import annotations

from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

Rows = tuple[tuple[str, str, str], ...]

# The key table drawn, by its rows and width. Rich lays a table out by measuring every
# cell, and Textual asks for it at every layout of the dialog (its height, then its
# lines; three layouts to open it): most of what opening help cost. The rows change
# only with the keymap, so a dialog opened again draws nothing new.
_drawn: dict[tuple[Rows, int], list[list[Segment]]] = {}
_measured: dict[Rows, Measurement] = {}


def _table(rows: Rows) -> Table:
    table = Table(box=None, padding=(0, 2), show_edge=False, expand=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("does")
    table.add_column("id (keymap)", style="dim", no_wrap=True)
    for keys, description, binding_id in rows:
        table.add_row(keys, description, binding_id)
    return table


class KeyTable:
    """The key table as a Rich renderable, drawn once for each width."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        key = (self.rows, options.max_width)
        lines = _drawn.get(key)
        if lines is None:
            if len(_drawn) > 32:
                _drawn.clear()
            lines = _drawn[key] = console.render_lines(_table(self.rows), options, pad=False)
        for line in lines:
            yield from line
            yield Segment.line()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        found = _measured.get(self.rows)
        if found is None:
            found = _measured[self.rows] = Measurement.get(console, options, _table(self.rows))
        return found.clamp(max_width=options.max_width)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
    ]

    def __init__(self, rows: list[tuple[str, str, str]], keymap_note: str) -> None:
        """`rows`: (keys as displayed, what they do, binding id)."""
        super().__init__()
        self.rows = rows
        self._note = keymap_note

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-dialog"):
            yield Static(Text("jobtui keys", style="bold"), id="help-title")
            yield Static(KeyTable(tuple(self.rows)), id="help-table")
            yield Static(Text(self._note, style="dim"), id="help-note")

    def action_close(self) -> None:
        self.dismiss(None)
