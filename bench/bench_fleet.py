"""A fleet over SSH: N private libvirtd hosts behind one lab sshd (jobtui/lab/fleet.py),
opened by one jobtui, with real QEMU; prints one table.

- engine (in this process, a `JobMonitor` over every host's qemu+ssh URI): time until
  every host is listed and every domain sampled (`wait_ready`), threads
  (`call_threads()`, `threading.active_count()`, /proc), RSS, libvirt calls/s per host
  (the engine's call counters over the idle window), CPU from /proc/self/stat over the
  idle window (no job starts or ends in it; the fleet's throttled copies only move).
- the real CLI and TUI: `jobtui` in tmux (first frame: launch to the first domain name
  on screen), `jobtui watch` (RSS, threads, CPU over the same window), `jobtui list`.
- event -> screen: a throttled copy on h00 started and aborted through a separate
  libvirt connection; the abort timed from `virsh event --loop` (local socket) to the
  `jobtui watch` line and to the TUI screen, over SSH (the whole fleet) and next to it
  over h00's local socket (one host).
- a hung host: SIGSTOP of h01's libvirtd, then of the sshd session processes serving
  h03: time until `jobtui watch` (the whole fleet over ssh) says it is lost, with the
  reason, the latency of aborts on another host (h02) during the hang, and the time to
  "reconnected" after SIGCONT. This process closes its own engine first.

    .venv/bin/python bench/bench_fleet.py --hosts 20 --domains 10 --running 10 --jobs 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

# Last, so a tree under test on PYTHONPATH (an A/B run) is the one imported.
sys.path.append(str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchstats import NEUTRAL_CWD, pct  # noqa: E402

from jobtui.engine.monitor import JobMonitor  # noqa: E402
from jobtui.lab.daemon import _cmdline  # noqa: E402
from jobtui.lab.fleet import Fleet, FleetHost, signals_end_the_run  # noqa: E402
from jobtui.model import HostState  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PY = str(ROOT / ".venv" / "bin" / "python")
TMUX = ["tmux", "-L", f"jobtui-fleet-{os.getpid()}"]
TICK = os.sysconf("SC_CLK_TCK")
RESULTS: list[tuple[str, str]] = []


def note(name: str, text: str) -> None:
    RESULTS.append((name, text))
    print(f"  {name:52} {text}", flush=True)


def ms_stats(name: str, ms: list[float]) -> None:
    if not ms:
        note(name, "no samples")
        return
    note(
        name,
        f"median {statistics.median(ms):7.1f}  p90 {pct(ms, 0.9):7.1f}  "
        f"max {max(ms):7.1f} ms  (n={len(ms)})",
    )


def env(hosts_file: Path | None = None) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG")}
    e.update(PYTHONUNBUFFERED="1", TERM="xterm-256color", COLORTERM="truecolor")
    if hosts_file is not None:
        e["JOBTUI_HOSTS"] = str(hosts_file)
    return e


# --- /proc ---------------------------------------------------------------------------------


def cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status(pid: int | str = "self") -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        out[k] = v.strip()
    return out


def rss_mib(pid: int | str = "self") -> float:
    return int(status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int | str = "self") -> int:
    return int(status(pid)["Threads"])


# --- terminals and line streams ------------------------------------------------------------


class Pane:
    """A command in a tmux pane; its screen read with capture-pane."""

    def __init__(self, name: str, argv: list[str], environ: dict[str, str]) -> None:
        self.name = name
        cmd = " ".join("'" + a.replace("'", "'\\''") + "'" for a in argv)
        self.started = time.time()
        subprocess.run(
            [*TMUX, "new-session", "-d", "-s", name, "-c", NEUTRAL_CWD, "-x", "160", "-y", "50"]
            + [f"exec {cmd}"],
            check=True,
            env=environ,
        )
        out = subprocess.run(
            [*TMUX, "display", "-p", "-t", name, "#{pane_pid}"], capture_output=True, text=True
        )
        self.pid = int(out.stdout.strip())

    def screen(self) -> str:
        return subprocess.run(
            [*TMUX, "capture-pane", "-p", "-t", self.name], capture_output=True, text=True
        ).stdout

    def wait(self, pred: Callable[[str], bool], timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            t0 = time.time()
            text = self.screen()
            if pred(text):
                return (t0 + time.time()) / 2
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: never on screen; last screen:\n{text}")
            time.sleep(0.005)

    def close(self) -> None:
        subprocess.run([*TMUX, "kill-session", "-t", self.name], capture_output=True)


class Lines:
    """A command's stdout and stderr lines, each stamped with time.time() when read."""

    def __init__(self, argv: list[str], environ: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=environ,
            cwd=NEUTRAL_CWD,
        )
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            t = time.time()
            with self._lock:
                self.lines.append((t, line))

    def first(self, pred: Callable[[str], bool], since: float, timeout: float = 60.0) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for t, line in self.lines:
                    if t >= since and pred(line):
                        return t
            time.sleep(0.002)
        raise TimeoutError(f"no line matched in {self.proc.args[:4]}")

    def close(self) -> None:
        self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)


