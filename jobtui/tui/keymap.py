"""Every key jobtui answers to, each with an id a user can remap.

A keymap file is TOML mapping binding id → key (Textual key names; several keys
comma-separated), at `~/.config/jobtui/keymap.toml` unless told otherwise:

    abort = "A"          # shift+a: harder to hit by accident
    filter = "slash,ctrl+f"

Destructive actions (abort, finalize, dismiss) refuse modifier chords: a
ctrl-key is what terminals, tmux and shells already use, and a stray one must
never cancel a migration.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from textual.binding import Binding

BINDINGS: list[Binding] = [
    Binding("question_mark", "help", "Help", id="help"),
    Binding("slash", "filter", "Filter", id="filter"),
    Binding("a", "abort", "Abort", id="abort"),
    Binding("f", "finalize", "Finalize", id="finalize"),
    Binding("p", "pause_resume", "Pause/Resume", id="pause"),
    Binding("d", "dismiss", "Dismiss", id="dismiss"),
    Binding("b", "bandwidth", "Bandwidth", id="bandwidth"),
    Binding("c", "postcopy", "Post-copy", id="postcopy"),
    Binding("x", "toggle_xml", "XML", id="xml"),
    Binding("e", "toggle_log", "Events", id="events"),
    Binding("h", "toggle_finished", "Show/hide finished", id="finished", show=False),
    Binding("t", "toggle_tree", "Show/hide tree", id="tree", show=False),
    Binding("r", "refresh", "Reload all jobs", id="refresh", show=False),
    Binding("escape", "back", "Back / close", id="back", show=False),
    Binding("tab", "focus_next", "Next pane", id="focus-next", show=False),
    Binding("shift+tab", "focus_previous", "Previous pane", id="focus-previous", show=False),
    Binding("q", "quit", "Quit", id="quit"),
    # Operators expect Ctrl-C to leave a terminal program; quitting changes nothing.
    Binding("ctrl+c", "quit", "Quit", id="quit-interrupt", show=False, priority=True),
]

# Post-copy cannot be undone: it is kept off modifier chords like the destructive ones.
DESTRUCTIVE_IDS = frozenset({"abort", "finalize", "dismiss", "postcopy"})
_IDS = frozenset(b.id for b in BINDINGS if b.id)
_CHORDS = ("ctrl+", "alt+", "meta+", "super+", "hyper+")


def default_keymap_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "jobtui" / "keymap.toml"


def load_keymap(path: Path) -> tuple[dict[str, str], list[str]]:
    """Read a keymap file: (binding id → keys, problems worth telling the user).

    A missing file is no keymap and no problem; a bad entry is skipped, never fatal.
    """
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}, []
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        return {}, [f"{path}: {err}"]
    if isinstance(data.get("keymap"), dict):
        data = data["keymap"]
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in data.items():
        if binding_id not in _IDS:
            problems.append(f"{path}: unknown binding id {binding_id!r}")
            continue
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f'{path}: {binding_id} must be a key name, e.g. "A"')
            continue
        split = [k.strip() for k in keys.split(",")]
        keys = ",".join(split)
        if binding_id in DESTRUCTIVE_IDS and any(k.lower().startswith(_CHORDS) for k in split):
            problems.append(f"{path}: {binding_id} must not be on a modifier chord ({keys})")
            continue
        keymap[binding_id] = keys
    return keymap, problems


def keys_for(binding: Binding, keymap: dict[str, str]) -> list[str]:
    """The keys a binding answers to once the user's keymap is applied."""
    keys = keymap.get(binding.id or "", binding.key)
    return [k.strip() for k in keys.split(",") if k.strip()]
