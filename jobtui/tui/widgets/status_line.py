"""The line above the footer: what is wrong first (a lost host), else a summary."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from jobtui.model import Host, HostState
from jobtui.tui.format import short_host
from jobtui.tui.styles import COLOR, Palette


class StatusLine(Static):
    def show(
        self,
        hosts: list[Host],
        *,
        active: int,
        finished: int,
        finished_hidden: bool,
        filter_text: str,
        readonly: bool,
        pal: Palette = COLOR,
    ) -> None:
        down = [h for h in sorted(hosts, key=lambda h: h.uri) if h.state is HostState.DISCONNECTED]
        if down:
            host = down[0]
            text = Text.assemble(
                ("✖ ", pal.alert),
                (short_host(host.uri, host.hostname), "bold"),
                " disconnected",
                (f": {host.error}" if host.error else "", pal.alert),
            )
            if len(down) > 1:
                text.append(f" (+{len(down) - 1} more hosts down)", style=pal.alert)
            self.set_class(True, "-error")
            self.update(text, layout=False)  # one line, as wide as the screen
            return
        self.set_class(False, "-error")
        hidden = " (hidden, h shows)" if finished_hidden else ""
        parts = [f"{active} active", f"{finished} finished{hidden}"]
        if filter_text:
            parts.append(f"filter: {filter_text}")
        if readonly:
            parts.append("read-only: control keys are off")
        self.update(Text(" · ".join(parts), style=pal.muted), layout=False)
