"""What a front end needs from a job engine.

The real implementation is `jobtui.engine.monitor.JobMonitor`; a recorded,
deterministic source (`jobtui.recorded`) implements the same protocol for SVG
snapshots and UI benchmarks. Front ends depend on this protocol only, never on
libvirt.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from jobtui.model import ControlOp, Domain, EngineEvent, Host, Job, JobKey
from jobtui.support import Options

Subscriber = Callable[[EngineEvent], None]


class JobSource(Protocol):
    options: Options

    def start(self) -> None:
        """Open connections and begin watching; returns without waiting for libvirt."""

    def stop(self) -> None: ...

    def hosts(self) -> list[Host]: ...

    def domains(self) -> list[Domain]: ...

    def jobs(self, *, include_finished: bool = True) -> list[Job]: ...

    def job(self, key: JobKey) -> Job | None: ...

    def job_xml(self, key: JobKey) -> str: ...

    def focus(self, key: JobKey | None) -> None:
        """The job on screen (None: none), sampled faster. Only records the key: it never
        blocks, so the UI calls it from its event loop."""

    def control(self, key: JobKey, op: ControlOp, **args: Any) -> str:
        """Blocking: run `op` and return a one-line result, or raise JobControlError.

        Front ends call it from a worker thread, never from their event loop.
        """

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """`callback` runs on an engine thread; it must only hand data off. Returns unsubscribe."""
