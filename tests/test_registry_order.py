"""The registry when libvirt's reports of one run reach it out of order.

The dispatcher mixes event callbacks with polls that run in worker threads, so
a poll can read a job's kept final statistics before the JOB_COMPLETED event of
that job is delivered, or a poll taken before a domain went can be handled after
its removal. These are fed here in exactly that order, shaped as libvirt 9.0
reports them on this machine's migrations (tests/test_migration.py runs them for
real; there the order is up to the scheduler).
"""

from __future__ import annotations

import time
from dataclasses import replace

import libvirt

from jobtui.engine import events as ev
from jobtui.engine.registry import Registry
from jobtui.engine.sample import DiskInfo, DomainSample
from jobtui.model import JobState, JobStateChanged

HOST, UID = "qemu+unix:///system?socket=/run/a", "00000000-0000-4000-8000-0000000000aa"
MiB = 1 << 20


def running(at: float, elapsed_ms: int) -> DomainSample:
    stats = {"type": 2, "operation": 5, "time_elapsed": elapsed_ms,
             "memory_total": 192 * MiB, "memory_processed": 64 * MiB}  # fmt: skip
    return DomainSample(UID, "m1", "running", at, job_stats=stats, completed_stats={})


def final_stats(elapsed_ms: int) -> dict[str, int]:
    return {"type": 3, "operation": 5, "time_elapsed": elapsed_ms, "downtime": 40,
            "memory_total": 192 * MiB, "memory_processed": 192 * MiB}  # fmt: skip


def transitions(reg: Registry) -> list[tuple[str | None, str]]:
    out, _fin = reg.drain()
    return [
        (str(e.old) if e.old else None, str(e.new)) for e in out if isinstance(e, JobStateChanged)
    ]


def test_completed_event_after_a_poll_read_the_final_stats_is_one_run() -> None:
    reg = Registry()
    t0 = 1000.0
    reg.apply_sample(HOST, running(t0, 2000))
    # The job left jobStats; the poll asked for the kept stats and got them.
    reg.apply_sample(
        HOST,
        DomainSample(UID, "m1", "paused", t0 + 5, completed_stats=final_stats(7000)),
    )
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    # libvirt's JOB_COMPLETED for the same run is handled afterwards.
    reg.apply_event(
        ev.JobCompletedEv(HOST, UID, "m1", t0 + 5.2, params=tuple(final_stats(7000).items()))
    )
    assert transitions(reg) == []
    assert [j.state for j in reg.finished.values()] == [JobState.COMPLETED]


def test_a_late_completed_event_corrects_a_run_that_was_lost_as_unknown() -> None:
    reg = Registry()
    t0 = 2000.0
    reg.apply_sample(HOST, running(t0, 1000))
    reg.apply_sample(HOST, DomainSample(UID, "m1", "shutoff", t0 + 3, gone=True))
    assert transitions(reg) == [(None, "running"), ("running", "unknown")]
    reg.apply_event(
        ev.JobCompletedEv(HOST, UID, "m1", t0 + 2.8, params=tuple(final_stats(3800).items()))
    )
    assert transitions(reg) == [("unknown", "completed")]
    (job,) = reg.finished.values()
    assert job.state is JobState.COMPLETED and job.stats["downtime"] == 40
    # The domain is gone: its job's end report does not bring it back.
    assert (HOST, UID) not in reg.domains


def test_the_next_run_of_the_same_job_is_a_new_run() -> None:
    reg = Registry()
    t0 = 3000.0
    reg.apply_sample(HOST, running(t0, 1000))
    reg.apply_event(
        ev.JobCompletedEv(HOST, UID, "m1", t0 + 2, params=tuple(final_stats(3000).items()))
    )
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    # Migrated back and out again at once: a 0.5 s run whose start no poll saw.
    reg.apply_event(
        ev.JobCompletedEv(HOST, UID, "m1", t0 + 3, params=tuple(final_stats(500).items()))
    )
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    assert len(reg.finished) == 2


def test_a_poll_taken_before_the_domain_went_does_not_revive_its_job() -> None:
    reg = Registry()
    t0 = 4000.0
    reg.apply_sample(HOST, running(t0, 1000))
    reg.apply_event(
        ev.JobCompletedEv(HOST, UID, "m1", t0 + 2, params=tuple(final_stats(3000).items()))
    )
    reg.remove_domain(HOST, UID, t0 + 2.5)
    transitions(reg)
    reg.apply_sample(HOST, running(t0 + 1.5, 2500))  # a worker's late delivery
    assert transitions(reg) == []
    assert (HOST, UID) not in reg.domains and not reg.active


def test_a_block_job_given_up_on_takes_the_end_event_that_came_late() -> None:
    reg = Registry()
    t0 = 5000.0
    vda = (DiskInfo("vda", "virtio-disk0", "/lab/m1.qcow2"),)
    pull = {"type": 1, "bandwidth": 0, "cur": 10 * MiB, "end": 64 * MiB}
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, disks=vda, block={"vda": pull}))
    # The pull left blockJobInfo and no event came within the grace period.
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 1, disks=vda, block={}))
    reg.tick(t0 + 4)
    assert transitions(reg) == [(None, "running"), ("running", "unknown")]
    reg.apply_event(ev.BlockJobEv(HOST, UID, "m1", t0 + 4.5, disk="vda", type=1, status=2))
    assert transitions(reg) == [("unknown", "aborted")]
    (job,) = reg.finished.values()
    assert job.state is JobState.ABORTED and not reg.active


