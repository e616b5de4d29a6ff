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
from textual.content import Content
from textual.fuzzy import Matcher


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
            yield DiscoveryHit(Content(entry.title), entry.run, entry.title, _plain(entry.help))

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for entry in self._entries():
            score = matcher.match(f"{entry.title} {entry.help}")
            if score > 0:
                shown = _highlight(matcher, entry.title)
                yield Hit(score, shown, entry.run, entry.title, _plain(entry.help))


# Titles and help name domains and hosts, which are text, never markup: the palette
# reads a str as Textual markup (a domain `db [b]1` showed as `db 1`, and
# `Matcher.highlight` parses its candidate the same way).


def _plain(text: str) -> str:
    """`text` as Textual markup that shows it as written: in Textual's markup a
    backslash before `[` makes it literal, and any other backslash is literal."""
    return text.replace("[", "\\[")


def _highlight(matcher: Matcher, text: str) -> Content:
    """`text` with the characters the query matched in the matcher's style."""
    content = Content(text)
    _score, offsets = matcher.fuzzy_search.match(matcher.query, text)
    for at in offsets:
        if not text[at].isspace():
            content = content.stylize(matcher.match_style, at, at + 1)
    return content
