"""Every key, as the user's keymap has it now, with the id to remap it by."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


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
        table = Table(box=None, padding=(0, 2), show_edge=False, expand=True)
        table.add_column("key", style="bold", no_wrap=True)
        table.add_column("does")
        table.add_column("id (keymap)", style="dim", no_wrap=True)
        for keys, description, binding_id in self.rows:
            table.add_row(keys, description, binding_id)
        with VerticalScroll(id="help-dialog"):
            yield Static(Text("jobtui keys", style="bold"), id="help-title")
            yield Static(table, id="help-table")
            yield Static(Text(self._note, style="dim"), id="help-note")

    def action_close(self) -> None:
        self.dismiss(None)
