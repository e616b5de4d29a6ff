"""Corrections to the Textual release jobtui pins (see pyproject.toml), applied once
when the TUI is imported. Each says what it fixes and how to tell it can go.

`StylesCache.get_inner_outer` is an instance method under `functools.lru_cache(1024)`:
the cache keys on the instance, so every widget that ever painted keeps its whole
StylesCache (each line it drew, as Strips) alive until 1024 newer ones push it out.
Every dialog, help screen and notification mounts new widgets: opening and closing the
help screen kept ~7,000 objects each time, and the garbage collector's full passes,
scanning them all, grew to 30-90 ms pauses on screen (Textual issue #6665, open for
8.2.8). The two styles depend on the two colours only: cached on those, nothing else is
kept. `tests/test_tui_memory.py` fails while the upstream method is in place.

Textual's output thread (`WriterThread`) dies on the first write that fails, and a
terminal that went away (an SSH session dropped, a tmux pane killed) fails every write
with EIO. Its queue holds 30 writes: the app's own shutdown, restoring the terminal,
then blocks for ever on a full queue, and the process never ends (seen: TUIs left
running for an hour against a daemon long gone). Here a failed write only stops the
writing; the thread goes on taking from the queue, so the app shuts down and exits.
`tests/test_tui_terminal.py` writes through a dead terminal and waits for the stop.
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from textual._styles_cache import StylesCache
from textual.color import Color
from textual.drivers._writer_thread import WriterThread
from textual.style import Style


@lru_cache(1024)
def _inner_outer(base_background: Color, background: Color) -> tuple[Style, Style]:
    return Style(background=base_background + background), Style(background=base_background)


def _get_inner_outer(
    self: StylesCache, base_background: Color, background: Color
) -> tuple[Style, Style]:
    return _inner_outer(base_background, background)


def _write_until_gone(self: WriterThread) -> None:
    queue = self._queue
    gone = False
    while True:
        text = queue.get()
        if text is None:
            break
        if gone:
            continue  # the terminal is gone: nothing can be shown, keep the queue moving
        try:
            self._file.write(text)
            if queue.qsize() == 0:
                self._file.flush()
        except OSError:
            gone = True
    if not gone:
        with contextlib.suppress(OSError):
            self._file.flush()


def apply() -> None:
    # Only the leaking cached method is replaced; a release that changed it is left alone.
    current = StylesCache.__dict__.get("get_inner_outer")
    if current is not None and hasattr(current, "cache_info"):
        StylesCache.get_inner_outer = _get_inner_outer  # type: ignore[method-assign,assignment]
    WriterThread.run = _write_until_gone  # type: ignore[method-assign]
