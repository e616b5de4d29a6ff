"""`jobtui exporter` as a separate process, scraped over loopback during real jobs.

The jobs run in QEMU behind a private libvirtd; what a scrape says is checked against what
libvirt itself reports (blockJobInfo cur/end, the job gone after an abort).
"""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import libvirt
import pytest
from labtools import wait_until
from prometheus_client.parser import text_string_to_metric_families
from systemtools import Domains, connection, made_domains, private_daemon
from test_cli_system import cli_env, run_cli, start_copy

from jobtui.exporter import RECORD_GRACE, exported_jobs, parse_listen
from jobtui.inventory import short_name
from jobtui.lab import MiB
from jobtui.lab.daemon import PrivateDaemon
from jobtui.model import Job, JobKey, JobState, JobType

BYTES = libvirt.VIR_DOMAIN_BLOCK_JOB_INFO_BANDWIDTH_BYTES
ROOT = Path(__file__).resolve().parent.parent

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


# --- the exporter process -------------------------------------------------------------------


class Exporter:
    """`jobtui exporter --listen 127.0.0.1:0`; the port it got is read from its first line."""

    def __init__(self, *args: str) -> None:
        argv = [sys.executable, "-m", "jobtui", *args, "exporter", "--listen", "127.0.0.1:0"]
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        assert self.proc.stdout is not None
        out = self.proc.stdout
        threading.Thread(target=lambda: [lines.put(x) for x in out], daemon=True).start()
        try:
            first = lines.get(timeout=30)
        except queue.Empty:
            self.kill()
            raise AssertionError("the exporter said nothing within 30 s") from None
        assert first.startswith("jobtui: serving http://127.0.0.1:"), first
        self.url = first.split()[-1]
        assert self.url.endswith("/metrics")

    def get(self) -> str:
        with urllib.request.urlopen(self.url, timeout=10) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            return r.read().decode()

    def scrape(self) -> Series:
        found: Series = {}
        for family in text_string_to_metric_families(self.get()):
            for s in family.samples:
                key = (s.name, frozenset(s.labels.items()))
                assert key not in found, f"duplicate series {key}"
                found[key] = s.value
        return found

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        rc = self.proc.wait(20)
        assert self.proc.stderr is not None
        return rc, self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def job_series(series: Series, name: str, domain: str, job: str) -> dict[frozenset, float]:
    """The samples of metric `name` for one job, by label set."""
    return {
        labels: v
        for (n, labels), v in series.items()
        if n == name and ("domain", domain) in labels and ("job", job) in labels
    }


def one(series: Series, name: str, domain: str, job: str) -> tuple[dict[str, str], float]:
    found = job_series(series, name, domain, job)
    assert len(found) == 1, f"{name} for {domain}/{job}: {found}"
    labels, value = next(iter(found.items()))
    return dict(labels), value


def state_of(series: Series, domain: str, job: str) -> str | None:
    found = job_series(series, "jobtui_job_state", domain, job)
    if not found:
        return None
    assert len(found) == 1, f"more than one state for {domain}/{job}: {found}"
    labels, value = next(iter(found.items()))
    assert value == 1.0
    return dict(labels)["state"]


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateDaemon]:
    yield from private_daemon(tmp_path_factory.mktemp("x"), "ex1")


@pytest.fixture(scope="module")
def conn(daemon: PrivateDaemon) -> Iterator[libvirt.virConnect]:
    yield from connection(daemon.uri)


@pytest.fixture
def domains(conn: libvirt.virConnect, tmp_path: Path) -> Iterator[Domains]:
    yield from made_domains(conn, tmp_path)


@pytest.fixture
def exporters() -> Iterator[list[Exporter]]:
    started: list[Exporter] = []
    yield started
    for e in started:
        e.kill()


# --- on a private libvirtd, with real jobs --------------------------------------------------


