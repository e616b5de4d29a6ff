"""JobMonitor's control operations: abort, finalize, pause, resume, set-speed, postcopy
and dismiss, checked (jobtui.support.refusal), run on the domain's worker with a bounded
wait (engine/control.py does the calls), and told to the dispatcher (registry notes)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from jobtui.engine import control as ctl
from jobtui.engine.dispatch import Call, DomainSlot, Item
from jobtui.engine.history import History
from jobtui.engine.registry import Registry
from jobtui.model import ControlOp, Host, HostState, Job, JobControlError, JobKey, JobType
from jobtui.support import Options, refusal
from jobtui.units import parse_bandwidth


class Controls:
    """Mixed into JobMonitor, which sets these up."""

    options: Options
    history: History | None
    control_timeout: float
    _q: queue.SimpleQueue[Item | None]
    _reg: Registry
    _lock: threading.RLock
    _hosts: dict[str, Host]
    _slots: dict[tuple[str, str], DomainSlot]

    def job(self, key: JobKey) -> Job | None:
        raise NotImplementedError

    def control(self, key: JobKey, op: ControlOp, **args: Any) -> str:
        """Run `op` now (blocking, bounded): call it from a worker thread."""
        op = ControlOp(op)
        job = self.job(key)
        if job is None:
            raise JobControlError(f"no such job: {key.name}")
        reason = refusal(job, op, self.options)
        if reason:
            raise JobControlError(reason)
        if op is ControlOp.DISMISS:
            return self._dismiss(job)
        with self._lock:
            host = self._hosts.get(job.host)
            slot = self._slots.get((job.host, key.domain_uuid))
            responsive = self._reg.is_responsive(job.host, key.domain_uuid)
        if host is None or host.state is not HostState.CONNECTED or slot is None:
            raise JobControlError(f"{job.host} is not connected")
        if responsive is False:
            stuck = slot.worker.stuck_for(time.monotonic())
            raise JobControlError(
                f"{job.domain} is not responding (its QEMU monitor has not answered for "
                f"{stuck:.0f} s); try again when it recovers"
            )
        if op is ControlOp.SET_SPEED:
            try:
                args["bandwidth"] = parse_bandwidth(args.get("bandwidth", ""))
            except ValueError as err:
                raise JobControlError(str(err)) from None
        if op is ControlOp.ABORT:
            # Noted before the call: the job's end (an event) can reach the dispatcher
            # before this thread returns, and must be read as the abort we asked for.
            self._on_dispatcher(lambda: self._reg.note_abort(key, True))
        ask_qemu = self.options.allow_qemu_monitor
        fut = slot.worker.submit(lambda: ctl.execute(slot.dom, job, op, args, ask_qemu=ask_qemu))
        try:
            msg = fut.result(timeout=self.control_timeout)
        except ctl.PostcopyNotAllowed:
            # libvirt's refusal is the only sign: remember it, stop offering postcopy.
            self._q.put(Call(lambda: self._reg.note_postcopy(key, "no")))
            raise
        except JobControlError:
            if op is ControlOp.ABORT:
                self._q.put(Call(lambda: self._reg.note_abort(key, False)))
            raise
        except TimeoutError:
            raise JobControlError(
                f"libvirt did not answer within {self.control_timeout:.0f} s; "
                f"the {op} may still happen"
            ) from None
        self._q.put(Call(lambda: self._reg.poke(key.host, key.domain_uuid)))
        return msg

    def _on_dispatcher(self, fn: Callable[[], Any], timeout: float = 2.0) -> None:
        """Run `fn` on the dispatcher thread and wait (bounded) until it ran."""
        done = threading.Event()

        def run() -> None:
            try:
                fn()
            finally:
                done.set()

        self._q.put(Call(run))
        done.wait(timeout)

    def _dismiss(self, job: Job) -> str:
        # False: another process dismissed it since we read the history (never recorded:
        # a blockdev-create, which only this process knew).
        gone = self.history is not None and not self.history.dismiss(job.key)
        self._on_dispatcher(lambda: self._reg.dismiss(job.key), timeout=5.0)
        if gone and job.type is not JobType.BLOCKDEV_CREATE:
            return f"{job.name} on {job.domain} was already gone from the history"
        return f"dismissed {job.name} on {job.domain}"