def off(at: float) -> DomainSample:
    return DomainSample(UID, "m1", "shut off", at, reason=libvirt.VIR_DOMAIN_SHUTOFF_SAVED)


def starting(at: float, *, incoming: bool = False) -> DomainSample:
    return DomainSample(
        UID, "m1", "paused", at, reason=libvirt.VIR_DOMAIN_PAUSED_STARTING_UP, incoming=incoming
    )


def stream_in(at: float) -> ev.QemuEv:
    return ev.QemuEv(HOST, UID, "m1", at, name="MIGRATION", details=(("status", "setup"),))


def started(at: float, detail: int) -> ev.LifecycleEv:
    started = libvirt.VIR_DOMAIN_EVENT_STARTED
    return ev.LifecycleEv(HOST, UID, "m1", at, event=started, detail=detail)


def test_a_restore_runs_from_qemus_stream_to_libvirts_started_event() -> None:
    """The order libvirt 9.0 delivers them in on this machine (tests/test_engine_domain.py)."""
    reg = Registry()
    t0 = 6000.0
    reg.apply_sample(HOST, off(t0))
    reg.apply_event(stream_in(t0 + 1))
    # Not yet: a migration's destination takes in a stream too, until STARTED/MIGRATED says so.
    reg.apply_sample(HOST, starting(t0 + 1.5))
    assert transitions(reg) == []
    reg.apply_sample(HOST, starting(t0 + 2.5))
    assert transitions(reg) == [(None, "running")]
    (t,) = reg.active.values()
    assert t.job.name == "restore" and t.job.started == t0 + 1
    reg.apply_sample(HOST, starting(t0 + 20))  # long: a 16 GiB image, no progress to show
    reg.tick(t0 + 20)
    assert transitions(reg) == []
    reg.apply_event(started(t0 + 30, libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED))
    assert transitions(reg) == [("running", "completed")]
    (job,) = reg.finished.values()
    assert job.finished == t0 + 30


def test_a_migration_destination_taking_its_stream_is_no_restore() -> None:
    reg = Registry()
    t0 = 7000.0
    reg.apply_event(stream_in(t0))  # QEMU's event comes before libvirt's STARTED_MIGRATED
    reg.apply_event(started(t0 + 0.01, libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED))
    reg.apply_sample(HOST, starting(t0 + 0.5, incoming=True))
    assert [(j.name, str(j.state)) for j in (t.job for t in reg.active.values())] == [
        ("migration-in", "running")
    ]


def test_a_destination_still_starting_up_keeps_its_one_migration_in() -> None:
    """The order that once split one incoming migration into two on this machine
    (tests/test_migration.py, under load): STARTED/MIGRATED is handled after a poll
    that began before it, and the new QEMU stays starting up for a while (jobStats is
    not asked then); libvirt keeps no final stats until the migration is over."""
    reg = Registry()
    t0 = 7500.0
    reg.apply_event(started(t0 + 0.002, libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED))
    no_stats = {"type": 0}
    for at in (t0, t0 + 0.3, t0 + 1.2):
        reg.apply_sample(HOST, replace(starting(at), completed_stats=no_stats))
    migrating = libvirt.VIR_DOMAIN_PAUSED_MIGRATION
    look = DomainSample(UID, "m1", "paused", t0 + 1.5, reason=migrating, incoming=True)
    reg.apply_sample(HOST, replace(look, completed_stats=no_stats))
    assert transitions(reg) == [(None, "running")]
    final = {"type": 3, "operation": 4, "time_elapsed": 4000, "memory_total": 192 * MiB}
    migrated = libvirt.VIR_DOMAIN_RUNNING_MIGRATED
    arrived = DomainSample(UID, "m1", "running", t0 + 5, reason=migrated, completed_stats=final)
    reg.apply_sample(HOST, arrived)
    assert transitions(reg) == [("running", "completed")]
    (job,) = reg.finished.values()
    assert job.name == "migration-in" and job.started == t0 + 0.002


def test_a_failed_restore_leaves_no_restore_for_the_next_start() -> None:
    reg = Registry()
    t0 = 8000.0
    reg.apply_sample(HOST, off(t0))
    reg.apply_event(stream_in(t0 + 1))
    reg.apply_event(
        ev.LifecycleEv(HOST, UID, "m1", t0 + 1.1, event=libvirt.VIR_DOMAIN_EVENT_STOPPED,
                       detail=libvirt.VIR_DOMAIN_EVENT_STOPPED_FAILED)
    )  # fmt: skip
    reg.apply_sample(HOST, off(t0 + 2))
    reg.apply_sample(HOST, starting(t0 + 10))  # a plain start, later
    assert transitions(reg) == [] and not reg.active


def test_a_restore_already_under_way_is_found_by_a_fresh_process() -> None:
    """No QEMU event seen (the stream began before this process watched): a domain that
    stays starting up for seconds is loading a restore; a destination leaves that state
    within a fraction of a second, a plain start at once."""
    reg = Registry()
    t0 = 9000.0
    reg.apply_sample(HOST, starting(t0))
    reg.apply_sample(HOST, starting(t0 + 1.0))
    assert transitions(reg) == []
    reg.apply_sample(HOST, starting(t0 + 3.5))
    assert transitions(reg) == [(None, "running")]
    (t,) = reg.active.values()
    assert t.job.name == "restore" and t.job.started == t0
    assert "already under way" in str(t.job.config["seen"])
    reg.apply_event(started(t0 + 9, libvirt.VIR_DOMAIN_EVENT_STARTED_RESTORED))
    assert transitions(reg) == [("running", "completed")]


