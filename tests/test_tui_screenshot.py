"""`S` saves the screen as SVG in $XDG_STATE_HOME/jobtui/screenshots/ and says where."""

from __future__ import annotations

import os
import stat
from datetime import UTC
from pathlib import Path

import pytest

from jobtui import recorded
from jobtui.tui.app import JobTUI


def notes(app: JobTUI) -> list[tuple[str, str, str]]:
    return [(n.title, n.message, n.severity) for n in app._notifications]


async def test_s_saves_an_svg_0600_in_a_0700_directory_and_says_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    monkeypatch.setenv("TZ", "UTC")
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        await pilot.press("S")
        await pilot.press("S")  # the same second: a second file, never overwritten
        await pilot.pause()
        shots = tmp_path / "jobtui" / "screenshots"
        files = sorted(shots.iterdir())
        assert [f.name for f in files] == [
            "jobtui-20231114-221320-2.svg",
            "jobtui-20231114-221320.svg",
        ]
        assert stat.S_IMODE(os.stat(shots).st_mode) == 0o700
        assert stat.S_IMODE(os.stat(tmp_path / "jobtui").st_mode) == 0o700
        assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)
        text = files[1].read_text()
        assert text.lstrip().startswith("<svg") and "copy-vda" in text
        assert notes(app)[0] == ("screenshot saved", str(files[1]), "information")


async def test_a_screenshot_that_cannot_be_saved_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "jobtui").mkdir(mode=0o700)
    (tmp_path / "jobtui" / "screenshots").symlink_to(tmp_path)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_loaded()
        await pilot.press("S")
        await pilot.pause()
        assert notes(app) == [("screenshot", "screenshot not saved: a symbolic link", "error")]
