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
import importlib.abc  # noqa: E402
import importlib.util  # noqa: E402
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


class _AfterImport(importlib.abc.MetaPathFinder):
    """Calls `then()` once module `name` has been executed (its import marked)."""

    def __init__(self, name: str, then: Callable[[], None]) -> None:
        self.name = name
        self.then = then

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def run(module: Any) -> None:
            exec_module(module)
            mark(f"import {fullname}")
            self.then()

        spec.loader.exec_module = run  # type: ignore[method-assign]
        return spec


def instrument(domain_word: str) -> None:
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
            has = domain_word in data
            mark(f"terminal write {len(data)} B" + (" (a domain)" if has else ""))
            drawn[0] = has
        write(self, data)

    LinuxDriver.write = traced_write  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="file the marks are appended to")
    ap.add_argument("--domain-word", default="idle-", help="text that shows a domain drawn")
    ap.add_argument("rest", nargs=argparse.REMAINDER, help="-- then jobtui's arguments")
    args = ap.parse_args()
    gc.disable()  # as jobtui.cli.entry does
    import jobtui.cli as cli

    mark("import jobtui.cli")
    from jobtui.engine.early_open import EarlyOpen

    wrap(EarlyOpen, "_open")  # on its own thread, while Textual imports
    # Marked as the command imports it, not imported here first: the early open runs
    # beside that import, and importing it here would take it out of the race.
    sys.meta_path.insert(0, _AfterImport("jobtui.tui.app", lambda: instrument(args.domain_word)))

    def save() -> None:
        with open(args.out, "a") as out:
            out.write("---\n" + "".join(f"{t * 1000:8.1f} ms  {w}\n" for t, w in MARKS))

    atexit.register(save)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    sys.argv = ["jobtui", *rest]
    cli.entry()


if __name__ == "__main__":
    main()
