"""Test helpers around the lab: event recording and waiting, no mocks."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import libvirt


def wait_until(pred: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


class LibvirtEvents:
    """Records BLOCK_JOB_2 and JOB_COMPLETED as libvirt delivers them."""

    def __init__(self, conn: libvirt.virConnect) -> None:
        self.conn = conn
        self.block: list[tuple[str, str, int, int]] = []  # (domain, disk, type, status)
        self.completed: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

        def block(_c: Any, dom: Any, disk: str, typ: int, status: int, _o: Any) -> None:
            with self._lock:
                self.block.append((dom.name(), disk, typ, status))

        def completed(_c: Any, dom: Any, params: dict[str, Any], _o: Any) -> None:
            with self._lock:
                self.completed.append((dom.name(), dict(params)))

        self._ids = [
            conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, block, None),
            conn.domainEventRegisterAny(
                None, libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, completed, None
            ),
        ]

    def close(self) -> None:
        for i in self._ids:
            with contextlib.suppress(libvirt.libvirtError):
                self.conn.domainEventDeregisterAny(i)

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
