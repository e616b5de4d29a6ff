"""Typed messages that carry data into the UI thread.

Engine callbacks and thread workers never touch widgets: they post one of these
(Textual's `post_message` is safe from any thread) and the app applies it on
its own loop. Dataclass messages: Textual's `Message.__post_init__` does its setup.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from jobtui.model import ControlOp, Domain, Host, Job, JobKey


@dataclass
class EngineEventsPending(Message):
    """Engine events are queued for the UI (the app's inbox; each is stamped with the
    UI clock when the engine handed it over). One is in flight however many wait."""


@dataclass
class SnapshotLoaded(Message):
    hosts: list[Host]
    domains: list[Domain]
    jobs: list[Job]
    since_seq: int  # the store's event count when the snapshot was requested
    engine_started: bool = True  # False: the source had not started (nothing found yet)
    error: str = ""


@dataclass
class ControlFinished(Message):
    key: JobKey
    op: ControlOp
    result: str = ""
    error: str = ""


@dataclass
class XmlLoaded(Message):
    key: JobKey
    text: str = ""
    error: str = ""
