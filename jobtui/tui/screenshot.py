"""`S`: the screen as SVG, for a ticket, in `$XDG_STATE_HOME/jobtui/screenshots/`.

The directory is created 0700 and each file 0600 (jobtui.statefiles' rules: never
through a link, never somebody else's directory); a file is never overwritten.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from jobtui.statefiles import open_private, private_dir, state_dir


def screenshot_dir() -> Path:
    return state_dir() / "screenshots"


def save_svg(svg: str, when: float, directory: Path | None = None) -> Path:
    """Write `svg` as `jobtui-YYYYmmdd-HHMMSS.svg` (local time of `when`); its path.

    Raises OSError with the reason when it cannot be written."""
    if directory is None:
        private_dir()  # the state directory first: 0700, ours
        directory = screenshot_dir()
    private_dir(directory)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(when))
    for n in range(1, 100):
        path = directory / (f"jobtui-{stamp}.svg" if n == 1 else f"jobtui-{stamp}-{n}.svg")
        try:
            fd = open_private(path, os.O_WRONLY | os.O_EXCL)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(svg)
        return path
    raise FileExistsError(f"too many screenshots named jobtui-{stamp}* in {directory}")
