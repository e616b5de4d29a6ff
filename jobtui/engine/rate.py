"""How fast a job moves, from the positions libvirt reports.

libvirt gives positions (`cur`), never speeds, and a throttled QEMU job moves in
steps: a mirror limited to 2 MiB/s copies a whole chunk, then sleeps, so two
polls a second apart see either nothing or a chunk's worth ("31 MiB/s"). The
rate is therefore taken between *change points* — samples where the position
moved — over the last `WINDOW` seconds: step to step, the phase of the polls
against the steps cancels out. When the job then stays still for longer than
twice its usual gap between steps, the silence counts too and the rate decays
towards zero instead of holding the last good figure.

A sample whose call took long (a QEMU that was stopped and continued answers a
call begun seconds earlier) has no trustworthy time: the window starts afresh
there, as it does after the job went backwards (a new pass) or its figures were
stale. No rate is better than a wrong one.
"""

from __future__ import annotations

from collections import deque

WINDOW = 30.0  # seconds of change points the rate is taken over
MIN_SPAN = 1.0  # a rate needs change points at least this far apart
UNCERTAIN_CALL = 1.0  # a sample whose calls took longer than this has no usable time


class RateWindow:
    __slots__ = ("_points", "_first_moved")

    def __init__(self) -> None:
        self._points: deque[tuple[float, int]] = deque()
        # Whether the oldest point is a real change, not just the first observation
        # (which falls anywhere between two steps).
        self._first_moved = False

    def reset(self) -> None:
        self._points.clear()
        self._first_moved = False

    def add(self, at: float, current: int) -> None:
        pts = self._points
        if pts and current < pts[-1][1]:
            self.reset()  # went backwards: a new pass or a new run
        if not pts:
            pts.append((at, current))
            return
        if current == pts[-1][1]:
            return
        pts.append((at, current))
        # Drop what is older than the window, keeping two real change points.
        while len(pts) > 2 and at - pts[1][0] >= WINDOW:
            pts.popleft()
            self._first_moved = True
        if len(pts) > 2 and not self._first_moved:
            pts.popleft()  # a real step now stands behind the first observation
            self._first_moved = True

    def rate(self, now: float) -> float | None:
        """Bytes per second at `now`, or None before two positions a second apart."""
        pts = self._points
        if len(pts) < 2:
            return None
        (t0, c0), (t1, c1) = pts[0], pts[-1]
        span = t1 - t0
        if span < MIN_SPAN:
            return None
        gap = span / (len(pts) - 1)
        quiet = now - t1
        if quiet > 2 * gap:
            span = now - t0 - gap  # still for longer than usual: the silence counts
        return max(0.0, (c1 - c0) / span)
