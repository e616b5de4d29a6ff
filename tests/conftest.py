"""Fixtures on the real embedded QEMU lab; nothing here is mocked."""

from __future__ import annotations

import itertools
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobtui.lab import Lab

_names = itertools.count(1)


def qemu_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "qemu-system" in line and marker in line]


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """One embedded lab for the session: a fresh root pays a capability probe once."""
    lab = Lab(prefix=f"jobtui-lab-test-{uuid.uuid4().hex[:6]}-")
    root = lab.root
    try:
        yield lab
    finally:
        lab.close()
    # The lab must leave nothing behind: no QEMU process, no directory.
    assert not qemu_processes(str(root)), qemu_processes(str(root))
    assert not Path(root).exists(), f"{root} left behind"


@pytest.fixture
def domname(lab: Lab) -> Iterator[str]:
    """A unique domain name; the domain is destroyed after the test."""
    name = f"t{next(_names)}-{uuid.uuid4().hex[:4]}"
    yield name
    lab.remove(name)