def test_a_short_start_is_no_restore() -> None:
    reg = Registry()
    t0 = 9500.0
    reg.apply_sample(HOST, starting(t0))
    running = DomainSample(UID, "m1", "running", t0 + 0.5, reason=libvirt.VIR_DOMAIN_RUNNING_BOOTED)
    reg.apply_sample(HOST, running)
    reg.apply_sample(HOST, starting(t0 + 10))  # a later start: its own clock
    reg.apply_sample(HOST, starting(t0 + 11))
    assert transitions(reg) == []


def copy_sample(at: float, cur: int, *, gone: bool = False) -> DomainSample:
    disks = (DiskInfo("vda", "libvirt-1-format", "/img/t.qcow2", mirror_job="copy"),)
    block = {} if gone else {"vda": {"type": 2, "bandwidth": 0, "cur": cur, "end": 64 * MiB}}
    return DomainSample(UID, "t1", "shutoff" if gone else "running", at, disks=disks,
                        block=block, gone=gone)  # fmt: skip


def test_a_transient_domain_found_gone_before_its_stopped_event_ends_its_copy_as_failed() -> None:
    # `virsh destroy` of a transient domain: it is gone at once, and a poll can see that
    # before libvirt's STOPPED event, which says why, is delivered. Whichever comes
    # first, the copy ends failed ("was destroyed"), once, as libvirt says.
    for poll_first in (True, False):
        reg = Registry()
        t0 = 5000.0
        reg.apply_sample(HOST, copy_sample(t0, 8 * MiB))
        stopped = ev.LifecycleEv(
            HOST, UID, "t1", t0 + 1.01, libvirt.VIR_DOMAIN_EVENT_STOPPED,
            libvirt.VIR_DOMAIN_EVENT_STOPPED_DESTROYED,
        )  # fmt: skip
        gone = DomainSample(UID, "t1", "shutoff", t0 + 1.0, gone=True)
        if poll_first:
            reg.apply_sample(HOST, gone)
            reg.apply_event(stopped)
        else:
            reg.apply_event(stopped)
            reg.apply_sample(HOST, gone)
        reg.tick(t0 + 10)
        assert transitions(reg) == [(None, "running"), ("running", "failed")], poll_first
        (job,) = reg.finished.values()
        assert "destroyed" in job.message
        assert (HOST, UID) not in reg.domains  # the late event brought no ghost back


def test_a_domain_gone_with_no_word_from_libvirt_ends_its_copy_unknown_after_a_grace() -> None:
    reg = Registry()
    t0 = 6000.0
    reg.apply_sample(HOST, copy_sample(t0, 8 * MiB))
    reg.apply_sample(HOST, DomainSample(UID, "t1", "shutoff", t0 + 1.0, gone=True))
    reg.tick(t0 + 1.5)
    assert transitions(reg) == [(None, "running")]
    reg.tick(t0 + 10)
    assert transitions(reg) == [("running", "unknown")]
    (job,) = reg.finished.values()
    assert job.message == "the job is gone and the domain disappeared"


def test_a_copy_gone_with_no_event_and_the_disk_on_its_copy_ended_pivoted() -> None:
    # libvirtd was down when the copy was pivoted (by QEMU's own completion, or a
    # client's): no event says so, but the disk's XML is on the copy now.
    reg = Registry()
    t0 = 7000.0
    mirror = DiskInfo("vda", "libvirt-1-format", "/img/t.qcow2", mirror_job="copy",
                      mirror_ready="yes", mirror_dest="/img/copy.qcow2")  # fmt: skip
    block = {"vda": {"type": 2, "bandwidth": 0, "cur": 64 * MiB, "end": 64 * MiB}}
    reg.apply_sample(HOST, DomainSample(UID, "t1", "running", t0, disks=(mirror,), block=block))
    pivoted = DiskInfo("vda", "libvirt-2-format", "/img/copy.qcow2")
    reg.apply_sample(HOST, DomainSample(UID, "t1", "running", t0 + 1, disks=(pivoted,), block={}))
    reg.tick(t0 + 10)
    assert transitions(reg)[-1] == ("ready", "completed")
    (job,) = reg.finished.values()
    assert job.message.startswith("pivoted") and "on the copy" in job.message


def test_a_copy_already_ready_at_the_first_look_is_new_and_ready_in_one_change() -> None:
    # `jobtui watch` started after the copy became READY: one line, "new -> ready", not
    # "new -> running" followed by "running -> ready" stamped earlier.
    reg = Registry()
    t0 = 8000.0
    mirror = DiskInfo("vda", "libvirt-1-format", "/img/t.qcow2", mirror_job="copy",
                      mirror_ready="yes", mirror_dest="/img/copy.qcow2")  # fmt: skip
    reg.apply_sample(HOST, DomainSample(UID, "t1", "running", t0, disks=(mirror,), full=False))
    out, _fin = reg.drain()
    changes = [e for e in out if isinstance(e, JobStateChanged)]
    assert [(e.old, str(e.new)) for e in changes] == [(None, "ready")]
    assert changes[0].time == t0