def row_has(*words: str) -> Callable[[str], bool]:
    def pred(text: str) -> bool:
        return any(all(w in line for w in words) for line in text.splitlines())

    return pred


def jobtui(history: Path, *args: str, uri: str | None = None) -> list[str]:
    return [PY, "-m", "jobtui", *(["-c", uri] if uri else []), "--history", str(history), *args]


def virsh_events(uri: str) -> Lines:
    argv = ["stdbuf", "-oL", "virsh", "-c", uri, "event", "--loop", "--all", "--timestamp"]
    return Lines(argv, env())


# --- phases --------------------------------------------------------------------------------


def free_domains(fleet: Fleet, h: FleetHost) -> list[str]:
    """Running domains of `h` that carry none of the fleet's jobs."""
    busy = {d for hh, d in fleet.copies if hh is h}
    return [d for d in h.running if d not in busy]


def engine_ready(fleet: Fleet) -> JobMonitor:
    total = len(fleet.hosts) * fleet.domains_per_host
    mon = JobMonitor(fleet.uris)
    t0 = time.monotonic()
    mon.start()
    listed = None
    while time.monotonic() - t0 < 300:
        if listed is None and len(mon.domains()) >= total:
            listed = time.monotonic() - t0
        if mon.wait_ready(timeout=0.05):
            if listed is None and len(mon.domains()) >= total:
                listed = time.monotonic() - t0
            break
    ready = time.monotonic() - t0
    up = sum(h.state is HostState.CONNECTED for h in mon.hosts())
    note("engine: every domain known (listed)", f"{listed or float('nan'):.2f} s")
    note("engine: every domain sampled (wait_ready)", f"{ready:.2f} s, {up} hosts up")
    note("engine: domains / jobs seen", f"{len(mon.domains())} / {len(mon.jobs())}")
    return mon


def first_frames(fleet: Fleet, tmp: Path, launches: int) -> None:
    frame, dom = [], []
    for i in range(launches):
        pane = Pane(f"first{i}", jobtui(tmp / f"h-first{i}.sqlite3"), env(fleet.hosts_file))
        out = tmp / "first.collapsed"
        prof = start_profile(pane.pid, 15, out) if PROFILE and i == launches - 1 else None
        try:
            frame.append((pane.wait(lambda s: "jobtui" in s) - pane.started) * 1000)
            dom.append((pane.wait(lambda s: "-d0" in s) - pane.started) * 1000)
            if prof is not None:
                prof.wait(60)
                summarize_profile(out, 15, "TUI start, 15 s")
        finally:
            pane.close()
        time.sleep(2.0)
    ms_stats("TUI: launch -> its first frame", frame)
    ms_stats("TUI: launch -> first domain name on screen", dom)
    t0 = time.monotonic()
    proc = subprocess.run(
        jobtui(tmp / "h-list.sqlite3", "list", "--json"),
        capture_output=True,
        text=True,
        env=env(fleet.hosts_file),
    )
    note(
        "CLI: jobtui list --json, whole run",
        f"{time.monotonic() - t0:.2f} s (exit {proc.returncode}, {len(proc.stdout)} bytes)",
    )


