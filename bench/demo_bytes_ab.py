"""The demo's terminal output at 80x24, two source trees launched alternately.

    .venv/bin/python bench/demo_bytes_ab.py TREE_A TREE_B [--rounds 3] [--seconds 30]

A tree is a directory holding a `jobtui` package (`git archive REV jobtui | tar -x -C
DIR`). Each launch runs `jobtui demo --no-migration` from that tree in its own tmux
session (the same Pane as bench_tui_terminal.py: its output logged with pipe-pane),
waits for the scene, lets it run 10 s, then counts the bytes written over `--seconds`.
Then it prints, per tree, the median and, for its last launch, the bytes by screen row
(which line of the screen the terminal writes were for), the way the rate graph was
found to be most of them.
"""

from __future__ import annotations

import argparse
import collections
import re
import statistics
import time
from pathlib import Path

from bench_tui_terminal import PY, Pane

_MOVE = re.compile(rb"\x1b\[(\d+);(\d+)H")


def bytes_by_row(data: bytes) -> dict[int, int]:
    """Bytes written after each cursor move, by the row the move went to."""
    rows: collections.Counter[int] = collections.Counter()
    moves = list(_MOVE.finditer(data))
    for move, after in zip(moves, moves[1:] + [None], strict=True):
        end = after.start() if after is not None else len(data)
        rows[int(move.group(1))] += end - move.start()
    return dict(rows)


def one_launch(tree: Path, name: str, out: Path, seconds: float) -> tuple[float, bytes]:
    out.unlink(missing_ok=True)
    argv = ["env", f"PYTHONPATH={tree}", PY, "-m", "jobtui", "demo", "--no-migration"]
    pane = Pane(name, argv, (80, 24), out)
    try:
        pane.wait(lambda s: "web1" in s and "%" in s, 300)
        time.sleep(10.0)
        b0, t0 = len(pane.bytes_written()), time.time()
        time.sleep(seconds)
        data = pane.bytes_written()
        return (len(data) - b0) / (time.time() - t0), data[b0:]
    finally:
        pane.keys("q")
        time.sleep(8.0)  # the demo destroys its guests before it exits
        pane.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs=2, type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=30.0)
    args = ap.parse_args()
    work = Path("/tmp/jobtui-demo-bytes")
    work.mkdir(exist_ok=True)
    rates: dict[Path, list[float]] = {t: [] for t in args.trees}
    last: dict[Path, bytes] = {}
    for r in range(args.rounds):
        for i, tree in enumerate(args.trees):
            rate, data = one_launch(tree, f"demo{r}{i}", work / f"{i}-{r}.out", args.seconds)
            rates[tree].append(rate)
            last[tree] = data
            print(f"{tree}  round {r}: {rate:.0f} B/s", flush=True)
    for tree, values in rates.items():
        print(f"{tree}: median {statistics.median(values):.0f} B/s  {[round(v) for v in values]}")
        rows = sorted(bytes_by_row(last[tree]).items(), key=lambda kv: -kv[1])[:5]
        busiest = ", ".join(f"{y}: {n / args.seconds:.0f} B/s" for y, n in rows)
        print(f"  busiest rows (last launch): {busiest}")


if __name__ == "__main__":
    main()
