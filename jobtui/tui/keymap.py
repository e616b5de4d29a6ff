"""Every key jobtui answers to, each with an id a user can remap.

A keymap file is TOML mapping binding id → key (Textual key names; several keys
comma-separated), at `~/.config/jobtui/keymap.toml` unless told otherwise:

    abort = "A"          # shift+a: harder to hit by accident
    filter = "slash,ctrl+f"

What is refused, one line each naming the file (at most MAX_PROBLEMS lines, then a count):
a file that is not a regular file (a FIFO is never opened for reading) or is larger than
MAX_BYTES; an unknown id; a key name Textual never produces ("shift+ctrl+a": Textual
writes modifiers in alphabetical order, "ctrl+shift+a"), or one with control characters;
a key another binding already holds (`abort = "q"` would silently take over quit); and,
for destructive actions (abort, finalize, dismiss, post-copy), modifier chords: a ctrl-key
is what terminals, tmux and shells already use, and a stray one must never cancel a
migration.
"""

from __future__ import annotations

import os
import stat
import tomllib
import unicodedata
from pathlib import Path

from textual.binding import Binding
from textual.keys import Keys

from jobtui.model import ControlOp

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
    Binding("S", "save_svg", "Save the screen as SVG", id="screenshot", show=False),
    Binding("w", "toggle_wide", "Wide: every column / those that fit", id="wide", show=False),
    Binding("greater_than_sign", "sort_next", "Sort: next column", id="sort-next", show=False),
    Binding("less_than_sign", "sort_previous", "Sort: previous column", id="sort-prev", show=False),
    Binding("I", "sort_invert", "Invert the sort order", id="sort-invert", show=False),
    Binding("r", "refresh", "Reload all jobs", id="refresh", show=False),
    Binding(
        "ctrl+p",
        "command_palette",
        "Command palette: actions, jump to a host or domain, theme",
        id="palette",
        show=False,
        priority=True,
    ),
    Binding("escape", "back", "Back / close", id="back", show=False),
    Binding("tab", "focus_next", "Next pane", id="focus-next", show=False),
    Binding("shift+tab", "focus_previous", "Previous pane", id="focus-previous", show=False),
    Binding("q", "quit", "Quit", id="quit"),
    # Operators expect Ctrl-C to leave a terminal program; quitting changes nothing.
    Binding("ctrl+c", "quit", "Quit", id="quit-interrupt", show=False, priority=True),
]

# What cannot be undone (ControlOp.needs_confirmation) is kept off modifier chords.
DESTRUCTIVE_IDS = frozenset(str(op) for op in ControlOp if op.needs_confirmation)
# Keys that change a job: none of them exists in read-only mode (nor in its help).
CONTROL_IDS = frozenset({"abort", "finalize", "pause", "dismiss", "bandwidth", "postcopy"})
_IDS = frozenset(b.id for b in BINDINGS if b.id)
_MODIFIERS = ("alt", "ctrl", "hyper", "meta", "shift", "super")  # Textual's order: sorted
_CHORDS = frozenset(_MODIFIERS) - {"shift"}
# Named keys Textual produces: its Keys enum, less the modifier prefixes and pseudo keys.
_NAMED = frozenset(
    name for k in Keys if not (name := k.value.rpartition("+")[2]).startswith("<") and len(name) > 1
)
MAX_BYTES = 64 * 1024  # a keymap is a few lines; anything bigger is not one
MAX_PROBLEMS = 5


def default_keymap_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "jobtui" / "keymap.toml"


