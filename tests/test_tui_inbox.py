"""The engine → UI inbox: one wake-up per batch, and when a batch may be painted."""

from __future__ import annotations

import threading

from jobtui import recorded
from jobtui.model import DomainChanged, JobProgress
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
