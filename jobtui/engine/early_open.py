"""Each host's first connection, opened and listed before the front end is up.

The TUI spends ~0.3 s importing Textual and drawing its first frame, and the engine is
built only after that frame (its imports would delay it). Opening the connections then
put the domain names on screen ~0.15 s after the first frame with 50 domains. Started
at launch instead, on threads of their own, the open and the listing wait on libvirtd
while Textual imports, and the first frames already hold the domains.

The engine adopts what was opened here (`take`): one connection per host, as if its
own first open had been early, and its first domain list (`first_list`) so the
domains never vanish between the preview and the engine's own listing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from jobtui.model import UNKNOWN_DOMAIN_STATE, Domain


@dataclass(frozen=True)
class Opened:
    """One host's early open: the connection and its domains, or libvirt's error."""

    uri: str
    conn: Any = None  # libvirt.virConnect; Any keeps libvirt out of this module's import
    domains: tuple[tuple[str, str, Any], ...] = ()  # (uuid, name, virDomain)
    error: BaseException | None = None

    def previews(self) -> list[Domain]:
        return [
            Domain(self.uri, uuid, name, UNKNOWN_DOMAIN_STATE) for uuid, name, _ in self.domains
        ]


class EarlyOpen:
    """Opens `uris` (read-only if `readonly`) and lists their domains, a thread each,
    once started; those given to `listen` hear each host's answer (or failure) on its
    thread."""

    def __init__(self, uris: Sequence[str], *, readonly: bool) -> None:
        self.readonly = readonly
        self._lock = threading.Lock()
        self._done: dict[str, Opened] = {}
        self._taken: set[str] = set()
        self._events = {uri: threading.Event() for uri in dict.fromkeys(uris)}
        self._listeners: list[Callable[[Opened], None]] = []

    def start(self) -> EarlyOpen:
        for uri in self._events:
            threading.Thread(
                target=self._open, args=(uri,), name=f"early open {uri}", daemon=True
            ).start()
        return self

    def _open(self, uri: str) -> None:
        try:
            from jobtui.engine.eventloop import open_connection

            conn = open_connection(uri, readonly=self.readonly)
            doms = conn.listAllDomains(0)
            opened = Opened(uri, conn, tuple((d.UUIDString(), d.name(), d) for d in doms))
        except Exception as err:  # noqa: BLE001 - the engine's own open reports it
            opened = Opened(uri, error=err)
        with self._lock:
            self._done[uri] = opened
            listeners = list(self._listeners)
        self._events[uri].set()
        for listener in listeners:
            listener(opened)

    def listen(self, callback: Callable[[Opened], None]) -> list[Opened]:
        """Call `callback` for each host that answers from now on; returns those that
        already have."""
        with self._lock:
            self._listeners.append(callback)
            return list(self._done.values())

    def answered(self) -> list[Opened]:
        with self._lock:
            return list(self._done.values())

    def first_list(self, uri: str) -> Opened | None:
        """The host's early listing if it succeeded and its connection is not yet taken."""
        with self._lock:
            opened = self._done.get(uri)
            if opened is None or opened.error is not None or uri in self._taken:
                return None
            return opened

    def take(self, uri: str) -> Any:
        """The host's early connection, once: waits for the early open to end (call it
        on the connection's own thread), raises its error, or returns None if it was
        taken already or `uri` was never opened here (then the caller opens its own)."""
        event = self._events.get(uri)
        if event is None:
            return None
        event.wait()
        with self._lock:
            if uri in self._taken:
                return None
            self._taken.add(uri)
            opened = self._done[uri]
            # The engine owns the connection from here: a reconnect must not find
            # the old one (and 50 domain handles on it) still held here.
            names = tuple((uuid, name, None) for uuid, name, _ in opened.domains)
            self._done[uri] = Opened(uri, None, names, opened.error)
        if opened.error is not None:
            raise opened.error
        return opened.conn
