"""jobtui: watch and steer long-running libvirt jobs."""

import os as _os

__version__ = "0.1.0"

# libvirt reads its log settings once, when the module is first imported; the
# embedded driver otherwise writes warnings ("tainted: high-privileges") to
# stderr, which corrupts a TUI. Every jobtui module that imports libvirt is
# below this package, so setting it here always comes first. The file is in the
# user's own state directory, never in TMPDIR (see statefiles.py).
if "LIBVIRT_LOG_OUTPUTS" not in _os.environ:
    from jobtui import statefiles as _statefiles

    _os.environ["LIBVIRT_LOG_OUTPUTS"] = _statefiles.libvirt_log_outputs()

# A library: its logs go where the program says. The CLI and the TUI send them to a
# file; without that they are dropped rather than printed over a terminal UI.
import logging as _logging  # noqa: E402

_logging.getLogger("jobtui").addHandler(_logging.NullHandler())
