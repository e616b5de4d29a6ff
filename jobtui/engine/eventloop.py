"""libvirt's process-global plumbing: silence and the event-loop thread.

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
