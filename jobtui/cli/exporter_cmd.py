"""`jobtui exporter`: serve /metrics for Prometheus until SIGTERM or Ctrl-C.

The address is bound first, so a bad or busy one fails before any host is opened. Hosts
that do not connect are not an error here: they are `jobtui_host_up 0`, retried for as
long as the exporter runs.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from jobtui.cli.errors import CONNECTION, OK, USAGE, CliError
from jobtui.cli.session import close_monitor, open_history


def run_exporter(args: argparse.Namespace) -> int:
    from jobtui.engine.monitor import JobMonitor
    from jobtui.exporter import (
        JobCollector,
        ListenError,
        MetricsServer,
        make_registry,
        parse_listen,
    )
    from jobtui.support import Options

    if args.allow_qemu_monitor:
        raise CliError(USAGE, "the exporter never controls jobs: --allow-qemu-monitor has no use")
    try:
        addr, port = parse_listen(args.listen)
    except ListenError as err:
        raise CliError(USAGE, str(err)) from None

    # Bound before anything else: a bad or busy address fails before any host is opened.
    registry = make_registry()
    try:
        server = MetricsServer(addr, port, registry)
    except ListenError as err:
        raise CliError(USAGE, str(err)) from None
    except OSError as err:
        why = err.strerror or str(err)
        raise CliError(CONNECTION, f"cannot listen on {args.listen}: {why}") from None

    # Read-write connections unless -r (docs/decisions.md, "The exporter"): QEMU's job
    # events, which only a read-write connection gets, are what shows an orphaned job and
    # a running restore. Control stays out of reach: nothing below holds more than the
    # collector, which reads hosts(), domains() and jobs().
    options = Options(readonly=args.readonly, allow_qemu_monitor=False)
    monitor = JobMonitor(
        args.uris, options=options, history=open_history(args.history), ends_with_process=True
    )
    registry.register(JobCollector(monitor, names=args.host_names, history=monitor.history))

    stop = threading.Event()

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        monitor.start()
        server.start()
        print(f"jobtui: serving {server.url}", flush=True)
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        close_monitor(monitor)
        for s, handler in old.items():
            signal.signal(s, handler)
    return OK
