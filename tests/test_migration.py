"""Live migration between two private libvirtds, watched and steered through the engine.

Real QEMU (TCG guests that fill and dirty their RAM), real libvirt, nothing
mocked. One JobMonitor watches both hosts, as an operator's jobtui would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from enginetools import Stream
from labtools import wait_until
from test_cli_system import Terminal, cli_env

from jobtui import jobxml
from jobtui.engine.monitor import JobMonitor
from jobtui.engine.registry import Registry
from jobtui.engine.sample import DomainSample
from jobtui.lab.daemon import daemon_processes
from jobtui.lab.hosts import Migration, TwoHosts
from jobtui.lab.images import MiB, image_info
from jobtui.model import ControlOp, Job, JobControlError, JobProgress, JobState, JobType
from jobtui.support import allowed_ops

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("libvirtd") or not shutil.which("unshare"),
        reason="needs root, libvirtd and unshare",
    ),
]


@pytest.fixture(scope="module")
def hosts() -> Iterator[TwoHosts]:
    h = TwoHosts().start()
    roots = (h.a.root, h.b.root)
    base = h.base
    try:
        yield h
    finally:
        h.close()
    for root in roots:
        assert not list(daemon_processes(root)), f"a libvirtd of {root} survived"
    assert not base.exists()


@pytest.fixture
def name(hosts: TwoHosts) -> Iterator[str]:
    n = f"m-{uuid.uuid4().hex[:6]}"
    yield n
    hosts.remove(n)


@contextlib.contextmanager
def watching(hosts: TwoHosts, **kw: float) -> Iterator[tuple[JobMonitor, Stream]]:
    """One engine over both hosts, as an operator's jobtui, and what it tells."""
    m = JobMonitor([hosts.uri_a, hosts.uri_b], active_interval=0.5, idle_interval=1.0, **kw)
    m.start()
    try:
        assert m.wait_ready(20)
        yield m, Stream(m)
    finally:
        m.stop()


def both_sides_running(hosts: TwoHosts, stream: Stream, dom: libvirt.virDomain) -> Migration:
    """A migration at 16 MiB/s, once both its sides are seen running."""
    mig = hosts.start_migration(dom, bandwidth_mib=16)
    stream.wait_state(dom.name(), "migration-out", JobState.RUNNING, 10)
    stream.wait_state(dom.name(), "migration-in", JobState.RUNNING, 10)
    return mig


def job_on(m: JobMonitor, host: str, domain: str, name: str) -> Job | None:
    cands = [j for j in m.jobs(domain=domain) if j.host == host and j.name == name]
    return max(cands, key=lambda j: j.started) if cands else None


def progress_of(stream: Stream, host: str, name: str) -> list[Job]:
    return [
        e.job for e in list(stream.all) if isinstance(e, JobProgress) and e.job.host == host
        and e.job.name == name
    ]  # fmt: skip


