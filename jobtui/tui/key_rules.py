"""Which control key does what to which job: shown when it applies, dimmed when it
could apply in another state of the job (a copy not READY yet), hidden otherwise and
in read-only mode. No Textual here: the app asks (`check_action`), this answers."""

from __future__ import annotations

from jobtui.model import ControlOp, Job, JobState
from jobtui.support import Options, refusal

# action → the control op it runs; pause_resume picks its op from the job's state.
CONTROL_ACTIONS: dict[str, ControlOp | None] = {
    "abort": ControlOp.ABORT,
    "finalize": ControlOp.FINALIZE,
    "pause_resume": None,
    "dismiss": ControlOp.DISMISS,
    "bandwidth": ControlOp.SET_SPEED,
    "postcopy": ControlOp.POSTCOPY,
}


def op_for(action: str, job: Job) -> ControlOp | None:
    """The control op a key's action runs on this job (None: not a control key)."""
    if action not in CONTROL_ACTIONS:
        return None
    op = CONTROL_ACTIONS[action]
    if op is None:
        return ControlOp.RESUME if job.state is JobState.PAUSED else ControlOp.PAUSE
    return op


def control_key(action: str, job: Job | None, opts: Options) -> bool | None:
    """For a control key's action: True shown, None dimmed, False hidden."""
    if opts.readonly or job is None:
        return False
    op = op_for(action, job)
    assert op is not None
    if refusal(job, op, opts) is None:
        return True
    # A finished job never runs again, so only its own state counts for it.
    states = list(JobState) if job.state.active else [job.state]
    ops = [ControlOp.PAUSE, ControlOp.RESUME] if action == "pause_resume" else [op]
    could = any(refusal(job.evolve(state=s), o, opts) is None for s in states for o in ops)
    return None if could else False
