"""The command palette (ctrl+p): the keys that apply now, and hosts and domains to jump to.

What it offers is what the footer offers: an action `check_action` refuses (or dims) for
the selected job is absent, and in read-only mode no action changes a job. Each entry
names its key, so the palette also teaches the keys. Textual's own commands (theme, quit,
keys, screenshot) stay beside these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True)
class Entry:
    title: str  # what the palette matches and shows: "Abort (a)", "host: kvm1"
    help: str  # the line under it
    run: Callable[[], object]


@runtime_checkable
class HasEntries(Protocol):
    def palette_entries(self) -> list[Entry]: ...


class JobCommands(Provider):
    """Asks the app (JobTUI.palette_entries) each time the palette opens or the query
    changes, so the entries follow the selected job and the hosts seen."""

    def _entries(self) -> list[Entry]:
        app = self.app
        return app.palette_entries() if isinstance(app, HasEntries) else []

    async def discover(self) -> Hits:
        for entry in self._entries():
            yield DiscoveryHit(entry.title, entry.run, help=entry.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(f"{entry.title} {entry.help}")
            if score > 0:
                yield Hit(score, matcher.highlight(entry.title), entry.run, help=entry.help)
