"""Test helpers around the lab: event recording and waiting, no mocks."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import libvirt

from jobtui.engine.connection import fanout_for
from jobtui.engine.events import BlockJobEv, JobCompletedEv


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class LibvirtEvents:
    """Records BLOCK_JOB_2 and JOB_COMPLETED as libvirt delivers them.

    libvirt tracks one callback per event and connection, and the lab's embedded
    connection is shared with the engine, so this listens through the same
    fan-out the engine uses; the records are libvirt's own arguments.
    """

    def __init__(self, conn: libvirt.virConnect, uri: str) -> None:
        self.block: list[tuple[str, str, int, int]] = []  # (domain, disk, type, status)
        self.completed: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._fan = fanout_for(conn, uri)
        self._fan.add(self._on, qemu=False)

    def _on(self, e: object) -> None:
        with self._lock:
            if isinstance(e, BlockJobEv):
                self.block.append((e.domain, e.disk, e.type, e.status))
            elif isinstance(e, JobCompletedEv):
                self.completed.append((e.domain, dict(e.params)))

    def close(self) -> None:
        self._fan.remove(self._on)

    def wait_block(self, domain: str, disk: str, status: int, timeout: float = 60.0) -> None:
        wait_until(
            lambda: any((d, k, s) == (domain, disk, status) for d, k, _t, s in list(self.block)),
            timeout,
            f"BLOCK_JOB_2 status {status} for {domain}/{disk} (seen: {self.block})",
        )

    def wait_completed(self, domain: str, timeout: float = 60.0) -> dict[str, Any]:
        found = wait_until(
            lambda: [p for d, p in list(self.completed) if d == domain],
            timeout,
            f"JOB_COMPLETED for {domain}",
        )
        return found[-1]
