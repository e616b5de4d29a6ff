"""Setting a job's bandwidth: one field, checked before anything is sent."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label

from jobtui.model import Job
from jobtui.tui.format import human_rate
from jobtui.units import parse_bandwidth


class BandwidthScreen(ModalScreen[int | None]):
    """Dismisses with bytes/s (0 = unlimited), or None when cancelled."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="bandwidth.cancel")]

    def __init__(self, job: Job) -> None:
        super().__init__()
        self._job = job

    def compose(self) -> ComposeResult:
        job = self._job
        now = human_rate(job.bandwidth) if job.bandwidth else "unlimited or unknown"
        with Vertical(id="dialog"):
            yield Label(f"Bandwidth for {job.name} on {job.domain}", id="question", markup=False)
            yield Label(f"now: {now}", id="consequence", markup=False)
            yield Input(placeholder="32M, 32MiB/s, 1048576 (bytes/s), 0 = unlimited", id="value")
            yield Label("", id="error", markup=False)
            yield Label("Enter sets it · Esc cancels", id="hint")

    def on_mount(self) -> None:
        self.query_one("#value", Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        # The complaint belongs to the text that caused it: clear it as the user types.
        self.query_one("#error", Label).update("")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        try:
            value = parse_bandwidth(event.value)
        except ValueError as err:
            self.query_one("#error", Label).update(str(err))
            return
        self.dismiss(value)

    def action_cancel(self) -> None:
        self.dismiss(None)
