"""The iPXE images really network-boot: QEMU (TCG) with SeaBIOS and with OVMF, two NICs of
which the first gets no DHCP answer, QEMU's own DHCP/TFTP on the second serving a script."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from quintupleo.images.ipxe import build

OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
MARKER = "QO-PXE-MARKER-7d1f"

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86 is not installed")


def qemu(image: Path, firmware: str, tmp: Path) -> tuple[subprocess.Popen, Path]:
    serial = tmp / f"{firmware}.serial"
    args = ["qemu-system-x86_64", "-accel", "tcg", "-m", "512", "-display", "none",
            "-no-user-config", "-nodefaults", "-serial", f"file:{serial}",
            "-drive", f"file={image},format=raw,if=virtio,snapshot=on",
            # net0: a hub with nothing else on it -- DHCP gets no answer there
            "-netdev", "hubport,id=dead,hubid=9", "-device", "virtio-net-pci,netdev=dead",
            "-netdev", f"user,id=live,tftp={tmp / 'tftp'},bootfile=boot.ipxe",
            "-device", "virtio-net-pci,netdev=live"]
    if firmware == "uefi":
        shutil.copy(OVMF_VARS, tmp / "vars.fd")
        args += ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                 "-drive", f"if=pflash,format=raw,file={tmp / 'vars.fd'}"]
    else:   # SeaBIOS prints to the serial port too (sercon), so iPXE's console shows there
        (tmp / "sercon").write_bytes((0x3F8).to_bytes(8, "little"))
        args += ["-fw_cfg", f"name=etc/sercon-port,file={tmp / 'sercon'}"]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), serial


def test_both_images_network_boot_on_the_nic_that_answers(tmp_path):
    images = {i.firmware: i.path for i in build(tmp_path / "images")}
    (tmp_path / "tftp").mkdir()
    (tmp_path / "tftp" / "boot.ipxe").write_text(f"#!ipxe\necho {MARKER} ${{mac}}\nsleep 60\n")
    running = {fw: qemu(path, fw, tmp_path) for fw, path in images.items()}
    seen: dict[str, str] = {}
    deadline = time.monotonic() + 150
    try:
        while len(seen) < len(running) and time.monotonic() < deadline:
            for firmware, (_, serial) in running.items():
                text = serial.read_text(errors="replace") if serial.exists() else ""
                if MARKER in text:
                    seen[firmware] = text
            time.sleep(0.5)
    finally:
        for proc, _ in running.values():
            proc.kill()
            proc.wait()
    assert set(seen) == {"bios", "uefi"}, {fw: s.read_text(errors="replace")[-800:]
                                           for fw, (_, s) in running.items()}
    for firmware, text in seen.items():
        assert f"QuintupleO network boot ({firmware.upper()})" in text
        # net0 failed, net1 (the second MAC) booted the script
        assert re.search(rf"{MARKER} 52:54:00:12:34:57", text), text[-800:]
