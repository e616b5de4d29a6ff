"""Where the truth is hardest: a job in limbo that any later process finds, a migration's
destination that must not stall a listing, and figures that say when they are old.

Each case runs on a private libvirtd with real QEMU; `jobtui` runs as separate processes,
as an operator would start it (the next morning, from another shell), and what it says is
checked against what QEMU and libvirt report themselves.
"""

# The system CLI tests' fixtures (a private libvirtd, domains, the history file) are
# imported below; pytest then sees them as this module's, which ruff reads as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import libvirt
import libvirt_qemu
import pytest
from enginetools import wait_job
from labtools import wait_until
from test_cli_system import (  # noqa: F401 - fixtures
    Domains,
    Terminal,
    Watch,
    cli_argv,
    cli_env,
    conn,
    daemon,
    domains,
    history,
    list_json,
    ok,
    run_cli,
    start_copy,
    terminals,
    watches,
)

from jobtui.engine.monitor import JobMonitor
from jobtui.lab import MiB, kvm_usable
from jobtui.lab.daemon import PrivateDaemon
from jobtui.lab.hosts import TwoHosts
from jobtui.lab.images import create_image
from jobtui.lab.xmlgen import DiskSpec, domain_xml

pytestmark = pytest.mark.system

CONFIRM = "--allow-qemu-monitor"


def qmp(dom: libvirt.virDomain, cmd: str, **args: Any) -> Any:
    out = libvirt_qemu.qemuMonitorCommand(dom, json.dumps({"execute": cmd, "arguments": args}), 0)
    return json.loads(out).get("return")


def scsi_domain(domains: Domains) -> libvirt.virDomain:
    name = f"limbo-{uuid.uuid4().hex[:4]}"
    xml = domain_xml(name, [DiskSpec("sda", domains.image(name, 96), bus="scsi")], kvm=kvm_usable())
    dom = domains.conn.defineXML(xml)
    domains.made.append(dom)
    dom.create()
    return dom


def one(jobs: list[dict[str, Any]], domain: str, name: str) -> dict[str, Any]:
    found = [j for j in jobs if j["domain"] == domain and j["name"] == name]
    assert len(found) == 1, jobs
    return found[0]


def plug_disk(dom: libvirt.virDomain, target: str, path: Path) -> Path:
    """A new image hot-plugged on the domain's virtio-scsi bus, as `virsh attach-disk` does."""
    image = create_image(path, 96, data_mib=32)
    dom.attachDevice(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file='{image}'/><target dev='{target}' bus='scsi'/></disk>"
    )
    return image


def orphan_under_watch(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp: Path
) -> tuple[libvirt.virDomain, str]:
    """A throttled copy on a virtio-scsi disk, the disk unplugged under it (what no public
    libvirt API allows) while a `jobtui watch` looks on; the watch then stops."""
    dom = scsi_domain(domains)
    watch = Watch(cli_argv(daemon, history, "watch"))
    watches.append(watch)
    time.sleep(1.0)  # the watch has connected and listed (its first look is sub-second)
    start_copy(dom, "sda", tmp / f"{dom.name()}-copy.qcow2", bandwidth=1 * MiB)
    watch.wait_for(lambda x: f"{dom.name()} copy-sda" in x and "running" in x, 20)
    qmp(dom, "device_del", id="scsi0-0-0-0")
    watch.wait_for(lambda x: f"{dom.name()} copy-sda" in x and "-> orphaned" in x, 20)
    rc, err = watch.stop(signal.SIGINT)
    assert rc == 0 and "Traceback" not in err
    (qid,) = [j["device"] for j in qmp(dom, "query-block-jobs")]
    assert qid.startswith("copy-sda")
    return dom, qid


