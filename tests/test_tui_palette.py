"""The command palette (ctrl+p) over a RecordedSource: what it offers follows the footer."""

from __future__ import annotations

from datetime import UTC

from textual.command import CommandList, CommandPalette

from jobtui import recorded
from jobtui.model import Domain, Host, HostState, Job, JobKey, JobState, JobType
from jobtui.recorded import RecordedSource
from jobtui.tui.app import JobTUI
from jobtui.tui.screens.confirm import ConfirmScreen
from jobtui.tui.widgets.domain_tree import DomainRef, DomainTree
from jobtui.tui.widgets.job_table import JobTable


def key_of(source: RecordedSource, name: str) -> JobKey:
    return next(j.key for j in source.jobs() if j.name == name)


async def start(app: JobTUI, pilot, key: JobKey) -> None:
    await app.wait_until_loaded()
    await pilot.pause()
    assert app.query_one(JobTable).select(key)
    await pilot.pause()


def titles(app: JobTUI) -> list[str]:
    return [e.title for e in app.palette_entries()]


async def test_palette_lists_what_the_footer_allows_with_keys_hosts_and_domains():
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(140, 40)) as pilot:
        await start(app, pilot, key_of(src, "copy-vda"))  # READY
        shown = titles(app)
        assert "Finalize (f)" in shown and "Abort (a)" in shown and "Bandwidth (b)" in shown
        assert "Quit (q)" in shown and "XML (x)" in shown
        # Dimmed (dismiss: once it has finished) or refused (pause: no monitor) is absent.
        assert not [t for t in shown if t.startswith(("Dismiss", "Pause", "Post-copy"))]
        assert not [t for t in shown if t.startswith("Command palette")]
        assert "host: kvm1.lab" in shown and "host: kvm2.lab" in shown
        assert "domain: web1" in shown
        about = {e.title: e.help for e in app.palette_entries()}
        assert about["Finalize (f)"].endswith("/copy-vda")

        await pilot.press("ctrl+p")
        await pilot.pause()
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"finalize")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        # The palette runs the key's action: a destructive one still asks, default No.
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        await pilot.pause()
        assert src.calls == []

        await select_failed(app, pilot, src)
        shown = titles(app)
        assert "Dismiss (d)" in shown and not [t for t in shown if t.startswith("Finalize")]


async def select_failed(app: JobTUI, pilot, src: RecordedSource) -> None:
    assert app.query_one(JobTable).select(key_of(src, "copy-vdb"))
    await pilot.pause()


async def test_readonly_palette_has_no_control_action():
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC, readonly=True)
    async with app.run_test(size=(140, 40)) as pilot:
        await start(app, pilot, key_of(src, "copy-vda"))
        shown = titles(app)
        for control in ("Abort", "Finalize", "Pause", "Dismiss", "Bandwidth", "Post-copy"):
            assert not [t for t in shown if t.startswith(control)], control
        assert "Help (?)" in shown and "domain: web1" in shown


async def test_palette_jumps_to_a_domain_in_the_tree():
    src = recorded.busy()
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(80, 24)) as pilot:  # narrow: the tree is folded away
        await start(app, pilot, key_of(src, "copy-vda"))
        tree = app.query_one(DomainTree)
        assert not tree.display
        entry = next(e for e in app.palette_entries() if e.title == "domain: db1")
        entry.run()
        await pilot.pause()
        assert tree.display and tree.has_focus
        node = tree.cursor_node
        assert node is not None and isinstance(node.data, DomainRef)
        domains = {(d.host, d.uuid): d.name for d in src.domains()}
        assert domains[(node.data.host, node.data.uuid)] == "db1"
        table = app.query_one(JobTable)
        assert {app._store.jobs[k].domain for k in table.job_keys} == {"db1"}


async def test_names_in_the_palette_are_text_not_markup():
    # The palette reads a str as markup: a domain named `db [b]1` was offered as `db 1`.
    odd = "db [b]1 [red]x\\"
    host = Host(recorded.KVM1, HostState.CONNECTED, hostname="kvm1.lab")
    dom = Domain(recorded.KVM1, "00000000-0000-4000-8000-000000000001", odd, "running")
    job = Job(
        key=JobKey(recorded.KVM1, dom.uuid, "copy-vda", 1.7e9),
        domain=odd,
        type=JobType.BLOCK_COPY,
        state=JobState.RUNNING,
    )
    src = RecordedSource([host], [dom], [job])
    app = JobTUI(src, clock=src.clock, tz=UTC)
    async with app.run_test(size=(140, 40)) as pilot:
        await start(app, pilot, job.key)
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"db")
        await pilot.pause(0.5)
        options = app.screen.query_one(CommandList)
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        assert any(f"domain: {odd}" in s and "on kvm1.lab" in s for s in shown), shown
        assert any(f"{odd}/copy-vda" in s for s in shown), shown
