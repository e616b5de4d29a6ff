"""JobMonitor: the proposal's job API over today's libvirt, for many connections.

Threads:
- libvirt's event loop (callbacks only queue records),
- one per connection (open, reconnect),
- one per domain (every call that may touch the QEMU monitor; see worker.py),
- the dispatcher: the only writer of the registry, which turns samples and
  events into JOB_STATE events for subscribers and schedules the polls.

Polling follows the jobs: a domain with an active job is sampled about once
a second (faster for the job on screen), an idle one every `idle_interval`
(`idle_interval_events`, 15x longer by default, where QEMU's job events are on: they
announce a new job within tens of milliseconds, and at 1,000 domains polling every 10 s
was most of the engine's idle cost, measured in bench/bench_fleet.py).
On read-write connections QEMU's job events make a new job appear within tens
of milliseconds; polling remains the fallback and the check.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection
from typing import Any

import libvirt

from jobtui.engine.connection import HostConnection, is_local_driver, libvirt_reason
from jobtui.engine.dispatch import (
    CONN_ERRORS,
    Call,
    DomainList,
    DomainSlot,
    HostDown,
    HostUp,
    Item,
    PollFailed,
    Sampled,
    alive,
    one_per_run,
)
from jobtui.engine.early_open import EarlyOpen
from jobtui.engine.events import LibvirtEvent
from jobtui.engine.history import History
from jobtui.engine.monitor_control import Controls
from jobtui.engine.nudge import Nudger
from jobtui.engine.registry import Registry
from jobtui.engine.sample import quick_sample, sample_domain
from jobtui.engine.worker import CallPool, DomainWorker
from jobtui.model import (
    Domain,
    EngineEvent,
    Host,
    HostChanged,
    HostState,
    Job,
    JobKey,
    JobType,
)
from jobtui.support import Options

Subscriber = Callable[[EngineEvent], None]
log = logging.getLogger("jobtui.engine")


class JobMonitor(Controls):
    def __init__(
        self,
        uris: list[str],
        *,
        options: Options | None = None,
        history: History | None = None,
        idle_interval: float = 2.0,
        idle_interval_events: float | None = None,
        active_interval: float = 1.0,
        focus_interval: float = 0.25,
        stuck_after: float = 3.0,
        host_stuck_after: float = 10.0,
        control_timeout: float = 15.0,
        qemu_events: bool = True,
        keepalive: tuple[int, int] | None = None,
        stall_after: float = 150.0,
        stall_passes: int = 10,
        frozen_after: float = 30.0,
        only_domains: Collection[str] | None = None,
        early: EarlyOpen | None = None,
        ends_with_process: bool = False,
    ) -> None:
        """`stall_after` (seconds) and `stall_passes`: a job whose remaining data has
        not shrunk for that long, or a migration whose last `stall_passes` passes
        did not start with less to send, is flagged stalled; so is one that moves no
        byte at all for `frozen_after` seconds. `early`: connections
        opened and listed before the engine was built, adopted as its first.
        `ends_with_process`: the process ends when this engine stops (the `jobtui`
        commands, the TUI's among them): see stop()."""
        if not uris:
            raise ValueError("at least one libvirt URI is needed")
        self.options = options or Options()
        self.idle_interval = idle_interval
        # Where QEMU's job events announce new jobs, idle domains need polling only
        # as the check: the cost then follows the active jobs, not every disk.
        self.idle_interval_events = (
            idle_interval_events if idle_interval_events is not None else 15 * idle_interval
        )
        self.active_interval = active_interval
        self.focus_interval = focus_interval
        self.stuck_after = stuck_after
        self.host_stuck_after = host_stuck_after
        self.control_timeout = control_timeout
        self.history = history
        # Names or UUIDs of the only domains to watch (a command about one domain); None: all.
        self._only = (
            frozenset([*only_domains, *(d.lower() for d in only_domains)])
            if only_domains is not None
            else None
        )
        self.errors: list[str] = []  # the last internal errors (logged), for tests and --debug
        self._q: queue.SimpleQueue[Item | None] = queue.SimpleQueue()
        # Threads for libvirt calls: as many as calls run or hang at once, not one per domain.
        self._pool = CallPool("jobtui call")
        self._reg = Registry(
            stall_after=stall_after,
            stall_passes=stall_passes,
            frozen_after=frozen_after,
            qemu_monitor=self.options.allow_qemu_monitor,
        )
        self._lock = threading.RLock()  # guards the snapshots readers see
        self._subs: list[Subscriber] = []
        self._hosts: dict[str, Host] = {}
        self._conns: dict[str, HostConnection] = {}
        self._slots: dict[tuple[str, str], DomainSlot] = {}
        self._host_workers: dict[str, DomainWorker] = {}
        # Wake-up calls for a remote connection whose hung call holds the others (nudge.py).
        self._nudgers = {u: Nudger(u) for u in uris if not is_local_driver(u)}
        self._host_next: dict[str, float] = {}
        self._listed: dict[str, threading.Event] = {}
        self._focus: JobKey | None = None
        self._focus_seen: JobKey | None = None  # the focus the last schedule planned for
        self._next_wake = 0.0  # monotonic time the next domain poll is due
        self._stop = threading.Event()
        self._started_at = time.monotonic()
        self._early = early
        self.ends_with_process = ends_with_process
        for uri in dict.fromkeys(uris):
            self._hosts[uri] = Host(uri, HostState.CONNECTING, readonly=self.options.readonly)
            self._listed[uri] = threading.Event()
            self._conns[uri] = HostConnection(
                uri,
                readonly=self.options.readonly,
                post=self._q.put,
                on_up=lambda c: self._q.put(HostUp(c.uri)),
                on_down=lambda c, why: self._q.put(HostDown(c.uri, why)),
                keepalive=keepalive,
                qemu_events=qemu_events,
                early=functools.partial(early.take, uri) if early is not None else None,
            )
        if history is not None:
            self._reg.load_history(j for j in history.jobs() if j.host in self._hosts)
        self._dispatcher = threading.Thread(target=self._run, name="jobtui dispatcher", daemon=True)

    # --- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        if self._early is not None:
            # The early listings are the engine's first: what was on screen stays there,
            # and so does the host's state (its connection is open; HostUp follows as
            # soon as the connection's thread has adopted it).
            with self._lock:
                for uri in self._hosts:
                    opened = self._early.first_list(uri)
                    if opened is not None:
                        self._set_host(uri, HostState.CONNECTED, "")
                        self._domain_list(DomainList(uri, opened.domains))
        self._dispatcher.start()
        for c in self._conns.values():
            c.start()

    def stop(self, *, wait_calls: bool | None = None) -> None:
        """`wait_calls=False` (the default for an engine that ends with its process) for
        a process about to end: calls in flight are not waited for and connections not
        closed; the process's exit takes them. A TUI quit beside a host that hangs (its
        open or a call) took 5 s waiting for them."""
        if wait_calls is None:
            wait_calls = not self.ends_with_process
        self._stop.set()
        self._q.put(None)
        self._dispatcher.join(timeout=5 if wait_calls else 2)
        workers = [s.worker for s in self._slots.values()] + list(self._host_workers.values())
        for w in workers:
            w.stop()
        if not wait_calls:
            for c in self._conns.values():
                c.abandon()
            return
        # Closing a connection while a call runs on it crashes libvirt-python:
        # wait (bounded) for our calls, and leave a stuck connection open.
        deadline = time.monotonic() + 3.0
        idle = all([w.join(max(0.0, deadline - time.monotonic())) for w in workers])
        for c in self._conns.values():
            c.stop(close=idle)

    def __enter__(self) -> JobMonitor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_ready(self, timeout: float = 10.0, settle_after: float | None = None) -> bool:
        """Until every host answered (or failed) and every domain was sampled once.

        With `settle_after`, a domain that gave its first look (state, XML) but whose
        QEMU has not answered for that long counts as settled: it is marked unresponsive
        and its jobs stale, so a command can answer with what it knows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                hosts = list(self._hosts.values())
                slots = list(self._slots.values())
            settled = all(
                h.state is HostState.DISCONNECTED or self._listed[h.uri].is_set() for h in hosts
            )
            mono = time.monotonic()
            stuck = [
                s
                for s in slots
                if settle_after is not None
                and not s.polled_once.is_set()
                and s.quick_seen.is_set()
                and s.worker.stuck_for(mono) >= settle_after
            ]
            if settled and all(
                s.polled_once.is_set() or s in stuck
                for s in slots
                if self._hosts[s.host].state is HostState.CONNECTED
            ):
                for s in stuck:
                    self._on_dispatcher(
                        functools.partial(self._reg.set_responsive, s.host, s.uuid, False)
                    )
                return True
            time.sleep(0.02)
        return False

    # --- the proposal's API ----------------------------------------------------------

    def hosts(self) -> list[Host]:
        with self._lock:
            return list(self._hosts.values())

    def domains(self) -> list[Domain]:
        with self._lock:
            return self._reg.domain_snapshots()

    def jobs(self, *, include_finished: bool = True, domain: str | None = None) -> list[Job]:
        with self._lock:
            out = self._reg.active_jobs()
            if include_finished:
                out += one_per_run(self._reg.finished_jobs())
        if domain is not None:
            out = [j for j in out if domain in (j.domain, j.key.domain_uuid)]
        return sorted(out, key=lambda j: (j.state.finished, j.host, j.domain, j.name, j.started))

    def job(self, key: JobKey) -> Job | None:
        with self._lock:
            return self._reg.job(key)

    def find(self, domain: str, name: str) -> Job | None:
        """A job by domain (name or uuid) and job name; the active one, else the latest."""
        cands = [j for j in self.jobs(domain=domain) if j.name == name]
        active = [j for j in cands if j.state.active]
        pool = active or cands
        return max(pool, key=lambda j: j.started) if pool else None

    def job_xml(self, key: JobKey) -> str:
        from jobtui import jobxml

        job = self.job(key)
        if job is None:
            raise KeyError(f"no job {key.name} on that domain")
        return jobxml.to_xml(job)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subs.append(callback)

        def unsubscribe() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._subs.remove(callback)

        return unsubscribe

    def focus(self, key: JobKey | None) -> None:
        """The job on screen is sampled faster."""
        self._focus = key

    def call_threads(self) -> tuple[int, int]:
        """(threads alive now, most alive at once) in the pool that runs libvirt calls."""
        return self._pool.threads, self._pool.peak

    def call_counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        with self._lock:
            counters = [s.counter for s in self._slots.values()]
        for c in counters:
            for k, v in list(c.counts.items()):
                total[k] = total.get(k, 0) + v
        return total

    # --- the dispatcher --------------------------------------------------------------

    def _emit(self, events: list[EngineEvent]) -> None:
        for e in events:
            for cb in list(self._subs):
                try:
                    cb(e)
                except Exception:  # noqa: BLE001, S112 - one bad subscriber must not stop the engine
                    continue

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._q.get(timeout=0.05)
                if item is None:
                    return
            except queue.Empty:
                item = None  # nothing came: time still passes
            with self._lock:
                if item is not None:
                    self._safe(self._handle, item)
                    # Drain what else is waiting: one pass, one batch of emissions.
                    for _ in range(500):
                        try:
                            more = self._q.get_nowait()
                        except queue.Empty:
                            break
                        if more is None:
                            return
                        self._safe(self._handle, more)
                self._safe(self._reg.tick, time.time())
                self._safe(self._watchdog)
                self._safe(self._schedule, time.monotonic())
                out, finished = self._reg.drain()
                forgotten, self._reg.forgotten = self._reg.forgotten, []
            if self.history is not None:
                for key in forgotten:
                    self.history.forget(key)
            for job in finished:
                if self.history is not None and job.type is not JobType.BLOCKDEV_CREATE:
                    with contextlib.suppress(Exception):
                        self.history.record(job)
            self._emit(out)

    def _safe(self, fn: Callable[..., Any], *args: Any) -> None:
        """A bug on one event must not stop the engine: log it, count it, go on."""
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001
            line = f"{type(err).__name__}: {err}"
            if line not in self.errors:  # once per distinct error: a tick runs 20 times a second
                log.exception("jobtui engine: %s failed on %r", getattr(fn, "__name__", fn), args)
            self.errors.append(line)
            del self.errors[:-20]

    def _handle(self, item: Item) -> None:
        if isinstance(item, LibvirtEvent):
            self._reg.apply_event(item)
            if (item.host, item.uuid) not in self._slots:
                # A domain we have not listed (a migration's destination): list now.
                self._host_next[item.host] = 0.0
        elif isinstance(item, Sampled):
            slot = self._slots.get((item.host, item.sample.uuid))
            self._reg.apply_sample(item.host, item.sample)
            if slot is not None:
                slot.quick_seen.set()
                if item.sample.full:
                    slot.polled_once.set()
                if self._reg.has_jobs(item.host, item.sample.uuid):
                    # The poll was scheduled as an idle domain's: a job it found is
                    # followed at the active pace from now on.
                    due = time.monotonic() + self.active_interval
                    slot.next_due = min(slot.next_due, due)
                    self._next_wake = min(self._next_wake, slot.next_due)
            if item.sample.gone:
                self._drop_slot(item.host, item.sample.uuid)
        elif isinstance(item, PollFailed):
            self._poll_failed(item)
        elif isinstance(item, DomainList):
            self._domain_list(item)
        elif isinstance(item, HostUp):
            self._set_host(item.host, HostState.CONNECTED, "")
            self._reg.host_up(item.host, qemu_events=self._conns[item.host].qemu_events_active)
            self._host_next[item.host] = 0.0
        elif isinstance(item, HostDown):
            self._set_host(item.host, HostState.DISCONNECTED, item.reason)
            self._reg.host_lost(item.host)
            self._listed[item.host].set()
            # Workers may be stuck in calls on the dead connection: fresh ones
            # come with the next domain list. Jobs stay in the registry.
            for key in [k for k in self._slots if k[0] == item.host]:
                self._drop_slot(*key)
            w = self._host_workers.pop(item.host, None)
            if w is not None:
                w.stop()
        elif isinstance(item, Call):
            item.fn()

    def _set_host(self, uri: str, state: HostState, error: str) -> None:
        old = self._hosts[uri]
        new = Host(uri, state, readonly=old.readonly, error=error)
        if new != old:
            self._hosts[uri] = new
            self._reg.announce(HostChanged(new))

    def _poll_failed(self, f: PollFailed) -> None:
        if f.code in CONN_ERRORS:
            self._conns[f.host].lost(f.reason)
            return
        if f.code == libvirt.VIR_ERR_NO_DOMAIN:
            self._reg.remove_domain(f.host, f.uuid, time.time())
            self._drop_slot(f.host, f.uuid)
            return
        if f.code == libvirt.VIR_ERR_OPERATION_TIMEOUT:
            self._reg.set_responsive(f.host, f.uuid, False)
        if f.code == libvirt.VIR_ERR_NO_SUPPORT:
            # A driver without libvirt's job API (test:///, lxc:///): the domain has
            # answered all it can, and the host says why no job will ever show.
            slot = self._slots.get((f.host, f.uuid))
            if slot is not None:
                slot.polled_once.set()
            self._set_host(f.host, HostState.CONNECTED, f"this driver has no job API: {f.reason}")

    def _drop_slot(self, host: str, uuid: str) -> None:
        slot = self._slots.pop((host, uuid), None)
        if slot is not None:
            slot.worker.stop()

    def _domain_list(self, item: DomainList) -> None:
        seen = set()
        for uuid, name, dom in item.domains:
            seen.add(uuid)
            if self._only is not None and name not in self._only and uuid not in self._only:
                continue  # a command about one domain does not poll (or hang on) the others
            slot = self._slots.get((item.host, uuid))
            if slot is None:
                self._slots[(item.host, uuid)] = DomainSlot(item.host, uuid, dom, self._pool)
                self._next_wake = 0.0  # a new domain is due at once
                self._reg.domain_listed(item.host, uuid, name)
            else:
                slot.dom = dom  # a reconnect gives new handles
        for host, uuid in list(self._slots):
            if host == item.host and uuid not in seen:
                self._reg.remove_domain(host, uuid, time.time())
                self._drop_slot(host, uuid)
        self._reg.end_absent(item.host, seen, time.time())
        self._listed[item.host].set()

    def _watchdog(self) -> None:
        mono = time.monotonic()
        running: dict[str, list[float]] = {uri: [] for uri in self._nudgers}
        for uri, w in list(self._host_workers.items()):
            # libvirt's keepalive does not always fire while several calls wait on a
            # stopped daemon (measured: docs/decisions.md); this is the backstop.
            if w.stuck_for(mono) > self.host_stuck_after:
                self._conns[uri].lost(
                    f"libvirtd is not answering (no reply for {self.host_stuck_after:.0f} s)"
                )
            if w.busy_since is not None and uri in running:
                running[uri].append(w.busy_since)
        for slot in self._slots.values():
            since = slot.worker.busy_since
            if since is None:
                continue
            if slot.host in running:
                running[slot.host].append(since)
            # Back to responsive only when a full sample answers (Registry.apply_sample):
            # a call that gave up after libvirt's 30 s lock wait proves nothing.
            if self._reg.poll_held(slot.host, slot.uuid, mono - since, time.time()):
                continue  # QEMU's savevm holds the monitor: shown as its snapshot job
            if mono - since > self.stuck_after and self._reg.is_responsive(slot.host, slot.uuid):
                self._reg.set_responsive(slot.host, slot.uuid, False)
        for uri, starts in running.items():
            self._nudgers[uri].check(self._conns[uri].conn, starts, mono)

    def _schedule(self, mono: float) -> None:
        for uri, host in self._hosts.items():
            if host.state is not HostState.CONNECTED:
                continue
            if mono >= self._host_next.get(uri, 0.0):
                self._host_next[uri] = mono + self.idle_interval
                self._list_domains(uri)
        pokes = self._reg.take_pokes()
        focus = self._focus
        if not pokes and focus == self._focus_seen and mono < self._next_wake:
            # Nothing is due: an idle fleet's loop does not scan every domain 20 times a
            # second (1,000 domains: 1.35 % of a core in bench/bench_fleet.py's profile).
            return
        self._focus_seen = focus
        wake = mono + self.idle_interval
        for key, slot in self._slots.items():
            if self._hosts[slot.host].state is not HostState.CONNECTED:
                continue
            if key in pokes:
                slot.next_due = min(slot.next_due, mono)
            if not slot.worker.poll_pending and mono >= slot.next_due:
                self._submit_poll(slot, mono, focus)
            wake = min(wake, slot.next_due)
        self._next_wake = wake

    def _list_domains(self, uri: str) -> None:
        conn = self._conns[uri].conn
        if conn is None:
            return
        w = self._host_workers.get(uri)
        if w is None:
            w = self._host_workers[uri] = DomainWorker(f"{uri} domains", self._pool)
        if w.poll_pending:
            return
        w.poll_pending = True

        def run() -> None:
            try:
                doms = conn.listAllDomains(0)
                self._q.put(DomainList(uri, tuple((d.UUIDString(), d.name(), d) for d in doms)))
            except libvirt.libvirtError as err:
                if err.get_error_code() in CONN_ERRORS or not alive(conn):
                    self._conns[uri].lost(libvirt_reason(err), conn)
            finally:
                w.poll_pending = False

        w.submit(run)

    def _submit_poll(self, slot: DomainSlot, mono: float, focus: JobKey | None) -> None:
        plan = self._reg.poll_plan(slot.host, slot.uuid)
        if focus is not None and focus in plan.jobs:
            interval = self.focus_interval
        elif plan.jobs:
            interval = self.active_interval
        else:
            interval = self.idle_interval_events if plan.qemu_events else self.idle_interval
        slot.next_due = mono + interval
        slot.idle_polls = 0 if plan.jobs else slot.idle_polls + 1
        first = not slot.polled_once.is_set()
        read_xml = first or plan.read_xml or slot.idle_polls % 15 == 1
        want_completed = plan.want_completed
        disks = plan.disks
        # QEMU's own job list (opt-in: it taints): at the first look after every
        # (re)connect, and while a job only QEMU can see is tracked.
        ask_qemu = self.options.allow_qemu_monitor and (first or plan.qemu_only)
        slot.worker.poll_pending = True
        host, uuid, dom, counter = slot.host, slot.uuid, slot.dom, slot.counter

        def poll() -> None:
            try:
                if first:
                    # What answers without QEMU first: a stopped QEMU or another job's
                    # lock must not hide the domain, or a mirror its XML shows.
                    quick = quick_sample(dom, read_xml=True, counter=counter, now=time.time())
                    self._q.put(Sampled(host, quick))
                    if quick.gone:
                        return
                s = sample_domain(
                    dom,
                    read_xml=read_xml,
                    disks=disks,
                    want_completed=want_completed,
                    counter=counter,
                    now=time.time(),
                    ask_qemu=ask_qemu,
                )
                self._q.put(Sampled(host, s))
            except libvirt.libvirtError as err:
                code = err.get_error_code()
                conn = self._conns[host].conn
                if dom.connect() is not conn:
                    return  # a call on a connection given up for dead, back late
                if conn is not None and not alive(conn):
                    code = libvirt.VIR_ERR_NO_CONNECT
                self._q.put(PollFailed(host, uuid, libvirt_reason(err), code))
            finally:
                slot.worker.poll_pending = False

        slot.worker.submit(poll)