def test_precopy_watched_to_completion_on_both_sides(hosts: TwoHosts, name: str) -> None:
    dom = hosts.filled_guest(name, 192, dirty_mib=16, rate_mib=8)
    with watching(hosts) as (m, stream):
        t0 = time.monotonic()
        mig = hosts.start_migration(dom, bandwidth_mib=48)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        assert out.host == hosts.uri_a and out.type is JobType.MIGRATION_OUT
        inc = stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        assert inc.host == hosts.uri_b and inc.type is JobType.MIGRATION_IN
        # The two sides find each other by the domain's UUID.
        linked = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_b, name, "migration-in"))
                and j.config.get("peer-host") == hosts.uri_a
                and j.config.get("progress-from") == hosts.uri_a
                and j.current
                and j
            ),
            10,
            "migration-in linked to its source, showing its progress",
        )
        assert linked.end and linked.current <= linked.end
        src = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and j.config.get("peer-host") == hosts.uri_b
                and j
            ),
            10,
            "migration-out linked",
        )
        assert src.bandwidth == 48 * MiB  # migrateGetMaxSpeed, as started
        done = stream.wait_state(name, "migration-out", JobState.COMPLETED, 60)
        mig.wait(30)
        took = time.monotonic() - t0
        assert mig.error is None
        # JOB_COMPLETED's final stats: downtime and every byte sent.
        assert 0 < done.stats["downtime"] < 5000
        assert done.stats["memory_total"] >= 180 * MiB
        assert done.stats["memory_iteration"] >= 2
        assert done.current == done.end == done.stats["data_total"]
        arrived = stream.wait_state(name, "migration-in", JobState.COMPLETED, 30)
        # The destination's final stats come from jobStats(COMPLETED), operation 4.
        assert arrived.stats.get("operation") == 4
        assert arrived.stats["memory_total"] >= 180 * MiB
        assert stream.transitions(name, "migration-out") == [
            (None, "running"),
            ("running", "completed"),
        ]
        assert stream.transitions(name, "migration-in") == [
            (None, "running"),
            ("running", "completed"),
        ]
        # The destination takes in a migration stream as a restore does: not one.
        assert [j.name for j in m.jobs(domain=name)].count("restore") == 0
        # Progress never claims more than there is.
        for j in progress_of(stream, hosts.uri_a, "migration-out"):
            assert j.current is None or j.end is None or j.current <= j.end
        jobxml.validate(m.job_xml(done.key))
        jobxml.validate(m.job_xml(arrived.key))
        assert hosts.domain_b(name).isActive()
        print(
            f"\npre-copy 192 MiB at 48 MiB/s: {took:.1f} s, "
            f"{done.stats['memory_iteration']} passes, downtime {done.stats['downtime']} ms"
        )


def test_virshs_own_managed_migration_and_one_whose_virsh_was_killed(
    hosts: TwoHosts, name: str
) -> None:
    """`virsh migrate` without --p2p (virsh's default): the client, not the source
    daemon, drives the phases on both hosts. Watched on both sides it runs and
    completes as a peer-to-peer one does. Its client killed mid-way, the destination's
    libvirt drops the incoming domain and the source's QEMU reports the migration
    failed: both sides end `failed`, and the source keeps running the guest."""
    dom = hosts.filled_guest(name, 256)
    migrate = ["virsh", "-c", hosts.uri_a, "migrate", "--live", "--unsafe", "--bandwidth", "32"]
    with watching(hosts) as (m, stream):
        run = subprocess.run([*migrate, name, hosts.uri_b], capture_output=True, timeout=120)
        assert run.returncode == 0, run.stderr
        out = stream.wait_state(name, "migration-out", JobState.COMPLETED, 30)
        inc = stream.wait_state(name, "migration-in", JobState.COMPLETED, 30)
        assert out.current == out.end and out.stats["downtime"] > 0
        assert (out.host, inc.host) == (hosts.uri_a, hosts.uri_b)
        assert hosts.domain_b(name) is not None and not dom.isActive()
    hosts.remove(name)
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        virsh = subprocess.Popen([*migrate, name, hosts.uri_b], stderr=subprocess.DEVNULL)
        try:
            stream.wait_state(name, "migration-out", JobState.RUNNING, 20)
            stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
            time.sleep(1.0)
        finally:
            virsh.kill()
            virsh.wait()
        out = stream.wait_state(name, "migration-out", JobState.FAILED, 30)
        inc = stream.wait_state(name, "migration-in", JobState.FAILED, 30)
        assert out.message == "QEMU reports the migration failed"
        assert inc.message == f"the source says: {out.message}"
        assert out.current is not None and out.end is not None and 0 < out.current < out.end
        wait_until(lambda: dom.isActive() and hosts.domain_b(name) is None, 10, "source kept")
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING


def test_abort_in_precopy_keeps_the_source_running(hosts: TwoHosts, name: str) -> None:
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=16)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        assert ControlOp.ABORT in allowed_ops(out, m.options)
        msg = m.control(out.key, ControlOp.ABORT)
        assert "keeps running" in msg
        end = stream.wait_state(name, "migration-out", JobState.ABORTED, 30)
        assert end.finished is not None
        mig.wait(30)
        assert mig.error_code == 78  # libvirt: "canceled by client"
        assert dom.isActive()  # the source kept the guest
        inc = stream.wait_state(name, "migration-in", JobState.ABORTED, 30)
        assert "source" in inc.message
        assert hosts.domain_b(name) is None


