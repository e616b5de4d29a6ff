"""The engine's rate (engine/rate.py) on positions shaped like QEMU's: a throttled mirror
moves in 16 MiB steps, bursts at its start and after a stopped QEMU continues."""

from __future__ import annotations

from jobtui.engine.rate import RateWindow

MiB = 1024 * 1024


def feed(w: RateWindow, points: list[tuple[float, int]]) -> float | None:
    for t, c in points:
        w.add(t, c * MiB)
    return w.rate(points[-1][0])


def steps(start: float, cur: int, every: float, n: int, polls: float = 0.5) -> list:
    """Polls every `polls` s of a job that moves 16 MiB every `every` s."""
    out, t = [], start
    end = start + every * n
    while t <= end:
        out.append((t, cur + 16 * int((t - start) // every)))
        t += polls
    return out


def test_a_stepping_mirror_reads_its_real_speed_whatever_the_poll_phase() -> None:
    for phase in (0.0, 0.13, 0.37):
        w = RateWindow()
        r = feed(w, steps(phase, 0, 4.0, 6))
        assert r is not None and abs(r - 4 * MiB) < 0.05 * MiB  # 16 MiB / 4 s


def test_no_rate_before_two_real_steps_far_enough_apart() -> None:
    w = RateWindow()
    assert feed(w, [(0.0, 10), (0.5, 10), (1.0, 26)]) is None  # the first look is no step
    assert feed(w, [(2.0, 27)]) is None  # steps 1 s apart: too little to say
    assert feed(w, [(5.5, 42)]) is not None


def test_a_burst_at_the_start_of_the_window_is_left_out() -> None:
    # A continued QEMU catches up (48 -> 52 -> 64 within half a second), then 16 MiB / 4 s.
    w = RateWindow()
    r = feed(w, [(20.0, 48), (20.01, 52), (20.5, 64), (24.1, 80), (28.1, 96), (32.1, 112)])
    assert r is not None and 3.8 * MiB <= r <= 4.2 * MiB


def test_a_job_that_stops_moving_falls_towards_zero() -> None:
    w = RateWindow()
    feed(w, [(float(t), t) for t in range(20)])
    assert w.rate(19.0) == 1 * MiB
    assert w.rate(19.0 + 1.5) == 1 * MiB  # an ordinary wait between steps
    late = w.rate(60.0)
    assert late is not None and late < 0.4 * MiB


def test_going_backwards_starts_afresh() -> None:
    w = RateWindow()
    feed(w, [(float(t), 10 * t) for t in range(10)])
    w.add(10.0, 5 * MiB)  # a new pass
    assert w.rate(10.0) is None


def test_a_job_polled_four_times_a_second_has_a_rate() -> None:
    # The job a person selects is polled every 0.25 s (JobMonitor.focus_interval): a
    # save or an unthrottled copy moves at every poll. Its steps are close together
    # but no faster than the rest: no burst, and the rate is there after MIN_SPAN.
    w = RateWindow()
    r = feed(w, [(i * 0.25, 6 * i) for i in range(40)])  # 24 MiB/s, 10 s
    assert r is not None and abs(r - 24 * MiB) < 0.05 * MiB
    # A throttled mirror polled as often: 16 MiB steps every 0.67 s.
    w = RateWindow()
    r = feed(w, steps(0.0, 0, 0.67, 15, polls=0.25))
    assert r is not None and abs(r - 16 * MiB / 0.67) < 0.1 * 16 * MiB / 0.67
