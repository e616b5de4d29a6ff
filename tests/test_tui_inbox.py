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


def test_news_is_due_within_a_frame_and_progress_after_the_window():
    inbox = Inbox(lambda: None, coalesce=0.04)
    assert inbox.due(news=False) < 0 and inbox.due(news=True) < 0  # quiet: at once
    inbox.painted(100.0)
    assert inbox.due(news=False) == 100.0 + 0.04
    assert inbox.due(news=True) == 100.0 + NEWS_GAP
    # A window shorter than a frame is never lengthened for news.
    short = Inbox(lambda: None, coalesce=0.001)
    short.painted(100.0)
    assert short.due(news=True) == 100.0 + 0.001


def test_anything_but_progress_is_news():
    src = recorded.busy()
    inbox = Inbox(lambda: None, coalesce=0.04)
    inbox.put(JobProgress(src.jobs()[0]), 1.0)
    inbox.put(DomainChanged(src.domains()[0]), 1.0)
    assert inbox.take()[1] is True
    assert inbox.take() == ([], False)
