"""The command line grammar: every subcommand, its options and the help text."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import NoReturn

from jobtui.cli.errors import EXIT_CODES_HELP, USAGE, CliError
from jobtui.model import ControlOp

CONTROL_COMMANDS = ("abort", "finalize", "pause", "resume", "dismiss", "set-speed", "postcopy")
DEFAULT_WAIT = 15.0


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        raise CliError(USAGE, f"{message} (see '{self.prog} --help')")


def default_uris() -> list[str]:
    """What virsh would connect to: LIBVIRT_DEFAULT_URI, else the system or session driver."""
    env = os.environ.get("LIBVIRT_DEFAULT_URI", "").strip()
    if env:
        return [env]
    return ["qemu:///system" if os.geteuid() == 0 else "qemu:///session"]


def _bandwidth(text: str) -> int:
    # Parsed here, so a typo is a usage error before any connection is opened.
    from jobtui.units import parse_bandwidth

    try:
        return parse_bandwidth(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser, *, top: bool) -> None:
    # On subcommands the defaults are SUPPRESSed, so `jobtui -c X list` and `jobtui list -c X`
    # both work: a subparser would otherwise overwrite the top level's value with its default.
    def d(value: object) -> object:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("connection options")
    g.add_argument(
        "-c",
        "--connect",
        metavar="NAME|URI",
        action="append",
        dest="uris",
        default=d(None),
        help="a host name from hosts.toml, or a libvirt URI; repeat for several hosts "
        "(default: every host of hosts.toml, else $LIBVIRT_DEFAULT_URI, else "
        "qemu:///system as root, qemu:///session otherwise)",
    )
    g.add_argument(
        "--group",
        metavar="GROUP",
        default=d(None),
        help="every host of this group in hosts.toml (with -c: those as well)",
    )
    g.add_argument(
        "-r",
        "--readonly",
        action="store_true",
        default=d(False),
        help="open read-only connections: watch, never change anything",
    )
    g.add_argument(
        "--history",
        metavar="PATH",
        type=Path,
        default=d(None),
        help="file of finished jobs (default: $JOBTUI_HISTORY, else ~/.local/state/jobtui)",
    )
    g.add_argument(
        "--wait",
        metavar="SECONDS",
        type=_seconds,
        default=d(DEFAULT_WAIT),
        help=f"how long to wait for every host and domain to answer (default {DEFAULT_WAIT:g})",
    )
    g.add_argument(
        "--allow-qemu-monitor",
        action="store_true",
        default=d(False),
        help="allow pause, resume and aborting an orphaned job through QEMU monitor "
        "passthrough; libvirt then marks the domain TAINTED (custom monitor commands)",
    )


def _epilog(example: str) -> str:
    return f"Example:\n  {example}\n\n{EXIT_CODES_HELP}"


def _sub(
    subs: argparse._SubParsersAction[Parser],
    name: str,
    help_: str,
    desc: str = "",
    *,
    example: str,
) -> argparse.ArgumentParser:
    p = subs.add_parser(
        name,
        help=help_,
        description=desc or help_,
        epilog=_epilog(example),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p, top=False)
    return p


def _job_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("domain", metavar="DOMAIN", help="domain name or UUID")
    p.add_argument("job", metavar="JOB", help="job name as `jobtui list` shows it (copy-vda)")


_CONTROL_HELP = {
    "abort": "abort a job (a ready copy aborted leaves a consistent copy behind)",
    "finalize": "finalize a ready copy or active commit: the disk switches to the new image",
    "pause": "pause a block job (needs --allow-qemu-monitor, which taints the domain)",
    "resume": "resume a paused block job (needs --allow-qemu-monitor, which taints the domain)",
    "dismiss": "drop a finished job from the history",
    "set-speed": "set the bandwidth of a block job, backup or outgoing migration",
    "postcopy": "switch an outgoing migration to post-copy (it can no longer be aborted)",
}
_CONTROL_EXAMPLE = {
    "abort": "jobtui abort web1 copy-vda --yes",
    "finalize": "jobtui -c kvm1 finalize web1 copy-vda",
    "pause": "jobtui --allow-qemu-monitor pause web1 pull-vdb",
    "resume": "jobtui --allow-qemu-monitor resume web1 pull-vdb",
    "dismiss": "jobtui dismiss flaky1 copy-vda --yes",
    "set-speed": "jobtui set-speed web1 pull-vdb 32M",
    "postcopy": "jobtui postcopy mover1 migration-out",
}
_DESTRUCTIVE = frozenset(str(op) for op in ControlOp if op.needs_confirmation)


def build_parser() -> Parser:
    from jobtui import __version__

    top = Parser(
        prog="jobtui",
        description="Watch and steer long-running libvirt jobs. Without a command, "
        "open the terminal UI.",
        epilog=_epilog("jobtui -c kvm1 -c kvm2 --readonly      # the TUI on two hosts, watch only"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    top.add_argument("--version", action="version", version=f"jobtui {__version__}")
    _add_common(top, top=True)
    subs = top.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    # After add_subparsers: set_defaults only reaches actions that already exist.
    top.set_defaults(command="tui", keymap=None)

    p = _sub(
        subs,
        "list",
        "list the jobs of every domain of every connection",
        example="jobtui --group rack1 list --json --all",
    )
    p.add_argument("--json", action="store_true", help="print one JSON array")
    p.add_argument("--all", action="store_true", help="include finished jobs from the history")

    p = _sub(subs, "xml", "print a job's XML document", example="jobtui xml web1 copy-vda")
    _job_args(p)

    p = _sub(
        subs,
        "watch",
        "print job state changes as they happen, until Ctrl-C",
        "Print the JOB_STATE stream: the jobs found at start (as 'new'), then every state "
        "change, until Ctrl-C or SIGTERM (exit status 0).",
        example="jobtui watch --json --timeout 60",
    )
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument(
        "--timeout", metavar="SECONDS", type=_seconds, help="stop after SECONDS (exit status 0)"
    )

    for name in CONTROL_COMMANDS:
        help_ = _CONTROL_HELP[name]
        desc = help_ + (
            ". Asks for confirmation on a terminal; without one, pass --yes."
            if name in _DESTRUCTIVE
            else "."
        )
        p = _sub(subs, name, help_, desc, example=_CONTROL_EXAMPLE[name])
        _job_args(p)
        if name == "set-speed":
            p.add_argument(
                "bandwidth",
                metavar="BYTES/S",
                type=_bandwidth,
                help="bytes per second; suffixes K, M, G (binary): 32M, 512K; 0 is unlimited",
            )
        if name in _DESTRUCTIVE:
            p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")

    p = _sub(
        subs,
        "exporter",
        "serve job metrics for Prometheus (read-only) until Ctrl-C or SIGTERM",
        "Serve /metrics in Prometheus' text format: every job, host and domain the engine "
        "sees, read at each scrape (docs/exporter.md). It offers no control. Exit status 2: "
        "a bad --listen; 3: the address cannot be bound.",
        example="jobtui -r exporter --listen 127.0.0.1:9870",
    )
    p.add_argument(
        "--listen",
        metavar="ADDR:PORT",
        required=True,
        help="where to serve, exactly: 127.0.0.1:9870, [::1]:9870 (0.0.0.0:PORT for all)",
    )

    p = _sub(
        subs,
        "tui",
        "open the terminal UI (the default)",
        example="jobtui tui -c qemu+ssh://root@kvm1/system --keymap ~/keys.toml",
    )
    p.add_argument("--keymap", metavar="PATH", type=Path, help="key bindings file (TOML)")
    # main() hands `jobtui demo ...` to jobtui.demo unparsed; this one is for --help (and to
    # refuse shared options given before it, which the demo would not see).
    subs.add_parser(
        "demo", help="run the embedded QEMU demo (its own options: jobtui demo -h)", add_help=False
    )
    p = subs.add_parser(
        "completion",
        help="print a bash or zsh completion script",
        description="Print a completion script for bash or zsh: commands and options, and "
        "the DOMAIN and JOB of xml and the control commands, read from a live "
        "'jobtui list --json --all' with the -c/--group given on the line.",
        epilog=_epilog(
            'eval "$(jobtui completion bash)"      # in ~/.bashrc\n'
            "  source <(jobtui completion zsh)      # in ~/.zshrc, after compinit"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("shell", choices=("bash", "zsh"), help="the shell")
    # Hidden (no help=): what the completion scripts call to read names from `list --json`.
    p = subs.add_parser("_complete")
    p.add_argument("kind", choices=("domains", "jobs"))
    p.add_argument("domain", nargs="?", default="")
    return top