def test_a_copy_that_started_and_failed_between_polls_still_says_qemus_error() -> None:
    # A copy onto a full filesystem fails within milliseconds: QEMU's BLOCK_JOB_COMPLETED
    # (with its error text) comes before the engine has a row for the job; libvirt's
    # failed event, without text, follows.
    reg = Registry({HOST})
    t0 = 9000.0
    reg.apply_event(
        ev.QemuEv(HOST, UID, "f1", t0, name="BLOCK_JOB_COMPLETED",
                  details=(("device", "copy-vda-libvirt-2-format"),
                           ("error", "No space left on device")))
    )  # fmt: skip
    reg.apply_event(
        ev.BlockJobEv(HOST, UID, "f1", t0 + 0.002, disk="vda",
                      type=libvirt.VIR_DOMAIN_BLOCK_JOB_TYPE_COPY, status=1)
    )  # fmt: skip
    (job,) = reg.finished.values()
    assert job.state is JobState.FAILED
    assert job.message == "QEMU reported an error: No space left on device"


def test_a_migration_libvirt_dropped_waits_a_moment_for_qemus_word_on_how_it_ended() -> None:
    # The destination's libvirtd killed: the source's libvirt drops the job 1 ms before
    # QEMU's MIGRATION "cancelling"/"cancelled" events, and keeps no statistics.
    for qemu_says in (True, False):
        reg = Registry({HOST})
        t0 = 10000.0
        reg.apply_sample(HOST, running(t0, 2000))
        reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 1, completed_stats={}))
        assert transitions(reg) == [(None, "running")]
        if qemu_says:
            reg.apply_event(
                ev.QemuEv(HOST, UID, "m1", t0 + 1.001, name="MIGRATION",
                          details=(("status", "cancelled"),))
            )  # fmt: skip
            reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 1.1, completed_stats={}))
            assert transitions(reg) == [("running", "aborted")]
            (job,) = reg.finished.values()
            assert job.message == "QEMU reports the migration cancelled"
        else:
            reg.tick(t0 + 1.5)
            assert transitions(reg) == []
            reg.tick(t0 + 2.5)
            assert transitions(reg) == [("running", "unknown")]


def test_a_poll_slow_to_show_a_save_takes_back_the_snapshot_it_was_taken_for() -> None:
    # A save by another client starts QEMU's stream before the poll finds the job; were
    # that poll held over a second (a loaded host), the stream and the wait look like
    # QEMU's savevm. The poll's answer (a save) takes the guess back.
    from jobtui.model import JobDismissed

    reg = Registry({HOST})
    t0 = 11000.0
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, completed_stats={}))
    reg.apply_event(ev.MigrationIterationEv(HOST, UID, "m1", t0 + 1, iteration=1))
    assert not reg.poll_held(HOST, UID, 0.4, t0 + 1.4)  # not long enough yet
    assert reg.poll_held(HOST, UID, 1.2, t0 + 2.2)
    assert transitions(reg) == [(None, "running")]
    save = {"type": 2, "operation": 2, "time_elapsed": 1500,
            "memory_total": 192 * MiB, "memory_processed": 64 * MiB}  # fmt: skip
    reg.apply_sample(HOST, DomainSample(UID, "m1", "paused", t0 + 1.1, job_stats=save))
    out, _fin = reg.drain()
    assert [e.key.name for e in out if isinstance(e, JobDismissed)] == ["snapshot"]
    assert [t.job.name for t in reg.active.values()] == ["save"]


def test_a_savevm_over_before_a_poll_showed_it_is_kept_unless_libvirt_names_the_stream() -> None:
    # A small guest's internal snapshot lasts ~80 ms: the poll QEMU's stream woke waits
    # for it (held), then libvirt reports no job. Kept as a finished snapshot a moment
    # later, unless a JOB_COMPLETED says the stream was a dump (or save, or migration).
    for dump in (False, True):
        reg = Registry({HOST})
        t0 = 12000.0
        reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, completed_stats={}))
        reg.apply_event(ev.QemuEv(HOST, UID, "m1", t0 + 1, name="MIGRATION",
                                  details=(("status", "setup"),)))  # fmt: skip
        reg.apply_event(ev.QemuEv(HOST, UID, "m1", t0 + 1.08, name="MIGRATION",
                                  details=(("status", "completed"),)))  # fmt: skip
        held = DomainSample(UID, "m1", "running", t0 + 1.001, answered=t0 + 1.081,
                            longest_call=0.08)  # fmt: skip
        reg.apply_sample(HOST, held)
        if dump:
            stats = {"operation": 8, "time_elapsed": 80, "memory_total": 64 * MiB}
            reg.apply_event(ev.JobCompletedEv(HOST, UID, "m1", t0 + 1.09,
                                              params=tuple(stats.items())))  # fmt: skip
            # The look that event asks for: libvirt holds no job any more.
            reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 1.1))
        reg.tick(t0 + 1.5)
        assert transitions(reg) == ([(None, "running"), ("running", "completed")] if dump else [])
        reg.tick(t0 + 2.2)
        if dump:
            assert transitions(reg) == [] and [j.name for j in reg.finished.values()] == ["dump"]
        else:
            assert transitions(reg) == [(None, "running"), ("running", "completed")]
            (job,) = reg.finished.values()
            assert (job.name, job.started, job.finished) == ("snapshot", t0 + 1, t0 + 1.081)
            assert job.message.startswith("QEMU reports the guest's state saved")


