"""Attention: a job that fails, stalls, is orphaned or waits at READY raises a notification,
and (when configured) the bell and a desktop-notification escape (OSC 9 / OSC 777) written
to the terminal. Over a RecordedSource: canned jobs, a clock that moves when told to."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

from jobtui import recorded
from jobtui.model import JobKey, JobState
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.attention import Alert, Kind, terminal_escape
from jobtui.tui.config import AttentionConfig, Config, load_config
from jobtui.tui.widgets.job_table import JobTable


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


def make_app(source: RecordedSource, tmp_path: Path, config: str = "") -> tuple[JobTUI, list]:
    path = tmp_path / "config.toml"
    path.write_text(config)
    app = JobTUI(source, clock=source.clock, tz=UTC, config_path=path)
    written: list[str] = []
    app.terminal_write = written.append
    # Every notification raised, kept: Textual drops one from the screen after its timeout,
    # which a slow (loaded) test run can pass before it looks.
    raised: list[tuple[str, str, str]] = []
    shown = app.notify

    def notify(message: str, *, title: str = "", severity: str = "information", **kw) -> None:
        raised.append((title, message, severity))
        shown(message, title=title, severity=severity, **kw)  # type: ignore[arg-type]

    app.notify = notify  # type: ignore[method-assign]
    app.raised = raised  # type: ignore[attr-defined]
    return app, written


def notes(app: JobTUI) -> list[tuple[str, str, str]]:
    return list(app.raised)  # type: ignore[attr-defined]


async def settle(app: JobTUI, pilot) -> None:
    await pilot.pause()
    app.flush_updates()
    await pilot.pause()


async def test_a_job_that_fails_is_notified_once_with_bell_and_osc9(tmp_path: Path) -> None:
    src = recorded.busy()
    config = '[attention]\nbell = true\ndesktop = "osc9"\n'
    app, written = make_app(src, tmp_path, config)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await settle(app, pilot)
        # What jobs already are at start (a failed copy, an orphan, a stall) is not news.
        assert notes(app) == [] and written == []
        pull = key_of(src, "pull-vdb")
        src.set_state(pull, JobState.FAILED, message="Input/output error")
        await settle(app, pilot)
        body = "pull-vdb on web1 (kvm1.lab): Input/output error"
        assert notes(app) == [("job failed", body, "error")]
        assert written == [f"\a\x1b]9;jobtui: job failed: {body}\x07"]
        src.progress(pull, message="Input/output error (again)")
        await settle(app, pilot)
        assert len(notes(app)) == 1  # once per job and kind


async def test_a_copy_waiting_at_ready_too_long_is_notified_with_osc777(tmp_path: Path) -> None:
    src = recorded.busy()
    config = '[attention]\nready_after = 60\ndesktop = "osc777"\n'
    app, written = make_app(src, tmp_path, config)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await settle(app, pilot)
        src.clock.advance(59)
        await settle(app, pilot)
        assert notes(app) == []
        src.clock.advance(2)
        await settle(app, pilot)
        body = "copy-vda on web1 (kvm1.lab) has waited 1 min to be finalized (f) or aborted (a)"
        assert notes(app) == [("waiting at READY", body, "warning")]
        # No bell unless asked for: the escape alone.
        assert written == [f"\x1b]777;notify;jobtui: waiting at READY;{body}\x07"]


async def test_stall_and_orphan_are_notified_and_the_bell_is_off_by_default(
    tmp_path: Path,
) -> None:
    src = recorded.busy()
    app, written = make_app(src, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await settle(app, pilot)
        src.progress(key_of(src, "backup"), stalled=True, message="no progress for 60 s")
        src.set_state(key_of(src, "save"), JobState.ORPHANED, message="gone from libvirt")
        await settle(app, pilot)
        # Two jobs changed in one paint: each is told, in no particular order.
        assert sorted((t, s) for t, _, s in notes(app)) == [
            ("job orphaned", "error"),
            ("job stalled", "warning"),
        ]
        assert written == []


async def test_a_kind_switched_off_says_nothing(tmp_path: Path) -> None:
    src = recorded.busy()
    app, written = make_app(src, tmp_path, "[attention]\nfailed = false\nbell = true\n")
    async with app.run_test(size=(140, 40)) as pilot:
        await app.wait_until_loaded()
        await settle(app, pilot)
        src.set_state(key_of(src, "dump"), JobState.FAILED, message="disk full")
        await settle(app, pilot)
        assert notes(app) == [] and written == []


async def test_a_bad_config_is_one_line_and_the_tui_still_starts(tmp_path: Path) -> None:
    src = recorded.busy()
    config = '[attention]\nready_after = "soon"\nbell = "yes"\ncolour = 1\n'
    app, _ = make_app(src, tmp_path, config)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.wait_until_loaded()
        await settle(app, pilot)
        assert app.query_one(JobTable).row_count == 9
        [(title, message, severity)] = notes(app)
        assert title == "config" and severity == "warning" and "\n" not in message
        assert message == (
            f"{tmp_path / 'config.toml'}: attention.ready_after must be a number of "
            "seconds, e.g. 300 (and 2 more)"
        )


def test_config_files(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert load_config(path) == (Config(), None)  # no file: the defaults
    path.write_text("theme = \n")
    config, problem = load_config(path)
    assert config == Config() and problem is not None and problem.startswith(f"{path}: ")
    assert problem.endswith("(using the defaults)") and "\n" not in problem
    path.write_text('theme = "nord"\n[attention]\nready_after = 5\ndesktop = "osc9"\n')
    assert load_config(path) == (
        Config(theme="nord", attention=AttentionConfig(ready_after=5.0, desktop="osc9")),
        None,
    )


def test_an_escape_in_a_name_cannot_end_the_notification_early() -> None:
    src = recorded.busy()
    job = next(j for j in src.jobs() if j.name == "dump")
    job = job.evolve(domain="evil\x07\x1b]0;pwned\x07", message="x")
    out = terminal_escape(Alert(Kind.FAILED, job), "kvm1.lab", "osc9")
    assert out.count("\x07") == 1 and out.count("\x1b") == 1 and out.endswith("\x07")
