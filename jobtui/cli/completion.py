"""Shell completion: `jobtui completion bash|zsh` and the hidden `jobtui _complete`.

Commands and options are written into the script from the parser itself, so they never
drift. DOMAIN and JOB come from a live listing: the script runs
`jobtui list --json --all` with the connection options found on the line and pipes it into
`jobtui _complete domains` or `jobtui _complete jobs DOMAIN`, which print one name a line.
A listing that fails or is empty completes nothing, quietly.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable
from typing import TextIO

from jobtui.cli.args import CONTROL_COMMANDS, build_parser
from jobtui.cli.errors import OK

# Commands whose first two positionals are DOMAIN and JOB.
JOB_COMMANDS = (*CONTROL_COMMANDS, "xml")
# Options passed on to `list` so that it lists the hosts the command line names.
_CONN_WITH_VALUE = ("-c", "--connect", "--group", "--history")
_CONN_FLAGS = ("-r", "--readonly")
# Options that take a value (the word after them is not a command or a positional).
_WITH_VALUE = (*_CONN_WITH_VALUE, "--wait", "--keymap", "--listen", "--timeout")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> list[str]:
    return [o for action in parser._actions for o in action.option_strings]


def command_table() -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(visible commands, command → its options, the top level's options)."""
    top = build_parser()
    subs = {n: p for n, p in _subparsers(top).items() if not n.startswith("_")}
    return list(subs), {n: _options(p) for n, p in subs.items()}, _options(top)


def names(kind: str, domain: str, listing: str) -> list[str]:
    """Domain names, or the job names of `domain` (by name or UUID), from `list --json`."""
    try:
        rows = json.loads(listing)
    except ValueError:
        return []
    if not isinstance(rows, list):
        return []
    out: list[str] = []
    for row in rows:
        if not isinstance(row, dict):
            continue
        if kind == "domains":
            value = row.get("domain")
        elif domain in (row.get("domain"), row.get("uuid")):
            value = row.get("name")
        else:
            continue
        if isinstance(value, str) and value and value not in out:
            out.append(value)
    return sorted(out)


def run_complete(args: argparse.Namespace, stdin: TextIO | None = None) -> int:
    for name in names(args.kind, args.domain, (stdin or sys.stdin).read()):
        print(name)
    return OK


def _words(items: Iterable[str]) -> str:
    return " ".join(shlex.quote(i) for i in items)


def bash_script() -> str:
    commands, options, top = command_table()
    cases = "\n".join(
        f"        {name}) opts={shlex.quote(' '.join(options[name]))} ;;" for name in commands
    )
    return _BASH.format(
        commands=shlex.quote(" ".join(commands)),
        top=shlex.quote(" ".join(top)),
        cases=cases,
        job_commands="|".join(JOB_COMMANDS),
        with_value="|".join(_WITH_VALUE),
        conn_value="|".join(_CONN_WITH_VALUE),
        conn_flags="|".join(_CONN_FLAGS),
    )


def zsh_script() -> str:
    commands, options, top = command_table()
    cases = "\n".join(f"      ({name}) opts=({_words(options[name])}) ;;" for name in commands)
    return _ZSH.format(
        commands=_words(commands),
        top=_words(top),
        cases=cases,
        job_commands="|".join(JOB_COMMANDS),
        with_value="|".join(_WITH_VALUE),
        conn_value="|".join(_CONN_WITH_VALUE),
        conn_flags="|".join(_CONN_FLAGS),
    )


def run_completion(args: argparse.Namespace) -> int:
    sys.stdout.write(bash_script() if args.shell == "bash" else zsh_script())
    return OK


