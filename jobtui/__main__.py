"""`python -m jobtui`: the same as the `jobtui` command."""

import jobtui  # noqa: F401 - first: it keeps libvirt's own logging off stderr
from jobtui.cli import entry

entry()
