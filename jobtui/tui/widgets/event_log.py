"""The event log: the JOB_STATE stream, one line per transition, oldest at the top."""

from __future__ import annotations

from datetime import datetime, tzinfo

from rich.text import Text
from textual.widgets import RichLog

from jobtui.model import JobStateChanged
from jobtui.tui.styles import COLOR, Palette


def log_line(event: JobStateChanged, host: str, tz: tzinfo | None, pal: Palette = COLOR) -> Text:
    """`HH:MM:SS host domain job old → new` (old is `new` on a first sighting)."""
    when = datetime.fromtimestamp(event.time, tz).strftime("%H:%M:%S")
    old = event.old.value if event.old is not None else "new"
    old_style = pal.state[event.old] if event.old is not None else pal.muted
    return Text.assemble(
        (when, pal.muted),
        f" {host} {event.job.domain} ",
        (event.key.name, "bold"),
        " ",
        (old, old_style),
        " → ",
        (event.new.value, pal.state[event.new]),
        (f"  {event.job.message}" if event.new.finished and event.job.message else "", pal.muted),
    )


class EventLog(RichLog):
    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        # Bounded: a week-long session must not grow without limit.
        super().__init__(id=id, max_lines=1000, wrap=False, markup=False, auto_scroll=True)