def test_a_dump_libvirt_still_holds_after_its_job_completed_event_runs_until_let_go() -> None:
    """libvirt 9.0 sends JOB_COMPLETED for a dump or save once QEMU's part is done, then
    may hold the job, the domain paused, until its file is written out (a dump into a
    pipe on qemu:///system: jobStats read COMPLETED for as long as nobody read)."""
    dump = {"operation": 8, "time_elapsed": 60, "memory_total": 256 * MiB,
            "memory_processed": MiB, "memory_remaining": 0}  # fmt: skip
    reg = Registry({HOST})
    t0 = 13000.0
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, job_stats={"type": 2, **dump}))
    reg.apply_event(ev.JobCompletedEv(HOST, UID, "m1", t0 + 0.03, params=tuple(dump.items())))
    held = {"type": libvirt.VIR_DOMAIN_JOB_COMPLETED, **dump}
    for i in range(1, 6):
        reg.apply_sample(HOST, DomainSample(UID, "m1", "paused", t0 + i, job_stats=held))
        reg.tick(t0 + i + 0.5)
    assert transitions(reg) == [(None, "running")]
    (job,) = (t.job for t in reg.active.values())
    assert job.message.startswith("QEMU's part is done; libvirt still finishes the job")
    assert job.current == job.end == 256 * MiB
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 6, completed_stats=held))
    assert transitions(reg) == [("running", "completed")]
    (done,) = reg.finished.values()
    assert done.finished == t0 + 6 and done.message == ""

    # Let go at once (the usual case): the look the event asked for finds no job, and
    # the job ends when the event said; with no look at all, a moment later.
    for look in (True, False):
        reg = Registry({HOST})
        reg.apply_sample(
            HOST, DomainSample(UID, "m1", "running", t0, job_stats={"type": 2, **dump})
        )
        reg.apply_event(ev.JobCompletedEv(HOST, UID, "m1", t0 + 0.03, params=tuple(dump.items())))
        if look:
            reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 0.04))
        else:
            reg.tick(t0 + 1.0)
            assert transitions(reg) == [(None, "running")]
            reg.tick(t0 + 2.5)
        assert transitions(reg)[-1] == ("running", "completed")
        (done,) = reg.finished.values()
        assert done.finished == t0 + 0.03


def test_a_save_held_after_its_job_completed_event_ends_when_its_domain_stops() -> None:
    save = {"operation": 2, "time_elapsed": 900, "memory_total": 256 * MiB, "memory_remaining": 0}
    reg = Registry({HOST})
    t0 = 14000.0
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, job_stats={"type": 2, **save}))
    reg.apply_event(ev.JobCompletedEv(HOST, UID, "m1", t0 + 1, params=tuple(save.items())))
    held = {"type": libvirt.VIR_DOMAIN_JOB_COMPLETED, **save}
    reg.apply_sample(HOST, DomainSample(UID, "m1", "paused", t0 + 1.1, job_stats=held))
    stopped = libvirt.VIR_DOMAIN_EVENT_STOPPED
    reg.apply_event(
        ev.LifecycleEv(HOST, UID, "m1", t0 + 3, event=stopped,
                       detail=libvirt.VIR_DOMAIN_EVENT_STOPPED_SAVED)
    )  # fmt: skip
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    (done,) = reg.finished.values()
    assert done.name == "save" and done.finished == t0 + 3


def test_a_failed_postcopy_is_not_undone_by_an_older_look_but_by_its_recovery() -> None:
    """The source of a post-copy migration fails (SUSPENDED/POSTCOPY_FAILED); a poll
    begun just before reads the state reason "post-copy" and is handled after the
    event. Only what comes after the failure (the recovery's SUSPENDED/POSTCOPY, or a
    look begun later) says post-copy runs again."""
    reg = Registry(frozen_after=5.0)
    t0 = 9000.0
    paused = libvirt.VIR_DOMAIN_PAUSED_POSTCOPY

    def look(at: float, reason: int, sent: int) -> None:
        stats = {"type": 2, "operation": 5, "time_elapsed": int((at - t0) * 1000) + 4000,
                 "data_total": 256 * MiB, "data_processed": sent,
                 "data_remaining": 256 * MiB - sent, "memory_iteration": 2}  # fmt: skip
        reg.apply_sample(
            HOST, DomainSample(UID, "m1", "paused", at, reason=reason, job_stats=stats)
        )

    def suspended(at: float, detail: int) -> ev.LifecycleEv:
        return ev.LifecycleEv(HOST, UID, "m1", at, event=libvirt.VIR_DOMAIN_EVENT_SUSPENDED,
                              detail=detail)  # fmt: skip

    look(t0, paused, 64 * MiB)
    (t,) = reg.active.values()
    assert t.job.config["postcopy"] == "active" and not t.job.stalled
    reg.apply_event(suspended(t0 + 2, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY_FAILED))
    look(t0 + 1.9, paused, 70 * MiB)  # begun before the failure, handled after it
    assert t.job.config["postcopy"] == "failed" and t.job.stalled
    assert t.job.message.startswith("post-copy failed:")
    failed = libvirt.VIR_DOMAIN_PAUSED_POSTCOPY_FAILED
    for i in range(3, 60, 5):  # frozen far past frozen_after: still the failure, said once
        look(t0 + i, failed, 70 * MiB)
    assert t.job.stalled and t.job.message.startswith("post-copy failed:")
    reg.apply_event(suspended(t0 + 61, libvirt.VIR_DOMAIN_EVENT_SUSPENDED_POSTCOPY))
    assert t.job.config["postcopy"] == "active" and not t.job.stalled
    assert t.job.message == "post-copy recovered after a failure"
    look(t0 + 62, paused, 80 * MiB)
    assert t.job.state is JobState.RUNNING and not t.job.stalled


