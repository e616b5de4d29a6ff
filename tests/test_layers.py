"""The layering rule, checked on what Python really imports."""

from __future__ import annotations

import subprocess
import sys


def _modules_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_engine_and_lab_never_import_textual() -> None:
    mods = _modules_after("import jobtui.engine.monitor, jobtui.engine.control, jobtui.lab")
    assert "libvirt" in mods
    assert not {m for m in mods if m == "textual" or m.startswith("textual.")}


def test_tui_never_imports_libvirt() -> None:
    mods = _modules_after("import jobtui.tui.app, jobtui.recorded")
    assert "textual" in mods
    assert "libvirt" not in mods and "libvirt_qemu" not in mods
