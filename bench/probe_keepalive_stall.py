"""Probe: libvirt 9.0's client when a daemon stops answering (SIGSTOP) with
keepalive on and several calls waiting at once.

Run as root:  .venv/bin/python bench/probe_keepalive_stall.py [--threads N]

Measured here (docs/decisions.md, "Stalled daemons"): only the first waiting
call fails with "connection closed due to keepalive timeout", the close
callback does not fire, the other calls never return, and a new connection
opened meanwhile does not complete either. The engine therefore checks
`isAlive()` after any failed call and has its own stall backstop.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import jobtui  # noqa: F401 - silences libvirt's stderr logging before libvirt loads
from jobtui.engine.eventloop import ensure_event_loop
from jobtui.lab.daemon import start_private_daemon


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=3)
    args = ap.parse_args()
    import libvirt

    ensure_event_loop()
    d = start_private_daemon(Path(tempfile.mkdtemp(prefix="d", dir="/tmp")), "probe")
    t0 = [0.0]
    try:
        c = libvirt.open(d.uri)
        c.setKeepAlive(1, 2)
        c.registerCloseCallback(
            lambda _c, reason, _o: print(
                f"close callback reason={reason} at {time.time() - t0[0]:.1f} s"
            ),
            None,
        )
        d.pause()
        t0[0] = time.time()

        def call(i: int) -> None:
            try:
                c.listAllDomains(0)
                print(f"call {i} returned at {time.time() - t0[0]:.1f} s")
            except libvirt.libvirtError as e:
                print(f"call {i} failed at {time.time() - t0[0]:.1f} s: {e}")

        for i in range(args.threads):
            threading.Thread(target=call, args=(i,), daemon=True).start()
            time.sleep(0.2)
        time.sleep(4)
        print(f"isAlive() = {c.isAlive()}")
        d.resume()
        time.sleep(3)
        print("calls that printed nothing never returned")
    finally:
        d.stop()


if __name__ == "__main__":
    main()
