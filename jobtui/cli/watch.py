"""`jobtui watch`: the JOB_STATE stream on stdout, like `virsh event --loop`."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import signal
import sys
import time
from types import FrameType

from jobtui.cli.errors import OK
from jobtui.cli.format import event_line, event_to_dict, host_event_to_dict
from jobtui.cli.session import check_hosts, close_monitor, make_monitor
from jobtui.model import EngineEvent, HostChanged, HostState, JobStateChanged


def _sigterm(_sig: int, _frame: FrameType | None) -> None:
    # SIGTERM ends a watch the way Ctrl-C does: quietly, exit status 0.
    raise KeyboardInterrupt


def run_watch(args: argparse.Namespace) -> int:
    events: queue.SimpleQueue[EngineEvent] = queue.SimpleQueue()
    monitor = make_monitor(args)
    # Subscribed before start: the first sighting of every job is part of the stream.
    # The callback runs on the engine's thread: it only hands off, stdout may block.
    monitor.subscribe(events.put)
    old_term = signal.signal(signal.SIGTERM, _sigterm)
    try:
        monitor.start()
        monitor.wait_ready(args.wait)
        # Some hosts down: the stream says so itself ("lost"), and "reconnected" later.
        check_hosts(monitor, args.wait, warn=False)
        _pump(events, args, time.monotonic() + args.timeout if args.timeout else None)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        # The reader went away (`| head`): that ends a stream, it is no error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    finally:
        with contextlib.suppress(KeyboardInterrupt):
            close_monitor(monitor)
        signal.signal(signal.SIGTERM, old_term)
    return OK


def _pump(
    events: queue.SimpleQueue[EngineEvent], args: argparse.Namespace, deadline: float | None
) -> None:
    # Hosts whose loss was reported: said once per loss, and "reconnected" only after one.
    # (A loss in the first burst of events is said too: it is no less real.)
    lost: set[str] = set()
    while deadline is None or time.monotonic() < deadline:
        try:
            e = events.get(timeout=0.1)
        except queue.Empty:
            continue
        if isinstance(e, JobStateChanged):
            line = (
                json.dumps(event_to_dict(e, args.host_names))
                if args.json
                else event_line(e, args.host_names)
            )
            print(line, flush=True)
        elif isinstance(e, HostChanged):
            # Not part of the stream, but a watcher must know its view went stale.
            uri = e.host.uri
            if e.host.state is HostState.DISCONNECTED and uri not in lost:
                lost.add(uri)
                note = f"lost {uri}: {e.host.error or 'no reason given'}; reconnecting"
            elif e.host.state is HostState.CONNECTED and uri in lost:
                lost.discard(uri)
                note = f"reconnected to {uri}"
            else:
                continue
            if args.json:
                # A script reads only stdout: it must see that its view went stale.
                print(json.dumps(host_event_to_dict(e, args.host_names)), flush=True)
            print(f"jobtui: {note}", file=sys.stderr, flush=True)
