"""The first picture, drawn before Textual is up: each host's domains, as the tree shows them.

Importing Textual takes 0.3–0.4 s on a small machine; the app's first frame comes
~0.25 s after that. The hosts' first listings (jobtui.engine.early_open) answer long
before, so the `jobtui` command draws what they say by hand meanwhile, where the
tree will draw it: the same rows and columns, plain text. Textual's first frame then
paints over every cell. Nothing here imports Textual or libvirt.

While the picture is up, the terminal does not echo: a key typed meanwhile waits in the
terminal's input for the app, which reads it when it starts (`q` still quits).
"""

from __future__ import annotations

import contextlib
import os
import termios
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jobtui.tui.format import short_host
from jobtui.units import printable

# The layout's own numbers (jobtui.tui.view lays out with them: one home).
NARROW = 100  # below this many columns the tree folds away (the table alone shows)
TREE_WIDTH = 32  # cells, its border included
_FOOTER = 2  # the status line and the key bar

ENTER = "\x1b[?1049h\x1b[?25l"  # the alternate screen (Textual's too), no cursor
LEAVE = "\x1b[?1049l\x1b[?25h"


class Listing(Protocol):
    """A host's early answer (jobtui.engine.early_open.Opened)."""

    @property
    def uri(self) -> str: ...
    @property
    def domains(self) -> tuple[tuple[str, str, Any], ...]: ...  # (uuid, name, handle)
    @property
    def error(self) -> BaseException | None: ...


def cells(text: str) -> int:
    return sum(_width(ch) for ch in text)


def _width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def fit(text: str, width: int) -> str:
    """`text` cut to `width` cells, "…" marking a cut, padded with spaces."""
    if cells(text) > width:
        out, used = [], 0
        for ch in text:
            w = _width(ch)
            if used + w > width - 1:
                break
            out.append(ch)
            used += w
        text = "".join(out) + "…"
    return text + " " * (width - cells(text))


def picture(
    listings: Sequence[Listing],
    uris: Sequence[str],
    names: Mapping[str, str],
    size: os.terminal_size,
    *,
    readonly: bool = False,
) -> list[str]:
    """The rows to draw: the host bar, then the tree (hosts in URI order, each one's
    domains by name), its right border where the tree has one."""
    width, height = size.columns, size.lines
    answered = {x.uri: x for x in listings}
    hosts = sorted(dict.fromkeys(uris))
    labels = {}
    for uri in hosts:
        listing = answered.get(uri)
        label = "● " + short_host(uri, names.get(uri, ""))
        if listing is None:
            label += " connecting"
        elif listing.error is not None:
            label += " disconnected"
        labels[uri] = label + (" (read-only)" if readonly else "")
    bar = " jobtui" + ("  read-only" if readonly else "")
    bar += "".join(f"  │  {labels[u]}" for u in hosts)
    tree = ["▼ all jobs"]
    for i, uri in enumerate(hosts):
        last_host = i == len(hosts) - 1
        listing = answered.get(uri)
        tree.append(f"{'└' if last_host else '├'} ▼ {labels[uri]}")
        doms = sorted(printable(name) for _uuid, name, _h in (listing.domains if listing else ()))
        for j, name in enumerate(doms):
            stem = "  " if last_host else "│ "
            tree.append(f"{stem}{'└' if j == len(doms) - 1 else '├'} {name} unknown")
    rows = [fit(bar, width)]
    if width >= NARROW:  # narrower, the app shows no tree: nothing to show ahead of it
        rows += [fit(t, TREE_WIDTH - 1) + "│" for t in tree]
    return rows[: max(1, height - _FOOTER)]


class Splash:
    """Draws `picture` on the terminal of `fd` as hosts answer, until `hand_over`."""

    def __init__(
        self, fd: int, uris: Sequence[str], names: Mapping[str, str], *, readonly: bool
    ) -> None:
        self.fd = fd
        self.uris = list(uris)
        self.names = dict(names)
        self.readonly = readonly
        self._lock = threading.Lock()
        self._listings: dict[str, Listing] = {}
        self._saved: list[Any] | None = None
        self._shown = False
        self._handed = False

    def start(self, answered: Sequence[Listing]) -> None:
        """Quiet the terminal; draw now if some host has answered already."""
        with contextlib.suppress(termios.error, OSError):
            self._saved = termios.tcgetattr(self.fd)
            quiet = termios.tcgetattr(self.fd)
            quiet[3] &= ~(termios.ECHO | termios.ICANON)
            termios.tcsetattr(self.fd, termios.TCSANOW, quiet)
        for listing in answered:
            self.answered(listing)

    def answered(self, listing: Listing) -> None:
        """A host's listing came (on its own thread): draw the picture again."""
        with self._lock:
            if self._handed:
                return
            self._listings[listing.uri] = listing
            try:
                size = os.get_terminal_size(self.fd)
                listed = list(self._listings.values())
                rows = picture(listed, self.uris, self.names, size, readonly=self.readonly)
                text = ("" if self._shown else ENTER) + "\x1b[H\x1b[2J" + "\r\n".join(rows)
                os.write(self.fd, text.encode())
                self._shown = True
            except OSError:
                self._handed = True  # a terminal that went away: draw nothing more

    def hand_over(self) -> None:
        """Textual takes the screen from here: nothing more is drawn."""
        with self._lock:
            self._handed = True

    def restore(self, *, app_ran: bool) -> None:
        """After the app: the terminal's own settings back; the alternate screen left
        unless the app left it itself."""
        with self._lock:
            self._handed = True
            with contextlib.suppress(OSError):
                if self._shown and not app_ran:
                    os.write(self.fd, LEAVE.encode())
            if self._saved is not None:
                with contextlib.suppress(termios.error, OSError):
                    termios.tcsetattr(self.fd, termios.TCSANOW, self._saved)
                self._saved = None