def test_an_abort_seen_from_the_destination_alone_does_not_claim_a_failure(
    hosts: TwoHosts, name: str
) -> None:
    """Only the destination is watched and the source aborts: libvirt there stops the
    incoming domain with reason "failed", which is all this host knows."""
    dom = hosts.filled_guest(name, 256)
    m = JobMonitor([hosts.uri_b], active_interval=0.5, idle_interval=1.0)
    m.start()
    try:
        assert m.wait_ready(20)
        stream = Stream(m)
        mig = hosts.start_migration(dom, bandwidth_mib=16)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        time.sleep(1.0)
        dom.abortJob()
        mig.wait(30)
        end = stream.wait_state(name, "migration-in", JobState.FAILED, 30)
        assert end.message == (
            "the migration did not complete: the incoming domain was stopped, which is "
            "also how an abort on the source ends it (the source host says which)"
        )
        assert dom.isActive() and hosts.domain_b(name) is None
    finally:
        m.stop()


def test_source_destroyed_in_precopy_fails_both_sides(hosts: TwoHosts, name: str) -> None:
    """`virsh destroy` of a migrating domain: libvirt keeps no final stats for
    the failed migration; the lifecycle event says what happened."""
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        mig = both_sides_running(hosts, stream, dom)
        dom.destroy()
        end = stream.wait_state(name, "migration-out", JobState.FAILED, 30)
        mig.wait(30)
        assert mig.error is not None  # libvirt failed the migration call
        assert not dom.isActive() and hosts.domain_b(name) is None
        assert end.message == "the domain was destroyed while the job ran; it did not finish"
        inc = stream.wait_state(name, "migration-in", JobState.FAILED, 30)
        assert inc.finished is not None
        assert [new for _o, new in stream.transitions(name, "migration-out")] == [
            "running",
            "failed",
        ]


def test_postcopy_switch_shown_and_abort_refused(hosts: TwoHosts, name: str) -> None:
    dom = hosts.filled_guest(name, 256, dirty_mib=64, rate_mib=32)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=16, postcopy=True, postcopy_bandwidth_mib=16)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        # libvirt 9.0 cannot say whether post-copy is allowed: the switch is offered.
        assert ControlOp.POSTCOPY in allowed_ops(out, m.options)
        time.sleep(1.5)
        assert "post-copy" in m.control(out.key, ControlOp.POSTCOPY)
        src = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and j.config.get("postcopy") == "active"
                and j
            ),
            5,
            "post-copy shown on the source",
        )
        wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_b, name, "migration-in"))
                and j.config.get("postcopy") == "active"
            ),
            5,
            "post-copy shown on the destination",
        )
        # The lifecycle: the source is paused, the guest runs on the destination.
        wait_until(
            lambda: any(
                d.host == hosts.uri_a and d.name == name and d.state == "paused"
                for d in m.domains()
            ),
            5,
            "the source domain shown paused",
        )
        with pytest.raises(JobControlError, match="post-copy"):
            m.control(src.key, ControlOp.ABORT)
        assert ControlOp.ABORT not in allowed_ops(src, m.options)
        # Speed still applies, to post-copy's own limit.
        m.control(src.key, ControlOp.SET_SPEED, bandwidth="64M")
        wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and (j.state.finished or j.bandwidth == 64 * MiB)
            ),
            10,
            "post-copy bandwidth 64 MiB/s shown",
        )
        done = stream.wait_state(name, "migration-out", JobState.COMPLETED, 60)
        mig.wait(30)
        assert mig.error is None
        assert done.config["postcopy"] == "active"
        stream.wait_state(name, "migration-in", JobState.COMPLETED, 30)
        assert hosts.domain_b(name).isActive()