def test_a_limbo_job_is_found_confirmed_and_aborted_by_later_processes(
    daemon: PrivateDaemon,
    history: Path,
    domains: Domains,
    watches: list[Watch],
    terminals: Callable[[list[str]], Terminal],
    tmp_path: Path,
) -> None:
    dom, qid = orphan_under_watch(daemon, history, domains, watches, tmp_path)
    name = dom.name()

    # The next process, without the opt-in: what the last one learned, marked as old.
    kept = one(list_json(daemon, history), name, "copy-sda")
    assert kept["state"] == "orphaned" and kept["qemu_id"] == qid
    assert kept["stale"] is True and kept["sampled"] and kept["rate"] is None
    assert "last confirmed at" in kept["message"] and CONFIRM in kept["message"]

    # With the opt-in, QEMU's job list confirms it, with QEMU's own figures.
    before = {j["device"]: j for j in qmp(dom, "query-block-jobs")}[qid]
    confirmed = one(list_json(daemon, history, CONFIRM), name, "copy-sda")
    after = {j["device"]: j for j in qmp(dom, "query-block-jobs")}[qid]
    assert confirmed["state"] == "orphaned" and confirmed["stale"] is False
    assert before["offset"] <= confirmed["current"] <= after["offset"]
    assert confirmed["end"] == after["len"] and confirmed["bandwidth"] == after["speed"]
    assert confirmed["sampled"] > kept["sampled"]

    # The TUI of a fresh process shows it, on a terminal as an operator sees it.
    tui = terminals(cli_argv(daemon, history))
    tui.wait_for(b"copy-sda", b"orphaned", timeout=30)
    tui.type(b"q")
    assert tui.wait() == 0

    # Abort from yet another fresh process: QEMU cancels it; the history says so.
    refused = run_cli(daemon, history, "abort", name, "copy-sda", "--yes")
    assert refused.returncode == 1 and CONFIRM in refused.stderr
    assert qmp(dom, "query-block-jobs"), "refused: QEMU still runs it"
    out = ok(run_cli(daemon, history, "abort", name, "copy-sda", "--yes", CONFIRM))
    assert "cancelled" in out
    wait_until(lambda: qmp(dom, "query-block-jobs") == [], 10, "QEMU's job cancelled")
    done = one(list_json(daemon, history, "--all"), name, "copy-sda")
    assert done["state"] == "aborted" and done["stale"] is False


def test_a_limbo_job_that_ended_while_no_jobtui_ran(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp_path: Path
) -> None:
    dom, qid = orphan_under_watch(daemon, history, domains, watches, tmp_path)
    name = dom.name()
    # Another client ends it through QEMU while no jobtui runs.
    qmp(dom, "block-job-cancel", device=qid, force=True)
    wait_until(lambda: qmp(dom, "query-block-jobs") == [], 10, "cancelled in QEMU")
    # Without the opt-in nothing can tell: still the last known, stale, and said so.
    kept = one(list_json(daemon, history), name, "copy-sda")
    assert kept["state"] == "orphaned" and kept["stale"] is True
    # QEMU's job list tells it is over; how it ended, nobody kept.
    gone = one(list_json(daemon, history, "--all", CONFIRM), name, "copy-sda")
    assert gone["state"] == "unknown" and "no longer runs it" in gone["message"]
    # Recorded: the next process without the opt-in agrees.
    assert one(list_json(daemon, history, "--all"), name, "copy-sda")["state"] == "unknown"


def test_a_fresh_process_hears_the_limbo_job_end_from_qemus_events(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp_path: Path
) -> None:
    dom, qid = orphan_under_watch(daemon, history, domains, watches, tmp_path)
    # A new watch, no opt-in: it knows the job only from the history.
    watch = Watch(cli_argv(daemon, history, "watch"))
    watches.append(watch)
    time.sleep(2.0)  # connected, listed, QEMU's events registered
    qmp(dom, "block-job-cancel", device=qid, force=True)  # another client ends it
    line = watch.wait_for(lambda x: f"{dom.name()} copy-sda" in x and "orphaned -> " in x, 20)
    # QEMU's BLOCK_JOB_CANCELLED, ahead of the job's end, says how it ended.
    assert "orphaned -> aborted (cancelled in QEMU)" in line


def test_a_copy_on_a_disk_plugged_in_under_a_read_only_watch_is_seen(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp_path: Path
) -> None:
    """A read-only connection gets no QEMU events: only libvirt's DEVICE_ADDED tells the
    watch that a disk it never read is there to be polled."""
    dom = scsi_domain(domains)
    watch = Watch(cli_argv(daemon, history, "-r", "watch"))
    watches.append(watch)
    time.sleep(2.0)  # connected, listed, the domain's XML read (one disk, sda)
    plug_disk(dom, "sdb", tmp_path / "plugged.qcow2")
    start_copy(dom, "sdb", tmp_path / "plugged-copy.qcow2", bandwidth=1 * MiB)
    watch.wait_for(lambda x: f"{dom.name()} copy-sdb: new -> running" in x, 20)
    dom.blockJobAbort("sdb", 0)
    watch.wait_for(lambda x: f"{dom.name()} copy-sdb: running -> aborted" in x, 20)


