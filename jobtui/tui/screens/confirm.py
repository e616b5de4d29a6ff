"""Asking before a destructive operation, in words that say what will happen.

The question names the job and the domain; the consequence line says what is
left behind, because "abort" means very different things for a READY copy (a
consistent copy stays on disk) and for a save (the file is removed).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from jobtui.model import ControlOp, Job, JobState, JobType

_VERB = {
    ControlOp.ABORT: "Abort",
    ControlOp.FINALIZE: "Finalize",
    ControlOp.DISMISS: "Dismiss",
    ControlOp.POSTCOPY: "Switch to post-copy:",
}


def question(job: Job, op: ControlOp) -> str:
    return f"{_VERB.get(op, str(op).capitalize())} {job.name} on {job.domain}?"


def consequence(job: Job, op: ControlOp) -> str:
    """One line: what the operation leaves behind, as libvirt 9.0 and QEMU 7.2 leave it."""
    dom, typ = job.domain, job.type
    dest = job.config.get("destination")
    at = f" at {dest}" if dest else ""
    if op is ControlOp.POSTCOPY:
        return (
            f"{dom} then runs on the destination and pulls its memory from here; "
            "the migration can no longer be aborted."
        )
    if op is ControlOp.DISMISS:
        return "Only jobtui's record and final stats go; nothing changes on the host."
    if op is ControlOp.FINALIZE:
        if typ is JobType.BLOCK_COMMIT_ACTIVE:
            return f"{dom} pivots to the base image; the committed overlay is no longer used."
        return f"{dom} switches to the copy{at}; its current disk is no longer used."
    if job.state is JobState.ORPHANED:
        return f"QEMU cancels it through monitor passthrough, which taints {dom}."
    if typ is JobType.BLOCK_COPY:
        if job.state is JobState.READY:
            return f"The copy{at} stays on disk but stops being kept in sync; {dom} keeps its disk."
        return f"The partial copy{at} stays on disk, not usable; {dom} keeps its disk."
    if typ is JobType.BLOCK_COMMIT_ACTIVE:
        return f"Data already committed stays in the base image; {dom} keeps its current disk."
    if typ is JobType.BLOCK_COMMIT:
        return "Data already committed stays in the base image; the backing chain is unchanged."
    if typ is JobType.BLOCK_PULL:
        return "Data already pulled stays in the top image; the backing chain is unchanged."
    if typ is JobType.BACKUP:
        return "The backup stops and its incomplete target is deleted."
    if typ is JobType.SAVE:
        return f"{dom} keeps running; the partial save file is removed."
    if typ is JobType.DUMP:
        return f"{dom} keeps running; the partial dump file is not usable."
    if typ is JobType.MIGRATION_OUT:
        return f"The migration fails; {dom} keeps running on this host."
    return f"{job.name} stops; what it already did stays done."


class ConfirmScreen(ModalScreen[bool]):
    """Yes/No with No focused: Enter on a reflex must not destroy anything."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no"),
    ]

    def __init__(self, question: str, consequence: str) -> None:
        super().__init__()
        self._question = question
        self._consequence = consequence

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self._question, id="question", markup=False)
            yield Label(self._consequence, id="consequence", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
