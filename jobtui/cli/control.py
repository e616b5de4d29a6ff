"""abort, finalize, pause, resume, dismiss, set-speed, postcopy on one job."""

from __future__ import annotations

import argparse
import sys
import threading

from jobtui.cli.errors import OK, REFUSED, USAGE, CliError
from jobtui.cli.format import percent
from jobtui.cli.session import connected, resolve_job
from jobtui.model import ControlOp, EngineEvent, Job, JobControlError, JobStateChanged
from jobtui.support import refusal
from jobtui.units import printable

# How long abort/finalize wait to see the job end, so the history records its outcome.
OUTCOME_WAIT = 10.0


def _confirm(job: Job, op: ControlOp) -> bool:
    prompt = (
        f"{str(op).capitalize()} {printable(job.name)} on {printable(job.domain)} "
        f"({job.type}, {job.state}, {percent(job)})? [y/N] "
    )
    print(prompt, end="", file=sys.stderr, flush=True)
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        answer = ""
    return answer.strip().lower() in ("y", "yes")


def run_control(args: argparse.Namespace) -> int:
    op = ControlOp(args.command)
    ask = op.needs_confirmation and not args.yes
    if ask and not sys.stdin.isatty():
        # Decided before connecting: a script must say --yes, never hang on a prompt.
        raise CliError(USAGE, f"{op} needs confirmation and stdin is not a terminal: pass --yes")
    extra = {"bandwidth": args.bandwidth} if op is ControlOp.SET_SPEED else {}
    with connected(args, domain=args.domain, settle=False) as s:
        job = resolve_job(s, args.domain, args.job)
        # The engine would refuse as well; asking first would be a question for nothing.
        reason = refusal(job, op, s.monitor.options)
        if reason:
            raise CliError(REFUSED, reason)
        if ask and not _confirm(job, op):
            raise CliError(REFUSED, f"not confirmed: {job.name} on {job.domain} left alone")
        ended = threading.Event()

        def on_event(e: EngineEvent) -> None:
            if isinstance(e, JobStateChanged) and e.key == job.key and e.new.finished:
                ended.set()

        s.monitor.subscribe(on_event)
        try:
            message = s.monitor.control(job.key, op, **extra)
        except JobControlError as err:
            raise CliError(REFUSED, str(err)) from None
        if op in (ControlOp.ABORT, ControlOp.FINALIZE):
            ended.wait(min(args.wait, OUTCOME_WAIT))
    print(printable(message))  # it names the domain, which may hold a tab or an ESC
    return OK
