"""Rich styles for states and alerts, in colour and for NO_COLOR.

Textual's NO_COLOR mode turns colours into greys by luminance, which makes red
("failed", a lost host) the darkest, least visible text on screen: exactly
backwards. Without colour, meaning is carried by weight and reverse video instead.
Every label also carries a symbol or a word, so nothing depends on style alone.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobtui.model import JobState


@dataclass(frozen=True)
class Palette:
    state: dict[JobState, str]
    alert: str  # something is wrong and needs a person: failed, disconnected
    warn: str  # worth a look: stalled, unresponsive
    ok: str
    muted: str


COLOR = Palette(
    state={
        JobState.RUNNING: "green",
        JobState.READY: "bold cyan",
        JobState.PAUSED: "yellow",
        JobState.COMPLETED: "dim green",
        JobState.FAILED: "bold red",
        JobState.ABORTED: "dim yellow",
        JobState.UNKNOWN: "dim",
        JobState.ORPHANED: "bold magenta",
    },
    alert="bold red",
    warn="bold yellow",
    ok="green",
    muted="dim",
)

MONO = Palette(
    state={
        JobState.RUNNING: "",
        JobState.READY: "bold",
        JobState.PAUSED: "italic",
        JobState.COMPLETED: "dim",
        JobState.FAILED: "bold reverse",
        JobState.ABORTED: "dim italic",
        JobState.UNKNOWN: "dim",
        JobState.ORPHANED: "bold reverse",
    },
    alert="bold reverse",
    warn="bold",
    ok="",
    muted="dim",
)


def palette(no_color: bool) -> Palette:
    return MONO if no_color else COLOR
