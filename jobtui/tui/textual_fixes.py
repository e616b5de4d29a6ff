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
The same loop says when it has written and flushed all it was given (`flushed_hooks`,
`pending_writes`): the moment a frame is on the terminal, which jobtui.tui.collector
waits for (Textual has no such signal).

A partial update (`ChopsUpdate.render_segments`) writes each changed span from the
start of the widget's piece of the line, not from the span: a job's rate changing at
the right end of its row sent the whole row again (~400 bytes of colour sequences
for 10 changed cells), which the per-cell refreshes of the job table and the detail
pane were there to avoid. Here a span is written from where it starts, unless the
piece holds a wide character that the cut could split (then as Textual does).
`tests/test_tui_units.py` renders a partial update and fails while Textual's is used.

A screen's first layout posts a Resize to the screen itself, and `Screen._on_resize`
lays out again, the same screen at the same size, and then every screen beneath it:
opening a dialog laid out and drew the screen three times, the job view behind it
once more (~20 ms each at 120x35). Here a screen already laid out at the size a
Resize brings is not laid out again; a terminal that really changed size still is
(and anything else that needs a layout gets one from the screen's update timer, as
before). `tests/test_tui_keys.py` counts the layouts of opening help.

A widget's Rich style and background colours (`DOMNode.rich_style`,
`background_colors`) are worked out from every ancestor's styles each time they are
asked for, and a paint asks for them for every line of every widget it draws: a
fifth of the time to paint a finished job's move down the table (~35 walks up the
tree). Nothing changes a style while the compositor renders, so during one render
(`Compositor.render_update`) each node's are worked out once; outside a render they
are worked out as before. `tests/test_tui_units.py` counts them in one paint and
checks a style changed between two paints is the one drawn.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from rich.console import Console
from rich.control import Control
from textual._compositor import ChopsUpdate, Compositor
from textual._styles_cache import StylesCache
from textual.color import Color
from textual.dom import DOMNode
from textual.drivers._writer_thread import WriterThread
from textual.geometry import Size
from textual.screen import Screen
from textual.style import Style


@lru_cache(1024)
def _inner_outer(base_background: Color, background: Color) -> tuple[Style, Style]:
    return Style(background=base_background + background), Style(background=base_background)


def _get_inner_outer(
    self: StylesCache, base_background: Color, background: Color
) -> tuple[Style, Style]:
    return _inner_outer(base_background, background)


# Called on the output thread each time it has written and flushed all it was given
# (jobtui.tui.collector ends a hold there).
flushed_hooks: list[Callable[[], None]] = []


def pending_writes(writer: WriterThread) -> int:
    """Writes the output thread has queued or is making."""
    return writer._queue.qsize() + int(getattr(writer, "_jobtui_writing", False))


def _write_until_gone(self: WriterThread) -> None:
    queue = self._queue
    gone = False
    while True:
        text = queue.get()
        if text is None:
            break
        if gone:
            continue  # the terminal is gone: nothing can be shown, keep the queue moving
        self._jobtui_writing = True  # type: ignore[attr-defined]
        try:
            self._file.write(text)
            if queue.qsize() == 0:
                self._file.flush()
        except OSError:
            gone = True
        self._jobtui_writing = False  # type: ignore[attr-defined]
        if queue.qsize() == 0:
            for hook in list(flushed_hooks):
                hook()
    if not gone:
        with contextlib.suppress(OSError):
            self._file.flush()


def _render_changed_spans(self: ChopsUpdate, console: Console) -> str:
    out: list[str] = []
    last_y = self.spans[-1][0]
    for y, x1, x2 in self.spans:
        for end, (x, strip) in zip(self.chop_ends[y], self.chops[y].items(), strict=False):
            if strip is None or x >= x2 or end <= x1:
                continue
            left = max(x, x1)
            if left > x and strip.cell_length != len(strip.text):
                left = x  # a wide character could straddle the span's start
            out.append(Control.move_to(left, y).segment.text)
            out.append(strip.crop(left - x, min(end, x2) - x).render(console))
        if y != last_y:
            out.append("\n")
    return "".join(out)


_screen_resized = Screen._screen_resized


def _resized_if_changed(self: Screen[object], size: Size) -> None:
    if self._compositor.size != size:
        _screen_resized(self, size)


# (node, property) → value, while the compositor renders; None outside a render. The
# node itself is the key (held only for the render): an id could be reused.
_memo: dict[tuple[DOMNode, str], Any] | None = None
_render_update = Compositor.render_update


def _rendering(self: Compositor, *args: Any, **kwargs: Any) -> Any:
    global _memo
    outer = _memo is None  # a translucent dialog renders the screen beneath inside its own
    if outer:
        _memo = {}
    try:
        return _render_update(self, *args, **kwargs)
    finally:
        if outer:
            _memo = None


def _once_per_render(name: str, compute: Callable[[DOMNode], Any]) -> property:
    def get(node: DOMNode) -> Any:
        memo = _memo
        if memo is None:
            return compute(node)
        key = (node, name)
        if key not in memo:
            memo[key] = compute(node)
        return memo[key]

    return property(get, doc=f"DOMNode.{name}, worked out once per render")


def apply() -> None:
    # Only the leaking cached method is replaced; a release that changed it is left alone.
    current = StylesCache.__dict__.get("get_inner_outer")
    if current is not None and hasattr(current, "cache_info"):
        StylesCache.get_inner_outer = _get_inner_outer  # type: ignore[method-assign,assignment]
    WriterThread.run = _write_until_gone  # type: ignore[method-assign]
    ChopsUpdate.render_segments = _render_changed_spans  # type: ignore[method-assign]
    Screen._screen_resized = _resized_if_changed  # type: ignore[method-assign,assignment]
    if Compositor.render_update is _render_update:  # once, however often apply() runs
        Compositor.render_update = _rendering  # type: ignore[method-assign]
        for name in ("rich_style", "background_colors"):
            compute = getattr(DOMNode, name).fget
            setattr(DOMNode, name, _once_per_render(name, compute))
