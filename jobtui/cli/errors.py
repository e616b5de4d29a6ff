"""Exit codes and the one exception every command raises to end with one."""

from __future__ import annotations

OK = 0
REFUSED = 1  # the engine (or the operator at the prompt) said no; also unexpected failures
USAGE = 2
CONNECTION = 3
NOT_FOUND = 4

EXIT_CODES_HELP = """\
exit status:
  0  done
  1  refused or failed: the engine's reason is printed (also: not confirmed at the prompt)
  2  usage error: bad arguments, a malformed bandwidth, --yes missing without a terminal
  3  connection failure: a host did not connect (libvirt's reason is printed) or did not
     answer within --wait
  4  no such domain or job"""


class CliError(Exception):
    """Ends the command: `message` goes to stderr as one line, `code` is the exit status."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
