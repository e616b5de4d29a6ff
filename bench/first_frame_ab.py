"""First frame and first domain of several jobtui trees (and a bare Textual app), launched
alternately in tmux on a libvirt URI that already has its domains (names starting
`idle-`, as bench_tui_terminal.py's fifty scene and jobtui.lab make them).

    cd / && .venv/bin/python /work/main/bench/first_frame_ab.py URI 8 /tmp/treeA /tmp/treeB bare

Each tree is a `git archive REV jobtui | tar -x -C DIR` directory, put on PYTHONPATH;
`bare` is bench/tui_bare_app.py. Prints each one's medians and ranges: the first frame,
the first domain name, and (jobtui) the app up, its key bar drawn.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tui_terminal as b  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("uri")
    ap.add_argument("launches", type=int)
    ap.add_argument("trees", nargs="+", help="jobtui trees, or 'bare'")
    # A launch that quit during its first looks leaves libvirtd answering them for a
    # while: with 0.7 s between launches, the tree launched next was measured slower.
    ap.add_argument("--gap", type=float, default=2.5, help="seconds between launches")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="jtff-"))
    subprocess.run([*b.TMUX, "new-session", "-d", "-s", "keep", "sleep 1d"], check=True)
    frame: dict[str, list[float]] = {t: [] for t in args.trees}
    domain: dict[str, list[float]] = {t: [] for t in args.trees}
    # Since jobtui draws its hosts' domains before Textual is up (jobtui/tui/splash.py),
    # the first frame is that picture; the app itself is up when its key bar is drawn.
    app: dict[str, list[float]] = {t: [] for t in args.trees}
    try:
        for i in range(args.launches):
            for n, tree in enumerate(args.trees):
                if tree == "bare":
                    argv = [b.PY, str(b.ROOT / "bench" / "tui_bare_app.py")]
                    title = "bare textual app"
                else:
                    # On the command line: a tmux session takes its environment from the
                    # tmux server, not from the client that asks for it.
                    argv = ["env", f"PYTHONPATH={tree}"]
                    argv += b.jobtui_argv(args.uri, tmp / f"h{i}-{n}.sqlite3")
                    title = "jobtui"
                pane = b.Pane(f"ff{i}-{n}", argv, (120, 35), tmp / f"ff{i}-{n}.out")
                try:
                    frame[tree].append((pane.wait(lambda s, w=title: w in s) - pane.started) * 1e3)
                    if tree != "bare":
                        t = pane.wait(lambda s: "idle-" in s)
                        domain[tree].append((t - pane.started) * 1e3)
                        t = pane.wait(lambda s: " Quit" in s)
                        app[tree].append((t - pane.started) * 1e3)
                finally:
                    pane.close()
                # The next launch starts on a quiet machine: not while this one is still
                # exiting, nor while libvirtd still answers its calls.
                _wait_gone(pane.pid, 10.0)
                time.sleep(args.gap)
    finally:
        subprocess.run([*b.TMUX, "kill-server"], capture_output=True)
    for tree in args.trees:
        line = f"{tree:24} first frame {_spread(frame[tree])}"
        if domain[tree]:
            line += f"   first domain {_spread(domain[tree])}   app up {_spread(app[tree])}"
        print(line)
    print("load average", " ".join(Path("/proc/loadavg").read_text().split()[:3]))


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _spread(ms: list[float]) -> str:
    return f"median {statistics.median(ms):6.1f} ms [{min(ms):.0f}-{max(ms):.0f}]"


if __name__ == "__main__":
    main()
