"""The TUI's settings: `~/.config/jobtui/config.toml` (`$XDG_CONFIG_HOME/jobtui/`).

    theme = "textual-dark"        # any Textual theme (ctrl+p → "theme"); kept when changed

    [attention]                   # what raises a notification (true/false each)
    failed = true
    stalled = true
    orphaned = true
    ready = true
    ready_after = 300             # seconds at READY before a job asks for an operator
    bell = false                  # the terminal bell with each notification
    desktop = "off"               # "osc9" or "osc777": a desktop notification escape

A missing file is the defaults. A bad file is one line saying what is wrong; the TUI
starts with the defaults for whatever could not be read.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from jobtui.tui.keymap import _read

DESKTOP = ("off", "osc9", "osc777")


@dataclass(frozen=True)
class AttentionConfig:
    failed: bool = True
    stalled: bool = True
    orphaned: bool = True
    ready: bool = True
    ready_after: float = 300.0
    bell: bool = False
    desktop: str = "off"


@dataclass(frozen=True)
class Config:
    theme: str | None = None
    attention: AttentionConfig = field(default_factory=AttentionConfig)


def default_config_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "jobtui" / "config.toml"


def _attention(data: Any, problems: list[str]) -> AttentionConfig:
    att = AttentionConfig()
    if not isinstance(data, dict):
        problems.append("[attention] must be a table")
        return att
    known = {f.name for f in fields(AttentionConfig)}
    for name, value in data.items():
        if name not in known:
            problems.append(f"unknown setting attention.{name[:40]}")
        elif name == "ready_after":
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
            if ok:
                att = replace(att, ready_after=float(value))
            else:
                problems.append("attention.ready_after must be a number of seconds, e.g. 300")
        elif name == "desktop":
            if value in DESKTOP:
                att = replace(att, desktop=value)
            else:
                problems.append(f"attention.desktop must be one of {', '.join(DESKTOP)}")
        elif isinstance(value, bool):
            flags: dict[str, Any] = {name: value}
            att = replace(att, **flags)
        else:
            problems.append(f"attention.{name} must be true or false")
    return att


def load_config(path: Path) -> tuple[Config, str | None]:
    """The settings in `path`, and one line saying what was wrong with it (or None)."""
    problems: list[str] = []
    try:
        text = _read(path)
        data = tomllib.loads(text) if text is not None else {}
    except (OSError, ValueError, tomllib.TOMLDecodeError) as err:  # UnicodeDecodeError too
        return Config(), f"{path}: {' '.join(str(err).split())} (using the defaults)"
    config = Config()
    for name, value in data.items():
        if name == "theme":
            if isinstance(value, str) and value.strip():
                config = replace(config, theme=value.strip())
            else:
                problems.append('theme must be a theme name, e.g. "textual-dark"')
        elif name == "attention":
            config = replace(config, attention=_attention(value, problems))
        else:
            problems.append(f"unknown setting {name[:40]!r}")
    if not problems:
        return config, None
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return config, f"{path}: {problems[0]}{more}"


def save_theme(path: Path, theme: str) -> str | None:
    """Keep `theme` in the config file (its other lines as they are); why not, or None."""
    try:
        text = _read(path) or ""
    except (OSError, ValueError) as err:
        return f"{path}: {err}"
    line = f"theme = {_toml_string(theme)}\n"
    lines = text.splitlines(keepends=True)
    for i, old in enumerate(lines):
        if old.split("=", 1)[0].strip() == "theme" and not old.startswith((" ", "\t", "[")):
            lines[i] = line
            break
        if old.lstrip().startswith("["):
            lines.insert(i, line)  # top-level keys go before the first table
            break
    else:
        lines.append(line)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(lines))
        os.replace(tmp, path)
    except OSError as err:
        return f"cannot keep the theme in {path}: {err.strerror or err}"
    return None


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{"".join(c for c in escaped if c.isprintable())}"'
