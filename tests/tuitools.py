"""Helpers for tests that look at the TUI's screen."""

from __future__ import annotations

from jobtui.tui.app import JobTUI


def screen_text(app: JobTUI) -> str:
    """What the screen shows now, as Textual exports it (spaces as spaces)."""
    return app.export_screenshot().replace("&#160;", " ")
