"""A JobMonitor for one command: connect, wait until it has looked everywhere, then stop.

The engine is imported here, lazily, so `--help` and usage errors never load libvirt.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from jobtui.cli.errors import CONNECTION, NOT_FOUND, USAGE, CliError
from jobtui.model import Domain, HostState, Job
from jobtui.support import Options

if TYPE_CHECKING:
    from jobtui.engine.early_open import EarlyOpen
    from jobtui.engine.history import History
    from jobtui.engine.monitor import JobMonitor


def open_history(path: Path | None) -> History:
    """The shared history of finished jobs."""
    from jobtui.engine.history import History

    # It never raises: an unusable file becomes an in-memory history plus a `warning`.
    return History(path) if path is not None else History()


def monitor_options(args: argparse.Namespace) -> Options:
    return Options(readonly=args.readonly, allow_qemu_monitor=args.allow_qemu_monitor)


def make_monitor(
    args: argparse.Namespace, only: Sequence[str] | None = None, early: EarlyOpen | None = None
) -> JobMonitor:
    from jobtui.engine.monitor import JobMonitor

    # args.uris was resolved by cli.hosts.apply_inventory (names, groups, defaults).
    return JobMonitor(
        args.uris,
        options=monitor_options(args),
        history=open_history(args.history),
        only_domains=only,
        early=early,
        ends_with_process=True,
    )


# A domain whose QEMU has not answered for this long (a stopped QEMU, a hung monitor)
# is shown with what is known of it, marked, rather than holding up the whole command.
SETTLE_AFTER = 2.0


def not_answering(monitor: JobMonitor) -> str:
    """One line naming the domains whose figures are not current, or ''."""
    names = sorted(f"{d.name}" for d in monitor.domains() if not d.responsive)
    if not names:
        return ""
    return (
        f"not answering (QEMU's monitor is stuck or stopped): {', '.join(names)}; "
        "their jobs are shown as last known, marked stale"
    )


@dataclass
class Session:
    monitor: JobMonitor
    uris: list[str]
    names: dict[str, str]  # URI → what people call it (hosts.toml name, else short name)
    # False when some domain had not answered within --wait: what we show may be incomplete.
    complete: bool
    # Hosts of several that could not be reached (each named on stderr already).
    unreachable: list[str] = field(default_factory=list)


def check_hosts(monitor: JobMonitor, wait: float, *, warn: bool = True) -> list[str]:
    """The URIs that could not be reached. All of them: the command fails here. Some of
    several: each is named in a warning line and the command goes on with the others
    (one hypervisor down must not hide the fleet's jobs); it decides the exit status."""
    problems: dict[str, str] = {}
    hosts = monitor.hosts()
    for h in hosts:
        if h.state is HostState.DISCONNECTED:
            problems[h.uri] = f"cannot connect to {h.uri}: {h.error or 'no reason given'}"
        elif h.state is HostState.CONNECTING:
            problems[h.uri] = f"cannot connect to {h.uri}: no answer within {wait:g} s"
        elif h.error:
            print(f"jobtui: warning: {h.uri}: {h.error}", file=sys.stderr)
    if problems and len(problems) == len(hosts):
        raise CliError(CONNECTION, "; ".join(problems.values()))
    for problem in problems.values() if warn else ():
        print(f"jobtui: warning: {problem}; its jobs are not shown", file=sys.stderr)
    return list(problems)


def close_monitor(monitor: JobMonitor) -> None:
    """Stop the engine, then close its history and pass on what went wrong with it.

    The command's process ends right after (jobtui.cli.entry): calls still in flight are
    not waited for, so a slow or stuck one never holds up the exit (a watch that must
    end at Ctrl-C)."""
    monitor.stop()  # built to end with the process: no waiting (JobMonitor.stop)
    history = monitor.history
    if history is None:
        return
    if history.warning:
        print(f"jobtui: warning: {' '.join(history.warning.split())}", file=sys.stderr)
    history.close()


@contextlib.contextmanager
def connected(
    args: argparse.Namespace, *, domain: str | None = None, settle: bool = True
) -> Iterator[Session]:
    """`domain`: a command about one domain watches only that one (name or UUID): another
    domain's stuck QEMU neither delays it nor gets one more hung call from it.
    `settle=False` (a control command): the domain is waited for up to --wait, never
    settled as not answering — a slow QEMU gets its chance before a refusal."""
    monitor = make_monitor(args, None if domain is None else [domain])
    monitor.start()
    try:
        settle_after = SETTLE_AFTER if settle else None
        complete = monitor.wait_ready(args.wait, settle_after=settle_after)
        unreachable = check_hosts(monitor, args.wait)
        uris = list(dict.fromkeys(args.uris))
        yield Session(monitor, uris, args.host_names, complete, unreachable)
    finally:
        close_monitor(monitor)


def _matches(arg: str, name: str, uuid: str) -> bool:
    return arg == name or arg.lower() == uuid.lower()


def resolve_domain(s: Session, arg: str) -> Domain:
    """A domain by name or UUID; one whose jobs only the history knows counts as well."""
    found = {(d.host, d.uuid): d for d in s.monitor.domains() if _matches(arg, d.name, d.uuid)}
    if not found:
        for j in s.monitor.jobs(include_finished=True):
            if _matches(arg, j.domain, j.key.domain_uuid):
                found.setdefault(
                    (j.host, j.key.domain_uuid), Domain(j.host, j.key.domain_uuid, j.domain, "")
                )
    if not found:
        if s.unreachable:
            raise CliError(
                CONNECTION,
                f"no domain '{arg}' on the hosts reached; not reached: {', '.join(s.unreachable)}",
            )
        if not s.complete:
            raise CliError(
                CONNECTION,
                f"no domain '{arg}' found, but not every domain answered within the wait",
            )
        raise CliError(NOT_FOUND, f"no domain '{arg}' on {', '.join(s.uris)}")
    if len(found) > 1 and len({h for h, _u in found}) < len(found):
        # Two domains of one host match: one is named like the other's UUID. virsh
        # reads such an argument as the UUID first; so does jobtui.
        by_uuid = [d for d in found.values() if arg.lower() == d.uuid.lower()]
        if len(by_uuid) == 1:
            return by_uuid[0]
    if len(found) > 1:
        hosts = ", ".join(sorted({h for h, _u in found}))
        raise CliError(
            USAGE, f"domain '{arg}' exists on several connections ({hosts}): pick one with -c"
        )
    return next(iter(found.values()))


def resolve_job(s: Session, domain_arg: str, name: str) -> Job:
    dom = resolve_domain(s, domain_arg)
    job = s.monitor.find(dom.uuid, name)
    if job is not None and job.host == dom.host:
        return job
    names = sorted({j.name for j in s.monitor.jobs(domain=dom.uuid) if j.host == dom.host})
    listed = f"jobs: {', '.join(names)}" if names else "it has no jobs"
    raise CliError(NOT_FOUND, f"no job '{name}' on domain '{dom.name}' ({listed})")