def test_a_new_copy_on_a_disk_plugged_in_again_is_not_the_orphan(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp_path: Path
) -> None:
    """The orphan's disk target is plugged in again (another image) and a new copy started
    on it, while a fresh watch looks on: two jobs, each with its own figures and end."""
    dom, qid = orphan_under_watch(daemon, history, domains, watches, tmp_path)
    name = dom.name()
    watch = Watch(cli_argv(daemon, history, "watch"))
    watches.append(watch)
    time.sleep(2.0)  # connected, listed, the kept orphan adopted
    fresh = plug_disk(dom, "sda", tmp_path / "replug.qcow2")
    start_copy(dom, "sda", tmp_path / "replug-copy.qcow2", bandwidth=1 * MiB)
    watch.wait_for(lambda x: f"{name} copy-sda: new -> running" in x, 20)
    watch.wait_for(lambda x: f"{name} qemu-{qid}: new -> orphaned" in x, 20)
    jobs = list_json(daemon, history, CONFIRM)
    new, old = one(jobs, name, "copy-sda"), one(jobs, name, f"qemu-{qid}")
    assert new["state"] == "running" and new["config"]["source"] == str(fresh)
    assert old["state"] == "orphaned" and old["qemu_id"] == qid
    qmp(dom, "block-job-cancel", device=qid, force=True)  # the old one, by another client
    line = watch.wait_for(lambda x: f"{name} qemu-{qid}: orphaned -> " in x, 20)
    assert "orphaned -> aborted" in line
    assert dom.blockJobInfo("sda", 0)["cur"] > 0  # libvirt's copy runs on
    assert one(list_json(daemon, history), name, "copy-sda")["state"] == "running"
    assert [j["name"] for j in list_json(daemon, history) if j["domain"] == name] == ["copy-sda"]


def test_a_limbo_job_whose_qemu_was_restarted(
    daemon: PrivateDaemon, history: Path, domains: Domains, watches: list[Watch], tmp_path: Path
) -> None:
    dom, _qid = orphan_under_watch(daemon, history, domains, watches, tmp_path)
    dom.destroy()
    dom.create()  # a new QEMU process (another domain id): the old job went with the old one
    ended = one(list_json(daemon, history, "--all"), dom.name(), "copy-sda")
    assert ended["state"] == "unknown"
    assert "QEMU process that ran it has ended" in ended["message"]


def test_a_qemu_job_libvirt_lists_nowhere_is_shown_for_what_its_id_tells(
    daemon: PrivateDaemon, history: Path, domains: Domains
) -> None:
    """A job started through QMP by someone else: libvirt lists it nowhere; QEMU's job
    list (with the opt-in) does, and jobtui names it by its id, its kind as QEMU says."""
    dom = domains.new("qmp", {"vda": domains.chain("qmp", 3)})
    (top,) = [b["inserted"]["node-name"] for b in qmp(dom, "query-block") if "inserted" in b]
    qmp(dom, "block-stream", **{"job-id": "ops-stream", "device": top, "speed": 1 * MiB})
    try:
        assert dom.blockJobInfo("vda", 0) == {}  # libvirt does not know it
        assert not [j for j in list_json(daemon, history) if j["domain"] == dom.name()]
        seen = one(list_json(daemon, history, CONFIRM), dom.name(), "qemu-ops-stream")
        assert seen["type"] == "unknown" and seen["config"]["qemu-type"] == "stream"
        assert seen["qemu_id"] == "ops-stream" and seen["state"] == "running"
        assert seen["message"].startswith("only QEMU knows this job (its stream job 'ops-stream')")
        (q,) = qmp(dom, "query-block-jobs")
        assert 0 < seen["end"] == q["len"] and seen["current"] <= q["offset"]
    finally:
        qmp(dom, "block-job-cancel", device="ops-stream", force=True)


# --- old figures ---------------------------------------------------------------------------


def sampled_gaps(m: JobMonitor, domain: str, name: str, seconds: float) -> list[float]:
    """The times between one fresh reading of a job's figures and the next."""
    seen: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        job = m.find(domain, name)
        if job is not None and job.sampled is not None and job.sampled not in seen:
            seen.append(job.sampled)
        time.sleep(0.05)
    return [b - a for a, b in zip(seen, seen[1:], strict=False)] or [seconds]


