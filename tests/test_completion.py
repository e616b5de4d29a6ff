"""Shell completion and per-command examples, without libvirt: the listing is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jobtui.cli.completion import bash_script, command_table, names, zsh_script

LISTING = json.dumps(
    [
        {"domain": "web1", "uuid": "0b9f7c4e-1111", "name": "copy-vda", "host": "qemu:///system"},
        {"domain": "web1", "uuid": "0b9f7c4e-1111", "name": "pull-vdb", "host": "qemu:///system"},
        {"domain": "db1", "uuid": "9a00-2222", "name": "commit-vda", "host": "qemu:///system"},
        {"domain": "web1", "uuid": "0b9f7c4e-1111", "name": "copy-vda", "host": "qemu:///system"},
    ]
)


def jobtui(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LIBVIRT_DEFAULT_URI", "JOBTUI_DEBUG")}
    return subprocess.run(
        [sys.executable, "-m", "jobtui", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
    )


def test_names_from_a_listing() -> None:
    assert names("domains", "", LISTING) == ["db1", "web1"]
    assert names("jobs", "web1", LISTING) == ["copy-vda", "pull-vdb"]
    assert names("jobs", "9a00-2222", LISTING) == ["commit-vda"]  # by UUID
    assert names("jobs", "nope", LISTING) == []
    # A failed `list` (nothing, or not JSON) completes nothing.
    assert names("domains", "", "") == []
    assert names("domains", "", "jobtui: cannot connect") == []
    assert names("domains", "", '{"domain": "x"}') == []


def test_hidden_complete_command_reads_list_json() -> None:
    out = jobtui("_complete", "jobs", "web1", stdin=LISTING)
    assert (out.returncode, out.stdout, out.stderr) == (0, "copy-vda\npull-vdb\n", "")
    empty = jobtui("_complete", "domains", stdin="")
    assert (empty.returncode, empty.stdout) == (0, "")
    assert "_complete" not in jobtui("--help").stdout


def test_completion_scripts_know_every_command() -> None:
    commands, options, _ = command_table()
    assert "_complete" not in commands and "completion" in commands
    assert "--yes" in options["abort"] and "--json" in options["list"]
    for script in (bash_script(), zsh_script()):
        for cmd in commands:
            assert cmd in script
        assert "list --json --all" in script and "_complete" in script


def test_bash_script_parses() -> None:
    out = jobtui("completion", "bash")
    assert out.returncode == 0
    subprocess.run(["bash", "-n"], input=out.stdout, text=True, check=True)


def test_zsh_script_parses() -> None:
    subprocess.run(["zsh", "-n"], input=zsh_script(), text=True, check=True)


def _complete_in_bash(tmp_path: Path, line: str) -> list[str]:
    """Run the bash script's function on `line`, `jobtui` being a stand-in whose `list`
    prints the recorded listing and records its arguments."""
    fake = tmp_path / "jobtui"
    fake.write_text(
        "#!/bin/sh\n"
        'here=$(dirname "$0")\n'
        'if [ "$1" = list ]; then echo "$@" >> "$here/calls"; cat "$here/listing"; exit 0; fi\n'
        f'exec {sys.executable} -m jobtui "$@"\n'
    )
    fake.chmod(0o755)
    (tmp_path / "listing").write_text(LISTING)
    line = line.replace("jobtui", str(fake), 1)
    run = f"COMP_LINE={line!r}; COMP_POINT=${{#COMP_LINE}}; _jobtui\n"
    script = bash_script() + run + "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    out = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_commands_options_domains_and_jobs(tmp_path: Path) -> None:
    assert _complete_in_bash(tmp_path, "jobtui fi") == ["finalize"]
    assert "--yes" in _complete_in_bash(tmp_path, "jobtui abort --")
    assert _complete_in_bash(tmp_path, "jobtui abort ") == ["db1", "web1"]
    assert _complete_in_bash(tmp_path, "jobtui -c qemu:///system abort w") == ["web1"]
    assert _complete_in_bash(tmp_path, "jobtui xml --group rack1 web1 ") == ["copy-vda", "pull-vdb"]
    assert _complete_in_bash(tmp_path, "jobtui set-speed db1 c") == ["commit-vda"]
    assert _complete_in_bash(tmp_path, "jobtui list ") == []
    calls = (tmp_path / "calls").read_text().splitlines()
    # The connection options on the line are handed to `list`.
    assert "list --json --all -c qemu:///system" in calls
    assert "list --json --all --group rack1" in calls


def test_every_command_help_has_an_example() -> None:
    commands, _, _ = command_table()
    for cmd in [c for c in commands if c != "demo"]:
        out = jobtui(cmd, "--help")
        assert out.returncode == 0 and "Example:\n  " in out.stdout, cmd
    assert "Example:" in jobtui("demo", "--help").stdout
    assert "Example:" in jobtui("--help").stdout
