"""What needs an operator: a job that failed, stalled, was orphaned, or waits at READY.

`Watcher` is plain logic (no Textual): told about jobs as they change and about the clock,
it returns each alert once per job and kind. Jobs already in such a state when the TUI
starts set a baseline and say nothing (yesterday's failure is not news); a job found READY
at start waits `ready_after` from then.

The TUI shows each alert as a notification and, when configured, rings the terminal bell
and/or writes a desktop-notification escape: OSC 9 (iTerm2, WezTerm, Windows Terminal,
kitty) or OSC 777 (VTE terminals: GNOME Terminal, Tilix; foot, urxvt). The escape is written
to the terminal jobtui runs in, so over SSH it reaches the operator's own terminal; inside
tmux it needs `set -g allow-passthrough on` and is still dropped by many versions.
"""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from jobtui.model import Job, JobKey, JobState
from jobtui.tui.config import AttentionConfig


class Kind(enum.StrEnum):
    FAILED = "failed"
    STALLED = "stalled"
    ORPHANED = "orphaned"
    READY = "ready"


@dataclass(frozen=True)
class Alert:
    kind: Kind
    job: Job
    waited: float = 0.0  # READY: seconds waited so far

    def title(self) -> str:
        return {
            Kind.FAILED: "job failed",
            Kind.STALLED: "job stalled",
            Kind.ORPHANED: "job orphaned",
            Kind.READY: "waiting at READY",
        }[self.kind]

    def body(self, host: str) -> str:
        job = self.job
        what = f"{job.name} on {job.domain} ({host})"
        if self.kind is Kind.READY:
            minutes = int(self.waited // 60)
            waited = f"{minutes} min" if minutes else f"{int(self.waited)} s"
            return f"{what} has waited {waited} to be finalized (f) or aborted (a)"
        return f"{what}: {job.message}" if job.message else what


def _conditions(job: Job) -> set[Kind]:
    found = set()
    if job.state is JobState.FAILED:
        found.add(Kind.FAILED)
    if job.state is JobState.ORPHANED:
        found.add(Kind.ORPHANED)
    if job.stalled and job.state.active:
        found.add(Kind.STALLED)
    return found


class Watcher:
    def __init__(self, config: AttentionConfig) -> None:
        self.config = config
        self._said: dict[JobKey, set[Kind]] = {}  # alerts given (or baselined) per job
        self._ready_since: dict[JobKey, float] = {}

    def baseline(self, jobs: Iterable[Job], now: float) -> None:
        """Jobs as found at start: no alert for what they already are."""
        for job in jobs:
            self._said[job.key] = _conditions(job)
            if job.state is JobState.READY:
                self._ready_since.setdefault(job.key, now)

    def seen(self, jobs: Iterable[Job], now: float) -> list[Alert]:
        """Jobs that changed: alerts for what they newly are."""
        alerts = []
        for job in jobs:
            now_is = _conditions(job)
            said = self._said.setdefault(job.key, set())
            # A job that stops stalling may stall again later: say so again then.
            said.intersection_update(now_is | {Kind.READY})
            for kind in sorted(now_is - said):
                said.add(kind)
                if self._enabled(kind):
                    alerts.append(Alert(kind, job))
            if job.state is JobState.READY:
                self._ready_since.setdefault(job.key, now)
            else:
                self._ready_since.pop(job.key, None)
                said.discard(Kind.READY)
        return alerts

    def tick(self, jobs: dict[JobKey, Job], now: float) -> list[Alert]:
        """READY jobs that have now waited longer than `ready_after`."""
        alerts = []
        for key, since in list(self._ready_since.items()):
            job = jobs.get(key)
            if job is None:
                del self._ready_since[key]
                continue
            said = self._said.setdefault(key, set())
            if Kind.READY not in said and now - since >= self.config.ready_after:
                said.add(Kind.READY)
                if self.config.ready:
                    alerts.append(Alert(Kind.READY, job, now - since))
        return alerts

    def forget(self, key: JobKey) -> None:
        self._said.pop(key, None)
        self._ready_since.pop(key, None)

    def _enabled(self, kind: Kind) -> bool:
        return bool(getattr(self.config, kind.value))


def _clean(text: str, limit: int = 200) -> str:
    """Printable text only: a job or domain name must never end the escape early."""
    kept = "".join(c if not unicodedata.category(c).startswith("C") else " " for c in text)
    return kept[:limit]


def terminal_escape(alert: Alert, host: str, desktop: str) -> str:
    """The desktop-notification escape for `alert` ("" when `desktop` is "off")."""
    title, body = _clean(f"jobtui: {alert.title()}"), _clean(alert.body(host))
    if desktop == "osc9":
        return f"\x1b]9;{title}: {body}\x07"
    if desktop == "osc777":
        return f"\x1b]777;notify;{title.replace(';', ',')};{body.replace(';', ',')}\x07"
    return ""
