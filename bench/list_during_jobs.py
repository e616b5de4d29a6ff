"""`jobtui list` while any job runs: issue 9 part 2's bound, measured.

Every job kind of `bench/call_waits.py` (its job makers, imported) is started on
host A of two private libvirtds (`jobtui.lab.hosts.TwoHosts`; a migration goes
to host B), and while it runs the real CLI is timed as a separate process:

    jobtui list --json -c URI_A -c URI_B --history <tmp>

side by side with the reference `virsh -c URI_A list --all` + `virsh -c URI_B
list --all` (A B A B: one `jobtui list`, then one pair of virsh, and so on).
Each `jobtui list` also records its exit status, whether it warned that a
domain was "not answering" (the engine marks a domain whose QEMU monitor did
not answer within 1 s) and whether the JSON lists the running job (state
running or ready) on the right host(s). A pair every `--gap` s: from the
start of a job that ends by itself until it ends (so every phase of it is
sampled), and for a job that waits at READY or runs until aborted, until
`--reps` samples are in. A sample counts only if the job was in progress from
the start to the exit of the process; a job is started again until `--reps`
samples are in (at most `--max-runs` times).

    sudo .venv/bin/python bench/list_during_jobs.py [--only save,restore] [--reps 6]
        [--out FRAGMENT.md] [--update docs/performance.md] [--json RAW.json]

The bound (issue 9 part 2): under 1 s, and no domain marked unresponsive
because of a job lock.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import call_waits as cw  # noqa: E402  (it puts the repository on sys.path)

from jobtui.lab import Lab  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SECTION = "## `jobtui list` while any job runs"
BOUND_S = 1.0
PROCESS_TIMEOUT = 60.0  # the CLI's own --wait is 15 s
MAX_PER_RUN = 40  # `jobtui list` samples during one start of a job

# What `jobtui list` should show for each job: (host, job type).
EXPECTED: dict[str, tuple[tuple[str, str], ...]] = {
    "idle": (),
    "migration": (("A", "migration-out"), ("B", "migration-in")),
    "storage-migration": (("A", "migration-out"), ("B", "migration-in")),
    "save": (("A", "save"),),
    "managed-save": (("A", "save"),),
    "restore": (("A", "restore"),),
    "core-dump": (("A", "dump"),),
    "memory-dump": (("A", "dump"),),
    "snapshot": (("A", "snapshot"),),
    "push-backup": (("A", "backup"),),
    "pull-backup": (("A", "backup"),),
    "block-copy": (("A", "block-copy"),),
    "block-commit": (("A", "block-commit"),),
    "active-commit": (("A", "block-commit-active"),),
    "block-pull": (("A", "block-pull"),),
}

LIVE_STATES = ("running", "ready")


# --- one sample -----------------------------------------------------------------------


@dataclass
class ListSample:
    run: int  # which start of the job
    at: float  # s after the job started
    seconds: float
    rc: int
    valid: bool  # the job was in progress from start to end of the process
    began: bool = True  # the job was in progress when the process started
    cpu: float = 0.0  # user + system seconds of the process: the rest of `seconds` waited
    load: float = 0.0  # the machine's 1-minute load average as it started
    not_answering: list[str] = field(default_factory=list)  # domain names in the warning
    listed: list[str] = field(default_factory=list)  # 'A:save running', for the job's domain
    other_jobs: int = 0  # active jobs listed on other domains
    stale: bool = False  # any of the job's entries carried "stale": true
    stderr: str = ""


@dataclass
class VirshSample:
    run: int
    at: float
    seconds: float  # both virsh processes, one after the other
    rcs: tuple[int, int]
    valid: bool
    began: bool = True


@dataclass
class Result:
    name: str
    label: str
    note: str = ""
    runs: int = 0
    lists: list[ListSample] = field(default_factory=list)
    virsh: list[VirshSample] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


NOT_ANSWERING = re.compile(r"not answering \([^)]*\): ([^;]*);")


def in_progress(run: cw.Run) -> bool:
    return not run.ended.is_set() and not any(s.ended.is_set() for s in run.sides.values())


def job_domain(run: cw.Run) -> str:
    for side in run.sides.values():
        if side.dom is not None:
            return str(side.dom.name())
    return ""


def time_list(
    argv: list[str], env: dict[str, str], run: cw.Run, index: int, uris: dict[str, str]
) -> ListSample:
    name = job_domain(run)
    before = in_progress(run)
    load = os.getloadavg()[0]
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            env=env,
            timeout=PROCESS_TIMEOUT,
        )
        rc, out, err = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as e:
        rc = -9
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = f"killed after {PROCESS_TIMEOUT:g} s"
    t1 = time.monotonic()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = ListSample(index, t0 - run.started, t1 - t0, rc, before and in_progress(run), before)
    s.cpu = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
    s.load = load
    s.stderr = " ".join(err.split())[:400]
    m = NOT_ANSWERING.search(err)
    if m:
        s.not_answering = [n.strip() for n in m.group(1).split(",")]
    host_key = {uri: key for key, uri in uris.items()}
    try:
        jobs = json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        jobs = []
    for j in jobs:
        if j.get("domain") == name:
            s.listed.append(f"{host_key.get(j.get('host'), '?')}:{j.get('type')} {j.get('state')}")
            s.stale = s.stale or bool(j.get("stale"))
        elif j.get("state") in LIVE_STATES:
            s.other_jobs += 1
    return s


def time_virsh(uris: dict[str, str], run: cw.Run, index: int) -> VirshSample:
    before = in_progress(run)
    rcs: list[int] = []
    t0 = time.monotonic()
    for key in ("A", "B"):
        proc = subprocess.run(
            ["virsh", "-c", uris[key], "list", "--all"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=PROCESS_TIMEOUT,
        )
        rcs.append(proc.returncode)
    t1 = time.monotonic()
    return VirshSample(
        index, t0 - run.started, t1 - t0, (rcs[0], rcs[1]), before and in_progress(run), before
    )


def listed_ok(name: str, s: ListSample) -> bool:
    want = EXPECTED[name]
    return all(any(x == f"{h}:{t} {st}" for st in LIVE_STATES for x in s.listed) for h, t in want)


def measure(
    env: cw.Env,
    sc: cw.Scenario,
    argv: list[str],
    cli_env: dict[str, str],
    uris: dict[str, str],
    reps: int,
    max_runs: int,
    gap: float,
) -> Result:
    res = Result(sc.name, sc.label)
    while sum(s.valid for s in res.lists) < reps and res.runs < max_runs:
        res.runs += 1
        run = sc.start(env)
        res.note = run.note
        try:
            if not in_progress(run):
                res.problems.append(f"run {res.runs}: the job ended before any list ({run.error})")
                continue
            # A job that ends by itself is sampled until it ends (every phase of it);
            # one that waits at READY or until aborted, until `reps` samples are in.
            first = len(res.lists)
            while in_progress(run) and len(res.lists) - first < MAX_PER_RUN:
                if sc.ends != "end" and sum(s.valid for s in res.lists) >= reps:
                    break
                ls = time_list(argv, cli_env, run, res.runs, uris)
                res.lists.append(ls)
                mark = "" if ls.valid else "  (job ended: not counted)"
                print(
                    f"    list  +{ls.at:5.1f} s {ls.seconds:6.2f} s rc={ls.rc}"
                    f" not-answering={ls.not_answering or '-'} listed={ls.listed}{mark}",
                    flush=True,
                )
                if ls.stderr and not ls.not_answering:
                    print(f"          stderr: {ls.stderr}", flush=True)
                if not in_progress(run):
                    break
                vs = time_virsh(uris, run, res.runs)
                res.virsh.append(vs)
                print(
                    f"    virsh +{vs.at:5.1f} s {vs.seconds:6.2f} s rc={vs.rcs}"
                    + ("" if vs.valid else "  (job ended: not counted)"),
                    flush=True,
                )
                run.ended.wait(gap)
        finally:
            run.cleanup()
        if run.error and not run.aborted:
            res.problems.append(f"run {res.runs}: the job failed: {run.error}")
    got = sum(s.valid for s in res.lists)
    if got < reps:
        res.problems.append(f"only {got} of {reps} samples while the job ran")
    return res


# --- the report -----------------------------------------------------------------------


def fmt_s(xs: list[float]) -> str:
    if not xs:
        return "—"
    return f"{statistics.median(xs):.2f} / {max(xs):.2f}"


def counted(values: list[str]) -> str:
    seen: dict[str, int] = {}
    for v in values:
        seen[v] = seen.get(v, 0) + 1
    if len(seen) == 1:
        return next(iter(seen))
    return ", ".join(f"{v} ×{n}" for v, n in seen.items())


def row(r: Result) -> tuple[str, bool]:
    """A table row, and whether the case keeps the bound."""
    lists = [s for s in r.lists if s.valid]
    virsh = [s for s in r.virsh if s.valid]
    secs = [s.seconds for s in lists]
    rcs = counted([str(s.rc) for s in lists]) if lists else "—"
    stuck = sorted({n for s in lists for n in s.not_answering})
    n_stuck = sum(bool(s.not_answering) for s in lists)
    na = f"**yes** ({n_stuck} of {len(lists)}: {', '.join(stuck)})" if stuck else "no"
    if not EXPECTED[r.name]:
        listed = "— (no job)" if all(not s.listed for s in lists) else "; ".join(lists[0].listed)
    else:
        ok = [listed_ok(r.name, s) for s in lists]
        seen = counted(["; ".join(s.listed) or "nothing" for s in lists]) if lists else "—"
        if ok and all(ok):
            listed = f"yes ({seen})"
        else:
            listed = f"**no** in {ok.count(False)} of {len(ok)} ({seen})"
    if any(s.stale for s in lists):
        listed += f", stale in {sum(s.stale for s in lists)}"
    # Begun while the job ran, answered after it ended: the job's last moments.
    across = [s for s in r.lists if s.began and not s.valid]
    v_across = [s for s in r.virsh if s.began and not s.valid]
    end = "—"
    if across or v_across:
        end = f"{len(across)}"
        if across:
            end += f": {max(s.seconds for s in across):.2f}"
        if any(s.rc for s in across):
            end += f" (exit {counted([str(s.rc) for s in across])})"
        if v_across:
            end += f"; virsh {max(s.seconds for s in v_across):.2f}"
    keeps = bool(lists) and max(secs) < BOUND_S and not stuck and all(s.rc == 0 for s in lists)
    t = fmt_s(secs)
    if secs and max(secs) >= BOUND_S:
        t = f"**{t}**"
    v = fmt_s([s.seconds for s in virsh])
    cpu = f"{statistics.median(s.cpu for s in lists):.2f}" if lists else "—"
    load = f"{min(s.load for s in lists):.1f}–{max(s.load for s in lists):.1f}" if lists else "—"
    line = (
        f"| {r.label} | {t} | {cpu} | {v} | {rcs} | {na} | {listed} | {len(lists)} | {end}"
        f" | {load} |"
    )
    return line, keeps


def report(
    results: list[Result],
    *,
    command: str,
    started: datetime.datetime,
    versions: str,
    gap: float,
) -> str:
    out = [f"{SECTION}\n"]
    out.append("```\n" + command + "\n```\n")
    out.append(
        f"Run on {started:%Y-%m-%d %H:%M} (host `{socket.gethostname()}`, {os.cpu_count()} CPUs,"
        f" shared), {versions}. Real QEMU behind two private `libvirtd`s"
        " (`jobtui.lab.hosts.TwoHosts`); every job of `bench/call_waits.py` (same job makers)"
        " ran on host A, a migration went to host B. While it ran, the CLI was timed as a"
        " separate process, start to exit:\n"
    )
    out.append("```\njobtui list --json -c URI_A -c URI_B --history <tmp>\n```\n")
    out.append(
        "alternating with the reference `virsh -c URI_A list --all` + `virsh -c URI_B list"
        f" --all` (both processes, one after the other), a pair every {gap:g} s: from the"
        " job's start until it ended, or, for a job that waits at READY or until aborted, for"
        " `--reps` samples. A sample counts only if the job was in progress from the start to"
        " the exit of the process; figures are median / max seconds of the counted samples."
        " *not answering*: the CLI's stderr warned `jobtui: warning: not answering ...` (the"
        " engine marked a domain unresponsive). *job listed*: the JSON has the job on the"
        " job's domain in state running or ready (A: host A, B: host B). The bound: under"
        f" {BOUND_S:g} s, no domain marked unresponsive because of a job lock. *across the"
        " job's end*: the processes that began while the job ran and exited after it ended"
        " (not counted above): how many `jobtui list`, their longest, and the longest virsh"
        " pair. *its CPU s*: user + system time of the `jobtui list` process (the rest of its"
        " time it waited: for libvirt, or for a CPU). *load avg*: the machine's 1-minute load"
        " average when the counted samples began (2 CPUs, shared with other work).\n"
    )
    header = [
        "job",
        "`jobtui list` s (median / max)",
        "its CPU s (median)",
        "virsh ×2 s (median / max)",
        "exit status",
        "not answering",
        "job listed",
        "samples",
        "across the job's end: n, max s",
        "load avg",
    ]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "---|" * len(header))
    broken: list[str] = []
    for r in results:
        line, keeps = row(r)
        out.append(line)
        if not keeps:
            broken.append(r.label)
    out.append("")
    notes = [
        f"- **{r.label}** ({r.runs} start{'s' if r.runs != 1 else ''} of the job): {r.note}."
        + "".join(f" {p}." for p in r.problems)
        for r in results
    ]
    out.append("How each job was made (`bench/call_waits.py`):\n")
    out.extend(notes)
    out.append("")
    out.append(
        "Outside the bound: " + (", ".join(broken) if broken else "none") + ".\n" if results else ""
    )
    return "\n".join(out)


def update_doc(path: Path, section: str) -> None:
    """Replace the section in `path` (read just before writing), or append it."""
    text = path.read_text()
    start = text.find(SECTION)
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"
    else:
        nxt = text.find("\n## ", start + len(SECTION))
        end = len(text) if nxt < 0 else nxt + 1
        text = text[:start] + section.rstrip("\n") + "\n" + ("\n" if nxt >= 0 else "") + text[end:]
    path.write_text(text)


def tree_version() -> str:
    def git(*a: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPO), *a], capture_output=True, text=True
        ).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "jobtui")
    return f"jobtui {commit}" + (" + uncommitted changes in jobtui/" if dirty else "")


# --- main -----------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="comma-separated job names (call_waits.py's)")
    ap.add_argument(
        "--reps", type=int, default=6, help="counted `jobtui list` runs per job, at least"
    )
    ap.add_argument("--max-runs", type=int, default=6, help="starts of a job at most")
    ap.add_argument("--gap", type=float, default=1.0, help="seconds between A-B pairs")
    ap.add_argument("--out", type=Path, help="write the markdown section to this file")
    ap.add_argument("--update", type=Path, help="replace (or append) the section in this file")
    ap.add_argument("--json", type=Path, help="write every sample to this file")
    ap.add_argument("--memory", type=int, default=128, help="MiB: save, dump, snapshot guests")
    ap.add_argument("--dump-memory", type=int, default=384, help="MiB: memory-only dump guest")
    ap.add_argument("--restore-memory", type=int, default=512, help="MiB: restored guest")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (private libvirtds, QEMU as root)", file=sys.stderr)
        return 2
    by_name = {s.name: s for s in cw.SCENARIOS}
    chosen = cw.SCENARIOS
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            ap.error(f"unknown job(s) {unknown}; known: {', '.join(by_name)}")
        chosen = [by_name[n] for n in names]
    jobtui_bin = Path(sys.executable).parent / "jobtui"
    if not jobtui_bin.exists():
        print(f"no {jobtui_bin}: install the project in this venv", file=sys.stderr)
        return 2
    command = "sudo .venv/bin/python bench/list_during_jobs.py" + (
        " " + " ".join(sys.argv[1:]) if sys.argv[1:] else ""
    )
    started = datetime.datetime.now()
    results: list[Result] = []
    hosts = cw.make_hosts()
    lab: Lab | None = None
    scratch = Path(tempfile.mkdtemp(prefix="jtlist-"))
    versions = "?"
    cli_env = {
        k: v for k, v in os.environ.items() if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG")
    }
    with cw.sigterm_as_interrupt():
        try:
            hosts.start()
            assert hosts.conn_a is not None
            lv, qv = cw.versions(hosts.conn_a)
            versions = (
                f"libvirt {lv}, {qv}, libvirt-python"
                f" {importlib.metadata.version('libvirt-python')}, {tree_version()}"
            )
            uris = {"A": hosts.uri_a, "B": hosts.uri_b}
            lab = Lab(hosts.base / "lab", uri=hosts.uri_a)
            env = cw.Env(hosts, lab, args.memory, args.dump_memory, args.restore_memory)
            for sc in chosen:
                print(f"== {sc.name}", flush=True)
                # One history per job kind, kept across its samples, as an operator's is.
                history = scratch / f"{sc.name}.db"
                argv = [
                    str(jobtui_bin),
                    "list",
                    "--json",
                    "-c",
                    uris["A"],
                    "-c",
                    uris["B"],
                    "--history",
                    str(history),
                ]
                t0 = time.monotonic()
                results.append(
                    measure(env, sc, argv, cli_env, uris, args.reps, args.max_runs, args.gap)
                )
                print(f"   {time.monotonic() - t0:.0f} s", flush=True)
        finally:
            if lab is not None:
                lab.close()
            hosts.close()
            shutil.rmtree(scratch, ignore_errors=True)
    text = report(results, command=command, started=started, versions=versions, gap=args.gap)
    print()
    print(text)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1) + "\n")
    if args.out:
        args.out.write_text(text)
        print(f"wrote {args.out}")
    if args.update:
        update_doc(args.update, text)
        print(f"updated {args.update}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
