"""The engine → UI inbox: one wake-up per batch, and when a batch may be painted."""

from __future__ import annotations

import threading

from jobtui import recorded
from jobtui.model import DomainChanged, EngineEvent, JobProgress, JobState, JobStateChanged
from jobtui.tui.inbox import NEWS_GAP, Inbox


def test_one_wake_up_for_however_many_events_until_taken():
    wakes: list[str] = []
    inbox = Inbox(lambda: wakes.append(threading.current_thread().name), coalesce=0.04)
    job = recorded.busy().jobs()[0]

    def engine() -> None:
        for _ in range(100):
            inbox.put(JobProgress(job), 1.0)

    thread = threading.Thread(target=engine, name="engine")
    thread.start()
    thread.join()
    assert wakes == ["engine"]  # posted from the engine's thread, once
    items, news = inbox.take()
    assert len(items) == 100 and not news
    inbox.put(JobProgress(job), 2.0)
    assert len(wakes) == 2  # a new batch wakes the UI again


def test_news_waits_only_for_news_and_progress_for_its_window():
    inbox = Inbox(lambda: None, coalesce=0.04)
    assert inbox.due(news=False) < 0 and inbox.due(news=True) < 0  # quiet: at once
    inbox.painted(100.0, news=False)
    # Progress was just painted: more progress waits for the window, news does not.
    assert inbox.due(news=False) == 100.0 + 0.04
    assert inbox.due(news=True) < 100.0
    inbox.painted(100.5, news=True)
    # News was just painted: more news waits a frame (a burst is painted once a frame).
    assert inbox.due(news=True) == 100.5 + NEWS_GAP
    assert inbox.due(news=False) == 100.5 + 0.04
    # A window shorter than a frame is never lengthened for news.
    short = Inbox(lambda: None, coalesce=0.001)
    short.painted(100.0, news=True)
    assert short.due(news=True) == 100.0 + 0.001


def test_anything_but_progress_is_news():
    src = recorded.busy()
    inbox = Inbox(lambda: None, coalesce=0.04)
    inbox.put(JobProgress(src.jobs()[0]), 1.0)
    inbox.put(DomainChanged(src.domains()[0]), 1.0)
    assert inbox.take()[1] is True
    assert inbox.take() == ([], False)


def _events(items: list[tuple[EngineEvent, float]]) -> list[tuple[str, str, float]]:
    out = []
    for e, at in items:
        assert isinstance(e, JobProgress | JobStateChanged)
        out.append((type(e).__name__, str(e.job.key), at))
    return out


def test_news_in_a_progress_window_leaves_the_other_jobs_figures_for_that_paint():
    src = recorded.busy()
    a, b, c = src.jobs()[:3]
    wakes: list[int] = []
    inbox = Inbox(lambda: wakes.append(1), coalesce=0.04)
    inbox.put(JobProgress(a), 1.0)
    inbox.put(JobProgress(b), 1.1)
    assert not inbox.news_waiting
    inbox.leave()  # it stays for the paint already scheduled
    inbox.put(JobProgress(b), 1.2)
    assert len(wakes) == 2  # ... and the next event wakes the UI again
    inbox.put(JobStateChanged(b.key, b.state, JobState.COMPLETED, b, 1.3), 1.3)
    inbox.put(JobProgress(c), 1.4)
    assert inbox.news_waiting
    now, news = inbox.take_news()
    assert news
    # b's news, with b's earlier figures before it (so they never overwrite it later)
    assert _events(now) == [
        ("JobProgress", str(b.key), 1.1),
        ("JobProgress", str(b.key), 1.2),
        ("JobStateChanged", str(b.key), 1.3),
    ]
    # The pending paint takes a's and c's figures, in the order they came.
    rest, news = inbox.take()
    assert not news
    assert _events(rest) == [("JobProgress", str(a.key), 1.0), ("JobProgress", str(c.key), 1.4)]


def test_a_domain_or_host_change_takes_the_whole_batch():
    src = recorded.busy()
    inbox = Inbox(lambda: None, coalesce=0.04)
    inbox.put(JobProgress(src.jobs()[0]), 1.0)
    inbox.put(DomainChanged(src.domains()[0]), 1.1)
    now, news = inbox.take_news()
    assert news and len(now) == 2
    assert inbox.take() == ([], False)