def idle_window(fleet: Fleet, mon: JobMonitor, tmp: Path, seconds: float) -> None:
    watch = Lines(jobtui(tmp / "h-idle-w.sqlite3", "watch"), env(fleet.hosts_file))
    tui = Pane("idle", jobtui(tmp / "h-idle.sqlite3"), env(fleet.hosts_file))
    try:
        tui.wait(lambda s: "-d0" in s)
        time.sleep(10.0)  # every domain's first look, the first frames
        prof = start_profile(watch.proc.pid, seconds, tmp / "watch.collapsed") if PROFILE else None
        counts0 = per_host_calls(mon)
        c0, w0, u0, t0 = (
            cpu_seconds(),
            cpu_seconds(watch.proc.pid),
            cpu_seconds(tui.pid),
            time.time(),
        )
        peak = mon.call_threads()[0]
        while time.time() - t0 < seconds:
            time.sleep(0.5)
            peak = max(peak, mon.call_threads()[0])
        c1, w1, u1, t1 = (
            cpu_seconds(),
            cpu_seconds(watch.proc.pid),
            cpu_seconds(tui.pid),
            time.time(),
        )
        counts1 = per_host_calls(mon)
        span = t1 - t0
        rates = sorted((counts1.get(h, 0) - counts0.get(h, 0)) / span for h in counts1)
        note(
            "engine: libvirt calls/s per host (min / median / max)",
            f"{rates[0]:.1f} / {statistics.median(rates):.1f} / {rates[-1]:.1f}"
            f"  (all hosts {sum(rates):.0f}/s)",
        )
        note("engine (this process): idle CPU", f"{(c1 - c0) / span * 100:.2f} % of a core")
        note("jobtui watch: idle CPU", f"{(w1 - w0) / span * 100:.2f} % of a core")
        note("jobtui TUI: idle CPU", f"{(u1 - u0) / span * 100:.2f} % of a core")
        alive, most = mon.call_threads()
        note(
            "engine: call threads now / peak in window / most ever",
            f"{alive} / {peak} / {most}; threading.active_count() {threading.active_count()},"
            f" /proc Threads {threads()}",
        )
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        note(
            "engine (this process): RSS",
            f"{rss_mib():.0f} MiB (peak {peak_rss / 1024:.0f})",
        )
        if watch.proc.poll() is None:
            note(
                "jobtui watch: RSS / threads",
                f"{rss_mib(watch.proc.pid):.0f} MiB / {threads(watch.proc.pid)}",
            )
        else:
            last = watch.lines[-1][1].strip() if watch.lines else ""
            note("jobtui watch: EXITED", f"status {watch.proc.returncode}: {last[:300]}")
        note("jobtui TUI: RSS / threads", f"{rss_mib(tui.pid):.0f} MiB / {threads(tui.pid)}")
        note(
            "ssh clients of the lab", f"{len(fleet.sshd.client_pids())} (one per host and process)"
        )
        if prof is not None:
            prof.wait(60)
            summarize_profile(tmp / "watch.collapsed", seconds)
    finally:
        tui.close()
        watch.close()


PROFILE = False
PYSPY_RATE = 200


