"""The key bar: Textual's Footer, rebuilt only when the keys it shows change.

Textual's Footer removes and mounts all its keys on every `refresh_bindings`, which
lays out the whole screen: when the selected job changes state, when focus moves, and
twice for every dialog (its screen suspends the main one, then resumes it). Mostly the
keys shown stay exactly the same; this footer compares what it would show and rebuilds
only when that changed. When only a key's dimming changed (a copy became READY: pivot
now applies), the keys already there are restyled in place: no layout, one line drawn.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

Shown = tuple[tuple[str, str, str, str, bool, bool, str], ...]


class KeyFooter(Footer):
    # How many times the keys were rebuilt, or restyled in place, since the footer was
    # made: for tests.
    rebuilds = 0
    restyles = 0

    def __init__(self, *, compact: bool = False) -> None:
        # ctrl+p is in `?` help; at 80 columns the footer has no room for it.
        super().__init__(compact=compact, show_command_palette=False)
        self._shown: Shown | None = None

    def _keys_shown(self) -> Shown:
        """Everything Footer.compose reads of the keys it shows: key, its display,
        action, text, enabled, tooltip (a focused table's hidden cursor keys are not)."""
        app = self.app
        return tuple(
            (b.key, app.get_key_display(b), b.action, b.description, b.show, enabled, tooltip)
            for _node, b, enabled, tooltip in self.screen.active_bindings.values()
            if b.show
        )

    def compose(self) -> ComposeResult:
        if self._shown is None and self.is_attached:
            # Textual's Footer draws nothing until the bindings are first announced,
            # after the first frame, then rebuilds (two more screen layouts, ~40 ms of
            # a launch): the keys known now are drawn with the first frame.
            self.set_reactive(Footer._bindings_ready, True)
            self._shown = self._keys_shown()
        yield from super().compose()

    def bindings_changed(self, screen: Screen[object]) -> None:
        if not (self.is_attached and screen is self.screen and screen.app.app_focus):
            super().bindings_changed(screen)
            return
        shown = self._keys_shown()
        if shown == self._shown:
            self._bindings_ready = True
            return
        if self._restyle(shown):
            self._shown = shown
            self.restyles += 1
            self._bindings_ready = True
            return
        self._shown = shown
        self.rebuilds += 1
        super().bindings_changed(screen)

    def _restyle(self, shown: Shown) -> bool:
        """Dim or undim the keys on screen in place if nothing but that (and tooltips)
        changed; False if the footer must be rebuilt."""
        if self._shown is None or [k[:5] for k in shown] != [k[:5] for k in self._shown]:
            return False
        # Footer.compose draws the first key shown for each action, in this order.
        first: dict[str, tuple[str, bool, str]] = {}
        for key, _display, action, _text, _show, enabled, tooltip in shown:
            first.setdefault(action, (key, enabled, tooltip))
        drawn = list(self.query(FooterKey))
        if [(k.action, k.key) for k in drawn] != [(a, v[0]) for a, v in first.items()]:
            return False  # grouped keys, or a layout this footer does not know
        for widget in drawn:
            _key, enabled, tooltip = first[widget.action]
            widget._disabled = not enabled  # what a click reads (Textual's FooterKey)
            widget.set_class(not enabled, "-disabled")
            widget.tooltip = tooltip or None
        return True
