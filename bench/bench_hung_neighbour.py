"""How long a healthy domain's calls take while another domain's QEMU is stopped.

A private libvirtd (real QEMU) runs two domains, each with a throttled block copy; one
QEMU gets SIGSTOP, and a second connection keeps a call hung on it (as any other client
would). Then `jobtui list --json` runs `--runs` times per tree, trees alternating; inside
each run every libvirt call on the *healthy* domain is timed (a wrapper around
libvirt-python's methods, loaded before jobtui). Reported per tree: the calls' median,
p99 and max, how many took over 0.1 s, and how many runs named the healthy domain
"not answering". Trees are directories holding a `jobtui/` package (`git archive REV
jobtui | tar -x -C DIR`); "." is this checkout.

    .venv/bin/python bench/bench_hung_neighbour.py --runs 6 /tmp/hA /tmp/hB
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))

import libvirt  # noqa: E402
from benchstats import NEUTRAL_CWD, summary_line  # noqa: E402

from jobtui.engine.eventloop import ensure_event_loop  # noqa: E402
from jobtui.lab import MiB, kvm_usable  # noqa: E402
from jobtui.lab.daemon import PrivateDaemon, default_caps_cache  # noqa: E402
from jobtui.lab.images import create_image  # noqa: E402
from jobtui.lab.xmlgen import DiskSpec, copy_dest_xml, domain_xml  # noqa: E402

# Runs inside each `jobtui list`: times the healthy domain's calls, writes them as JSON.
TIMED = """
import json, sys, time, functools, atexit
import jobtui, libvirt
HEALTHY, OUT = sys.argv.pop(1), sys.argv.pop(1)
took = []
def timed(name):
    orig = getattr(libvirt.virDomain, name)
    @functools.wraps(orig)
    def call(self, *a, **k):
        t = time.monotonic()
        try:
            return orig(self, *a, **k)
        finally:
            if self.name() == HEALTHY:
                took.append(time.monotonic() - t)
    setattr(libvirt.virDomain, name, call)
for n in ("jobStats", "blockJobInfo", "XMLDesc", "state"):
    timed(n)
atexit.register(lambda: open(OUT, "w").write(json.dumps(took)))
from jobtui.cli import entry
sys.argv[0] = "jobtui"
entry()
"""


def start_domain(conn: libvirt.virConnect, base: Path, name: str) -> libvirt.virDomain:
    image = create_image(base / f"{name}.qcow2", 256, data_mib=128)
    dom = conn.defineXML(domain_xml(name, [DiskSpec("vda", image)], kvm=kvm_usable()))
    dom.create()
    params = {libvirt.VIR_DOMAIN_BLOCK_COPY_BANDWIDTH: 4 * MiB}
    flags = libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
    dom.blockCopy("vda", copy_dest_xml(base / f"{name}-copy.qcow2"), params, flags)
    return dom


def one_run(tree: Path, uri: str, healthy: str, work: Path) -> tuple[list[float], bool]:
    out = work / "took.json"
    env = {k: v for k, v in os.environ.items() if k != "LIBVIRT_DEFAULT_URI"}
    env["PYTHONPATH"] = str(tree)
    argv = [sys.executable, "-c", TIMED, healthy, str(out)]
    argv += ["-c", uri, "--history", str(work / "h.sqlite3"), "list", "--json"]
    proc = subprocess.run(
        argv, capture_output=True, text=True, env=env, cwd=NEUTRAL_CWD, timeout=120
    )
    if proc.returncode != 0:
        raise SystemExit(f"jobtui list failed: {proc.stderr.strip()}")
    return json.loads(out.read_text()), healthy in proc.stderr


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=6)
    args = ap.parse_args()
    ensure_event_loop()
    with tempfile.TemporaryDirectory(prefix="hung") as tmp:
        base = Path(tmp)
        daemon = PrivateDaemon(base, "hn", caps_cache=default_caps_cache())
        daemon.start()
        stopped = 0
        try:
            conn = libvirt.open(daemon.uri)
            stuck = start_domain(conn, base, "stuck")
            healthy = start_domain(conn, base, "healthy")
            time.sleep(2)
            stopped = int(next(daemon.root.rglob("stuck.pid")).read_text().strip())
            os.kill(stopped, signal.SIGSTOP)
            holder = libvirt.open(daemon.uri)  # another client, its call hung on the monitor
            dom = holder.lookupByName(stuck.name())
            threading.Thread(target=lambda: _quietly(dom.jobStats), daemon=True).start()
            time.sleep(1)
            took: dict[Path, list[float]] = {t: [] for t in args.trees}
            named: dict[Path, int] = {t: 0 for t in args.trees}
            for _ in range(args.runs):
                for tree in args.trees:
                    calls, flagged = one_run(tree, daemon.uri, healthy.name(), base)
                    took[tree] += calls
                    named[tree] += flagged
            for tree in args.trees:
                ms = [x * 1000 for x in took[tree]]
                slow = sum(1 for x in ms if x > 100)
                print(summary_line(str(tree), ms, width=12, q=0.99))
                print(
                    f"  {'':12} over 100 ms: {slow} of {len(ms)} calls; the healthy domain "
                    f"named not answering in {named[tree]} of {args.runs} runs"
                )
        finally:
            if stopped:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(stopped, signal.SIGCONT)
            daemon.stop()


def _quietly(call: object) -> None:
    with contextlib.suppress(libvirt.libvirtError):
        call(0)  # type: ignore[operator]


if __name__ == "__main__":
    main()
