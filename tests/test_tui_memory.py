"""Dialogs come and go all night: what they drew must go with them."""

from __future__ import annotations

import gc

from textual._styles_cache import StylesCache

from jobtui.recorded import busy
from jobtui.tui.app import JobTUI


def _styles_caches() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, StylesCache))


async def test_help_opened_and_closed_leaves_nothing_behind() -> None:
    """Textual 8.2.8 kept every closed widget's drawn lines (issue #6665): ~7,000 objects
    per help open + close, and ever longer garbage-collector pauses on screen."""
    app = JobTUI(busy())
    async with app.run_test(size=(120, 35)) as pilot:

        async def toggle(times: int) -> None:
            for _ in range(times):
                await pilot.press("question_mark")
                await pilot.pause()
                assert app.screen.__class__.__name__ == "HelpScreen"
                await pilot.press("question_mark")
                await pilot.pause()

        await toggle(3)
        before = _styles_caches()
        await toggle(15)
        after = _styles_caches()
    assert after <= before, f"{after - before} widgets' drawn lines kept after 15 dialogs"
