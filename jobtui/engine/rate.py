"""How fast a job moves, from the positions libvirt reports.

libvirt gives positions (`cur`), never speeds, and a throttled QEMU job moves in
steps: a mirror limited to 2 MiB/s copies a whole chunk, then sleeps, so two
polls a second apart see either nothing or a chunk's worth ("31 MiB/s"). The
rate is therefore taken between *change points* — samples where the position
moved — over the last `WINDOW` seconds: step to step, the phase of the polls
against the steps cancels out, and a window of tens of seconds dilutes what a
burst adds. (A median of the intervals' rates was tried and rejected: QEMU's rate
limit repays a burst with a long silence, and the median then picks the silence.)
When the job stays still for longer than twice its usual gap between steps, the
silence counts too and the rate falls towards zero instead of holding the last
good figure.

A sample whose call took long (a QEMU that was stopped and continued answers a
call begun seconds earlier) has no trustworthy time: the window starts afresh
there, as it does after the job went backwards (a new pass) or its figures were
stale. No rate is better than a wrong one: the first observation after such a
start is not a step, so a rate is shown only from the first real step onwards
(a start's or a continued QEMU's catch-up burst is then behind the base).
"""

from __future__ import annotations

from collections import deque

WINDOW = 30.0  # seconds of change points the rate is taken over
MIN_SPAN = 4.0  # a rate needs real steps at least this far apart
BURST_GAP = 1.0  # steps closer than this at the window's start are one burst
UNCERTAIN_CALL = 1.0  # a sample whose calls took longer than this has no usable time


class RateWindow:
    __slots__ = ("_points", "_first_moved")

    def __init__(self) -> None:
        self._points: deque[tuple[float, int]] = deque()
        # Whether the oldest point is a real step, not just the first observation
        # (which falls anywhere in a step).
        self._first_moved = False

    def reset(self) -> None:
        self._points.clear()
        self._first_moved = False

    def add(self, at: float, current: int) -> None:
        pts = self._points
        if pts and current < pts[-1][1]:
            self.reset()  # went backwards: a new pass or a new run
        if pts and (current == pts[-1][1] or at <= pts[-1][0]):
            return
        pts.append((at, current))
        # Drop what is older than the window, keeping two intervals between real steps.
        while len(pts) > 3 and at - pts[1][0] >= WINDOW:
            pts.popleft()
            self._first_moved = True

    def rate(self, now: float) -> float | None:
        """Bytes per second at `now`, or None before real steps `MIN_SPAN` apart.

        Position over time between the window's first real step and its last,
        which is what two `virsh blockjob --info` readings at those moments give.
        A step less than `BURST_GAP` after the one before it, at the window's start,
        that moved more than twice as fast as the rest of the window is a burst (a
        start skipping unallocated clusters, a continued QEMU catching up): the
        window begins after it. (Closeness alone does not make a burst: a job polled
        four times a second, as the one a person has selected is, moves at every
        poll, and every one of its steps would be "a burst".) A silence longer than
        twice the usual gap between steps counts, so a job that stopped moving falls
        towards zero."""
        pts = list(self._points)
        if not self._first_moved:
            pts = pts[1:]  # the first observation is not a step
        while len(pts) > 2 and pts[1][0] - pts[0][0] < BURST_GAP and _outran(pts):
            pts.pop(0)
        if len(pts) < 2:
            return None
        (t0, c0), (t1, c1) = pts[0], pts[-1]
        span = t1 - t0
        if span < MIN_SPAN:
            return None
        quiet = now - t1
        if quiet > 2 * span / (len(pts) - 1):
            span = now - t0
        return (c1 - c0) / span


def _outran(pts: list[tuple[float, int]]) -> bool:
    """Whether the first of `pts`' steps moved more than twice as fast as the rest."""
    (t0, c0), (t1, c1), (tn, cn) = pts[0], pts[1], pts[-1]
    return (c1 - c0) / (t1 - t0) > 2 * (cn - c1) / (tn - t1)
