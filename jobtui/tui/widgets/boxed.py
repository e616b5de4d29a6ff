"""Scrolling widgets whose content grows or shrinks without laying out the screen.

Textual lays out the whole screen whenever a widget's virtual (scrollable) size
changes: a row added to the job table or a node to the tree re-arranges and repaints
every widget, though the table's box stays where it was once it is at its maximum
height, and the tree's box never depends on what it holds. `ContentBoxed` asks for a
layout only when the widget's box may change: a scrollbar comes or goes, or its height
follows its content (`height: auto`) and the content did not overflow the box before
and after. Otherwise the scrollbars learn the new size; the widget repaints itself
only if its width changed (every line may be drawn differently). When only the height
changed, rows or lines came or went: the widget that moved them repaints the lines
that changed (JobTable.sync, DomainTree.sync), not all of them.
"""

from __future__ import annotations

from textual.geometry import Size
from textual.reactive import Reactive
from textual.scroll_view import ScrollView


class ContentBoxed(ScrollView):
    """Mix in after a ScrollView widget (`class T(Tree[X], ContentBoxed)`): Textual takes
    CSS and component classes from the first base only."""

    virtual_size: Reactive[Size] = Reactive(Size(0, 0), layout=False)
    # Layouts this widget asked the screen for, since it was made: for tests.
    layouts_asked = 0

    def _watch_virtual_size(self, old: Size, new: Size) -> None:
        if not self.is_mounted or not self.size or not self.display:
            self._ask_layout()
            return
        bars = (self.show_horizontal_scrollbar, self.show_vertical_scrollbar)
        self._scroll_update(new)  # what a layout would tell the scrollbars
        if bars != (self.show_horizontal_scrollbar, self.show_vertical_scrollbar):
            self._ask_layout()
        elif self.styles.height is not None and self.styles.height.is_auto:
            # Its box follows the content until it overflows (max-height): as long
            # as the content overflowed before and still does, the box is the same.
            room = self.scrollable_content_region.height
            if not (old.height > room and new.height > room):
                self._ask_layout()
            elif old.width != new.width:
                self.refresh()
        elif old.width != new.width:
            self.refresh()

    def _ask_layout(self) -> None:
        self.layouts_asked += 1
        self.refresh(layout=True)