def _read(path: Path) -> str | None:
    """The file's text, None if there is none; raises ValueError/OSError with the reason.

    Never blocks: O_NONBLOCK, and anything but a regular file is refused before reading."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        data = os.read(fd, MAX_BYTES + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES // 1024} KiB: not a keymap")
    return data.decode("utf-8")


def _key_name(key: str) -> str:
    """One printable character as Textual names its key ("/" → "slash"); others as given."""
    if len(key) == 1 and key.isprintable() and not key.isalnum() and not key.isspace():
        with_spaces = unicodedata.name(key, key).lower()
        name = with_spaces.replace("-", "_").replace(" ", "_")
        return {"solidus": "slash", "reverse_solidus": "backslash", "commercial_at": "at",
                "hyphen_minus": "minus", "plus_sign": "plus", "low_line": "underscore"
                }.get(name, name)  # fmt: skip
    return key


# ... and the names of printable ASCII characters ("slash", "question_mark").
_NAMED |= frozenset(_key_name(chr(c)) for c in range(0x21, 0x7F))


def key_problem(key: str, *, destructive: bool) -> str | None:
    """Why `key` would never fire (or must not be used for a destructive action), or None."""
    if not key:
        return "an empty key"
    if any(unicodedata.category(c).startswith("C") for c in key):
        return f'{key!r} has control characters; write the key\'s name, e.g. "ctrl+a"'
    *mods, name = key.split("+")
    if not name:
        return f'{key!r} is not a key name (write "plus" for +)'
    if not (len(name) == 1 and name.isprintable()) and name not in _NAMED:
        return f"{key!r} is not a key name Textual knows"
    if any(m not in _MODIFIERS for m in mods):
        bad = next(m for m in mods if m not in _MODIFIERS)
        return f"{key!r}: {bad!r} is not a modifier ({', '.join(_MODIFIERS)})"
    if mods != sorted(set(mods)):
        canonical = "+".join([*sorted(set(mods)), name])
        return f"{key!r} never fires: Textual names that key {canonical!r}"
    if destructive and _CHORDS.intersection(mods):
        return f"must not be on a modifier chord ({key})"
    return None


def load_keymap(path: Path) -> tuple[dict[str, str], list[str]]:
    """Read a keymap file: (binding id → keys, problems worth telling the user).

    A missing file is no keymap and no problem; a bad entry is skipped, never fatal. The
    work is linear in the file's size, which is bounded (MAX_BYTES), and so is the number
    of problems reported (MAX_PROBLEMS lines, then one line counting the rest).
    """
    try:
        text = _read(path)
        if text is None:
            return {}, []
        data = tomllib.loads(text)
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:  # UnicodeDecodeError too
        return {}, [f"{path}: {' '.join(str(err).split())}"]
    if isinstance(data.get("keymap"), dict):
        data = data["keymap"]
    keymap: dict[str, str] = {}
    problems: list[str] = []
    for binding_id, keys in data.items():
        if binding_id not in _IDS:
            problems.append(f"{path}: unknown binding id {binding_id[:40]!r}")
            continue
        if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
            keys = ",".join(keys)
        if not isinstance(keys, str) or not keys.strip():
            problems.append(f'{path}: {binding_id} must be a key name, e.g. "A"')
            continue
        split = [_key_name(k.strip()) for k in keys.split(",")]
        destructive = binding_id in DESTRUCTIVE_IDS
        why = next((w for k in split if (w := key_problem(k, destructive=destructive))), None)
        if why:
            problems.append(f"{path}: {binding_id}: {why}")
            continue
        keymap[binding_id] = ",".join(split)
    problems += _drop_clashes(path, keymap)
    if len(problems) > MAX_PROBLEMS + 1:
        more = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"{path}: and {more} more problem(s)"]
    return keymap, problems


def _drop_clashes(path: Path, keymap: dict[str, str]) -> list[str]:
    """Refuse (remove) an entry whose key another binding holds once the keymap is applied.

    The binding that keeps the key is the one whose key it was (or the earlier entry); a
    refused entry's binding goes back to its own keys, which may refuse another in turn."""
    problems: list[str] = []
    while True:
        holder: dict[str, str] = {}
        clash: tuple[str, str, str] | None = None
        # Bindings the user did not remap hold their keys first, then the file's, in order.
        order = [b for b in BINDINGS if b.id not in keymap] + [
            b for i in keymap for b in BINDINGS if b.id == i
        ]
        for b in order:
            for key in keys_for(b, keymap):
                other = holder.setdefault(key, b.id or "")
                if other != b.id and clash is None:
                    clash = (b.id or "", key, other)
        if clash is None:
            return problems
        binding_id, key, other = clash
        del keymap[binding_id]
        problems.append(f"{path}: {binding_id}: {key!r} is already the key of {other}")


def keys_for(binding: Binding, keymap: dict[str, str]) -> list[str]:
    """The keys a binding answers to once the user's keymap is applied."""
    keys = keymap.get(binding.id or "", binding.key)
    return [k.strip() for k in keys.split(",") if k.strip()]
