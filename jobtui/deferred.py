"""A job source built when it starts, on a thread of its own.

Building the engine imports libvirt, lxml and the engine's modules and reads the history:
~70 ms of one core, which the TUI would otherwise spend before its first frame. Wrapped in
a `DeferredSource`, the TUI draws first (its hosts shown as connecting, which is what they
are) and the engine is built and started once the frame is up, off the UI thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from jobtui.model import (
    ControlOp,
    Domain,
    DomainChanged,
    EngineEvent,
    Host,
    HostChanged,
    HostState,
    Job,
    JobControlError,
    JobKey,
)
from jobtui.source import JobSource, Subscriber
from jobtui.support import Options

if TYPE_CHECKING:
    from jobtui.engine.early_open import EarlyOpen, Opened

STARTING = "the job engine is still starting; try again in a moment"


class DeferredSource:
    """A `JobSource` whose real source is made by `build` when `start()` is called.

    Until then it lists `uris` as connecting hosts and no jobs, and the domains `early`
    (the hosts' first connections, opened at launch) has listed, told to the
    subscribers as they come; the real source adopts those connections. `start()`
    builds the real source (no libvirt call: imports and the history), hands it the
    subscribers, then starts it, so no event is missed; call it off the UI thread. A
    build that fails leaves every host disconnected with the reason, told to the
    subscribers as `HostChanged`.
    """

    def __init__(
        self,
        build: Callable[[], JobSource],
        uris: Sequence[str],
        options: Options,
        early: EarlyOpen | None = None,
    ) -> None:
        self.options = options
        self._build = build
        self._uris = list(uris)
        self._early = early
        self._lock = threading.Lock()  # the fields below
        self._life = threading.Lock()  # start and stop, one at a time
        self._real: JobSource | None = None
        self._subscribers: dict[int, tuple[Subscriber, Callable[[], None] | None]] = {}
        self._next_id = 0
        self._focus: JobKey | None = None
        self._stopped = False
        self.error = ""
        if early is not None:
            early.listen(self._early_answer)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        with self._life:
            if self._stopped or self._real is not None or self.error:
                return
            try:
                real = self._build()
            except Exception as err:  # noqa: BLE001 - shown on every host, never fatal
                self._fail(str(err) or type(err).__name__)
                return
            with self._lock:
                self._real = real
                for sid, (callback, _) in list(self._subscribers.items()):
                    self._subscribers[sid] = (callback, real.subscribe(callback))
                focus = self._focus
            real.focus(focus)
            real.start()

    def _early_answer(self, opened: Opened) -> None:
        """A host's early listing (its thread): told to subscribers until the real
        source is there to tell its own."""
        if opened.error is not None:
            return  # the engine's own first open raises it again, and reports it
        host = Host(opened.uri, HostState.CONNECTED, readonly=self.options.readonly)
        news: list[EngineEvent] = [HostChanged(host)]
        news += [DomainChanged(d) for d in opened.previews()]
        # Told under the lock: a preview told after the real source's first news
        # would take a domain's state back to unknown.
        with self._lock:
            if self._real is not None:
                return
            for callback, _ in self._subscribers.values():
                for event in news:
                    callback(event)

    def _answered(self) -> dict[str, Opened]:
        if self._early is None:
            return {}
        return {o.uri: o for o in self._early.answered() if o.error is None}

    def _fail(self, error: str) -> None:
        with self._lock:
            self.error = error
            callbacks = [cb for cb, _ in self._subscribers.values()]
        for host in self.hosts():
            for callback in callbacks:
                callback(HostChanged(host))

    def stop(self) -> None:
        with self._life:
            self._stopped = True
            real = self._source()
            if real is not None:
                real.stop()

    # --- reads: the real source's answers once it exists ----------------------------

    def _source(self) -> JobSource | None:
        with self._lock:
            return self._real

    def hosts(self) -> list[Host]:
        real = self._source()
        if real is not None:
            return real.hosts()
        readonly = self.options.readonly
        if self.error:
            error = f"cannot start the job engine: {self.error}"
            return [Host(u, HostState.DISCONNECTED, readonly, error) for u in self._uris]
        answered = self._answered()
        return [
            Host(u, HostState.CONNECTED if u in answered else HostState.CONNECTING, readonly)
            for u in self._uris
        ]

    def domains(self) -> list[Domain]:
        real = self._source()
        if real is not None:
            return real.domains()
        return [d for opened in self._answered().values() for d in opened.previews()]

    def jobs(self, *, include_finished: bool = True) -> list[Job]:
        real = self._source()
        return real.jobs(include_finished=include_finished) if real is not None else []

    def job(self, key: JobKey) -> Job | None:
        real = self._source()
        return real.job(key) if real is not None else None

    def job_xml(self, key: JobKey) -> str:
        return self._needed().job_xml(key)

    def control(self, key: JobKey, op: ControlOp, **args: Any) -> str:
        return self._needed().control(key, op, **args)

    def _needed(self) -> JobSource:
        real = self._source()
        if real is None:
            raise JobControlError(self.error or STARTING)
        return real

    def focus(self, key: JobKey | None) -> None:
        with self._lock:
            self._focus = key
            real = self._real
        if real is not None:
            real.focus(key)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            sid = self._next_id
            self._next_id += 1
            real = self._real
            self._subscribers[sid] = (callback, real.subscribe(callback) if real else None)

        def unsubscribe() -> None:
            with self._lock:
                _, real_unsubscribe = self._subscribers.pop(sid, (callback, None))
            if real_unsubscribe is not None:
                real_unsubscribe()

        return unsubscribe
