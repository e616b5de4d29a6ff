"""The TUI's plain parts without a screen: formatting, the store, the keymap, the
confirm texts, and the RecordedSource itself."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from jobtui import recorded
from jobtui.model import (
    ControlOp,
    DomainChanged,
    FrozenMap,
    Host,
    HostChanged,
    HostState,
    JobControlError,
    JobDismissed,
    JobKey,
    JobProgress,
    JobState,
    JobStateChanged,
)
from jobtui.recorded import ControlCall, MiB
from jobtui.support import refusal
from jobtui.tui.format import human_bytes, human_duration, progress_bar
from jobtui.tui.keymap import load_keymap
from jobtui.tui.screens.confirm import consequence, question
from jobtui.tui.store import JobStore, RateTrack
from jobtui.tui.widgets.rate_line import bar_levels
from jobtui.tui.widgets.row_cells import row_cells
from jobtui.units import parse_bandwidth


def job_named(source: recorded.RecordedSource, name: str):
    return next(j for j in source.jobs() if j.name == name)


# --- format ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("32M", 32 * MiB),
        ("32MiB/s", 32 * MiB),
        ("32 mib / s", 32 * MiB),
        ("1048576", MiB),
        ("0", 0),
        ("1.5G", 3 * 512 * MiB),
        ("32MB", 32_000_000),
        ("512k", 512 * 1024),
    ],
)
def test_parse_bandwidth_accepts(text: str, value: int):
    assert parse_bandwidth(text) == value


@pytest.mark.parametrize("text", ["", "fast", "-1", "32X", "1.5", "32M/h", "9" * 30])
def test_parse_bandwidth_rejects_with_one_line(text: str):
    with pytest.raises(ValueError) as err:
        parse_bandwidth(text)
    assert "\n" not in str(err.value)


def test_human_units():
    assert human_bytes(512) == "512 B"
    assert human_bytes(20 * 1024**3) == "20.0 GiB"
    assert human_bytes(128 * MiB) == "128 MiB"
    assert human_duration(42) == "42s"
    assert human_duration(545) == "9m05s"
    assert human_duration(3720) == "1h02m"
    assert human_duration(None) == "—"


def test_progress_bar_is_never_full_before_the_end():
    assert progress_bar(0.42) == "████░░░░░░  42%"
    assert progress_bar(0.999) == "█████████░  99%"  # not done: neither full nor 100 %
    assert progress_bar(1.07) == "██████████ 107%"  # past its total, as libvirt says
    from jobtui.units import percent

    assert (percent(0.996), percent(1.0), percent(0.004)) == ("99%", "100%", "0%")  # CLI
    assert progress_bar(1.0) == "██████████ 100%"
    assert progress_bar(None).endswith("?")


# --- store -----------------------------------------------------------------------------------


def test_the_screen_shows_the_engines_rate_and_stops_the_sparkline_when_stale():
    src = recorded.busy()
    pull = job_named(src, "pull-vdb")
    track = RateTrack()
    # The focused job is polled four times a second: its graph gets one bar per second,
    # the last rate measured in it, once that second is over.
    for rate, at in ((10, 1.0), (12, 1.25), (14, 1.5)):
        track.add(pull.evolve(rate=rate * MiB, sampled=at))
    assert track.rate == 14 * MiB and list(track.history) == []
    track.add(pull.evolve(rate=20 * MiB, sampled=2.0))
    assert list(track.history) == [14 * MiB]
    track.add(pull.evolve(rate=20 * MiB, sampled=2.0))  # the same sample told twice
    assert list(track.history) == [14 * MiB]
    # Its domain stopped answering: no rate, and the sparkline draws nothing it did not see.
    track.add(pull.evolve(rate=None, sampled=2.0, stale=True))
    assert track.rate is None and list(track.history) == [14 * MiB]
    # Back after 6 s without figures: those seconds have none (drawn blank).
    track.add(pull.evolve(rate=30 * MiB, sampled=9.0))
    assert seconds(track) == [14 * MiB, 20 * MiB] + [None] * 6
    track.add(pull.evolve(rate=40 * MiB, sampled=11.0))  # a 1 s poll that skipped a second
    assert seconds(track)[-3:] == [None, 30 * MiB, 30 * MiB]
    # READY: a mirror that only follows the guest's writes has no rate to draw.
    track.add(pull.evolve(rate=2 * MiB, sampled=13.0, state=JobState.READY))
    track.add(pull.evolve(rate=1 * MiB, sampled=14.0, state=JobState.READY))
    assert seconds(track)[-3:] == [None, 30 * MiB, 30 * MiB] and len(track.history) == 10


def seconds(track: RateTrack) -> list[float | None]:
    return [None if math.isnan(v) else v for v in track.history]


def test_the_rate_graph_is_a_bar_a_second_from_zero_right_aligned():
    assert bar_levels([], 4) == [None] * 4
    assert bar_levels([5.0, 5.0, 5.0], 5) == [None, None, 7, 7, 7]  # steady: full bars
    assert bar_levels([0.0, 3.5, 7.0], 3) == [0, 4, 7]
    assert bar_levels([1.0, 2.0, 3.0, 4.0], 2) == [5, 7]  # only the newest seconds fit
    assert bar_levels([0.0, 0.0], 2) == [0, 0]
    assert bar_levels([7.0, math.nan, 7.0], 3) == [7, None, 7]  # a second without a figure


def test_stale_figures_show_their_age_not_a_rate():
    src = recorded.busy()
    pull = job_named(src, "pull-vdb").evolve(rate=48 * MiB, sampled=100.0)
    fresh = row_cells(pull, 48 * MiB, now=101.0)
    assert fresh["rate"] == "48.0 MiB/s" and fresh["eta"] != "—"
    stale = row_cells(pull.evolve(stale=True, rate=None), None, now=112.0)
    assert str(stale["rate"]) == "— 12s old" and stale["eta"] == "—"


def test_events_coalesce_into_one_change_per_job():
    src = recorded.busy()
    store = JobStore()
    store.load(src.hosts(), src.domains(), src.jobs(), at=0.0, since_seq=0)
    store.take()
    pull = job_named(src, "pull-vdb")
    for i in range(5):
        store.apply(JobProgress(pull.evolve(current=pull.current + i)), at=float(i))
    changes = store.take()
    assert changes.jobs == {pull.key} and not changes.structure and not changes.states
    assert not store.take()


def test_state_changes_mark_labels_and_moves():
    src = recorded.busy()
    store = JobStore()
    store.load(src.hosts(), src.domains(), src.jobs(), at=0.0, since_seq=0)
    store.take()
    pull = job_named(src, "pull-vdb")
    paused = pull.evolve(state=JobState.PAUSED)
    store.apply(JobStateChanged(pull.key, pull.state, JobState.PAUSED, paused, 1.0), at=1.0)
    ch = store.take()
    assert ch.states == {pull.key} and ch.moved == set() and len(ch.transitions) == 1
    done = paused.evolve(state=JobState.COMPLETED)
    store.apply(JobStateChanged(pull.key, paused.state, done.state, done, 2.0), at=2.0)
    assert store.take().moved == {pull.key}


def test_snapshot_never_overrides_newer_events_nor_duplicates():
    src = recorded.busy()
    store = JobStore()
    store.load(src.hosts(), src.domains(), src.jobs(), at=0.0, since_seq=0)
    since = store.seq
    pull = job_named(src, "pull-vdb")
    # An event arrives while a refresh is in flight; the refresh then brings the older copy.
    newer = pull.evolve(current=pull.end)
    store.apply(JobProgress(newer), at=1.0)
    store.load(src.hosts(), src.domains(), src.jobs(), at=2.0, since_seq=since)
    assert store.jobs[pull.key] == newer
    assert len(store.jobs) == len(src.jobs())


def test_snapshot_never_undoes_newer_domain_and_host_events():
    # The TUI asks for a picture as the engine starts; the engine's first finds can reach
    # the screen before that picture, which was taken without them.
    src = recorded.busy()
    store = JobStore()
    since = store.seq
    first, second = src.domains()[:2]
    host = src.hosts()[0]
    store.apply(DomainChanged(first), at=1.0)
    store.apply(DomainChanged(second, removed=True), at=1.0)
    store.apply(HostChanged(replace(host, state=HostState.DISCONNECTED, error="gone")), at=1.0)
    store.load(src.hosts(), [d for d in src.domains() if d != first], [], at=2.0, since_seq=since)
    assert (first.host, first.uuid) in store.domains  # added after the picture: kept
    assert (second.host, second.uuid) not in store.domains  # removed after it: stays removed
    assert store.hosts[host.uri].error == "gone"
    others = [d for d in src.domains() if d not in (first, second)]
    assert all((d.host, d.uuid) in store.domains for d in others)
    # A picture asked for after those events is believed.
    store.load(src.hosts(), src.domains(), [], at=3.0, since_seq=store.seq)
    assert (second.host, second.uuid) in store.domains
    assert store.hosts[host.uri] == host


def test_snapshot_drops_jobs_gone_from_connected_hosts_only():
    src = recorded.busy()
    store = JobStore()
    kvm2_job = job_named(src, "dump").evolve(key=JobKey(recorded.KVM2, "u", "copy-vda", 1.0))
    store.load(src.hosts(), src.domains(), [*src.jobs(), kvm2_job], at=0.0, since_seq=0)
    commit = job_named(src, "commit-vda")
    rest = [j for j in src.jobs() if j.key != commit.key]
    store.load(src.hosts(), src.domains(), rest, at=1.0, since_seq=store.seq)
    assert commit.key not in store.jobs
    # kvm2 is disconnected: what we last knew of it stays until it answers again.
    assert kvm2_job.key in store.jobs
    assert store.take().removed == {commit.key}


def test_dismissed_job_is_removed_even_if_updated_in_the_same_tick():
    src = recorded.busy()
    store = JobStore()
    store.load(src.hosts(), src.domains(), src.jobs(), at=0.0, since_seq=0)
    store.take()
    commit = job_named(src, "commit-vda")
    store.apply(JobProgress(commit.evolve(message="x")), at=1.0)
    store.apply(JobDismissed(commit.key), at=1.0)
    ch = store.take()
    assert ch.removed == {commit.key} and commit.key not in ch.jobs


# --- keymap ----------------------------------------------------------------------------------


def test_keymap_file(tmp_path: Path):
    path = tmp_path / "keymap.toml"
    path.write_text(
        '[keymap]\nabort = "A"\nfilter = ["slash", "ctrl+f"]\n'
        'dismiss = "ctrl+d"\nbogus = "z"\nxml = 3\n'
    )
    keymap, problems = load_keymap(path)
    assert keymap == {"abort": "A", "filter": "slash,ctrl+f"}
    assert len(problems) == 3
    assert any("dismiss: must not be on a modifier chord" in p for p in problems)


def test_keymap_file_broken_or_missing(tmp_path: Path):
    assert load_keymap(tmp_path / "none.toml") == ({}, [])
    bad = tmp_path / "bad.toml"
    bad.write_text("abort = ")
    keymap, problems = load_keymap(bad)
    assert keymap == {} and len(problems) == 1


# --- confirm texts ---------------------------------------------------------------------------


def test_confirm_texts_say_what_stays_behind():
    src = recorded.busy()
    copy = job_named(src, "copy-vda")
    assert question(copy, ControlOp.ABORT) == "Abort copy-vda on web1?"
    assert "stays on disk" in consequence(copy, ControlOp.ABORT)
    assert "switches to the copy" in consequence(copy, ControlOp.FINALIZE)
    assert "save file is removed" in consequence(job_named(src, "save"), ControlOp.ABORT)
    assert "nothing changes on the host" in consequence(
        job_named(src, "commit-vda"), ControlOp.DISMISS
    )
    assert "\n" not in consequence(copy, ControlOp.ABORT)


# --- the recorded source ---------------------------------------------------------------------


def test_recorded_control_refuses_with_the_support_reason_and_records_calls():
    src = recorded.busy()
    pull = job_named(src, "pull-vdb")
    with pytest.raises(JobControlError) as err:
        src.control(pull.key, ControlOp.FINALIZE)
    assert str(err.value) == refusal(pull, ControlOp.FINALIZE, src.options)
    assert src.calls == [ControlCall(pull.key, ControlOp.FINALIZE, {})]


def test_recorded_control_applies_and_tells_subscribers():
    src = recorded.busy()
    seen = []
    unsubscribe = src.subscribe(seen.append)
    copy = job_named(src, "copy-vda")
    assert "finalized copy-vda on web1" in src.control(copy.key, ControlOp.FINALIZE)
    assert src.job(copy.key).state is JobState.COMPLETED
    assert [type(e) for e in seen] == [JobStateChanged]
    assert seen[0].old is JobState.READY and seen[0].new is JobState.COMPLETED
    src.control(copy.key, ControlOp.DISMISS)
    assert src.job(copy.key) is None and isinstance(seen[-1], JobDismissed)
    unsubscribe()
    src.tick()
    assert len(seen) == 2


def test_recorded_readonly_refuses_everything():
    src = recorded.busy(readonly=True)
    copy = job_named(src, "copy-vda")
    with pytest.raises(JobControlError, match="read-only"):
        src.control(copy.key, ControlOp.ABORT)


def test_recorded_tick_is_deterministic_and_turns_copies_ready():
    a, b = recorded.busy(), recorded.busy()
    for _ in range(7):
        a.tick()
        b.tick()
    assert a.jobs() == b.jobs() and a.clock() == b.clock() == recorded.EPOCH + 7
    copy_host = Host(recorded.KVM1, HostState.CONNECTED)
    dom = recorded.Domain(recorded.KVM1, "u", "vm", "running")
    job = recorded._job(
        copy_host.uri, dom, "copy-vda", recorded.JobType.BLOCK_COPY, JobState.RUNNING,
        ago=1, current=0, end=MiB, config=FrozenMap(disk="vda"),
    )  # fmt: skip
    src = recorded.RecordedSource([copy_host], [dom], [job], speeds={job.key: 2 * MiB})
    assert [e.new for e in src.tick() if isinstance(e, JobStateChanged)] == [JobState.READY]


def test_recorded_many_is_a_load_test_fixture():
    src = recorded.many(500)
    jobs = src.jobs()
    assert len(jobs) == 500 and len({j.key for j in jobs}) == 500
    assert all(j.state is JobState.RUNNING for j in jobs)


def test_short_host_tells_local_daemons_apart() -> None:
    from jobtui.tui.format import short_host

    a = short_host("qemu+unix:///system?socket=/tmp/jth-1/hosta/sock/libvirt-sock")
    b = short_host("qemu+unix:///system?socket=/tmp/jth-1/hostb/sock/libvirt-sock")
    assert (a, b) == ("system@hosta", "system@hostb")
    assert short_host("qemu:///embed?root=/tmp/lab1") == "embed:lab1"
    # The rule is jobtui.inventory.short_name's (tests/test_inventory.py); a name wins.
    assert short_host("qemu+ssh://root@kvm1.lab/system") == "ssh:kvm1.lab"
    assert short_host("qemu+ssh://root@kvm1.lab/system", "kvm1") == "kvm1"
    assert short_host("qemu:///system") == "system"


def test_migration_rate_is_what_is_sent_and_ready_has_none() -> None:
    from jobtui.model import FrozenMap, Job, JobKey, JobState, JobType
    from jobtui.tui.widgets.row_cells import row_cells

    key = JobKey("qemu:///system", "u", "migration-out", 0.0)
    mig = Job(
        key, "vm", JobType.MIGRATION_OUT, JobState.RUNNING,
        stats=FrozenMap(memory_bps=24 * 1024 * 1024), current=50, end=100,
    )  # fmt: skip
    # A new pass made net progress jump: the row still shows what is sent.
    assert str(row_cells(mig, 60 * 1024 * 1024, 1.0)["rate"]) == "24.0 MiB/s"
    ready = mig.evolve(type=JobType.BLOCK_COPY, state=JobState.READY, stats=FrozenMap())
    cells = row_cells(ready, 2.0, 1.0)
    assert str(cells["rate"]) == "—" and cells["eta"] == "ready"
    # The rate graph beside the detail pane's rate draws the same figure.
    track = RateTrack()
    for at in (1.0, 2.0):
        track.add(mig.evolve(rate=60 * 1024 * 1024, sampled=at))
    assert list(track.history) == [24 * 1024 * 1024] and track.rate == 60 * 1024 * 1024


def test_filter_words_narrow_together() -> None:
    from jobtui.model import Job, JobKey, JobState, JobType
    from jobtui.tui.store import matches

    job = Job(JobKey("qemu:///system", "u", "copy-vda", 0.0), "web1", JobType.BLOCK_COPY,
              JobState.READY)  # fmt: skip
    assert matches(job, "web1 copy") and matches(job, "READY") and matches(job, "")
    assert not matches(job, "web1 pull") and not matches(job, "db1 copy")


def test_a_connected_host_that_cannot_show_jobs_says_why() -> None:
    from jobtui.model import Host, HostState
    from jobtui.tui.widgets.domain_tree import host_label

    why = "this driver has no job API: this function is not supported by the connection driver"
    assert host_label(Host("test:///default", HostState.CONNECTED, error=why)).plain.endswith(
        "● test:default ⚠ this driver has no job API"
    )
    assert "⚠" not in host_label(Host("test:///default", HostState.CONNECTED)).plain


def test_control_characters_in_names_are_shown_escaped_in_table_tree_and_detail() -> None:
    from jobtui.tui.styles import COLOR
    from jobtui.tui.widgets.detail import _fields
    from jobtui.tui.widgets.domain_tree import domain_label
    from jobtui.tui.widgets.row_cells import shown

    src = recorded.busy()
    job = replace(src.jobs()[0], domain="nl\nname\x1b[2J")
    cells = row_cells(job, None, job.started + 5)
    assert shown(cells["domain"]).startswith("nl\\nname\\x1b")
    assert domain_label(job.domain, None).plain.startswith("nl\\nname\\x1b[2J")
    fields = dict(_fields(job, None, None, job.started + 5, COLOR))
    assert "\x1b" not in str(fields["domain"]) and "\n" not in str(fields["domain"])


# --- what reaches the terminal ---------------------------------------------------------------


def _partial_update(line: str, start: int, end: int) -> str:
    """What the app writes for cells [start, end) of a one-line widget at (0, 0)."""
    from rich.console import Console
    from rich.segment import Segment
    from textual._compositor import ChopsUpdate
    from textual.strip import Strip

    import jobtui.tui.view  # noqa: F401 - applies jobtui.tui.textual_fixes

    strip = Strip([Segment(line)])
    update = ChopsUpdate([{0: strip}], [(0, start, end)], [[strip.cell_length]])
    return update.render_segments(Console(force_terminal=True, color_system="truecolor"))


def test_a_changed_rate_sends_its_cells_not_the_whole_row():
    row = " db1     backup      running    ███░░░░░░░  35%  4.9 MiB/s   1m12s"
    at = row.index("4.9")
    out = _partial_update(row, at, at + 3)
    assert out == f"\x1b[1;{at + 1}H4.9"
    # A wide character could be split by the cut: the row is sent from its start.
    wide = " 日本語  4.9 MiB/s"
    at = wide.index("4.9") + 3  # cells: each of the three characters is two wide
    assert _partial_update(wide, at, at + 3) == "\x1b[1;1H 日本語  4.9"


def test_only_the_changed_cells_of_a_detail_line_repaint():
    from rich.segment import Segment

    from jobtui.tui.widgets.drawn import changed_span

    old = [Segment("ETA       3s    "), Segment("elapsed   16s")]
    new = [Segment("ETA       2s    "), Segment("elapsed   17s")]
    assert changed_span(old, new) == (10, 28)
    assert changed_span(old, old) is None
    assert changed_span([Segment("xbc")], [Segment("bc")]) == (0, 3)  # shorter: cleared
    assert changed_span([Segment("日本x")], [Segment("日木x")]) == (2, 4)  # whole characters


async def test_a_paint_works_out_each_widgets_style_once_and_the_next_paint_anew():
    import re
    from collections import Counter

    from textual.app import App, ComposeResult
    from textual.dom import DOMNode
    from textual.widgets import DataTable

    import jobtui.tui.view  # noqa: F401 - applies jobtui.tui.textual_fixes

    class Rows(App[None]):
        def compose(self) -> ComposeResult:
            yield DataTable(id="rows")

        def on_mount(self) -> None:
            table = self.query_one(DataTable)
            table.add_columns("job", "state")
            for i in range(20):
                table.add_row(f"copy-vd{i}", "running")

    walked: list[DOMNode] = []
    ancestors = DOMNode.ancestors_with_self

    def counted(node: DOMNode) -> list[DOMNode]:
        walked.append(node)
        return ancestors.fget(node)  # type: ignore[no-any-return,union-attr]

    app = Rows()
    async with app.run_test(size=(40, 24)) as pilot:
        table = app.query_one(DataTable)
        DOMNode.ancestors_with_self = property(counted)  # type: ignore[assignment,method-assign]
        try:
            table.refresh()
            await pilot.pause()
            # Twenty-one lines drawn (DataTable asks for its style at each): its style
            # and background worked out once each for the paint, not at every line.
            assert 0 < walked.count(table) <= 6  # 46 when worked out at every ask
        finally:
            DOMNode.ancestors_with_self = ancestors  # type: ignore[method-assign]
        # A style changed between two paints is the one the next paint draws.
        table.styles.background = "red"
        await pilot.pause()
        fills = Counter(re.findall(r'fill="#([0-9a-f]{6})"', app.export_screenshot()))
        red, green, blue = bytes.fromhex(fills.most_common(1)[0][0])
        assert red > 0xF0 and green < 0x20 and blue < 0x20
