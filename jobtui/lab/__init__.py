"""The embedded QEMU lab (product code: `jobtui demo` and the tests run on it)."""

from jobtui.lab.core import BackgroundCall, Lab, kvm_usable
from jobtui.lab.images import LabError, MiB
from jobtui.lab.xmlgen import DiskSpec

__all__ = ["BackgroundCall", "DiskSpec", "Lab", "LabError", "MiB", "kvm_usable"]
