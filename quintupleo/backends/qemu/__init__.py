"""Lab nodes: QEMU processes on this machine, with real PXE boots."""

from quintupleo.backends.qemu.driver import QemuBackend

__all__ = ["QemuBackend"]
