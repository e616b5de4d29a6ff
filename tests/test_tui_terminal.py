"""The TUI on a real pseudo-terminal: what it leaves behind when the terminal hangs up."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

NOWHERE = "qemu+unix:///system?socket=/nonexistent/sock"

ALT_ON, ALT_OFF = b"\x1b[?1049h", b"\x1b[?1049l"
MOUSE_ON, MOUSE_OFF = b"\x1b[?1000h", b"\x1b[?1000l"
CURSOR_SHOWN = b"\x1b[?25h"


class Terminal:
    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True
        )
        os.close(slave)
        self.screen = bytearray()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with contextlib.suppress(OSError):  # EIO once the command has exited
            while chunk := os.read(self.master, 65536):
                self.screen.extend(chunk)

    def wait_for(self, text: bytes, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.screen:
            assert self.proc.poll() is None, bytes(self.screen[-2000:])
            assert time.monotonic() < deadline, f"{text!r} never on screen"
            time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(5)
        os.close(self.master)


def test_sighup_restores_the_terminal_and_exits(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("LIBVIRT_", "JOBTUI_"))},
        "TERM": "xterm-256color",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
    }
    term = Terminal([sys.executable, "-m", "jobtui", "-c", NOWHERE], env)
    try:
        term.wait_for(ALT_ON)
        term.wait_for(b"Quit")  # the footer: the app is up and drawing
        assert MOUSE_ON in term.screen
        term.proc.send_signal(signal.SIGHUP)
        rc = term.proc.wait(30)
        term._reader.join(10)
        after = bytes(term.screen[term.screen.rindex(ALT_ON) :])
        assert rc == 0, after[-2000:]
        assert ALT_OFF in after
        assert MOUSE_OFF in after[after.rindex(MOUSE_ON) :]
        assert CURSOR_SHOWN in after[after.rindex(ALT_OFF) - 64 :]
        assert b"Traceback" not in term.screen
    finally:
        term.close()


def test_output_to_a_terminal_gone_never_blocks_the_app() -> None:
    """A dropped SSH session fails every write with EIO. Textual's output thread died on
    the first one, and the app's next 30 writes (its own shutdown among them) filled
    its queue and blocked for ever: the process never ended."""
    from textual.drivers._writer_thread import WriterThread

    import jobtui.tui.app  # noqa: F401 - applies jobtui.tui.textual_fixes

    class Gone:
        def write(self, text: str) -> int:
            raise OSError(5, "Input/output error")

        def flush(self) -> None:
            raise OSError(5, "Input/output error")

    writer = WriterThread(Gone())  # type: ignore[arg-type]
    writer.start()
    done = threading.Event()

    def shut_down() -> None:
        for i in range(100):  # frames drawn after the hangup, then the restore
            writer.write(f"\x1b[{i}H")
        writer.stop()
        done.set()

    threading.Thread(target=shut_down, daemon=True).start()
    assert done.wait(10), "the app's writes blocked on a dead output thread"