def test_a_failed_postcopy_is_flagged_until_it_is_recovered(hosts: TwoHosts, name: str) -> None:
    """`virsh domjobabort --postcopy` breaks a post-copy migration: libvirt keeps the
    job, the guest stays paused with its memory on two hosts. That is flagged on both
    sides until `migrate --postcopy-resume` recovers it, and the recovered migration
    is shown moving again to its end."""
    dom = hosts.filled_guest(name, 256, dirty_mib=64, rate_mib=32)
    with watching(hosts, stall_after=3.0) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=16, postcopy=True, postcopy_bandwidth_mib=4)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        time.sleep(1.5)
        m.control(out.key, ControlOp.POSTCOPY)
        wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and j.config.get("postcopy") == "active"
            ),
            10,
            "post-copy shown on the source",
        )
        time.sleep(1.0)
        dom.abortJobFlags(libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY)  # as another client
        mig.wait(30)
        assert mig.error is not None and "post-copy" in mig.error

        def flagged(host: str, side: str) -> Job | None:
            j = job_on(m, host, name, side)
            ok = j is not None and j.stalled and "post-copy failed" in j.message
            return j if ok else None

        src = wait_until(lambda: flagged(hosts.uri_a, "migration-out"), 10, "source flagged")
        wait_until(lambda: flagged(hosts.uri_b, "migration-in"), 10, "destination flagged")
        assert src.state is JobState.RUNNING and src.config["postcopy"] == "failed"
        assert dom.jobInfo()[0] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED  # libvirt keeps it
        # Well past stall_after and frozen_after: still the post-copy failure, not a
        # guess at why nothing moves.
        time.sleep(5.0)
        src = flagged(hosts.uri_a, "migration-out")
        assert src is not None, job_on(m, hosts.uri_a, name, "migration-out")
        with pytest.raises(JobControlError, match="post-copy failed"):
            m.control(src.key, ControlOp.ABORT)
        assert ControlOp.ABORT not in allowed_ops(src, m.options)

        hosts.start_migration(dom, bandwidth_mib=16, postcopy_bandwidth_mib=64, resume=True)
        moving = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and not j.stalled
                and j.config.get("postcopy") == "active"
                and j
            ),
            20,
            "the recovered migration shown in post-copy again, not flagged",
        )
        assert "failed" not in moving.message and moving.key == src.key  # the same job
        wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_b, name, "migration-in"))
                and not j.stalled
                and j.config.get("postcopy") == "active"
            ),
            20,
            "the destination no longer flagged",
        )
        stream.wait_state(name, "migration-out", JobState.COMPLETED, 90)
        stream.wait_state(name, "migration-in", JobState.COMPLETED, 30)
        assert hosts.domain_b(name).isActive()


def test_postcopy_asks_on_a_terminal_like_abort(hosts: TwoHosts, name: str, tmp_path: Path) -> None:
    """`jobtui postcopy` asks first, as the TUI does: there is no way back from it."""
    dom = hosts.filled_guest(name, 256, dirty_mib=64, rate_mib=32)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=8, postcopy=True, postcopy_bandwidth_mib=8)
        stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        history = str(tmp_path / "h.sqlite3")
        argv = [sys.executable, "-m", "jobtui", "-c", hosts.uri_a, "--history", history]
        argv += ["postcopy", name, "migration-out"]
        term = Terminal(argv)
        try:
            term.wait_for(f"Postcopy migration-out on {name} (".encode(), b"[y/N] ")
            term.type(b"n\n")
            assert term.wait() == 1
            assert b"not confirmed" in term.screen
        finally:
            term.close()
        # From a script, without --yes: a usage error, before anything happens.
        quiet = {"stdin": subprocess.DEVNULL, "capture_output": True, "text": True}
        script = subprocess.run(argv, env=cli_env(), timeout=60, check=False, **quiet)
        assert script.returncode == 2 and "pass --yes" in script.stderr
        time.sleep(1.0)
        out = job_on(m, hosts.uri_a, name, "migration-out")
        assert out is not None and out.config.get("postcopy") != "active"
        m.control(out.key, ControlOp.ABORT)
        stream.wait_state(name, "migration-out", JobState.ABORTED, 30)
        mig.wait(30)


