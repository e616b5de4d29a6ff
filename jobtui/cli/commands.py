"""list, xml, the TUI and the demo: the commands that only read (or hand over)."""

from __future__ import annotations

import argparse
import json
import sys

from jobtui.cli.errors import CONNECTION, OK, USAGE, CliError
from jobtui.cli.format import job_table, job_to_dict
from jobtui.cli.session import (
    connected,
    make_monitor,
    monitor_options,
    not_answering,
    resolve_job,
)


def run_list(args: argparse.Namespace) -> int:
    with connected(args) as s:
        jobs = s.monitor.jobs(include_finished=args.all)
        hosts = {h.uri for h in s.monitor.hosts()}
        stuck = not_answering(s.monitor)
    if args.json:
        print(json.dumps([job_to_dict(j, s.names) for j in jobs], indent=2))
    else:
        print(job_table(jobs, show_host=len(hosts) > 1, names=s.names))
    if s.unreachable:
        # The rows above are true but not all there are: say so, and fail the command.
        raise CliError(
            CONNECTION, f"{len(s.unreachable)} of {len(s.uris)} hosts not reached: listed the rest"
        )
    if not s.complete:
        # The rows above are true but maybe not all of them: say so, and fail the command.
        raise CliError(CONNECTION, f"not every domain answered within {args.wait:g} s")
    if stuck:
        print(f"jobtui: warning: {stuck}", file=sys.stderr)
    return OK


def run_xml(args: argparse.Namespace) -> int:
    with connected(args, domain=args.domain) as s:
        job = resolve_job(s, args.domain, args.job)
        text = s.monitor.job_xml(job.key)
        stuck = not_answering(s.monitor)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if stuck:
        print(f"jobtui: warning: {stuck}", file=sys.stderr)
    return OK


def run_tui(args: argparse.Namespace) -> int:
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise CliError(USAGE, "the TUI needs a terminal; try 'jobtui list' or 'jobtui watch'")
    from jobtui.engine.early_open import EarlyOpen
    from jobtui.tui.splash import Splash

    # The hosts are opened and listed while Textual imports (jobtui.engine.early_open),
    # and what they list is on screen before the app is (jobtui.tui.splash).
    early = EarlyOpen(args.uris, readonly=args.readonly).start()
    splash = Splash(sys.stdout.fileno(), args.uris, args.host_names, readonly=args.readonly)
    splash.start(early.listen(splash.answered))
    ran = False
    try:
        from jobtui.deferred import DeferredSource
        from jobtui.tui.app import run_tui as run

        splash.hand_over()
        ran = True
        # The app starts the monitor itself, off its UI thread once its first frame is
        # up, and stops it on exit; the engine is even imported then (jobtui.deferred).
        run(
            DeferredSource(
                lambda: make_monitor(args, early=early), args.uris, monitor_options(args), early
            ),
            readonly=args.readonly,
            keymap_path=args.keymap,
            host_names=args.host_names,
        )
    finally:
        splash.restore(app_ran=ran)
    return OK


def run_demo(argv: list[str]) -> int:
    from jobtui import demo

    return demo.main(argv)
