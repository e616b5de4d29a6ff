"""Where a TUI launch's time goes: the real `jobtui` command with timestamps.

Runs `jobtui ARGS...` (in a terminal: tmux or a pty) with marks at the imports, the
app's compose, mount and Ready, the deferred engine's start, every snapshot and batch
applied, and the terminal writes up to the first one that holds a domain name (a word
given with --domain-word). The marks are appended to --out when the TUI exits. Times are
from this script's first line, so the interpreter's own start (~30 ms) is not in them.

    tmux new -d -x 120 -y 35 'cd / && PYTHONPATH=/tmp/tree .venv/bin/python \\
        bench/trace_launch.py --out /tmp/trace.txt -- -c URI --history /tmp/h.sqlite3'

A measuring aid, not a benchmark: the wrappers add a few µs per call.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import atexit  # noqa: E402
import gc  # noqa: E402
import inspect  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

MARKS: list[tuple[float, str]] = []


def mark(what: str) -> None:
    MARKS.append((time.perf_counter() - T0, what))


def wrap(cls: type, name: str, *, every: bool = False) -> None:
    """Mark `cls.name`'s begin and end (the first call, or every call). Textual reads a
    handler's parameter count, so a one-parameter method keeps one parameter."""
    orig: Callable[..., Any] = getattr(cls, name)
    seen = [False]

    def call(self: object, *args: object) -> object:
        tell = every or not seen[0]
        if tell:
            mark(f"{name} begin")
        result = orig(self, *args)
        if tell:
            mark(f"{name} end")
            seen[0] = True
        return result

    if len(inspect.signature(orig).parameters) == 1:

        def call0(self: object) -> object:
            return call(self)

        setattr(cls, name, call0)
    else:
        setattr(cls, name, call)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="file the marks are appended to")
    ap.add_argument("--domain-word", default="idle-", help="text that shows a domain drawn")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then jobtui's arguments")
    args = ap.parse_args()
    gc.disable()  # as jobtui.cli.entry does
    import jobtui.cli as cli

    mark("import jobtui.cli")
    import jobtui.tui.app  # noqa: F401 - timed here, used by the command

    mark("import jobtui.tui.app")
    from textual.drivers.linux_driver import LinuxDriver

    from jobtui.deferred import DeferredSource
    from jobtui.tui.feed import EngineFeed
    from jobtui.tui.view import JobView

    for method in ("compose", "on_mount", "on_ready"):
        wrap(JobView, method)
    wrap(DeferredSource, "start")
    wrap(EngineFeed, "on_snapshot_loaded", every=True)
    wrap(JobView, "_apply_batch_now", every=True)
    write = LinuxDriver.write
    drawn = [False]

    def traced_write(self: LinuxDriver, data: str) -> None:
        if not drawn[0] and len(data) > 200:
            has = args.domain_word in data
            mark(f"terminal write {len(data)} B" + (" (a domain)" if has else ""))
            drawn[0] = has
        write(self, data)

    LinuxDriver.write = traced_write  # type: ignore[method-assign]

    def save() -> None:
        with open(args.out, "a") as out:
            out.write("---\n" + "".join(f"{t * 1000:8.1f} ms  {w}\n" for t, w in MARKS))

    atexit.register(save)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.argv = ["jobtui", *rest]
    cli.entry()


if __name__ == "__main__":
    main()
