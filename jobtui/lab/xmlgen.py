"""libvirt XML for the lab: small domains with no guest OS, and job targets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr


@dataclass(frozen=True)
class DiskSpec:
    target: str  # vda, vdb, sda
    path: Path
    bus: str = "virtio"  # "scsi" puts it on a virtio-scsi controller (hot-unpluggable)


def domain_xml(
    name: str,
    disks: list[DiskSpec],
    *,
    memory_mib: int = 64,
    kvm: bool = True,
    os_xml: str = "",
    extra_devices: str = "",
) -> str:
    os_part = os_xml or "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
    disk_xml = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/>"
        f"<source file={quoteattr(str(d.path))}/>"
        f"<target dev='{d.target}' bus='{d.bus}'/></disk>"
        for d in disks
    )
    scsi = (
        "<controller type='scsi' index='0' model='virtio-scsi'/>"
        if any(d.bus == "scsi" for d in disks)
        else ""
    )
    return (
        f"<domain type='{'kvm' if kvm else 'qemu'}'>"
        f"<name>{escape(name)}</name>"
        f"<memory unit='MiB'>{memory_mib}</memory><vcpu>1</vcpu>"
        f"{os_part}"
        "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot>"
        "<on_crash>destroy</on_crash>"
        "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
        f"{scsi}{disk_xml}{extra_devices}"
        "<memballoon model='none'/></devices></domain>"
    )


def copy_dest_xml(path: Path) -> str:
    return f"<disk type='file'><driver type='qcow2'/><source file={quoteattr(str(path))}/></disk>"


def push_backup_xml(targets: dict[str, Path]) -> str:
    disks = "".join(
        f"<disk name='{t}' type='file'><driver type='qcow2'/>"
        f"<target file={quoteattr(str(p))}/></disk>"
        for t, p in targets.items()
    )
    return f"<domainbackup mode='push'><disks>{disks}</disks></domainbackup>"


def pull_backup_xml(socket: Path, scratch: dict[str, Path]) -> str:
    disks = "".join(
        f"<disk name='{t}' backupmode='full' type='file'><scratch file={quoteattr(str(p))}/></disk>"
        for t, p in scratch.items()
    )
    return (
        "<domainbackup mode='pull'>"
        f"<server transport='unix' socket={quoteattr(str(socket))}/>"
        f"<disks>{disks}</disks></domainbackup>"
    )
