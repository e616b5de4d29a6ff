"""The engine's call lanes and their shared pool: order per domain, no domain behind
another's hung call, and threads that follow what is busy or stuck, not the domain count."""

from __future__ import annotations

import threading
import time

from labtools import wait_until

from jobtui.engine.worker import MAX_RUNNING, CallPool, DomainWorker


def test_a_lanes_calls_run_one_at_a_time_in_order() -> None:
    pool = CallPool("t")
    lane = DomainWorker("d", pool)
    seen: list[int] = []
    running = []

    def call(i: int) -> int:
        running.append(i)
        assert len(running) == 1  # never two calls of one domain at once
        time.sleep(0.001)
        seen.append(i)
        running.remove(i)
        return i

    futs = [lane.submit(lambda i=i: call(i)) for i in range(50)]
    assert [f.result(10) for f in futs] == list(range(50))
    assert seen == list(range(50))
    assert lane.join(5)


def test_hung_calls_hold_only_their_own_domain() -> None:
    pool = CallPool("t")
    release = threading.Event()
    stuck = [DomainWorker(f"stuck{i}", pool) for i in range(MAX_RUNNING + 3)]
    for lane in stuck:
        lane.submit(release.wait)
    wait_until(lambda: all(lane.stuck_for(time.monotonic()) > 0 for lane in stuck), 10, "hung")
    others = [DomainWorker(f"d{i}", pool) for i in range(40)]
    futs = [lane.submit(lambda i=i: i) for i, lane in enumerate(others)]
    assert [f.result(10) for f in futs] == list(range(40))
    # A second call on a hung domain waits behind the first, as libvirt would make it.
    behind = stuck[0].submit(lambda: "after")
    assert not behind.done()
    release.set()
    assert behind.result(10) == "after"


def test_threads_follow_what_runs_not_how_many_domains() -> None:
    # No call counts as slow here: a loaded machine must not change what is measured.
    pool = CallPool("t", idle_exit=0.2, slow_call=60.0)
    lanes = [DomainWorker(f"d{i}", pool) for i in range(500)]
    for _ in range(3):  # three polling rounds of 500 idle domains
        futs = [lane.submit(lambda: time.sleep(0.0005)) for lane in lanes]
        for f in futs:
            f.result(30)
    assert pool.peak <= MAX_RUNNING  # not one thread per domain (the design before the pool)
    wait_until(lambda: pool.threads == 0, 10, "idle threads to end")


def test_a_stopped_lane_finishes_what_it_had_and_takes_nothing_new() -> None:
    lane = DomainWorker("d")
    gate = threading.Event()
    first = lane.submit(gate.wait)
    queued = lane.submit(lambda: "queued")
    lane.stop()
    refused = lane.submit(lambda: "late")
    assert refused.cancelled()
    assert not lane.join(0.05)
    gate.set()
    assert first.result(5) is True and queued.result(5) == "queued"
    assert lane.join(5)