def qemu_pid(daemon: PrivateDaemon, name: str) -> int:
    return int(next(daemon.root.rglob(f"{name}.pid")).read_text().strip())


@pytest.fixture
def stopped() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def rate_over(dom: libvirt.virDomain, seconds: float) -> float:
    """vda's block job rate from two blockJobInfo readings `seconds` apart: what two
    `virsh blockjob --info` calls say."""
    t0, c0 = time.time(), dom.blockJobInfo("vda", 0)["cur"]
    time.sleep(seconds)
    t1, c1 = time.time(), dom.blockJobInfo("vda", 0)["cur"]
    return (c1 - c0) / (t1 - t0)


def test_the_selected_job_polled_four_times_a_second_has_its_rate(
    daemon: PrivateDaemon, domains: Domains, tmp_path: Path
) -> None:
    # The TUI focuses the job a person selects, which is then polled every 0.25 s. A copy
    # throttled at 32 MiB/s moves 16 MiB every ~0.5 s, so every poll that sees it move is
    # close to the one before: that alone once made every step "a burst", and the job
    # being looked at showed no rate and no ETA at all.
    big = create_image(tmp_path / "fast.qcow2", 512, data_mib=512)
    dom = domains.new("fast", {"vda": big})
    start_copy(dom, "vda", tmp_path / "fast-copy.qcow2", bandwidth=32 * MiB)
    m = JobMonitor([daemon.uri])
    m.start()
    try:
        assert m.wait_ready(20)
        job = wait_job(m, lambda j: j.domain == dom.name() and j.name == "copy-vda", 15)
        m.focus(job.key)
        time.sleep(2)
        virsh_rate = rate_over(dom, 6)
        live = m.find(dom.name(), "copy-vda")
        assert live is not None and live.state.value == "running", live
        assert live.rate is not None, live
        assert 0.6 * virsh_rate <= live.rate <= 1.6 * virsh_rate, (live.rate, virsh_rate)
    finally:
        m.stop()
        with contextlib.suppress(libvirt.libvirtError):
            dom.blockJobAbort("vda", 0)