@pytest.mark.system
def test_a_scrape_follows_real_jobs(
    daemon: PrivateDaemon, domains: Domains, tmp_path: Path, exporters: list[Exporter]
) -> None:
    history = tmp_path / "history.sqlite3"
    exp = Exporter("-c", daemon.uri, "--history", str(history))
    exporters.append(exp)
    host = {"host": daemon.uri, "host_name": short_name(daemon.uri)}
    assert host["host_name"] == "system@ex1"

    dom = domains.new("ex", {"vda": domains.image("ex-a", 64), "vdb": domains.image("ex-b", 64)})
    name = dom.name()
    # vda: a throttled copy, watched running, then set free to reach READY.
    start_copy(dom, "vda", tmp_path / "ex-copy.qcow2", 1 * MiB)
    # vdb: a copy aborted at once, whose final state the exporter keeps.
    start_copy(dom, "vdb", tmp_path / "ex-abort.qcow2", 1 * MiB)
    wait_until(lambda: state_of(exp.scrape(), name, "copy-vdb") == "running", 30, "copy-vdb")
    dom.blockJobAbort("vdb", 0)
    wait_until(lambda: not dom.blockJobInfo("vdb", 0), 10, "copy-vdb gone from blockJobInfo")
    wait_until(lambda: state_of(exp.scrape(), name, "copy-vdb") == "aborted", 30, "aborted")

    # The host and the domain, as the engine sees them.
    s = exp.scrape()
    assert s[("jobtui_host_up", frozenset(host.items()))] == 1.0
    dom_labels = frozenset({**host, "domain": name}.items())
    assert s[("jobtui_domain_responsive", dom_labels)] == 1.0

    # The running copy: its figures are libvirt's, as of when the engine sampled them.
    def sampled_running() -> Series | None:
        got = exp.scrape()
        if state_of(got, name, "copy-vda") != "running":
            return None
        return got if job_series(got, "jobtui_job_current_bytes", name, "copy-vda") else None

    s = wait_until(sampled_running, 30, "copy-vda running with figures")
    now = time.time()
    info = dom.blockJobInfo("vda", BYTES)
    labels, cur = one(s, "jobtui_job_current_bytes", name, "copy-vda")
    assert labels == {**host, "domain": name, "job": "copy-vda", "type": "block-copy"}
    _, end = one(s, "jobtui_job_end_bytes", name, "copy-vda")
    _, sampled = one(s, "jobtui_job_sampled_timestamp_seconds", name, "copy-vda")
    _, started = one(s, "jobtui_job_started_timestamp_seconds", name, "copy-vda")
    assert started <= sampled <= now
    assert end == info["end"]
    # Throttled to 1 MiB/s: since the sample libvirt can have gone at most that far (plus
    # one burst QEMU's rate limiter allows).
    assert info["cur"] - (now - sampled + 1) * MiB - 1 * MiB <= cur <= info["cur"]
    assert one(s, "jobtui_job_bandwidth_bytes_per_second", name, "copy-vda")[1] == 1 * MiB
    assert one(s, "jobtui_job_stalled", name, "copy-vda")[1] == 0.0
    assert one(s, "jobtui_job_stale", name, "copy-vda")[1] == 0.0
    assert not job_series(s, "jobtui_job_finished_timestamp_seconds", name, "copy-vda")
    rate = job_series(s, "jobtui_job_rate_bytes_per_second", name, "copy-vda")
    assert all(0 < v <= 2 * MiB for v in rate.values()), rate

    # Nothing to control: any other method is refused and changes nothing.
    for method, path in [("POST", "/metrics"), ("PUT", "/metrics"), ("DELETE", "/metrics"),
                         ("POST", "/abort"), ("PATCH", "/")]:  # fmt: skip
        req = urllib.request.Request(exp.url.replace("/metrics", path), b"", method=method)
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 405, (method, path)
        assert err.value.headers["Allow"] == "GET, HEAD"
    assert dom.blockJobInfo("vda", BYTES)["bandwidth"] == 1 * MiB

    # Set free, it reaches READY: the one series of the job moves to state="ready".
    dom.blockJobSetSpeed("vda", 0, 0)
    s = wait_until(
        lambda: (got := exp.scrape()) and state_of(got, name, "copy-vda") == "ready" and got,
        60,
        "copy-vda ready",
    )
    info = dom.blockJobInfo("vda", BYTES)
    assert info["cur"] == info["end"]
    assert one(s, "jobtui_job_current_bytes", name, "copy-vda")[1] == info["cur"]
    assert one(s, "jobtui_job_end_bytes", name, "copy-vda")[1] == info["end"]
    assert one(s, "jobtui_job_state", name, "copy-vda")[0]["state"] == "ready"
    # The exposition passes Prometheus' own linter (names, units, types).
    lint = subprocess.run(
        ["promtool", "check", "metrics"], input=exp.get(), capture_output=True, text=True
    )
    assert lint.returncode == 0 and not lint.stdout + lint.stderr, lint.stdout + lint.stderr

    # The aborted copy keeps its final state past the grace, as long as the history has it.
    _, finished = one(s, "jobtui_job_finished_timestamp_seconds", name, "copy-vdb")
    time.sleep(max(0.0, finished + RECORD_GRACE + 1 - time.time()))
    s = exp.scrape()
    labels, _ = one(s, "jobtui_job_state", name, "copy-vdb")
    assert labels == {**host, "domain": name, "job": "copy-vdb", "type": "block-copy",
                      "state": "aborted"}  # fmt: skip
    assert one(s, "jobtui_job_stalled", name, "copy-vdb")[1] == 0.0
    assert state_of(s, name, "copy-vda") == "ready"

    # Dismissed by another process: gone from the next scrape (that clears an alert).
    out = run_cli(daemon, history, "dismiss", name, "copy-vdb", "--yes")
    assert out.returncode == 0 and "dismissed" in out.stdout, out.stderr
    wait_until(lambda: state_of(exp.scrape(), name, "copy-vdb") is None, 10, "dismissed")
    assert state_of(exp.scrape(), name, "copy-vda") == "ready"

    dom.blockJobAbort("vda", 0)
    rc, err = exp.stop(signal.SIGTERM)
    assert rc == 0 and err == "", err


