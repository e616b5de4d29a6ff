"""Nothing from libvirt reaches the terminal (it would corrupt the TUI)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_lab_and_engine_write_nothing_to_stderr() -> None:
    # A fresh process: libvirt's logging is set up once, at the first import.
    script = textwrap.dedent(
        """
        import time
        from jobtui.engine.monitor import JobMonitor
        from jobtui.lab import DiskSpec, Lab, MiB
        with Lab(prefix="jobtui-quiet-") as lab:
            dom = lab.domain("q1", [DiskSpec("vda", lab.image("q1", 64, 32))])
            m = JobMonitor([lab.uri])
            m.start()
            m.wait_ready(20)
            lab.start_copy(dom, "vda", bandwidth=1 * MiB)
            time.sleep(1.5)
            try:
                lab.start_copy(dom, "vda")  # refused by libvirt: an error it would print
            except Exception as err:
                print("refused:", err)
            m.stop()
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "refused: cannot start copy on q1/vda" in proc.stdout
    assert proc.stderr == ""
