"""The `jobtui` command: list, xml, watch and control jobs from a shell; the TUI by default.

Every failure ends as one line on stderr, `jobtui: ...`, and an exit status
(see errors.py); never a traceback, unless JOBTUI_DEBUG=1 asks for one.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from collections.abc import Callable, Sequence

from jobtui.cli.args import CONTROL_COMMANDS, build_parser
from jobtui.cli.errors import REFUSED, USAGE, CliError
from jobtui.cli.hosts import apply_inventory
from jobtui.units import printable

__all__ = ["entry", "main"]


def _say(message: str) -> None:
    # One line, and nothing a terminal would obey (a domain name may hold an ESC).
    line = printable(" ".join(message.split())) or "failed"
    with contextlib.suppress(OSError):
        print(f"jobtui: {line}", file=sys.stderr, flush=True)


def _runner(command: str) -> Callable[[argparse.Namespace], int]:
    # Imported per command: `jobtui --help` should not pay for libvirt or Textual.
    if command in CONTROL_COMMANDS:
        from jobtui.cli.control import run_control

        return run_control
    if command == "exporter":
        from jobtui.cli.exporter_cmd import run_exporter

        return run_exporter
    if command in ("completion", "_complete"):
        from jobtui.cli import completion

        return completion.run_completion if command == "completion" else completion.run_complete
    if command == "watch":
        from jobtui.cli.watch import run_watch

        return run_watch
    from jobtui.cli import commands

    if command == "demo":
        raise CliError(USAGE, "the demo takes only its own options: jobtui demo [OPTIONS]")
    return {"list": commands.run_list, "xml": commands.run_xml, "tui": commands.run_tui}[command]


def _debug() -> bool:
    return os.environ.get("JOBTUI_DEBUG", "") not in ("", "0")


def _log_to_file() -> None:
    """Engine warnings go to a file beside libvirt's own log, never to the terminal.

    $JOBTUI_LOG, else jobtui.log in the state directory (statefiles.py); where neither can be
    opened safely there is no log, and the command goes on."""
    import logging

    from jobtui.statefiles import open_log

    stream = open_log()
    if stream is None:
        return
    handler: logging.Handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("jobtui")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _log_to_file()
    try:
        if argv[:1] == ["demo"]:
            gc.enable()
            # The demo has its own options; it gets them untouched.
            from jobtui.cli.commands import run_demo

            return run_demo(argv[1:])
        args = build_parser().parse_args(argv)
        if args.command != "tui":
            gc.enable()  # off from entry() for the TUI's start only
        if args.command not in ("demo", "completion", "_complete"):
            apply_inventory(args)
        return _runner(args.command)(args)
    except CliError as err:
        _say(err.message)
        return err.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # noqa: BLE001 - a one-line error, never a traceback
        if _debug():
            raise
        _say(f"{err} ({type(err).__name__}; JOBTUI_DEBUG=1 shows the traceback)")
        return REFUSED


def entry() -> None:
    """The `jobtui` command: `main`, then an exit that skips the interpreter's teardown.

    A connection given up for dead is never closed (docs/decisions.md), so a daemon thread
    may still be inside a libvirt call when the command ends; tearing the interpreter down
    under it crashed `watch` (SIGSEGV, seen after a hung ssh session woke up). Exit
    handlers still run (the history's last writes), and the output is flushed.

    The cyclic garbage collector is off until the TUI's first frame is up (its Ready
    turns it back on; main() does at once for every other command): importing Textual
    and building the first screen make ~10^5 objects that live as long as the process,
    and collecting while they were made freed nothing and took 36-52 ms of a ~400 ms
    launch (docs/performance.md)."""
    gc.disable()
    code = main()
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