def start_profile(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (installed for measuring only) on `jobtui watch` over the idle window."""
    spy = Path(PY).parent / "py-spy"
    if not spy.exists():
        note("profile", "py-spy not installed (.venv/bin/pip install py-spy)")
        return None
    argv = [str(spy), "record", "-p", str(pid), "-d", str(int(seconds)), "-r", str(PYSPY_RATE)]
    argv += ["--format", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, seconds: float, what: str = "watch, idle") -> None:
    """Share of a core per function (inclusive), from py-spy's collapsed stacks: samples
    of running (not idle) threads / (rate x seconds)."""
    if not path.exists():
        note("profile", "no output")
        return
    incl: dict[str, int] = {}
    leaf: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        frames = [f.split(" (")[0] for f in stack.split(";")]
        total += int(n)
        for f in set(frames):
            incl[f] = incl.get(f, 0) + int(n)
        leaf[frames[-1]] = leaf.get(frames[-1], 0) + int(n)
    scale = 100 / (PYSPY_RATE * seconds)
    note(f"profile ({what}): on CPU", f"{total * scale:.2f} % of a core in Python frames")
    for name, n in sorted(incl.items(), key=lambda kv: -kv[1])[:16]:
        note(f"  incl: {name[:44]}", f"{n * scale:.2f} %")
    for name, n in sorted(leaf.items(), key=lambda kv: -kv[1])[:10]:
        note(f"  self: {name[:44]}", f"{n * scale:.2f} %")
    with contextlib.suppress(OSError):
        (
            Path(tempfile.gettempdir())
            / f"bench_fleet-{what.split(',')[0].replace(' ', '_')}.collapsed"
        ).write_text(path.read_text())


def per_host_calls(mon: JobMonitor) -> dict[str, int]:
    # Per host: the engine's counters are per domain (JobMonitor.call_counts sums them).
    out: dict[str, int] = {}
    with mon._lock:
        slots = list(mon._slots.values())
    for s in slots:
        out[s.host] = out.get(s.host, 0) + sum(list(s.counter.counts.values()))
    return out


def abort_trials(
    fleet: Fleet,
    h: FleetHost,
    doms: list[str],
    readers: dict[str, tuple[Lines | Pane, Callable[[str], Callable[[str], bool]]]],
    virsh: Lines,
) -> dict[str, list[float]]:
    """Per domain: a throttled copy started (on `h`'s direct connection), seen running by
    every reader, then aborted; each reader's time after virsh's event line, in ms."""
    lat: dict[str, list[float]] = {k: [] for k in readers}
    for name in doms:
        fleet.start_copy(h, name, bandwidth=256 * 1024, tag="ev")
        for r, pred in readers.values():
            if isinstance(r, Pane):
                r.wait(row_has(name, "copy-vda", "running"))
            else:
                r.first(pred(name), 0)
        time.sleep(0.3 + 0.5 * (len(lat[next(iter(lat))]) % 3) / 3)  # phases vs timers
        since = time.time()
        fleet.abort_copy(h, name)
        t_v = virsh.first(lambda ln, n=name: n in ln and "cancel" in ln, since)
        for label, (r, _pred) in readers.items():
            if isinstance(r, Pane):
                t = r.wait(row_has(name, "copy-vda", "aborted"))
            else:
                t = r.first(lambda ln, n=name: n in ln and "aborted" in ln, since)
            lat[label].append((t - t_v) * 1000)
    return lat


def running_line(name: str) -> Callable[[str], bool]:
    return lambda ln: name in ln and "running" in ln


def events(fleet: Fleet, tmp: Path, trials: int) -> None:
    h0 = fleet.hosts[0]
    doms = free_domains(fleet, h0)[:trials]
    ssh_env, loc = env(fleet.hosts_file), h0.local_uri
    virsh = virsh_events(loc)
    readers: dict[str, tuple[Lines | Pane, Callable[[str], Callable[[str], bool]]]] = {
        "watch, fleet over ssh": (
            Lines(jobtui(tmp / "e1.sqlite3", "watch"), ssh_env),
            running_line,
        ),
        "watch, h00 local socket": (
            Lines(jobtui(tmp / "e2.sqlite3", "watch", uri=loc), env()),
            running_line,
        ),
        "TUI, fleet over ssh": (Pane("ev-ssh", jobtui(tmp / "e3.sqlite3"), ssh_env), running_line),
        "TUI, h00 local socket": (
            Pane("ev-loc", jobtui(tmp / "e4.sqlite3", uri=loc), env()),
            running_line,
        ),
    }
    try:
        for r, _ in readers.values():
            if isinstance(r, Pane):
                r.wait(lambda s: "-d0" in s)
        time.sleep(5.0)
        print(f"event -> screen: {len(doms)} copies on h00 aborted", flush=True)
        lat = abort_trials(fleet, h0, doms, readers, virsh)
        for label, ms in lat.items():
            ms_stats(f"abort -> {label} (after virsh's line)", ms)
    finally:
        for r, _ in readers.values():
            r.close()
        virsh.close()


def hang(
    fleet: Fleet,
    tmp: Path,
    trials: int,
    label: str,
    victim: FleetHost,
    pause: Callable[[], Callable[[], None]],
) -> None:
    """Stop `victim` with `pause` (which returns the resume); a `jobtui watch` over the
    whole fleet says when it is lost and when it is back, and the latency of aborts on
    h02 meanwhile. Measured in a child process: libvirt 9.0's client has crashed
    (SIGSEGV in libvirt.so) in the process that held a connection through a stopped
    daemon after it resumed (docs/decisions.md; seen again here), and the fleet must
    not go with it."""
    other = fleet.hosts[2]
    watch = Lines(jobtui(tmp / f"hang-{label}.sqlite3", "watch"), env(fleet.hosts_file))
    virsh = virsh_events(other.local_uri)
    resume: Callable[[], None] | None = None
    name = victim.daemon.name
    try:
        watch.first(lambda ln: "-d0" in ln, 0, timeout=120)  # the fleet's copies, first seen
        time.sleep(5.0)
        t0 = time.time()
        resume = pause()
        try:
            t = watch.first(lambda ln: "lost" in ln and f"/{name}/" in ln, t0, 60)
            reason = next(ln for tt, ln in watch.lines if tt == t).split(": ", 2)[-1].strip()
            note(f"hang ({label}): watch says lost", f"{t - t0:.1f} s: {reason}")
        except TimeoutError:
            note(f"hang ({label}): watch says lost", "not within 60 s")
        doms = free_domains(fleet, other)[:trials]
        lat = abort_trials(fleet, other, doms, {"watch": (watch, running_line)}, virsh)
        ms_stats(f"hang ({label}): h02 abort -> watch line", lat["watch"])
        other.running = [d for d in other.running if d not in doms]  # used up
        t1 = time.time()
        resume()
        resume = None
        with contextlib.suppress(TimeoutError):
            t = watch.first(lambda ln: "reconnected" in ln and f"/{name}/" in ln, t1, 60)
            note(f"hang ({label}): watch says reconnected after resume", f"{t - t1:.1f} s")
    finally:
        if resume is not None:
            resume()
        watch.close()
        virsh.close()
        if watch.proc.returncode not in (0, None):
            note(f"hang ({label}): jobtui watch exit", str(watch.proc.returncode))


def stop_daemon(h: FleetHost) -> Callable[[], Callable[[], None]]:
    def pause() -> Callable[[], None]:
        h.daemon.pause()
        return h.daemon.resume

    return pause


def stop_sshd_sessions(fleet: Fleet, h: FleetHost) -> Callable[[], Callable[[], None]]:
    """The sshd session processes whose `nc -U` serves `h`'s socket (one per client)."""

    def pause() -> Callable[[], None]:
        sock = str(h.daemon.sock_dir / "libvirt-sock")
        pids = set(fleet.sshd.session_pids())
        ncs = [p for p in pids if sock in _cmdline(p) and _cmdline(p).startswith("nc")]
        doomed = set()
        for nc in ncs:
            p = nc
            while p in pids:
                if _cmdline(p).startswith("sshd:"):
                    doomed.add(p)
                p = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
        for p in doomed:
            os.kill(p, signal.SIGSTOP)

        def resume() -> None:
            for p in doomed:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p, signal.SIGCONT)

        return resume

    return pause


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=20)
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--running", type=int, default=None, help="per host (default: all)")
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--launches", type=int, default=3)
    ap.add_argument("--trials", type=int, default=6)
    ap.add_argument("--no-hang", action="store_true")
    ap.add_argument("--profile", action="store_true", help="py-spy on jobtui watch, idle")
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    tmp = Path(tempfile.mkdtemp(prefix="jfb-"))
    with signals_end_the_run():
        t0 = time.monotonic()
        fleet = Fleet(args.hosts, args.domains, running=args.running, jobs=args.jobs)
        with fleet:
            t = fleet.timings
            print(
                f"fleet: {len(fleet.hosts)} hosts x {args.domains} domains, {fleet.qemu_count()}"
                f" QEMUs ({'KVM' if fleet.kvm else 'TCG'}, paused), {len(fleet.copies)} copies;"
                f" up in {time.monotonic() - t0:.0f} s (daemons {t['daemons']:.1f} s)",
                flush=True,
            )
            note(
                "fleet",
                f"{args.hosts} x {args.domains}, {fleet.qemu_count()} QEMUs, "
                f"{len(fleet.copies)} copies",
            )
            mon = engine_ready(fleet)
            try:
                first_frames(fleet, tmp, args.launches)
                idle_window(fleet, mon, tmp, args.idle)
                events(fleet, tmp, args.trials)
                # No connection of this process goes through a stopped host (see hang()).
                mon.stop()
                if not args.no_hang:
                    n = max(1, args.trials // 2)
                    hang(
                        fleet,
                        tmp,
                        n,
                        "libvirtd SIGSTOP",
                        fleet.hosts[1],
                        stop_daemon(fleet.hosts[1]),
                    )
                    hang(
                        fleet,
                        tmp,
                        n,
                        "sshd session SIGSTOP",
                        fleet.hosts[3],
                        stop_sshd_sessions(fleet, fleet.hosts[3]),
                    )
            finally:
                mon.stop()  # idempotent
                subprocess.run([*TMUX, "kill-server"], capture_output=True)
    print()
    print(f"{'what':52} figure")
    for name, text in RESULTS:
        print(f"{name:52} {text}")
    with contextlib.suppress(OSError):
        for f in tmp.iterdir():
            f.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