_BASH = """\
# jobtui completion for bash: eval "$(jobtui completion bash)" in ~/.bashrc
_jobtui_names() {{
    # $1: the jobtui to run; $2: domains|jobs; $3: the domain; the rest: connection options
    local self=$1 kind=$2 dom=$3
    shift 3
    "$self" list --json --all "$@" 2>/dev/null | "$self" _complete "$kind" "$dom" 2>/dev/null
}}
_jobtui() {{
    local line=${{COMP_LINE:0:COMP_POINT}} words cur prev cmd="" dom="" pos=0 i w opts
    local -a conn=()
    # Split the line ourselves: COMP_WORDS would cut a URI at its ':'.
    read -ra words <<<"$line"
    [[ $line == *[[:space:]] || ${{#words[@]}} -eq 0 ]] && words+=("")
    cur=${{words[${{#words[@]}}-1]}}
    prev=""
    (( ${{#words[@]}} > 1 )) && prev=${{words[${{#words[@]}}-2]}}
    for ((i = 1; i < ${{#words[@]}} - 1; i++)); do
        w=${{words[i]}}
        case $w in
            {conn_value}) conn+=("$w" "${{words[i+1]}}"); ((i++)) ;;
            {with_value}) ((i++)) ;;
            {conn_flags}|--connect=*|--group=*|--history=*) conn+=("$w") ;;
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd=$w; else ((pos++)); ((pos == 1)) && dom=$w; fi ;;
        esac
    done
    case $prev in
        --history|--keymap) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        {with_value}) COMPREPLY=(); return ;;
    esac
    case $cmd in
{cases}
        *) opts={top} ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
        return
    fi
    if [[ -z $cmd ]]; then
        COMPREPLY=($(compgen -W {commands} -- "$cur"))
        return
    fi
    case $cmd in
        {job_commands})
            local IFS=$'\\n' found
            if ((pos == 0)); then
                found=$(_jobtui_names "${{words[0]}}" domains "" "${{conn[@]}}")
            elif ((pos == 1)); then
                found=$(_jobtui_names "${{words[0]}}" jobs "$dom" "${{conn[@]}}")
            fi
            COMPREPLY=($(compgen -W "$found" -- "$cur"))
            ;;
        completion) ((pos == 0)) && COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
    esac
}}
complete -o default -F _jobtui jobtui
"""

_ZSH = """\
#compdef jobtui
# jobtui completion for zsh: source <(jobtui completion zsh) in ~/.zshrc (after compinit),
# or save it as _jobtui in a directory of $fpath.
_jobtui() {{
  local cmd= dom= i w
  local -i pos=0
  local -a conn opts names commands
  commands=({commands})
  for ((i = 2; i < CURRENT; i++)); do
    w=${{words[i]}}
    case $w in
      ({conn_value}) conn+=($w ${{words[i+1]}}); ((i++)) ;;
      ({with_value}) ((i++)) ;;
      ({conn_flags}|--connect=*|--group=*|--history=*) conn+=($w) ;;
      (-*) ;;
      (*) if [[ -z $cmd ]]; then cmd=$w; else ((pos++)); ((pos == 1)) && dom=$w; fi ;;
    esac
  done
  case ${{words[CURRENT-1]}} in
    (--history|--keymap) _files; return ;;
    ({with_value}) return 1 ;;
  esac
  case $cmd in
{cases}
    (*) opts=({top}) ;;
  esac
  if [[ ${{words[CURRENT]}} == -* ]]; then
    compadd -a opts
    return
  fi
  if [[ -z $cmd ]]; then
    compadd -a commands
    return
  fi
  case $cmd in
    ({job_commands})
      if ((pos < 2)); then
        local kind=domains
        ((pos == 1)) && kind=jobs
        names=(${{(f)"$(${{words[1]}} list --json --all $conn 2>/dev/null |
                        ${{words[1]}} _complete $kind "$dom" 2>/dev/null)"}})
      fi
      compadd -a names
      ;;
    (completion) ((pos == 0)) && compadd bash zsh ;;
  esac
}}
if [[ ${{zsh_eval_context[-1]}} == loadautofunc ]]; then
  _jobtui "$@"
else
  compdef _jobtui jobtui
fi
"""