def test_a_stopped_qemu_makes_figures_stale_and_list_still_answers(
    daemon: PrivateDaemon,
    history: Path,
    domains: Domains,
    tmp_path: Path,
    stopped: list[int],
) -> None:
    # Fully allocated (unallocated clusters are skipped in a burst), throttled: QEMU then
    # moves 16 MiB every 4 s, a step pattern the rate must see through.
    big = create_image(tmp_path / "stuck.qcow2", 256, data_mib=256)
    stuck = domains.new("stuck", {"vda": big})
    other = domains.new("other", {"vda": domains.image("other", 96)})
    limit = 4 * MiB
    start_copy(stuck, "vda", tmp_path / "stuck-copy.qcow2", bandwidth=limit)
    start_copy(other, "vda", tmp_path / "other-copy.qcow2", bandwidth=limit)
    m = JobMonitor([daemon.uri], active_interval=0.5, idle_interval=1.0, stuck_after=2.0)
    m.start()
    try:
        assert m.wait_ready(20)
        # After the start's burst, the rate over 20 s agrees with the limit, and with what
        # two blockJobInfo readings (what `virsh blockjob --info` shows) say over that time.
        time.sleep(4)
        virsh_rate = rate_over(stuck, 20)
        live = m.find(stuck.name(), "copy-vda")
        assert live is not None and live.stale is False and live.rate is not None
        assert 0.6 * limit <= live.rate <= 1.4 * limit, (live.rate, virsh_rate)
        assert 0.6 * virsh_rate <= live.rate <= 1.6 * virsh_rate, (live.rate, virsh_rate)

        pid = qemu_pid(daemon, stuck.name())
        os.kill(pid, signal.SIGSTOP)
        stopped.append(pid)
        stale = wait_job(
            m, lambda j: j.domain == stuck.name() and j.name == "copy-vda" and j.stale, 15
        )
        assert stale.rate is None and stale.sampled is not None
        assert not next(d for d in m.domains() if d.name == stuck.name()).responsive
        # The other domain's copy keeps its live figures, read at the active pace (0.5 s):
        # the hung call must not hold the connection's other calls until a keepalive.
        fresh = m.find(other.name(), "copy-vda")
        assert fresh is not None and not fresh.stale
        gaps = sampled_gaps(m, other.name(), "copy-vda", 6.0)
        assert max(gaps) < 1.5, gaps

        # A fresh `list` answers with every job it knows, the stuck one marked and named;
        # never the healthy one (its first full look came within the settle time).
        for _ in range(3):
            proc = run_cli(daemon, history, "list", "--json", timeout=60)
            assert proc.returncode == 0, proc.stderr
            listed = json.loads(proc.stdout)
            stuck_job = one(listed, stuck.name(), "copy-vda")
            assert stuck_job["stale"] is True and stuck_job["rate"] is None
            assert one(listed, other.name(), "copy-vda")["stale"] is False, (proc.stderr, listed)
            assert stuck.name() in proc.stderr and "not answering" in proc.stderr
            assert other.name() not in proc.stderr
            assert len(proc.stderr.splitlines()) == 1

        # So does `xml` about the stuck domain: what is known, marked stale, said once.
        proc = run_cli(daemon, history, "xml", stuck.name(), "copy-vda", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert "<stale/>" in proc.stdout and 'state="running"' in proc.stdout, proc.stdout
        assert proc.stderr.count("\n") == 1 and "not answering" in proc.stderr, proc.stderr
        assert stuck.name() in proc.stderr

        # Control of the other domain is not held up by the stuck one.
        out = ok(run_cli(daemon, history, "set-speed", other.name(), "copy-vda", "4M"))
        assert "4.0 MiB/s" in out or "4,000,000" in out or "3.8 MiB/s" in out

        # It stays marked while QEMU stays stopped (no flicker when libvirt's lock wait ends).
        still = m.find(stuck.name(), "copy-vda")
        assert still.stale
        os.kill(pid, signal.SIGCONT)
        stopped.remove(pid)
        back = wait_job(
            m, lambda j: j.domain == stuck.name() and j.name == "copy-vda" and not j.stale, 60
        )
        assert back.rate is None  # figures across the stop say nothing: no rate yet
        again = wait_until(
            lambda: (j := m.find(stuck.name(), "copy-vda")) and j.rate and j, 60, "a new rate"
        )
        assert again.rate <= 1.5 * limit, again.rate  # never the burst "31 MiB/s"
    finally:
        m.stop()


# --- a migration's destination -------------------------------------------------------------


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[TwoHosts]:
    h = TwoHosts().start()
    try:
        yield h
    finally:
        h.close()


def test_list_answers_during_a_storage_migration_on_both_hosts(
    two_hosts: TwoHosts, tmp_path: Path
) -> None:
    """On the destination blockJobInfo waits for the whole incoming migration
    (docs/call-waits.md): a listing must not ask it, and must not wait."""
    name = f"mv-{uuid.uuid4().hex[:4]}"
    dom = two_hosts.filled_guest(name, 64, disk_mib=256, disk_data_mib=256)
    history = tmp_path / "h.sqlite3"
    argv = [sys.executable, "-m", "jobtui", "-c", two_hosts.uri_a, "-c", two_hosts.uri_b,
            "--history", str(history), "list", "--json"]  # fmt: skip
    try:
        mig = two_hosts.start_migration(dom, bandwidth_mib=8, storage=True)
        wait_until(lambda: two_hosts.domain_b(name) is not None, 20, "the destination domain")
        time.sleep(2)  # well into the disk copy (32 s at 8 MiB/s)
        proc = subprocess.run(argv, capture_output=True, text=True, env=cli_env(), timeout=60)
        still_running = not mig.done.is_set()
        assert proc.returncode == 0, proc.stderr
        assert still_running, "the listing waited for the migration to end"
        jobs = json.loads(proc.stdout)
        out = one(jobs, name, "migration-out")
        inc = one(jobs, name, "migration-in")
        assert (out["host"], inc["host"]) == (two_hosts.uri_a, two_hosts.uri_b)
        assert out["state"] == inc["state"] == "running"
        assert out["stats"].get("vda.end") == 256 * MiB  # the copy folded in
        assert not [j for j in jobs if j["domain"] == name and j["type"].startswith("block")]
        assert "not answering" not in proc.stderr
        mig.wait(90)
        assert mig.error is None
    finally:
        two_hosts.remove(name)
