"""libvirt's process-global plumbing: silence, the event-loop thread, and the embedded
driver's one connection per root (`open_connection`).

libvirt's event implementation is global to the process and must be
registered before the first connection opens (the embedded driver refuses to
open otherwise), so this is idempotent and every entry point calls it first.
We run libvirt's default implementation in its own daemon thread instead of
libvirtaio on Textual's loop: many apps (snapshot tests) come and go in one
process, each with a fresh asyncio loop, while libvirt's registration cannot
be undone.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libvirt

_lock = threading.Lock()
_started = False
_quiet = False


def quiet_libvirt(log_file: str | None = None) -> None:
    """Keep libvirt off stderr: warnings and printed errors corrupt a TUI.

    Must run before the first libvirt call of the process to catch the
    embedded driver's own log output.
    """
    global _quiet
    if _quiet:
        return
    if "LIBVIRT_LOG_OUTPUTS" not in os.environ:
        # jobtui/__init__.py sets it at import; this is for a caller that removed it.
        from jobtui.statefiles import libvirt_log_outputs

        outputs = f"3:file:{log_file}" if log_file else libvirt_log_outputs()
        os.environ["LIBVIRT_LOG_OUTPUTS"] = outputs
    import libvirt

    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    _quiet = True


def ensure_event_loop() -> None:
    """Register libvirt's default event loop once and run it in a daemon thread."""
    global _started
    with _lock:
        if _started:
            return
        quiet_libvirt()
        import libvirt

        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _started = True


# libvirt 9.0 registers the QEMU driver again on every open of a qemu:///embed
# URI, and after ~16 opens a process gets "Too many drivers" for good
# (measured: docs/decisions.md). So each process holds one connection per
# embedded root and every user of that root shares it. Here, not beside the
# connections' event plumbing (connection.py), so that an open at launch
# (early_open.py) imports libvirt and nothing else.
_shared: dict[tuple[str, bool], libvirt.virConnect] = {}
shared_lock = threading.Lock()  # _shared, and what connection.py keeps per shared one


def open_connection(uri: str, *, readonly: bool = False) -> libvirt.virConnect:
    ensure_event_loop()
    import libvirt

    if not uri.startswith("qemu:///embed"):
        conn = libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
        if conn is None:
            raise RuntimeError(f"cannot connect to {uri}")
        return conn
    with shared_lock:
        conn = _shared.get((uri, readonly))
        if conn is None:
            conn = libvirt.openReadOnly(uri) if readonly else libvirt.open(uri)
            _shared[(uri, readonly)] = conn
        return conn


def is_shared(conn: libvirt.virConnect) -> bool:
    with shared_lock:
        return any(c is conn for c in _shared.values())


def drop_shared(uri: str) -> list[libvirt.virConnect]:
    """Forget the process's connections to an embedded root; the caller holds
    `shared_lock` and closes them."""
    return [_shared.pop(k) for k in list(_shared) if k[0] == uri]
