"""The floor for key -> screen: a bare Textual app whose `?` opens a modal screen
with the same title jobtui's help has ("jobtui keys"), and `?` closes it.

    .venv/bin/python bench/tui_bare_app.py   (run in a terminal; q quits)
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import ModalScreen
from textual.widgets import Footer, Static


class Help(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("question_mark,escape", "close", "Close")]

    def compose(self) -> ComposeResult:
        yield Static("jobtui keys")

    def action_close(self) -> None:
        self.dismiss(None)


class Bare(App[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "help"),
        Binding("q", "quit", "quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Static("bare textual app")
        yield Footer(compact=True)

    def action_help(self) -> None:
        self.push_screen(Help())


if __name__ == "__main__":
    Bare().run()
