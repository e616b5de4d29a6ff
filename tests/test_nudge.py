"""When a connection gets a wake-up call (engine/nudge.py): only while a call hangs and
another has waited behind it; backing off while nothing changes; never piling up on a
daemon that does not answer. The stall itself is shown on real QEMU in test_truth.py."""

from __future__ import annotations

import threading

import pytest
from labtools import wait_until

from jobtui.engine.nudge import HUNG_AFTER, MAX_BACKOFF, MAX_IN_FLIGHT, NUDGE_AFTER, Nudger


class Conn:
    """Counts the cheap calls made; they wait for `answer` (a daemon that is slow)."""

    def __init__(self) -> None:
        self.calls = 0
        self.answer = threading.Event()
        self._lock = threading.Lock()

    def getLibVersion(self) -> int:  # noqa: N802 - libvirt's name
        with self._lock:
            self.calls += 1
        self.answer.wait(10)
        return 9000000


def test_no_nudge_unless_a_call_hangs_and_another_waits_behind_it() -> None:
    n, conn = Nudger("h"), Conn()
    conn.answer.set()
    now = 100.0
    assert not n.check(conn, [], now)  # type: ignore[arg-type]
    assert not n.check(conn, [now - 5], now)  # type: ignore[arg-type] - one hung, none behind
    # Two ordinary calls in flight: no call has run long enough to hold the others.
    assert not n.check(conn, [now - HUNG_AFTER / 2, now - NUDGE_AFTER * 2], now)  # type: ignore[arg-type]
    # A hung call and one that has only just started.
    assert not n.check(conn, [now - 5, now - NUDGE_AFTER / 2], now)  # type: ignore[arg-type]
    assert not n.check(None, [now - 5, now - 1], now)
    assert conn.calls == 0 and n.sent == 0
    assert n.check(conn, [now - 5, now - NUDGE_AFTER * 2], now)  # type: ignore[arg-type]
    wait_until(lambda: conn.calls == 1, 5, "the nudge's call")


def test_nudges_back_off_while_the_same_calls_stay_stuck_and_start_again_on_a_change() -> None:
    n, conn = Nudger("h"), Conn()
    conn.answer.set()
    starts = [0.0, 1.0]
    sent_at = [t / 100 for t in range(200, 2000) if n.check(conn, starts, t / 100)]  # type: ignore[arg-type]
    gaps = [round(b - a, 2) for a, b in zip(sent_at, sent_at[1:], strict=False)]
    step = pytest.approx  # the checks come every 10 ms
    assert gaps[:3] == [step(NUDGE_AFTER * k, abs=0.011) for k in (2, 4, 8)], gaps
    assert gaps[-1] == step(MAX_BACKOFF, abs=0.011) and max(gaps) < MAX_BACKOFF + 0.02, gaps
    # A call that has only just started changes nothing; once it has waited, it is a
    # fresh stall and is nudged at once.
    assert not n.check(conn, [0.0, 1.0, 19.99], 20.0)  # type: ignore[arg-type]
    assert n.check(conn, [0.0, 1.0, 19.99], 20.05)  # type: ignore[arg-type]


def test_a_daemon_that_does_not_answer_gets_a_bounded_number_of_waiting_nudges() -> None:
    n, conn = Nudger("h"), Conn()
    now = 100.0
    sent = 0
    for i in range(50):
        sent += n.check(conn, [0.0, 50.0 + i], now + i)  # type: ignore[arg-type]
    assert sent == MAX_IN_FLIGHT
    wait_until(lambda: conn.calls == MAX_IN_FLIGHT, 5, "the waiting nudges")
    conn.answer.set()  # the daemon answers: nudges may come again
    wait_until(lambda: n.check(conn, [0.0, 1.0, 2.0], 500.0), 5, "a nudge after the answer")  # type: ignore[arg-type]
