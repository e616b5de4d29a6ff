"""Where jobtui keeps the files it creates, and how it opens them.

Everything lives in one directory the user owns, `$XDG_STATE_HOME/jobtui`
(`~/.local/state/jobtui`), created 0700 and tightened to 0700 when jobtui finds it
looser: the history, jobtui's log and libvirt's log. Nothing is created in a shared
directory such as TMPDIR, where another user could plant a link or a FIFO.

Log files are opened without following a symbolic link (`O_NOFOLLOW`), without waiting
on a FIFO (`O_NONBLOCK`), only when they are regular files, and created 0600. A log that
cannot be opened safely is no log: the command goes on and writes nothing on the terminal.

Plain standard library: `jobtui/__init__.py` runs this before anything imports libvirt.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TextIO

APP = "jobtui"
JOBTUI_LOG = "jobtui.log"
LIBVIRT_LOG = "libvirt.log"

_DIR_MODE = 0o700
_FILE_MODE = 0o600
_OPEN_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def state_dir() -> Path:
    """$XDG_STATE_HOME/jobtui, else ~/.local/state/jobtui (XDG: a relative value is ignored)."""
    state = os.environ.get("XDG_STATE_HOME", "")
    base = Path(state) if os.path.isabs(state) else Path.home() / ".local" / "state"
    return base / APP


class UnsafeFile(OSError):
    """A path jobtui will not use: a link, a FIFO, a directory, somebody else's directory."""


def private_dir(path: Path | None = None) -> Path:
    """Create `path` (default: the state directory) if missing; make sure it is ours and 0700.

    Raises OSError (UnsafeFile for a link or a directory another user owns).
    """
    path = state_dir() if path is None else path
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, _DIR_MODE)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _OPEN_FLAGS)
    except OSError as err:
        if os.path.islink(path):
            raise UnsafeFile("a symbolic link") from None
        raise err
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise UnsafeFile(f"a directory of uid {st.st_uid}, not of this user")
        if stat.S_IMODE(st.st_mode) != _DIR_MODE:
            os.fchmod(fd, _DIR_MODE)  # whatever the umask, or an older jobtui, made it
    finally:
        os.close(fd)
    return path


def open_private(
    path: Path, flags: int = os.O_WRONLY | os.O_APPEND, *, tighten: bool = True
) -> int:
    """Open (creating 0600) a regular file without following a link or blocking on a FIFO;
    `tighten`: make an existing file of ours 0600 as well.

    Returns a file descriptor; raises OSError (UnsafeFile for anything but a regular file).
    """
    try:
        fd = os.open(path, flags | os.O_CREAT | _OPEN_FLAGS, _FILE_MODE)
    except OSError as err:
        if os.path.islink(path):
            raise UnsafeFile("a symbolic link") from None
        raise err
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile("not a regular file")
        if tighten and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) & 0o077:
            os.fchmod(fd, _FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def libvirt_log_outputs() -> str:
    """The LIBVIRT_LOG_OUTPUTS value: libvirt's warnings to the state directory, or nowhere.

    libvirt opens the file itself (following links): it is created here first, safely,
    in a directory only this user can write to. Never raises."""
    try:
        path = private_dir() / LIBVIRT_LOG
        os.close(open_private(path))
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return "3:file:/dev/null"
    return f"3:file:{path}"


def open_log() -> TextIO | None:
    """jobtui's own log: $JOBTUI_LOG, else jobtui.log in the state directory; None if unsafe."""
    try:
        override = os.environ.get("JOBTUI_LOG", "")
        path = Path(override) if override else private_dir() / JOBTUI_LOG
        fd = open_private(path)
    except (OSError, RuntimeError):
        return None
    return os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace")
