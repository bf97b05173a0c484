"""A Linux guest built here, for real VMs: Debian's kernel (unpacked by setup.sh, with the
modules of its virtio NIC) and an initramfs of busybox-static whose /init runs a script, in a
cpio archive written here (there is no cpio binary). The script's output is on the serial
console; it ends with `poweroff -f`, so the VM costs no CPU once done."""

from __future__ import annotations

import os
from pathlib import Path

from quintupleo.images.cpio import newc as cpio

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quintupleo" / "linux"
KERNEL = CACHE / "vmlinuz"
MODULES = ("virtio_ring.ko", "virtio.ko", "virtio_pci_legacy_dev.ko", "virtio_pci_modern_dev.ko",
           "virtio_pci.ko", "failover.ko", "net_failover.ko", "virtio_net.ko")   # in load order
BUSYBOX = Path("/bin/busybox")

PRELUDE = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for module in {modules}; do insmod /lib/$module; done
"""


def initramfs(script: str) -> bytes:
    """/init: load the NIC's modules, then SCRIPT (busybox sh), then power off."""
    init = PRELUDE.format(modules=" ".join(MODULES)) + script + "\npoweroff -f\n"
    directory = 0o040755
    return cpio([
        *((name, directory, b"", (0, 0)) for name in ("bin", "dev", "lib", "proc", "sys")),
        ("dev/console", 0o020600, b"", (5, 1)),
        ("bin/busybox", 0o100755, BUSYBOX.read_bytes(), (0, 0)),
        *((f"lib/{m}", 0o100644, (CACHE / "modules" / m).read_bytes(), (0, 0))
          for m in MODULES),
        ("init", 0o100755, init.encode(), (0, 0)),
    ])
