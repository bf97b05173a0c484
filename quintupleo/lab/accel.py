"""KVM or TCG: KVM only when a smoke boot proves it works on this machine.

/dev/kvm can exist and still be broken (internal errors, aborts, or timers that never fire: here
a boot sector runs under KVM but the NIC's iPXE never leaves its Ctrl-B prompt). So the smoke is a
network boot like the lab's: the iPXE ROM must fetch a marker program over QEMU's own TFTP and
the marker must reach the serial port in time, or the lab uses TCG.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from quintupleo.images.marker import boot_sector

SMOKE_TIMEOUT = 20.0
MARKER = "QO-KVM-SMOKE"


def kvm_works() -> bool:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    with tempfile.TemporaryDirectory(prefix="qo-kvm-") as tmp:
        serial = Path(tmp) / "serial.log"
        (Path(tmp) / "boot.bin").write_bytes(boot_sector(MARKER))
        process = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", "kvm", "-machine", "pc", "-nodefaults",
             "-display", "none", "-m", "128", "-serial", f"file:{serial}",
             "-netdev", f"user,id=n0,tftp={tmp},bootfile=boot.bin",
             "-device", "virtio-net-pci,netdev=n0", "-boot", "n"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + SMOKE_TIMEOUT
            while time.monotonic() < deadline and process.poll() is None:
                if serial.exists() and MARKER in serial.read_text(errors="replace"):
                    return True
                time.sleep(0.1)
            return False
        finally:
            process.kill()
            process.wait()


def choose(wanted: str) -> str:
    """`auto`: kvm if the smoke boot passes, else tcg; `kvm` or `tcg`: as asked."""
    if wanted == "auto":
        return "kvm" if kvm_works() else "tcg"
    if wanted not in ("kvm", "tcg"):
        from quintupleo.errors import ConfigError
        raise ConfigError("--accel: auto, kvm or tcg")
    return wanted