def test_speed_change_seen_and_postcopy_refused_by_libvirt(hosts: TwoHosts, name: str) -> None:
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        hosts.start_migration(dom, bandwidth_mib=8)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)

        def bps_near(target: int) -> Job | None:
            j = job_on(m, hosts.uri_a, name, "migration-out")
            bps = j.stats.get("memory_bps", 0) if j else 0
            return j if j and abs(bps - target) < target * 0.2 else None

        wait_until(lambda: bps_near(8 * MiB), 10, "memory_bps near 8 MiB/s")
        t0 = time.monotonic()
        m.control(out.key, ControlOp.SET_SPEED, bandwidth="32M")
        fast = wait_until(lambda: bps_near(32 * MiB), 10, "memory_bps near 32 MiB/s")
        print(f"\nset-speed 8 -> 32 MiB/s seen in memory_bps after {time.monotonic() - t0:.1f} s")
        assert fast.bandwidth == 32 * MiB
        # Started without VIR_MIGRATE_POSTCOPY: libvirt refuses, and the engine remembers.
        with pytest.raises(JobControlError, match="VIR_MIGRATE_POSTCOPY"):
            m.control(out.key, ControlOp.POSTCOPY)
        no = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and j.config.get("postcopy") == "no"
                and j
            ),
            5,
            "postcopy=no recorded",
        )
        assert ControlOp.POSTCOPY not in allowed_ops(no, m.options)
        m.control(out.key, ControlOp.ABORT)
        stream.wait_state(name, "migration-out", JobState.ABORTED, 30)


def test_never_converging_migration_is_flagged_stalled(hosts: TwoHosts, name: str) -> None:
    # 128 MiB rewritten at 64 MiB/s over a 32 MiB/s link: every pass starts full again.
    dom = hosts.filled_guest(name, 160, dirty_mib=128, rate_mib=64)
    with watching(hosts, stall_after=6.0, stall_passes=3) as (m, stream):
        t0 = time.monotonic()
        hosts.start_migration(dom, bandwidth_mib=32)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stalled = wait_until(
            lambda: (j := job_on(m, hosts.uri_a, name, "migration-out")) and j.stalled and j,
            60,
            "the migration flagged stalled",
        )
        took = time.monotonic() - t0
        assert stalled.state is JobState.RUNNING
        assert "not converging" in stalled.message
        assert "dirties" in stalled.message and "is sent" in stalled.message
        assert stalled.stats["remaining_shrinking"] is False
        assert stalled.stats["memory_dirty_bps"] > 0
        assert stalled.stats["pass_remaining"] > 64 * MiB
        assert stalled.stats["memory_iteration"] >= 3
        print(
            f"\nstall flagged {took:.1f} s after start, pass {stalled.stats['memory_iteration']}:"
            f" {stalled.message}"
        )
        m.control(out.key, ControlOp.ABORT)
        end = stream.wait_state(name, "migration-out", JobState.ABORTED, 30)
        assert not end.stalled
        assert dom.isActive()


def test_source_daemon_killed_mid_migration_fails_both_sides(hosts: TwoHosts, name: str) -> None:
    """The source's libvirtd killed during a migration and started again: the new
    daemon cancels the migration as it re-attaches the domain. No event reaches a
    client and no statistics are kept: the domain still running on the source is what
    says the migration did not complete."""
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        mig = both_sides_running(hosts, stream, dom)
        hosts.crash_a(down=1.0)
        out = stream.wait_state(name, "migration-out", JobState.FAILED, 60)
        mig.wait(30)
        assert mig.error is not None  # the call died with its daemon
        assert out.message.startswith(
            "it did not complete: the domain is still running on the source host; "
        ), out.message
        inc = stream.wait_state(name, "migration-in", JobState.FAILED, 60)
        assert inc.message == f"the source says: {out.message}"
        # What libvirt says once it is back: the guest runs on A, no job, no statistics.
        assert hosts.conn_a is not None
        src = hosts.conn_a.lookupByName(name)
        assert src.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert src.jobStats()["type"] == libvirt.VIR_DOMAIN_JOB_NONE
        assert src.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)["type"] == 0
        assert hosts.domain_b(name) is None