def test_a_destination_gone_waits_for_its_source_still_copying_then_quotes_it() -> None:
    """A storage migration whose destination QEMU went: libvirt held the source's job
    9 s more (measured), longer than a domain job's grace. The migration-in waits for
    the source's verdict while the source's job runs; QEMU's cancel of the disk copy
    (libvirt's `drive-` + alias mirror) is that verdict."""
    host_b = "qemu+unix:///system?socket=/run/b"
    reg = Registry()
    t0 = 9500.0
    vda = (DiskInfo("vda", "virtio-disk0", "/lab/m1.qcow2"),)
    copying = {"type": 2, "operation": 5, "time_elapsed": 3000, "data_total": 256 * MiB,
               "data_processed": 48 * MiB, "data_remaining": 208 * MiB,
               "disk_total": 256 * MiB, "disk_processed": 48 * MiB}  # fmt: skip

    def source(at: float, stats: dict[str, int] | None) -> None:
        look = DomainSample(UID, "m1", "running", at, disks=vda, job_stats=stats or {},
                            completed_stats=None if stats else {})  # fmt: skip
        reg.apply_sample(HOST, look)

    source(t0, copying)
    reg.apply_event(
        ev.LifecycleEv(host_b, UID, "m1", t0 + 0.1, event=libvirt.VIR_DOMAIN_EVENT_STARTED,
                       detail=libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED)
    )  # fmt: skip
    reg.remove_domain(host_b, UID, t0 + 2)  # its QEMU was killed
    for i in range(3, 30, 3):
        source(t0 + i, copying)
        reg.tick(t0 + i)
    assert [(t.job.name, t.job.state) for t in reg.active.values()] == [
        ("migration-out", JobState.RUNNING),
        ("migration-in", JobState.RUNNING),
    ]
    cancelled = (("device", "drive-virtio-disk0"), ("len", 256 * MiB), ("offset", 48 * MiB),
                 ("speed", 4 * MiB), ("type", "mirror"))  # fmt: skip
    reg.apply_event(ev.QemuEv(HOST, UID, "m1", t0 + 30, name="BLOCK_JOB_CANCELLED",
                              details=cancelled))  # fmt: skip
    source(t0 + 31, None)
    ended = {j.name: j for j in reg.finished.values()}
    out, inc = ended["migration-out"], ended["migration-in"]
    assert out.state is JobState.ABORTED and inc.state is JobState.ABORTED
    assert out.message == (
        "the copy of vda to the destination was cancelled at 48.0 MiB of 256.0 MiB "
        "(libvirt cancels it when the migration is aborted)"
    )
    assert inc.message == f"the source says: {out.message}"


def test_a_migration_that_ended_while_its_host_was_out_of_reach_has_final_figures() -> None:
    """The link to the source host dropped mid-migration (its figures went stale);
    the migration completed meanwhile, and the first look after the reconnection
    reads libvirt's kept final statistics: final figures, not stale ones (JSON's
    "stale", the XML's <stale/> and jobtui_job_stale said so before)."""
    reg = Registry()
    t0 = time.time()
    reg.apply_sample(HOST, running(t0, 1000))
    reg.host_lost(HOST)
    (t,) = reg.active.values()
    assert t.job.stale
    reg.host_up(HOST, qemu_events=True)
    shut = libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED
    look = DomainSample(
        UID, "m1", "shut off", t0 + 9, reason=shut, completed_stats=final_stats(7000)
    )
    reg.apply_sample(HOST, look)
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    (job,) = reg.finished.values()
    assert job.stats["downtime"] == 40 and job.current == job.end
    assert not job.stale and job.sampled == t0 + 9


def test_a_block_job_gone_while_its_host_was_out_of_reach_says_its_end_may_be_lost() -> None:
    """A copy aborted by another client while the link to its host was down: libvirt's
    event went into the dead connection, and nothing kept says how it ended."""
    reg = Registry()
    t0 = time.time()
    vda = (DiskInfo("vda", "virtio-disk0", "/lab/m1.qcow2"),)
    copy = {"type": 2, "bandwidth": 0, "cur": 64 * MiB, "end": 64 * MiB}
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, disks=vda, block={"vda": copy}))
    reg.host_lost(HOST)
    reg.host_up(HOST, qemu_events=True)
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 5, disks=vda, block={}))
    reg.tick(t0 + 8)
    (job,) = reg.finished.values()
    assert job.state is JobState.UNKNOWN
    assert job.message == (
        "the job is gone and libvirt sent no event saying how it ended (the connection to "
        "its host was down for part of its run: an event sent then is lost)"
    )


