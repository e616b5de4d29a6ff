"""The lab's guest "OS": a multiboot kernel of a few KB that fills RAM.

No guest OS image is available, yet save, dump and migration only move real
bytes if the guest's RAM holds data (QEMU sends all-zero pages as a flag).
``guest_src/`` holds a 32-bit multiboot ELF that fills all RAM above 2 MiB
with pseudo-random data, says so on COM1, then halts, or with ``dirty=M``
(and optionally ``rate=R`` MiB/s) keeps rewriting M MiB forever so that
migrations have something to chase. QEMU's ``-kernel`` loader boots it
directly: libvirt's ``<os><kernel>``.

Use TCG (``<domain type='qemu'>``) for it: under nested KVM touching guest RAM
crawls (measured: about 1 MiB/s, against 1 GiB in 1.5-3.4 s under TCG).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

SRC_DIR = Path(__file__).with_name("guest_src")
SOURCES = ("entry.s", "fill.c", "link.ld")
KERNEL_NAME = "fill.elf"

# Serial lines the guest prints (each followed by " N MiB").
DONE_TEXT = "jobtui-fill: done"
DIRTYING_TEXT = "jobtui-fill: dirtying"

# Plain x86_64 gcc compiles freestanding 32-bit objects without gcc-multilib as
# long as nothing needs 32-bit libc headers or libgcc; linking goes through ld
# directly for the same reason.
_CFLAGS = (
    "-m32",
    "-march=i686",
    "-O2",
    "-ffreestanding",
    "-fno-pic",
    "-fno-pie",
    "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables",
    # Else gcc may turn loops into calls to memset, which does not exist here.
    "-fno-tree-loop-distribute-patterns",
    "-mno-sse",
    "-mno-mmx",
    "-mno-80387",
    "-Wall",
    "-Wextra",
    "-nostdlib",
)

_TOOL_PACKAGES = {"gcc": "gcc", "as": "binutils", "ld": "binutils"}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"cannot build the lab guest: '{name}' not found "
            f"(install the Debian package {_TOOL_PACKAGES[name]})"
        )
    return path


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = (proc.stderr or proc.stdout).strip().splitlines()
        detail = first[0] if first else f"exit status {proc.returncode}"
        raise RuntimeError(f"cannot build the lab guest: {Path(cmd[0]).name} failed: {detail}")


def build_guest(cache_dir: Path) -> Path:
    """Return ``cache_dir/fill.elf``, compiling it first if missing or stale.

    Raises RuntimeError (one line) if gcc, as or ld is missing or fails.
    """
    cache_dir = Path(cache_dir)
    out = cache_dir / KERNEL_NAME
    sources = [SRC_DIR / name for name in SOURCES]
    newest = max(src.stat().st_mtime for src in sources)
    if out.exists() and out.stat().st_mtime >= newest:
        return out

    gcc, as_, ld = _tool("gcc"), _tool("as"), _tool("ld")
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Build in a private directory and rename into place: parallel test
    # workers may share cache_dir, and none may see a half-written kernel.
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".build-") as tmp:
        work = Path(tmp)
        _run([as_, "--32", "-o", "entry.o", str(SRC_DIR / "entry.s")], work)
        _run([gcc, *_CFLAGS, "-c", "-o", "fill.o", str(SRC_DIR / "fill.c")], work)
        script = str(SRC_DIR / "link.ld")
        link = [ld, "-m", "elf_i386", "-nostdlib", "-z", "noexecstack", "-T", script]
        _run([*link, "-o", KERNEL_NAME, "entry.o", "fill.o"], work)
        os.replace(work / KERNEL_NAME, out)
    return out


def guest_os_xml(kernel: Path, cmdline: str = "") -> str:
    """The domain's ``<os>`` element booting ``kernel`` with QEMU's multiboot loader.

    ``cmdline`` takes ``dirty=M`` (MiB to keep rewriting after the fill) and
    ``rate=R`` (MiB/s for that; default as fast as the vCPU goes).
    """
    cmd = f"<cmdline>{escape(cmdline)}</cmdline>" if cmdline else ""
    return (
        "<os><type arch='x86_64' machine='pc'>hvm</type>"
        f"<kernel>{escape(str(kernel))}</kernel>{cmd}</os>"
    )


def serial_xml(log_path: Path | str) -> str:
    """A COM1 that writes to ``log_path``, plus the console aliasing it.

    QEMU truncates the file when the domain starts.
    """
    src = f"<source path={quoteattr(str(log_path))}/>"
    return (
        f"<serial type='file'>{src}<target port='0'/></serial>"
        f"<console type='file'>{src}<target type='serial' port='0'/></console>"
    )


def wait_for_serial(log_path: Path | str, text: str, timeout: float) -> None:
    """Poll ``log_path`` until a complete line contains ``text``.

    Raises TimeoutError, quoting the log's tail, if none shows up in time.
    """
    path = Path(log_path)
    deadline = time.monotonic() + timeout
    data = b""
    while True:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            data = b""
        # Only whole lines: the guest may be caught mid-line.
        lines = data.decode("utf-8", "replace").split("\n")[:-1]
        if any(text in line for line in lines):
            return
        if time.monotonic() >= deadline:
            tail = data[-200:].decode("utf-8", "replace").strip()
            raise TimeoutError(
                f"no line with {text!r} in {path} after {timeout:g} s (log ends: {tail!r})"
            )
        time.sleep(0.05)
