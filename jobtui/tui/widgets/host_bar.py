"""The top line: the app's name and every host's connection state."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from jobtui.model import Host
from jobtui.tui.styles import COLOR, Palette
from jobtui.tui.widgets.domain_tree import host_label


class HostBar(Static):
    _shown: Text | None = None

    def show(self, hosts: list[Host], *, readonly: bool, pal: Palette = COLOR) -> None:
        text = Text.assemble(("jobtui", "bold"))
        if readonly:
            text.append("  read-only", style="bold")
        for host in sorted(hosts, key=lambda h: h.uri):
            text.append("  │  ", style=pal.muted)
            text.append_text(host_label(host, pal))
        if text == self._shown:
            # A job that finished changes the counts below, not the hosts: nothing to send.
            return
        self._shown = text
        self.update(text, layout=False)  # one line, as wide as the screen