def test_destination_daemon_killed_mid_migration_aborts_both_sides(
    hosts: TwoHosts, name: str
) -> None:
    """The destination's libvirtd killed during a peer-to-peer migration (its incoming
    QEMU goes with it) and started again: the source's libvirt cancels the migration,
    the guest runs on. The new daemon's first domain list no longer names the domain,
    and that is when the `migration-in` ends: with the source's verdict, not running
    and stale for ever (no look at a domain that is gone ever comes)."""
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        mig = both_sides_running(hosts, stream, dom)
        hosts.crash_b(down=1.0)
        out = stream.wait_state(name, "migration-out", JobState.ABORTED, 60)
        mig.wait(30)
        assert mig.error is not None
        assert out.message.startswith("QEMU reports the migration cancelled; the destination's")
        inc = stream.wait_state(name, "migration-in", JobState.ABORTED, 60)
        assert inc.message == f"the source says: {out.message}" and not inc.stale
        assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
        assert hosts.domain_b(name) is None
        wait_until(
            lambda: not [d for d in m.domains() if d.host == hosts.uri_b and d.name == name],
            10,
            "the domain gone from host B",
        )


def test_a_stopped_source_makes_both_sides_stale_until_it_answers(
    hosts: TwoHosts, name: str
) -> None:
    """The source's QEMU stopped (SIGSTOP) mid-migration: its jobStats hangs, so the
    source's figures are old, and so are the destination's, which are the source's."""
    dom = hosts.filled_guest(name, 256)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=8)
        stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        wait_until(
            lambda: (j := job_on(m, hosts.uri_b, name, "migration-in")) and j.current and j,
            15,
            "the destination showing the source's progress",
        )
        pid = wait_until(lambda: hosts.a.qemu_pids().get(name), 10, "the source's QEMU")
        os.kill(pid, signal.SIGSTOP)
        try:
            wait_until(
                lambda: (j := job_on(m, hosts.uri_a, name, "migration-out")) and j.stale,
                20,
                "the source's figures marked stale",
            )
            inc = wait_until(
                lambda: (j := job_on(m, hosts.uri_b, name, "migration-in")) and j.stale and j,
                5,
                "the destination's figures marked stale",
            )
            assert inc.state is JobState.RUNNING and inc.config["progress-from"] == hosts.uri_a
            # The destination's own domain answers all along: its figures stay stale.
            time.sleep(3)
            j = job_on(m, hosts.uri_b, name, "migration-in")
            assert j is not None and j.stale
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_until(
            lambda: (j := job_on(m, hosts.uri_b, name, "migration-in")) and not j.stale,
            30,
            "the destination's figures current again",
        )
        out = job_on(m, hosts.uri_a, name, "migration-out")
        assert out is not None and not out.stale
        m.control(out.key, ControlOp.ABORT)
        stream.wait_state(name, "migration-out", JobState.ABORTED, 30)
        mig.wait(30)


