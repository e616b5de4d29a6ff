"""No automatic garbage collection while news is painted, and none held off for long."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator

import pytest

from jobtui.tui.collector import MAX_HOLD, PaintHold


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    was = gc.isenabled()
    gc.enable()
    yield
    if not was:
        gc.disable()


def test_a_frame_still_queued_ends_the_hold_when_the_writer_has_written_it():
    queued = [1]
    hold = PaintHold(lambda: queued[0])
    hold.hold()
    assert not gc.isenabled()
    hold.painted()  # the frame is queued, not yet on the terminal
    assert not gc.isenabled()
    queued[0] = 0
    hold.written()
    assert gc.isenabled() and not hold.held


def test_a_frame_already_written_ends_the_hold_at_once():
    hold = PaintHold(lambda: 0)
    hold.hold()
    hold.painted()
    assert gc.isenabled() and not hold.held


def test_a_write_before_the_paint_does_not_end_the_hold():
    # The writer flushing an earlier frame (progress) must not let a collection run
    # inside the paint of the news.
    hold = PaintHold(lambda: 1)
    hold.hold()
    hold.written()
    assert not gc.isenabled() and hold.held
    hold.release()
    assert gc.isenabled()


def test_a_hold_with_no_frame_ends_at_the_clock_tick():
    hold = PaintHold(lambda: 1)
    hold.hold()
    hold.expire(0.0)  # monotonic time long before the hold began: not yet
    assert hold.held
    hold.expire(time.monotonic() + MAX_HOLD + 0.01)
    assert gc.isenabled() and not hold.held


def test_collection_that_was_off_stays_off():
    # The TUI's start turns collection off until Ready: a hold must not turn it on.
    gc.disable()
    hold = PaintHold(lambda: 0)
    hold.hold()
    hold.painted()
    hold.release()
    assert not gc.isenabled()


def test_textual_output_thread_ends_the_hold_once_the_frame_is_on_the_terminal():
    from textual.drivers._writer_thread import WriterThread

    from jobtui.tui import textual_fixes

    textual_fixes.apply()
    go_on = threading.Event()
    written: list[str] = []

    class SlowTerminal:
        def write(self, text: str) -> int:
            go_on.wait(10)
            written.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    writer = WriterThread(SlowTerminal())  # type: ignore[arg-type]
    writer.start()
    hold = PaintHold(lambda: textual_fixes.pending_writes(writer))
    textual_fixes.flushed_hooks.append(hold.written)
    try:
        hold.hold()
        writer.write("\x1b[1;1Hready")  # the news frame, queued by the compositor
        hold.painted()
        assert hold.held and not gc.isenabled()  # the frame is not out yet
        go_on.set()
        deadline = time.monotonic() + 10
        while hold.held and time.monotonic() < deadline:
            time.sleep(0.01)
        assert written == ["\x1b[1;1Hready"]
        assert not hold.held and gc.isenabled()
    finally:
        textual_fixes.flushed_hooks.remove(hold.written)
        go_on.set()
        writer.stop()
