"""What libvirt's callbacks hand to the engine: small immutable records.

Callbacks run on libvirt's event-loop thread. They copy what they were given
into one of these (a virDomain's uuid and name are cached client-side, so no
RPC happens there) and queue it; the dispatcher does the thinking.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import libvirt


@dataclass(frozen=True)
class LibvirtEvent:
    host: str
    uuid: str
    domain: str
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class BlockJobEv(LibvirtEvent):
    disk: str = ""
    type: int = 0
    status: int = 0  # 0 completed, 1 failed, 2 canceled, 3 ready


@dataclass(frozen=True)
class JobCompletedEv(LibvirtEvent):
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class MigrationIterationEv(LibvirtEvent):
    iteration: int = 0


@dataclass(frozen=True)
class LifecycleEv(LibvirtEvent):
    event: int = 0
    detail: int = 0


@dataclass(frozen=True)
class DeviceRemovedEv(LibvirtEvent):
    alias: str = ""


@dataclass(frozen=True)
class DeviceAddedEv(LibvirtEvent):
    """A hot-plugged device: a disk the engine must read the XML again to poll."""

    alias: str = ""


@dataclass(frozen=True)
class QemuEv(LibvirtEvent):
    """A raw QEMU monitor event (JOB_STATUS_CHANGE, BLOCK_JOB_READY, MIGRATION ...)."""

    name: str = ""
    details: tuple[tuple[str, Any], ...] = ()

    def get(self, key: str, default: Any = None) -> Any:
        return dict(self.details).get(key, default)


Post = Callable[[LibvirtEvent], None]


def register_domain_events(conn: libvirt.virConnect, host: str, post: Post) -> list[int]:
    """Register the domain events the engine uses; returns callback ids."""

    def block_job(_c: Any, dom: Any, disk: str, typ: int, status: int, _o: Any) -> None:
        post(BlockJobEv(host, dom.UUIDString(), dom.name(), disk=disk, type=typ, status=status))

    def job_completed(_c: Any, dom: Any, params: dict[str, Any], _o: Any) -> None:
        post(JobCompletedEv(host, dom.UUIDString(), dom.name(), params=tuple(params.items())))

    def iteration(_c: Any, dom: Any, it: int, _o: Any) -> None:
        post(MigrationIterationEv(host, dom.UUIDString(), dom.name(), iteration=it))

    def lifecycle(_c: Any, dom: Any, event: int, detail: int, _o: Any) -> None:
        post(LifecycleEv(host, dom.UUIDString(), dom.name(), event=event, detail=detail))

    def removed(_c: Any, dom: Any, alias: str, _o: Any) -> None:
        post(DeviceRemovedEv(host, dom.UUIDString(), dom.name(), alias=alias))

    def added(_c: Any, dom: Any, alias: str, _o: Any) -> None:
        post(DeviceAddedEv(host, dom.UUIDString(), dom.name(), alias=alias))

    pairs = [
        (libvirt.VIR_DOMAIN_EVENT_ID_BLOCK_JOB_2, block_job),
        (libvirt.VIR_DOMAIN_EVENT_ID_JOB_COMPLETED, job_completed),
        (libvirt.VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, iteration),
        (libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, removed),
        (libvirt.VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, added),
    ]
    return [conn.domainEventRegisterAny(None, eid, cb, None) for eid, cb in pairs]


QEMU_EVENTS = (
    "JOB_STATUS_CHANGE",
    "BLOCK_JOB_READY",
    "MIGRATION",
    "MIGRATION_PASS",
    "DUMP_COMPLETED",
    "BLOCK_JOB_COMPLETED",  # its "error" is the text libvirt's block job event lacks
    "BLOCK_JOB_CANCELLED",  # how a job only QEMU knows ended, when another client ends it
)


def register_qemu_events(conn: libvirt.virConnect, host: str, post: Post) -> list[int]:
    """QEMU's own job events: a job started by any client shows up within tens of ms.

    Needs a read-write connection (libvirt refuses the registration on a read-only one).
    Unlike a monitor command it does not taint the domain: `dom.messages()` stays the same.
    """
    import libvirt_qemu

    def qemu_event(
        _c: Any, dom: Any, event: str, secs: int, micros: int, details: str, _o: Any
    ) -> None:
        try:
            data = json.loads(details) if details else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        post(
            QemuEv(
                host,
                dom.UUIDString(),
                dom.name(),
                time=secs + micros / 1e6,
                name=event,
                details=tuple(sorted(data.items())),
            )
        )

    return [
        libvirt_qemu.qemuMonitorEventRegister(conn, None, ev, qemu_event, None, 0)
        for ev in QEMU_EVENTS
    ]