def test_migration_whose_destination_stops_is_stuck_then_moves_again(
    hosts: TwoHosts, name: str
) -> None:
    """The destination's QEMU stopped (SIGSTOP): the source's QEMU sends nothing
    and says nothing (its migration stays "active"). The engine flags it stuck
    once no byte moved for `frozen_after`, and the flag goes when bytes move again."""
    dom = hosts.filled_guest(name, 256)
    with watching(hosts, frozen_after=3.0) as (m, stream):
        hosts.start_migration(dom, bandwidth_mib=16)
        out = stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        pid = wait_until(lambda: hosts.b.qemu_pids().get(name), 10, "the destination's QEMU")
        os.kill(pid, signal.SIGSTOP)
        try:
            stuck = wait_until(
                lambda: (j := job_on(m, hosts.uri_a, name, "migration-out")) and j.stalled and j,
                30,
                "the migration flagged stuck",
            )
            assert stuck.state is JobState.RUNNING
            assert stuck.message.startswith("stuck: nothing sent for "), stuck.message
            assert stuck.message.endswith("the destination takes no data")
            inc = wait_until(
                lambda: (j := job_on(m, hosts.uri_b, name, "migration-in")) and j.stalled and j,
                10,
                "the destination's side flagged too",
            )
            assert inc.message.startswith("the source says: stuck: nothing sent for ")
            # What libvirt says meanwhile: the migration runs and moves nothing.
            before = dom.jobStats()
            time.sleep(1.0)
            after = dom.jobStats()
            assert before["type"] == after["type"] == libvirt.VIR_DOMAIN_JOB_UNBOUNDED
            assert before["data_processed"] == after["data_processed"]
        finally:
            os.kill(pid, signal.SIGCONT)
        moving = wait_until(
            lambda: (j := job_on(m, hosts.uri_a, name, "migration-out")) and not j.stalled and j,
            30,
            "the flag gone once bytes move",
        )
        assert moving.state.active and moving.message == ""
        inc = wait_until(
            lambda: (j := job_on(m, hosts.uri_b, name, "migration-in")) and not j.stalled and j,
            10,
            "the destination's flag gone too",
        )
        assert inc.message == ""
        m.control(out.key, ControlOp.ABORT)
        stream.wait_state(name, "migration-out", JobState.ABORTED, 30)
        assert dom.isActive()


def test_copy_that_stops_moving_is_stuck_then_clears() -> None:
    """The block side of "nothing moves", on the registry alone: a copy whose
    target stops taking writes keeps reading the same cur from blockJobInfo."""
    reg = Registry(stall_after=600.0, frozen_after=5.0)
    host, uid = "qemu:///x", "00000000-0000-4000-8000-000000000002"

    def sample(at: float, cur: int) -> Job:
        info = {"type": 2, "bandwidth": 0, "cur": cur, "end": 64 * MiB}
        reg.apply_sample(
            host, DomainSample(uid, "d2", "running", at, disks=(), block={"vda": info})
        )
        return next(t.job for t in reg.active.values())

    t0 = 2000.0
    for i in range(4):
        assert not sample(t0 + i, i * MiB).stalled
    for i in range(4, 9):  # stuck at 3 MiB from t0+3
        job = sample(t0 + i, 3 * MiB)
    assert job.stalled and job.state is JobState.RUNNING
    assert job.message == "stuck: nothing moved for 5 s (at 3.0 MiB of 64.0 MiB)"
    job = sample(t0 + 9, 4 * MiB)
    assert not job.stalled and job.message == ""

    # Throttled to 1 MiB/s, a copy moves in steps of up to 32 MiB and is silent between
    # them: 30 s without a byte is no news then; three steps' time (96 s) is.
    def throttled(at: float, cur: int) -> Job:
        info = {"type": 2, "bandwidth": MiB, "cur": cur, "end": 64 * MiB}
        reg.apply_sample(
            host, DomainSample(uid, "d2", "running", at, disks=(), block={"vda": info})
        )
        return next(t.job for t in reg.active.values())

    t1 = t0 + 10
    for i in range(0, 95, 5):
        assert not throttled(t1 + i, 5 * MiB).stalled, i
    assert throttled(t1 + 97, 5 * MiB).stalled


def test_storage_migration_folds_its_copy_job(hosts: TwoHosts, name: str) -> None:
    dom = hosts.filled_guest(name, 128, disk_mib=128, disk_data_mib=96)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=48, storage=True)
        stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        mid = wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and j.stats.get("vda.end")
                and j
            ),
            10,
            "the disk's copy folded into the migration",
        )
        assert mid.config["disks"] == "vda"
        assert mid.stats["vda.bandwidth"] == 48 * MiB
        done = stream.wait_state(name, "migration-out", JobState.COMPLETED, 60)
        mig.wait(30)
        assert mig.error is None
        assert done.stats["disk_total"] == 128 * MiB
        assert done.stats["vda.result"] == "completed"
        stream.wait_state(name, "migration-in", JobState.COMPLETED, 30)
        # The copy was the migration's, never a job of its own on either host.
        assert not [e for e in stream.events if e.job.domain == name and e.job.type.is_block]
        time.sleep(1.5)
        assert not [j for j in m.jobs(domain=name) if j.type.is_block]
        # And it moved real data into B's own image (same path, another file).
        b_image = hosts.image_path(hosts.b, f"{name}-vda.qcow2")
        assert int(image_info(b_image)["actual-size"]) >= 90 * MiB


