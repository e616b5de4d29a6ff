"""The detail pane's labelled values (jobtui.tui.widgets.field_grid and FieldLines):
how they are laid out, and that new figures repaint only the cells that changed."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text
from textual.app import App, ComposeResult
from textual.geometry import Region

from jobtui.tui.styles import COLOR, MONO
from jobtui.tui.widgets.detail import FieldLines
from jobtui.tui.widgets.field_grid import field_lines

CONSOLE = Console(width=200, color_system="truecolor", force_terminal=True)
ROWS: list[tuple[str, Any]] = [
    ("state", Text("running", style="green")),
    ("type", "copy"),
    ("progress", "12 MiB of 64 MiB (18 %)"),
    ("rate", "5.0 MiB/s"),
    ("ETA", "3s"),
]
PATH = "/var/lib/libvirt/images/pool-with-a-long-name/guest-disk-image-0001.qcow2"


def text(lines: list[Any]) -> list[str]:
    return ["".join(s.text for s in line).rstrip() for line in lines]


def test_two_pairs_to_a_line_when_they_fit_one_when_not():
    wide = text(field_lines(ROWS, [], COLOR, 80, CONSOLE))
    assert len(wide) == 3
    assert wide[0].split() == ["state", "running", "type", "copy"]
    assert "progress  12 MiB of 64 MiB (18 %)" in wide[1] and wide[1].endswith("5.0 MiB/s")
    narrow = text(field_lines(ROWS, [], COLOR, 50, CONSOLE))
    assert len(narrow) == len(ROWS)
    assert narrow[2] == "progress  12 MiB of 64 MiB (18 %)"  # whole, labels aligned


def test_a_long_value_has_lines_of_its_own_and_is_never_cut():
    lines = text(field_lines([*ROWS, ("disk", PATH)], ["abort: read-only"], COLOR, 60, CONSOLE))
    at = next(i for i, line in enumerate(lines) if line.startswith("disk"))
    path = "".join(line[10:] for line in lines[at:-1])
    assert path == PATH and "…" not in "".join(lines)
    assert lines[-1] == "not now   abort: read-only"


def test_values_keep_their_colour_and_their_brackets():
    lines = field_lines(
        [("state", Text("failed", style="red")), ("msg", "x [/] [b]y")], [], COLOR, 80, CONSOLE
    )
    spans = {s.text.strip(): s.style for line in lines for s in line if s.text.strip()}
    assert spans["failed"] is not None and spans["failed"].color is not None
    assert spans["failed"].color.name == "red"
    assert "x [/] [b]y" in text(lines)[0]  # shown as written, not read as markup
    mono = field_lines(ROWS, [], MONO, 80, CONSOLE)
    assert text(mono) == text(field_lines(ROWS, [], COLOR, 80, CONSOLE))


class OneField(App[None]):
    def compose(self) -> ComposeResult:
        yield FieldLines(id="f")


async def test_a_new_figure_repaints_its_cells_not_the_lines(monkeypatch):
    app = OneField()
    async with app.run_test(size=(80, 10)) as pilot:
        fields = app.query_one(FieldLines)
        fields.show(ROWS, [], COLOR)
        await pilot.pause()
        painted: list[Region] = []
        monkeypatch.setattr(
            FieldLines, "refresh", lambda self, *regions, **kw: painted.extend(regions) or self
        )
        later = [*ROWS[:4], ("ETA", "2s")]
        fields.show(later, [], COLOR)
        monkeypatch.undo()
        eta = text(field_lines(later, [], COLOR, 80, CONSOLE))[2].index("2s")
        assert painted == [Region(eta, 2, 1, 1)]
        await pilot.pause()
        assert "ETA       2s" in fields.render_line(2).text