def test_a_job_that_ran_entirely_while_the_link_was_down_is_told_from_the_kept_stats() -> None:
    """A dump run and ended by another client while this host's link was down: its
    JOB_COMPLETED went into the dead connection; libvirt's kept final statistics are
    the only trace. A job already told (its event, before the link went) is not told
    twice, though libvirt's kept copy of its stats differs from the event's (`type`)."""
    reg = Registry()
    t0 = time.time()
    other = "00000000-0000-4000-8000-0000000000bb"
    seen = {"operation": 9, "time_elapsed": 210, "disk_total": 64 * MiB}  # a push backup
    for uid in (UID, other):
        reg.apply_sample(HOST, DomainSample(uid, "m1", "running", t0, completed_stats={}))
    reg.apply_event(ev.JobCompletedEv(HOST, UID, "m1", t0 + 1, params=tuple(seen.items())))
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    reg.host_lost(HOST)
    reg.host_up(HOST, qemu_events=True)
    kept_seen = dict(seen, type=3)  # jobStats(COMPLETED) says `type`, the event does not
    unseen = {"type": 3, "operation": 8, "time_elapsed": 80, "memory_total": 64 * MiB}
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 6, completed_stats=kept_seen))
    reg.apply_sample(HOST, DomainSample(other, "m1", "running", t0 + 6, completed_stats=unseen))
    assert transitions(reg) == [(None, "running"), ("running", "completed")]
    told = [j for j in reg.finished.values() if j.key.domain_uuid == other]
    assert len(told) == 1 and told[0].name == "dump" and told[0].state is JobState.COMPLETED
    assert told[0].message.startswith("it ran while the connection to this host was down (")
    assert told[0].stats["time_elapsed"] == 80
    # Later looks at the same kept stats, the link up all along, tell nothing more.
    reg.apply_sample(HOST, DomainSample(other, "m1", "running", t0 + 9, completed_stats=unseen))
    assert transitions(reg) == [] and len(reg.finished) == 2


def test_a_side_that_ended_while_the_other_sides_host_was_out_of_reach_is_told_there() -> None:
    """The link to the source host dropped mid-migration (one engine watching both
    hosts) and the destination's libvirt then says the migration completed: the
    source's row stays its host's (running, stale) but says what the destination
    reports, until the source's own word comes with the link. The same from the
    other side."""
    host_b = "qemu+unix:///system?socket=/run/b"
    for lost, other in ((HOST, host_b), (host_b, HOST)):
        reg = Registry()
        t0 = 9800.0
        reg.apply_sample(HOST, running(t0, 1000))
        reg.apply_event(
            ev.LifecycleEv(host_b, UID, "m1", t0 + 0.1, event=libvirt.VIR_DOMAIN_EVENT_STARTED,
                           detail=libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED)
        )  # fmt: skip
        migrating = libvirt.VIR_DOMAIN_PAUSED_MIGRATION
        arriving = DomainSample(UID, "m1", "paused", t0 + 0.5, reason=migrating,
                                incoming=True, completed_stats={"type": 0})  # fmt: skip
        reg.apply_sample(host_b, arriving)
        reg.apply_sample(HOST, running(t0 + 1, 2000))
        reg.host_lost(lost)
        if other == host_b:
            migrated = libvirt.VIR_DOMAIN_RUNNING_MIGRATED
            final = {"type": 3, "operation": 4, "time_elapsed": 4000}
            reg.apply_sample(host_b, DomainSample(UID, "m1", "running", t0 + 5, reason=migrated,
                                                  completed_stats=final))  # fmt: skip
        else:
            shut = libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED
            reg.apply_sample(HOST, DomainSample(UID, "m1", "shut off", t0 + 5, reason=shut,
                                                completed_stats=final_stats(4000)))  # fmt: skip
        (ended,) = reg.finished.values()
        (waiting,) = reg.active.values()
        assert ended.host == other and ended.state is JobState.COMPLETED
        assert waiting.job.host == lost and waiting.job.stale
        assert waiting.job.state is JobState.RUNNING
        side = "destination" if other == host_b else "source"
        assert waiting.job.message == (
            f"the {side} reports the migration completed; this host's own word comes "
            "when the connection to it is back"
        )
        # The link is back: the side's own end, without the other's word.
        reg.host_up(lost, qemu_events=True)
        if lost == HOST:
            shut = libvirt.VIR_DOMAIN_SHUTOFF_MIGRATED
            reg.apply_sample(HOST, DomainSample(UID, "m1", "shut off", t0 + 9, reason=shut,
                                                completed_stats=final_stats(4000)))  # fmt: skip
        else:
            migrated = libvirt.VIR_DOMAIN_RUNNING_MIGRATED
            final = {"type": 3, "operation": 4, "time_elapsed": 4000}
            reg.apply_sample(host_b, DomainSample(UID, "m1", "running", t0 + 9, reason=migrated,
                                                  completed_stats=final))  # fmt: skip
        assert not reg.active
        mine = next(j for j in reg.finished.values() if j.host == lost)
        assert mine.state is JobState.COMPLETED and "own word" not in mine.message