@pytest.mark.system
def test_read_only_sigint_and_a_down_host(
    daemon: PrivateDaemon, domains: Domains, tmp_path: Path, exporters: list[Exporter]
) -> None:
    """-r: read-only connections; jobs are found by polling (no QEMU events)."""
    gone = f"qemu+unix:///system?socket={tmp_path / 'nohost' / 'libvirt-sock'}"
    history = str(tmp_path / "h.sqlite3")
    exp = Exporter("-r", "-c", daemon.uri, "-c", gone, "--history", history)
    exporters.append(exp)
    dom = domains.new("ro", {"vda": domains.image("ro-a", 32)})
    start_copy(dom, "vda", tmp_path / "ro-copy.qcow2", 1 * MiB)

    def seen() -> Series | None:
        s = exp.scrape()
        ups = {dict(labels)["host"]: v for (n, labels), v in s.items() if n == "jobtui_host_up"}
        if ups.get(daemon.uri) != 1.0 or gone not in ups:
            return None
        return s if state_of(s, dom.name(), "copy-vda") == "running" else None

    s = wait_until(seen, 30, "both hosts and the copy in a scrape")
    down = frozenset({"host": gone, "host_name": "system@nohost"}.items())
    assert s[("jobtui_host_up", down)] == 0
    _, end = one(s, "jobtui_job_end_bytes", dom.name(), "copy-vda")
    assert end == dom.blockJobInfo("vda", BYTES)["end"]
    with urllib.request.urlopen(urllib.request.Request(exp.url, method="HEAD"), timeout=10) as r:
        assert r.status == 200 and r.read() == b""
    rc, err = exp.stop(signal.SIGINT)
    assert rc == 0 and err == "", err
    dom.blockJobAbort("vda", 0)


# --- without libvirt: the command line and the HTTP side ------------------------------------


def run_exporter(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobtui", "-c", "test:///default", "exporter", *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**cli_env(), "JOBTUI_HISTORY": os.devnull},
        timeout=60,
    )


@pytest.mark.parametrize(
    ("listen", "says"),
    [
        ("9870", "expected ADDR:PORT"),
        (":9870", "expected ADDR:PORT"),
        ("127.0.0.1:99999", "not a port number"),
        ("127.0.0.1:http", "not a port number"),
        ("::1:9870", "in brackets"),
        ("[nope]:9870", "not an IPv6 address"),
        ("no-such-host.invalid:9870", "cannot resolve"),
    ],
)
def test_a_bad_listen_is_one_line_exit_2(listen: str, says: str) -> None:
    proc = run_exporter("--listen", listen)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("jobtui: ") and says in lines[0], lines
    assert proc.stdout == ""


def test_an_address_in_use_is_one_line_exit_3() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_exporter("--listen", f"127.0.0.1:{port}")
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr == f"jobtui: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    # And one not on this machine: bound to exactly what it is given, never elsewhere.
    proc = run_exporter("--listen", "192.0.2.1:9870")
    assert proc.returncode == 3 and "Cannot assign requested address" in proc.stderr


def test_the_exporter_offers_no_qemu_monitor() -> None:
    proc = run_exporter("--listen", "127.0.0.1:0", "--allow-qemu-monitor")
    assert proc.returncode == 2 and "never controls" in proc.stderr, proc.stderr


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:9870") == ("127.0.0.1", 9870)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("localhost:9870") == ("localhost", 9870)


def _job(name: str, state: JobState, started: float, finished: float | None) -> Job:
    key = JobKey("qemu:///system", "u-1", name, started)
    return Job(key, "web1", JobType.BLOCK_COPY, state, finished=finished)


def test_one_series_per_job_name_and_only_kept_finished_jobs() -> None:
    now = 1000.0
    old_failed = _job("copy-vda", JobState.FAILED, 100.0, 200.0)
    rerun = _job("copy-vda", JobState.RUNNING, 300.0, None)
    failed = _job("copy-vdb", JobState.FAILED, 100.0, 200.0)
    dismissed = _job("copy-vdc", JobState.ABORTED, 100.0, 200.0)
    just_now = _job("copy-vdd", JobState.COMPLETED, 100.0, now - 1)
    # Another process recorded the same run under its own first sighting.
    elsewhere = _job("copy-vdb", JobState.FAILED, 101.5, 201.0)
    got = exported_jobs(
        [old_failed, rerun, failed, dismissed, just_now], [old_failed, elsewhere], now
    )
    assert got == [rerun, failed, just_now]
    # Without a history every finished job counts; still one series per name.
    assert exported_jobs([old_failed, rerun, dismissed], None, now) == [rerun, dismissed]


# --- the example alert rules ----------------------------------------------------------------


def test_the_alert_rules_pass_promtool() -> None:
    # promtool ships in Debian's `prometheus` package, which scripts/bootstrap.sh installs.
    proc = subprocess.run(
        ["promtool", "check", "rules", str(ROOT / "docs" / "alerts.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout + proc.stderr
    proc = subprocess.run(
        ["promtool", "test", "rules", str(ROOT / "docs" / "alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
