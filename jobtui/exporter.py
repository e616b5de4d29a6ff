"""`jobtui exporter`: the engine's snapshot as Prometheus metrics, and nothing else.

A custom collector reads the job source (a `JobMonitor`) when Prometheus scrapes: there is
no per-event bookkeeping to drift from what the engine knows. The HTTP side answers GET and
HEAD on /metrics (and a pointer at /); every other method is 405. Nothing here holds or
reaches a control call: the collector sees only `hosts()`, `domains()` and `jobs()`.

Engine side: no Textual, and no libvirt either (the monitor is handed in).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from jobtui.inventory import short_name
from jobtui.model import SAME_RUN_SECONDS, Domain, Host, HostState, Job

# A job that finished this recently is exported even before the history lists it: the
# engine records it just after it lands in the snapshot (or queues it behind a lock).
RECORD_GRACE = 10.0

JOB_LABELS = ("host", "host_name", "domain", "job", "type")
HOST_LABELS = ("host", "host_name")
DOMAIN_LABELS = ("host", "host_name", "domain")


class JobView(Protocol):
    """What the exporter reads: the read side of a JobSource, nothing that controls."""

    def hosts(self) -> list[Host]: ...

    def domains(self) -> list[Domain]: ...

    def jobs(self, *, include_finished: bool = True) -> list[Job]: ...


class KeptJobs(Protocol):
    """The history: which finished jobs are still kept (another process may dismiss)."""

    def jobs(self) -> list[Job]: ...


def exported_jobs(jobs: Iterable[Job], kept: Iterable[Job] | None, now: float) -> list[Job]:
    """The jobs to export: one per (host, domain, job name), so every series is unique.

    - A finished job counts only while the history keeps it (`kept`; None: no history, all
      count), or for RECORD_GRACE after it ended. A `jobtui dismiss` elsewhere ends its
      series at the next scrape: that is how an operator clears a failed-job alert.
    - A newer run of the same job name on the same domain replaces an older one: the active
      run if there is one, else the one started last (the history still has the others).
    """
    runs: dict[tuple[str, str, str], list[tuple[float, float]]] | None = None
    if kept is not None:
        runs = {}
        for k in kept:
            runs.setdefault((k.host, k.key.domain_uuid, k.name), []).append(
                (k.key.started, k.finished or 0.0)
            )

    def still_kept(job: Job) -> bool:
        if runs is None or job.state.active:
            return True
        if job.finished is not None and now - job.finished < RECORD_GRACE:
            return True
        for started, finished in runs.get((job.host, job.key.domain_uuid, job.name), ()):
            if started == job.key.started:
                return True
            if job.finished is not None and abs(finished - job.finished) < SAME_RUN_SECONDS:
                return True
        return False

    best: dict[tuple[str, str, str], Job] = {}
    for job in jobs:
        if not still_kept(job):
            continue
        ident = (job.host, job.domain, job.name)
        other = best.get(ident)
        if other is None or (job.state.active, job.started) > (other.state.active, other.started):
            best[ident] = job
    return sorted(best.values(), key=lambda j: (j.host, j.domain, j.name))


@dataclass
class _Families:
    state: GaugeMetricFamily
    current: GaugeMetricFamily
    end: GaugeMetricFamily
    rate: GaugeMetricFamily
    bandwidth: GaugeMetricFamily
    stalled: GaugeMetricFamily
    stale: GaugeMetricFamily
    sampled: GaugeMetricFamily
    started: GaugeMetricFamily
    finished: GaugeMetricFamily
    host_up: GaugeMetricFamily
    responsive: GaugeMetricFamily

    @classmethod
    def new(cls) -> _Families:
        def job(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(f"jobtui_job_{name}", doc, labels=JOB_LABELS)

        return cls(
            state=GaugeMetricFamily(
                "jobtui_job_state",
                "1 for each job with its current state in the label state (running, ready, "
                "paused, orphaned; completed, failed, aborted, unknown while kept)",
                labels=(*JOB_LABELS, "state"),
            ),
            current=job("current_bytes", "Progress: bytes done, as libvirt reports it"),
            end=job("end_bytes", "Progress: bytes to do in all, as libvirt reports it"),
            rate=job(
                "rate_bytes_per_second",
                "Bytes/s over the recent samples; absent when unknown or the figures are stale",
            ),
            bandwidth=job(
                "bandwidth_bytes_per_second", "The job's bandwidth limit; absent when unlimited"
            ),
            stalled=job("stalled", "1 when the job makes no headway (see docs/exporter.md)"),
            stale=job("stale", "1 when the figures are not current (domain or host not answering)"),
            sampled=job(
                "sampled_timestamp_seconds", "When libvirt last answered with these figures"
            ),
            started=job("started_timestamp_seconds", "When the job started (or was first seen)"),
            finished=job("finished_timestamp_seconds", "When the job ended; absent while active"),
            host_up=GaugeMetricFamily(
                "jobtui_host_up", "1 while the connection to the host is up", labels=HOST_LABELS
            ),
            responsive=GaugeMetricFamily(
                "jobtui_domain_responsive",
                "1 while the domain's QEMU answers, 0 while its figures are stale",
                labels=DOMAIN_LABELS,
            ),
        )

    def all(self) -> list[Metric]:
        return list(vars(self).values())


class JobCollector:
    """A prometheus_client collector over a job source's snapshot, read at scrape time."""

    def __init__(
        self,
        source: JobView,
        *,
        names: Mapping[str, str] | None = None,
        history: KeptJobs | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._source = source
        self._names = dict(names or {})
        self._history = history
        self._clock = clock

    def name_of(self, uri: str) -> str:
        return self._names.get(uri) or short_name(uri)

    def describe(self) -> Iterator[Metric]:
        # Given, so registering does not run a scrape to learn the names.
        yield from _Families.new().all()

    def collect(self) -> Iterator[Metric]:
        f = _Families.new()
        for h in self._source.hosts():
            up = 1.0 if h.state is HostState.CONNECTED else 0.0
            f.host_up.add_metric([h.uri, self.name_of(h.uri)], up)
        seen: set[tuple[str, str]] = set()
        for d in sorted(self._source.domains(), key=lambda d: (d.host, d.name, not d.responsive)):
            if (d.host, d.name) in seen:  # one name, two UUIDs: a domain being redefined
                continue
            seen.add((d.host, d.name))
            f.responsive.add_metric(
                [d.host, self.name_of(d.host), d.name], 1.0 if d.responsive else 0.0
            )
        kept = self._history.jobs() if self._history is not None else None
        jobs = self._source.jobs(include_finished=True)
        for j in exported_jobs(jobs, kept, self._clock()):
            labels = [j.host, self.name_of(j.host), j.domain, j.name, j.type.value]
            f.state.add_metric([*labels, j.state.value], 1.0)
            f.stalled.add_metric(labels, 1.0 if j.stalled else 0.0)
            f.stale.add_metric(labels, 1.0 if j.stale else 0.0)
            f.started.add_metric(labels, j.started)
            optional: list[tuple[GaugeMetricFamily, float | None]] = [
                (f.current, j.current),
                (f.end, j.end),
                (f.rate, j.rate),
                (f.bandwidth, j.bandwidth),
                (f.sampled, j.sampled),
                (f.finished, j.finished),
            ]
            for family, value in optional:
                if value is not None:
                    family.add_metric(labels, float(value))
        yield from f.all()


def make_registry() -> CollectorRegistry:
    """A registry with the process' own figures (memory, CPU, open files); the
    JobCollector is registered on it once the monitor exists."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


# --- HTTP ---------------------------------------------------------------------------------


class ListenError(ValueError):
    """A --listen value that is not ADDR:PORT; str() is one line for a person."""


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:9870`, `[::1]:9870`, `localhost:9870` → (address, port).

    The address is required: the exporter binds to exactly what it is given
    (`0.0.0.0:PORT` or `[::]:PORT` to listen everywhere). Port 0 picks a free one."""
    text = text.strip()
    if text.startswith("["):
        addr, sep, port = text[1:].partition("]:")
        if not sep:
            raise ListenError(f"--listen {text!r}: expected [IPV6]:PORT")
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise ListenError(f"--listen {text!r}: {addr!r} is not an IPv6 address") from None
    else:
        addr, sep, port = text.rpartition(":")
        if not sep or not addr:
            raise ListenError(
                f"--listen {text!r}: expected ADDR:PORT (127.0.0.1:9870; 0.0.0.0:9870 for all)"
            )
        if ":" in addr:
            raise ListenError(f"--listen {text!r}: put an IPv6 address in brackets: [{addr}]:PORT")
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ListenError(f"--listen {text!r}: {port!r} is not a port number (0-65535)")
    return addr, int(port)


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # scrapes every 15 s would fill a log with nothing


def _front(metrics: Callable[..., Any]) -> Callable[..., Any]:
    """GET/HEAD /metrics; a pointer at /; 405 for any other method; 404 elsewhere."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", READ_ONLY, method)
        if path == "/metrics":
            # prometheus_client's app answers GET only: a HEAD is its GET without the body.
            out = metrics({**environ, "REQUEST_METHOD": "GET"}, start_response)
            return [] if method == "HEAD" else out
        if path == "/":
            return _reply(start_response, "200 OK", INDEX, method, "text/html")
        return _reply(start_response, "404 Not Found", NOT_FOUND, method)

    return app


READ_ONLY = b"jobtui exporter is read-only: only GET /metrics\n"
INDEX = b'<html><body><a href="/metrics">jobtui metrics</a></body></html>\n'
NOT_FOUND = b"not found: the metrics are at /metrics\n"


def _reply(
    start_response: Callable[..., Any],
    status: str,
    body: bytes,
    method: str,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    if status.startswith("405"):
        headers.append(("Allow", "GET, HEAD"))
    start_response(status, headers)
    return [] if method == "HEAD" else [body]


def _server_class(addr: str, port: int) -> type[WSGIServer]:
    try:
        infos = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ListenError(
            f"--listen {addr}:{port}: cannot resolve {addr!r}: {err.strerror}"
        ) from None
    family = infos[0][0]

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        address_family = family

    return Server


class MetricsServer:
    """Bound at construction (an address in use fails here, before any host is opened)."""

    def __init__(self, addr: str, port: int, registry: CollectorRegistry) -> None:
        self._httpd = make_server(
            addr,
            port,
            _front(make_wsgi_app(registry)),
            server_class=_server_class(addr, port),
            handler_class=_Quiet,
        )
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="jobtui exporter http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        name = host.decode() if isinstance(host, bytes) else str(host)
        shown = f"[{name}]" if ":" in name else name
        return f"http://{shown}:{port}/metrics"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(5)
        self._httpd.server_close()