@pytest.mark.parametrize("fault", ["abort", "kill-destination"])
def test_a_storage_migration_ended_during_its_disk_copy_says_how(
    hosts: TwoHosts, name: str, fault: str
) -> None:
    """During a storage migration's disk copy QEMU's migration has not begun: no
    MIGRATION event comes and libvirt keeps no statistics when it ends badly. Its
    disk copy (a mirror libvirt runs) says how: cancelled by an abort from another
    client, or failed with QEMU's error when the destination's QEMU dies. Both
    sides say so, not "unknown"."""
    dom = hosts.filled_guest(name, 128, disk_mib=256, disk_data_mib=200)
    with watching(hosts) as (m, stream):
        mig = hosts.start_migration(dom, bandwidth_mib=4, storage=True)
        stream.wait_state(name, "migration-out", JobState.RUNNING, 10)
        stream.wait_state(name, "migration-in", JobState.RUNNING, 10)
        wait_until(
            lambda: (
                (j := job_on(m, hosts.uri_a, name, "migration-out"))
                and (j.current or 0) >= 16 * MiB
            ),
            20,
            "the disk copy under way",
        )
        assert dom.jobStats().get("memory_processed", 0) == 0  # still the storage copy
        if fault == "abort":
            dom.abortJob()  # as `virsh domjobabort` would
            want, says = JobState.ABORTED, "the copy of vda to the destination was cancelled at "
        else:
            pid = wait_until(lambda: hosts.b.qemu_pids().get(name), 10, "the destination's QEMU")
            os.kill(pid, signal.SIGKILL)
            want, says = JobState.FAILED, "QEMU reports the copy of vda to the destination failed"
        out = stream.wait_state(name, "migration-out", want, 60)
        mig.wait(30)
        assert mig.error is not None
        assert out.message.startswith(says), out.message
        inc = stream.wait_state(name, "migration-in", want, 30)
        assert inc.message == f"the source says: {out.message}"
        assert dom.isActive() and hosts.domain_b(name) is None  # the guest stays on A


def test_mirror_outpaced_by_guest_writes_is_stalled_then_clears() -> None:
    """The block side of the stall rule, on the registry alone: QEMU 7.2 here does
    not throttle an active commit (a 64 MiB commit at "1 MiB/s" is READY in 0.5 s,
    its mirror copies 16 MiB bursts) and a copy's source refuses other writers, so
    a guest-less lab cannot make a mirror fall behind for real. The samples are
    shaped like blockJobInfo's while a guest writes faster than the copy."""
    reg = Registry(stall_after=5.0)
    host, uid = "qemu:///x", "00000000-0000-4000-8000-000000000001"

    def sample(at: float, cur: int, end: int) -> None:
        info = {"type": 4, "bandwidth": MiB, "cur": cur, "end": end}
        reg.apply_sample(
            host,
            DomainSample(uid, "d1", "running", at, disks=(), block={"vda": info}),
        )

    t0 = 1000.0
    sample(t0, 0, 64 * MiB)
    for i in range(1, 12):  # the copy gains 1 MiB/s, the guest dirties 4 MiB/s
        sample(t0 + i, i * MiB, 64 * MiB + 4 * i * MiB)
    job = next(t.job for t in reg.active.values())
    assert job.type is JobType.BLOCK_COMMIT_ACTIVE and job.stalled
    assert "not converging" in job.message and "has not shrunk for 11 s" in job.message
    # The guest stops writing: what is left shrinks again and the flag goes.
    sample(t0 + 12, 60 * MiB, 108 * MiB)
    job = next(t.job for t in reg.active.values())
    assert not job.stalled and job.message == ""
