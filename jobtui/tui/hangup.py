"""SIGHUP (the terminal went away, or `kill -HUP`) quits the TUI the way `q` does.

Python's default for SIGHUP ends the process at once, with the terminal left as Textual
set it: alternate screen, mouse tracking, hidden cursor. Asking the app to exit lets
Textual restore all three before the process ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

from textual.app import App

HANGUP_STATUS = 128 + signal.SIGHUP


@contextlib.contextmanager
def exit_on_hangup(app: App[Any]) -> Iterator[None]:
    """While the block runs (`app.run()`), SIGHUP makes `app` exit normally."""

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # before the app's loop started, or after it ended
            raise SystemExit(HANGUP_STATUS) from None
        # Thread-safe and signal-safe: it only wakes the loop, which then calls exit.
        loop.call_soon_threadsafe(app.exit)

    try:
        previous = signal.signal(signal.SIGHUP, on_hangup)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)
