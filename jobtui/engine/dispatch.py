"""What the monitor's dispatcher works with: the items its queue carries from the
libvirt threads and the call pool, each domain's slot (its lane and poll schedule),
and two small rules the monitor applies to what it reads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import libvirt

from jobtui.engine.events import LibvirtEvent
from jobtui.engine.sample import CallCounter, DomainSample
from jobtui.engine.worker import CallPool, DomainWorker
from jobtui.model import SAME_RUN_SECONDS, Job

# libvirt error codes that mean the connection itself is gone.
CONN_ERRORS = {
    libvirt.VIR_ERR_SYSTEM_ERROR,
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
}


@dataclass(frozen=True)
class Sampled:
    host: str
    sample: DomainSample


@dataclass(frozen=True)
class PollFailed:
    host: str
    uuid: str
    reason: str
    code: int


@dataclass(frozen=True)
class HostUp:
    host: str


@dataclass(frozen=True)
class HostDown:
    host: str
    reason: str


@dataclass(frozen=True)
class DomainList:
    host: str
    domains: tuple[tuple[str, str, Any], ...]  # (uuid, name, virDomain)


@dataclass(frozen=True)
class Call:
    """Run `fn` on the dispatcher thread (registry access from other threads)."""

    fn: Callable[[], Any]


# What the dispatcher's queue carries (None: stop).
Item = LibvirtEvent | Sampled | PollFailed | HostUp | HostDown | DomainList | Call


class DomainSlot:
    def __init__(self, host: str, uuid: str, dom: Any, pool: CallPool) -> None:
        self.host = host
        self.uuid = uuid
        self.dom = dom
        self.worker = DomainWorker(f"{host} {uuid[:8]}", pool)
        self.counter = CallCounter()
        self.next_due = 0.0
        self.idle_polls = 0
        self.polled_once = threading.Event()
        self.quick_seen = threading.Event()  # the first look without the QEMU monitor came


def alive(conn: libvirt.virConnect) -> bool:
    """A keepalive timeout closes the connection; the error code alone does not say so."""
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        return False


def one_per_run(jobs: Iterable[Job]) -> list[Job]:
    """Finished jobs, without the copies of one run that another jobtui process
    recorded under its own first-sighting time (same name, same end)."""
    kept: dict[tuple[str, str, str], list[Job]] = {}
    for job in sorted(jobs, key=lambda j: j.started):
        runs = kept.setdefault((job.host, job.key.domain_uuid, job.name), [])
        if any(
            r.finished is not None
            and job.finished is not None
            and abs(r.finished - job.finished) < SAME_RUN_SECONDS
            for r in runs
        ):
            continue
        runs.append(job)
    return [j for runs in kept.values() for j in runs]
