"""Disk images with real data in them, made by qemu-img and qemu-io.

Block jobs skip unallocated clusters instantly, so every image the lab hands
out has its data written for real; bandwidth limits then shape how long a job
lasts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

MiB = 1024 * 1024


class LabError(RuntimeError):
    """Bad input or a broken environment; `str()` is one line for a person."""


def _run(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        raise LabError(f"{argv[0]} is not installed (run scripts/bootstrap.sh)")
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
        raise LabError(f"{argv[0]} failed: {lines[-1]}")
    return proc.stdout


def create_image(
    path: Path,
    size_mib: int,
    *,
    data_mib: int = 0,
    backing: Path | None = None,
    pattern: int = 0x5A,
    offset_mib: int = 0,
) -> Path:
    """A qcow2 image of `size_mib`, with `data_mib` of real data written at `offset_mib`."""
    if size_mib <= 0:
        raise LabError(f"image size must be positive, got {size_mib} MiB")
    if data_mib + offset_mib > size_mib:
        raise LabError(
            f"cannot write {data_mib} MiB at {offset_mib} MiB into a {size_mib} MiB image"
        )
    if path.exists():
        raise LabError(f"image {path} already exists")
    if not path.parent.is_dir():
        raise LabError(f"directory {path.parent} does not exist")
    argv = ["qemu-img", "create", "-q", "-f", "qcow2"]
    if backing is not None:
        if not backing.exists():
            raise LabError(f"backing image {backing} does not exist")
        argv += ["-b", str(backing), "-F", "qcow2"]
    argv += [str(path), f"{size_mib}M"]
    _run(argv)
    if data_mib:
        write_data(path, data_mib, pattern=pattern, offset_mib=offset_mib)
    return path


def write_data(path: Path, data_mib: int, *, pattern: int = 0x5A, offset_mib: int = 0) -> None:
    _run(
        [
            "qemu-io",
            "-f",
            "qcow2",
            "-c",
            f"write -P {pattern:#x} {offset_mib}M {data_mib}M",
            str(path),
        ]
    )


def create_chain(
    directory: Path, stem: str, layers: int, size_mib: int, data_mib: int
) -> list[Path]:
    """base <- ... <- top; each layer holds its own `data_mib` at a different offset.

    Returned base first. Distinct offsets make a pull or commit move real data
    out of every layer.
    """
    if layers < 1:
        raise LabError("a chain needs at least one layer")
    if data_mib * layers > size_mib:
        raise LabError(f"{layers} layers of {data_mib} MiB do not fit in {size_mib} MiB")
    chain: list[Path] = []
    for i in range(layers):
        path = directory / f"{stem}.{i}.qcow2"
        create_image(
            path,
            size_mib,
            data_mib=data_mib,
            backing=chain[-1] if chain else None,
            pattern=0x40 + i,
            offset_mib=i * data_mib,
        )
        chain.append(path)
    return chain


def image_info(path: Path) -> dict[str, object]:
    info: dict[str, object] = json.loads(
        _run(["qemu-img", "info", "-U", "--output=json", str(path)])
    )
    return info
