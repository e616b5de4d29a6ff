"""Keys: the read-only help, and keymap files that are big, odd or hostile."""

from __future__ import annotations

import os
import threading
from datetime import UTC
from pathlib import Path

from jobtui import recorded
from jobtui.recorded import RecordedSource
from jobtui.tui import keymap
from jobtui.tui.app import JobTUI
from jobtui.tui.keymap import BINDINGS, load_keymap
from jobtui.tui.screens.confirm import ConfirmScreen
from jobtui.tui.screens.help import HelpScreen
from jobtui.tui.widgets.job_table import JobTable

# The keys that change a job; read-only mode has none of them.
CONTROL_IDS = frozenset({"abort", "finalize", "pause", "dismiss", "bandwidth", "postcopy"})
MAX_PROBLEMS = 5  # lines about a keymap, then one that counts the rest


def make_app(source: RecordedSource, **kw: object) -> JobTUI:
    return JobTUI(source, clock=source.clock, tz=UTC, **kw)  # type: ignore[arg-type]


def noted(app: JobTUI) -> list[str]:
    notes: list[str] = []
    original = app.notify

    def notify(message: str, **kw: object) -> None:
        notes.append(message)
        original(message, **kw)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    return notes


async def test_readonly_help_lists_no_control_key() -> None:
    src = recorded.busy(readonly=True)
    app = make_app(src)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        ids = [r[2] for r in app.screen.rows]
        assert ids == [b.id for b in BINDINGS if b.id not in CONTROL_IDS]
        assert keymap.CONTROL_IDS == CONTROL_IDS
        shown = [r[1] for r in app.screen.rows]
        assert not {"Abort", "Finalize", "Pause/Resume", "Dismiss", "Bandwidth"} & set(shown)
        assert "Read-only" in app.screen._note


async def test_writable_help_still_lists_every_key() -> None:
    app = make_app(recorded.busy())
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert [r[2] for r in app.screen.rows] == [b.id for b in BINDINGS]


def load_in_thread(path: Path) -> tuple[dict[str, str], list[str]]:
    out: list[tuple[dict[str, str], list[str]]] = []
    t = threading.Thread(target=lambda: out.append(load_keymap(path)), daemon=True)
    t.start()
    t.join(20)  # a blocking open of a FIFO would never return
    assert out, "load_keymap blocked"
    return out[0]


def test_a_fifo_or_a_directory_as_keymap_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "keymap.toml"
    os.mkfifo(fifo)
    assert load_in_thread(fifo) == ({}, [f"{fifo}: not a regular file"])
    assert load_in_thread(tmp_path) == ({}, [f"{tmp_path}: not a regular file"])


def test_odd_keys_are_refused_one_line_each_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text(
        'abort = "q"\n'  # quit's key
        'finalize = "shift+ctrl+f"\n'  # Textual says ctrl+shift+f: never fires
        'dismiss = "\\u0004"\n'  # a control character
        'postcopy = "alt+c"\n'  # a chord for something that cannot be undone
        'filter = "/"\n'  # a character: Textual's key name is slash
        'events = "ctrl+e"\n'  # a chord for a harmless key is fine
        'help = "frobnicate"\n'
    )
    km, problems = load_in_thread(path)
    assert km == {"filter": "slash", "events": "ctrl+e"}
    assert problems == [
        f"{path}: finalize: 'shift+ctrl+f' never fires: Textual names that key 'ctrl+shift+f'",
        f"{path}: dismiss: '\\x04' has control characters; write the key's name, e.g. \"ctrl+a\"",
        f"{path}: postcopy: must not be on a modifier chord (alt+c)",
        f"{path}: help: 'frobnicate' is not a key name Textual knows",
        f"{path}: abort: 'q' is already the key of quit",
    ]


def test_a_swap_of_two_keys_is_no_clash(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('abort = "q"\nquit = "a"\n')
    assert load_in_thread(path) == ({"abort": "q", "quit": "a"}, [])
    path.write_text('pause = "a"\nabort = "q"\n')  # abort refused: back on a, so pause clashes
    km, problems = load_in_thread(path)
    assert km == {}
    assert problems == [
        f"{path}: abort: 'q' is already the key of quit",
        f"{path}: pause: 'a' is already the key of abort",
    ]


async def test_abort_on_q_does_not_take_over_quit(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text('abort = "q"\n')
    src = recorded.busy()
    app = make_app(src, keymap_path=path)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        copy = next(j.key for j in src.jobs() if j.name == "copy-vda")
        assert app.query_one(JobTable).select(copy)
        await pilot.pause()
        await pilot.press("a")  # abort kept its own key
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert app.active_bindings["q"].binding.action == "quit"


async def test_thousands_of_unknown_ids_are_a_few_lines_and_the_table_shows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text("".join(f'unknown{i} = "z"\n' for i in range(2000)))
    km, problems = load_keymap(path)
    assert km == {}
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1] == f"{path}: and {2000 - MAX_PROBLEMS} more problem(s)"
    assert all(p.startswith(f"{path}: ") and "\n" not in p for p in problems)
    path.write_text("".join(f'unknown{i} = "z"\n' for i in range(5000)))
    assert load_keymap(path) == ({}, [f"{path}: larger than 64 KiB: not a keymap"])
    path.write_text("".join(f'unknown{i} = "z"\n' for i in range(2000)))
    src = recorded.busy()
    app = make_app(src, keymap_path=path)
    notes = noted(app)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause()
        assert len(notes) == MAX_PROBLEMS + 1
        assert app.query_one(JobTable).row_count == len(src.jobs())


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "keymap.toml"
    path.write_text("# padding\n" * 100_000)
    assert load_keymap(path) == ({}, [f"{path}: larger than 64 KiB: not a keymap"])


def test_every_default_key_is_valid() -> None:
    for b in BINDINGS:
        for k in b.key.split(","):
            assert keymap.key_problem(k, destructive=b.id in keymap.DESTRUCTIVE_IDS) is None


async def test_opening_help_does_not_lay_out_the_job_view_behind_it(monkeypatch) -> None:
    from textual.screen import Screen

    app = make_app(recorded.busy())
    async with app.run_test(size=(120, 35)) as pilot:
        await app.wait_until_loaded()
        await pilot.pause(0.2)
        jobs = app.screen
        layouts: list[Screen[object]] = []
        layout = Screen._refresh_layout

        def counted(screen: Screen[object], *args: object, **kw: object) -> None:
            layouts.append(screen)
            layout(screen, *args, **kw)  # type: ignore[arg-type]

        monkeypatch.setattr(Screen, "_refresh_layout", counted)
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        assert isinstance(app.screen, HelpScreen)
        # The dialog is laid out as it opens (and again as its list finds its height);
        # the job view behind it, at the same size and not shown (the dialog's screen
        # is opaque), is left alone.
        assert app.screen in layouts
        assert jobs not in layouts
        await pilot.press("question_mark")
        await pilot.pause(0.3)
        assert app.screen is jobs
        assert "copy-vda" in app.export_screenshot()


async def test_help_is_built_once_and_again_after_a_theme_change() -> None:
    app = make_app(recorded.busy())
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await pilot.press("question_mark")
        first = app.screen
        assert isinstance(first, HelpScreen)
        await pilot.press("question_mark")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("question_mark")
        assert app.screen is first  # shown again, not composed again
        await pilot.press("escape")
        app.theme = "nord" if app.theme != "nord" else "gruvbox"
        await pilot.pause()
        await pilot.press("question_mark")
        again = app.screen
        assert isinstance(again, HelpScreen) and again is not first
        assert "jobtui keys" in app.export_screenshot().replace("&#160;", " ")
