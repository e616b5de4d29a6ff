"""Themes: the configured one at start, and one picked in the palette kept in config.toml."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest
from textual.command import CommandPalette

from jobtui import recorded
from jobtui.tui.app import JobTUI
from jobtui.tui.config import load_config


def make_app(tmp_path: Path, config: str) -> tuple[JobTUI, Path]:
    path = tmp_path / "jobtui" / "config.toml"
    path.parent.mkdir()
    path.write_text(config)
    src = recorded.busy()
    return JobTUI(src, clock=src.clock, tz=UTC, config_path=path), path


async def test_configured_theme_applies_at_start_and_a_start_saves_nothing(tmp_path: Path):
    config = 'theme = "nord"\n[attention]\nready_after = 5\n'
    app, path = make_app(tmp_path, config)
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        assert app.theme == "nord"
    assert path.read_text() == config


async def test_theme_picked_in_the_palette_is_kept(tmp_path: Path):
    app, path = make_app(tmp_path, "# mine\n[attention]\nbell = true\n")
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        assert app.theme == "textual-dark"
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"theme")
        await pilot.pause(0.5)
        await pilot.press("enter")  # Textual's "Theme": its picker
        await pilot.pause(0.3)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"dracula")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.theme == "dracula"
    config, bad = load_config(path)
    assert bad is None and config.theme == "dracula" and config.attention.bell is True
    assert path.read_text().startswith("# mine\n")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


async def test_unknown_theme_is_one_warning_and_the_default(tmp_path: Path):
    app, _ = make_app(tmp_path, 'theme = "no-such-theme"\n')
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        assert app.theme == "textual-dark"
        assert [n.title for n in app._notifications] == ["config"]


async def test_no_color_with_a_theme_still_renders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app, _ = make_app(tmp_path, 'theme = "gruvbox"\n')
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        assert app.no_color and app.theme == "gruvbox"
        svg = app.export_screenshot()
        assert "copy-vda" in svg.replace("&#160;", " ") and "ready" in svg
