"""Helpers for engine tests: a recorder of the JOB_STATE stream."""

from __future__ import annotations

import threading
from collections.abc import Callable

from labtools import wait_until

from jobtui.engine.monitor import JobMonitor
from jobtui.model import EngineEvent, Job, JobState, JobStateChanged


class Stream:
    """Every JobStateChanged the monitor emits, in arrival order."""

    def __init__(self, monitor: JobMonitor) -> None:
        self.events: list[JobStateChanged] = []
        self.all: list[EngineEvent] = []
        self._lock = threading.Lock()
        self.unsubscribe = monitor.subscribe(self._on)

    def _on(self, e: EngineEvent) -> None:
        with self._lock:
            self.all.append(e)
            if isinstance(e, JobStateChanged):
                self.events.append(e)

    def transitions(self, domain: str, name: str) -> list[tuple[str | None, str]]:
        with self._lock:
            return [
                (str(e.old) if e.old else None, str(e.new))
                for e in self.events
                if e.job.domain == domain and e.key.name == name
            ]

    def wait_state(self, domain: str, name: str, state: JobState, timeout: float = 60) -> Job:
        def find() -> Job | None:
            with self._lock:
                for e in self.events:
                    if e.job.domain == domain and e.key.name == name and e.new is state:
                        return e.job
            return None

        return wait_until(
            find, timeout, f"{domain}/{name} -> {state} (seen {self.transitions(domain, name)})"
        )


def wait_job(monitor: JobMonitor, pred: Callable[[Job], bool], timeout: float = 30) -> Job:
    return wait_until(
        lambda: next((j for j in monitor.jobs() if pred(j)), None), timeout, "a matching job"
    )