def test_a_domain_that_came_while_the_link_was_down_tells_the_job_that_brought_it() -> None:
    """A migration into this host ran and ended while the link to it was down: the
    domain is first listed after the reconnection, and libvirt's kept statistics of
    the migration-in are its only trace (they are a baseline only for domains that
    were there before). A domain started meanwhile keeps none, and tells nothing.
    The link counts as down from the host's last answer: a dead link is noticed late."""
    reg = Registry()
    t0 = time.time() - 100  # the last answer; the loss is noticed 100 s later
    reg.host_up(HOST, qemu_events=True)
    reg.domain_listed(HOST, UID, "m1")
    reg.end_absent(HOST, {UID}, t0)
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0, completed_stats={"type": 0}))
    reg.host_lost(HOST)
    reg.host_up(HOST, qemu_events=True)
    came, started = "00000000-0000-4000-8000-0000000000bb", "00000000-0000-4000-8000-0000000000cc"
    reg.domain_listed(HOST, UID, "m1")
    reg.domain_listed(HOST, came, "m2")
    reg.domain_listed(HOST, started, "m3")
    reg.end_absent(HOST, {UID, came, started}, t0 + 120)
    migrated = libvirt.VIR_DOMAIN_RUNNING_MIGRATED
    final_in = {"type": 3, "operation": 4, "time_elapsed": 6000, "memory_total": 192 * MiB}
    reg.apply_sample(HOST, DomainSample(came, "m2", "running", t0 + 121, reason=migrated,
                                        completed_stats=final_in))  # fmt: skip
    reg.apply_sample(HOST, DomainSample(started, "m3", "running", t0 + 121,
                                        completed_stats={"type": 0}))  # fmt: skip
    unchanged = DomainSample(UID, "m1", "running", t0 + 121, completed_stats={"type": 0})
    reg.apply_sample(HOST, unchanged)
    (job,) = reg.finished.values()
    assert (job.domain, job.name, job.state) == ("m2", "migration-in", JobState.COMPLETED)
    assert job.message.startswith("it ran while the connection to this host was down (121 s)")
    assert abs(job.started - (t0 + 121 - 6.0)) < 0.01
    # The next list, the link up all along: a domain new then has no such past.
    reg.domain_listed(HOST, "00000000-0000-4000-8000-0000000000dd", "m4")
    reg.end_absent(HOST, {UID, came, started, "00000000-0000-4000-8000-0000000000dd"}, t0 + 130)
    reg.apply_sample(HOST, DomainSample("00000000-0000-4000-8000-0000000000dd", "m4", "running",
                                        t0 + 131, completed_stats=final_in))  # fmt: skip
    assert len(reg.finished) == 1


def test_a_domain_gone_while_its_hosts_link_was_down_goes_at_the_first_list_after() -> None:
    """The destination's libvirtd killed mid-migration (its incoming QEMU gone with it)
    and started again: its first domain list no longer names the domain. The domain
    and its migration-in go then (the source's verdict quoted), not stay running and
    stale for ever because no look at a vanished domain ever comes."""
    host_b = "qemu+unix:///system?socket=/run/b"
    reg = Registry()
    t0 = time.time() - 60
    reg.apply_sample(HOST, running(t0, 1000))
    reg.apply_event(
        ev.LifecycleEv(host_b, UID, "m1", t0 + 0.1, event=libvirt.VIR_DOMAIN_EVENT_STARTED,
                       detail=libvirt.VIR_DOMAIN_EVENT_STARTED_MIGRATED)
    )  # fmt: skip
    reg.domain_listed(host_b, UID, "m1")
    reg.end_absent(host_b, {UID}, t0 + 0.2)
    reg.apply_sample(HOST, running(t0 + 1, 2000))
    reg.host_lost(host_b)
    cancelled = (("status", "cancelled"),)
    reg.apply_event(ev.QemuEv(HOST, UID, "m1", t0 + 2, name="MIGRATION", details=cancelled))
    reg.apply_sample(HOST, DomainSample(UID, "m1", "running", t0 + 2.5, completed_stats={}))
    reg.tick(t0 + 10)
    out = next(j for j in reg.finished.values() if j.host == HOST)
    assert out.state is JobState.ABORTED
    reg.host_up(host_b, qemu_events=True)
    other = "00000000-0000-4000-8000-0000000000ee"
    reg.domain_listed(host_b, other, "m9")
    reg.end_absent(host_b, {other}, t0 + 12)
    reg.tick(t0 + 13)
    assert not reg.active
    inc = next(j for j in reg.finished.values() if j.host == host_b)
    assert inc.state is JobState.ABORTED and inc.message == f"the source says: {out.message}"
    assert not inc.stale  # its figures are the last it will have
    assert [d.name for d in reg.domain_snapshots() if d.host == host_b] == ["m9"]


def test_a_copy_whose_domain_went_while_the_link_was_down_ends_unknown_saying_so() -> None:
    """A transient domain destroyed by another client while the link to its host was
    down (measured: a relay cut in front of a private libvirtd): its STOPPED event went
    into the dead connection, and the first list after the reconnection no longer names
    it. The copy ends `unknown`, saying its end event may have been lost."""
    reg = Registry()
    t0 = time.time() - 60
    reg.domain_listed(HOST, UID, "t1")
    reg.end_absent(HOST, {UID}, t0)
    reg.apply_sample(HOST, copy_sample(t0, 8 * MiB))
    reg.host_lost(HOST)
    reg.host_up(HOST, qemu_events=True)
    reg.end_absent(HOST, set(), t0 + 20)
    assert (HOST, UID) not in reg.domains
    reg.tick(t0 + 40)
    (job,) = reg.finished.values()
    assert job.state is JobState.UNKNOWN and not job.stale
    assert job.message == (
        "the job is gone and the domain disappeared (the connection to its host was down "
        "for part of its run: an event sent then is lost)"
    )
