"""What a running backup is made of, from libvirt's own description of it.

`virDomainBackupGetXMLDesc` answers from libvirt's memory (no QEMU monitor, no job
lock), so the engine reads it once a backup is seen: the disks it copies and where
to are then known at once, not only after a poll happens to catch each disk's block
job (a short backup may finish between two polls).
"""

from __future__ import annotations

from dataclasses import dataclass

import libvirt
from lxml import etree


@dataclass(frozen=True)
class BackupDesc:
    mode: str  # 'push' or 'pull'
    disks: tuple[str, ...]  # targets (vda, ...) the backup copies, in libvirt's order
    targets: tuple[tuple[str, str], ...]  # (disk, file or scratch file) where known
    incremental: str = ""  # the checkpoint an incremental backup starts from
    server: str = ""  # a pull-mode backup's NBD server: socket path or host:port

    def config(self) -> dict[str, str]:
        """The job's config entries this description gives."""
        out = {"mode": self.mode, "disks": ",".join(self.disks)}
        key = "target" if self.mode == "push" else "scratch"
        for disk, path in self.targets:
            out[f"{disk}.{key}"] = path
        if self.incremental:
            out["incremental"] = self.incremental
        if self.server:
            out["server"] = self.server
        return out


def parse_backup(xml: str) -> BackupDesc:
    root = etree.fromstring(xml.encode())
    disks: list[str] = []
    targets: list[tuple[str, str]] = []
    for disk in root.iterfind("./disks/disk"):
        if disk.get("backup", "yes") != "yes":
            continue
        name = disk.get("name", "")
        disks.append(name)
        where = disk.find("target") if root.get("mode", "push") == "push" else disk.find("scratch")
        if where is not None:
            path = where.get("file") or where.get("dev") or ""
            if path:
                targets.append((name, path))
    server = ""
    srv = root.find("server")
    if srv is not None:
        if srv.get("transport") == "unix":
            server = srv.get("socket", "")
        else:
            server = f"{srv.get('name', '')}:{srv.get('port', '')}".rstrip(":")
    inc = root.find("incremental")
    return BackupDesc(
        mode=root.get("mode", "push"),
        disks=tuple(disks),
        targets=tuple(targets),
        incremental=(inc.text or "").strip() if inc is not None else "",
        server=server,
    )


def read_backup(dom: libvirt.virDomain) -> BackupDesc | None:
    """The running backup's description, or None once it has ended."""
    try:
        return parse_backup(dom.backupGetXMLDesc(0))
    except libvirt.libvirtError as err:
        if err.get_error_code() in (
            libvirt.VIR_ERR_NO_DOMAIN_BACKUP,
            libvirt.VIR_ERR_NO_DOMAIN,
            libvirt.VIR_ERR_OPERATION_INVALID,
        ):
            return None
        raise
