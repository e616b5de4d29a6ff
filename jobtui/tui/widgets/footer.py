"""The key bar: the keys that apply now, drawn as one line.

Textual's Footer is a container of one widget per key, removed and mounted again
whenever the keys change: when the selected job changes state or kind, as the cursor
moves between jobs, on every focus move and twice per dialog. Each rebuild lays out
the whole screen twice (~20 ms each at 120×35, more while QEMU shares the CPU). This
bar is one line of one widget: the keys change, the line is drawn again, nothing moves.
It keeps what an operator uses of Textual's: the theme's footer colours, dimmed keys
that do nothing now (with the reason as a tooltip), hover, and a click that acts as
the key.
"""

from __future__ import annotations

from typing import ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.strip import Strip
from textual.widget import Widget

# key, its display, action, text, enabled, tooltip: what the bar draws of one key.
Key = tuple[str, str, str, str, bool, str]


class KeyFooter(Widget, can_focus=False):
    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "key-footer--key",
        "key-footer--description",
        "key-footer--hover",
    }
    DEFAULT_CSS = """
    KeyFooter {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-footer--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-footer--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-footer--hover {
            background: $block-hover-background;
        }
    }
    """

    # How many times the line was drawn with other keys since the bar was made: tests.
    redraws = 0

    def __init__(self) -> None:
        super().__init__()
        self._keys: tuple[Key, ...] | None = None  # None: not read yet
        self._hover: str | None = None  # the action under the mouse
        self._strip: Strip | None = None

    @property
    def keys(self) -> tuple[Key, ...]:
        """The keys on the bar, in order (one per action, as Textual's Footer shows)."""
        if self._keys is None:
            self._keys = self._read_keys()
        return self._keys

    def _read_keys(self) -> tuple[Key, ...]:
        app = self.app
        keys: dict[str, Key] = {}
        for _node, b, enabled, tooltip in self.screen.active_bindings.values():
            if b.show and b.action not in keys:
                keys[b.action] = (
                    b.key,
                    app.get_key_display(b),
                    b.action,
                    b.description,
                    enabled,
                    tooltip,
                )
        return tuple(keys.values())

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[object]) -> None:
        # While the terminal has no focus the focused widget is blurred and the keys
        # would flicker to a focus-less set (Textual's Footer waits too).
        if not (self.is_attached and screen is self.screen and screen.app.app_focus):
            return
        keys = self._read_keys()
        if keys != self._keys:
            self._keys = keys
            self.redraws += 1
            self._redraw()

    def _redraw(self) -> None:
        self._strip = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strip = None  # a theme change: the colours are read again

    def render_line(self, y: int) -> Strip:
        if y != 0:
            return Strip.blank(self.size.width, self.rich_style)
        width = self.size.width
        if self._strip is None or self._strip.cell_length != width:
            self._strip = self._draw(width)
        return self._strip

    def _draw(self, width: int) -> Strip:
        base = self.rich_style
        key_style = base + self.get_component_rich_style("key-footer--key")
        text_style = base + self.get_component_rich_style("key-footer--description")
        hover = self.get_component_rich_style("key-footer--hover")
        line = Text(" ", style=base)
        for key, display, action, description, enabled, _tooltip in self.keys:
            # The key under a click and a hover is read from the segment's meta.
            meta = Style.from_meta({"footer_key": key, "footer_action": action})
            extra = (hover if action == self._hover else Style()) + Style(dim=not enabled)
            line.append(display, key_style + extra + meta)
            if description:
                line.append(f" {description}", text_style + extra + meta)
            line.append(" ", base)
        segments = list(line.render(self.app.console))
        return Strip(segments).adjust_cell_length(width, base).simplify()

    # --- the mouse ---------------------------------------------------------------------

    def _key_at(self, style: Style) -> Key | None:
        action = style.meta.get("footer_action")
        return next((k for k in self.keys if k[2] == action), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        key = self._key_at(event.style)
        action = key[2] if key is not None else None
        if action != self._hover:
            self._hover = action
            self.tooltip = (key[5] or None) if key is not None else None
            self._redraw()

    def on_leave(self, event: events.Leave) -> None:
        if self._hover is not None:
            self._hover = None
            self.tooltip = None
            self._redraw()

    def on_click(self, event: events.Click) -> None:
        key = self._key_at(event.style)
        if key is None:
            return
        event.stop()
        if key[4]:
            self.app.simulate_key(key[0])
        else:
            self.app.bell()  # dimmed: it does nothing now (the tooltip says why)
