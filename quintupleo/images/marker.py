"""A 512-byte x86 boot program that prints a marker on COM1 and halts (and a UEFI disk that does
the same through GRUB; and a whole-disk image, GRUB for BIOS and UEFI, for deploys).

Loaded at 0000:7C00 it works both as a disk's boot sector (the BIOS loads it) and as a PXE
network boot program (the NIC's PXE ROM loads it there too): a node that boots one shows, on
its serial console, which one it booted. Nothing is downloaded; a few bytes of machine code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from quintupleo.images.ipxe import EPOCH, GRUB_EFI_MODULES, VOLUME_ID, esp_disk, run_tool
from quintupleo.images.signed import SignedChain

ORIGIN = 0x7C00
#: what the program does once the marker is out: wait forever (no CPU: interrupts are off), or
#: act as a guest would on its own, without its BMC (QEMU's i440fx ACPI PM1a control port;
#: the keyboard controller's reset line)
ENDINGS = {
    "halt": b"",
    "power-off": bytes([0xBA, 0x04, 0x06,         # mov dx, 0x604 (PM1a_CNT)
                        0xB8, 0x00, 0x20,         # mov ax, 0x2000 (SLP_EN, S5)
                        0xEF]),                   # out dx, ax
    "reboot": bytes([0xB0, 0xFE,                  # mov al, 0xfe (pulse the reset line)
                     0xE6, 0x64]),                # out 0x64, al
}


def boot_sector(marker: str, then: str = "halt") -> bytes:
    message = f"\r\n{marker}\r\n".encode() + b"\0"
    tail = ENDINGS[then] + bytes([0xF4,            # done: hlt
                                  0xEB, 0xFD])     # jmp done
    size = 12 + 8 + len(tail)                      # the code below, then the message
    address = ORIGIN + size
    code = bytes([
        0xFA,                                    # cli
        0x31, 0xC0,                              # xor ax, ax
        0x8E, 0xD8,                              # mov ds, ax
        0xFC,                                    # cld
        0xBE, address & 0xFF, address >> 8,      # mov si, message
        0xBA, 0xF8, 0x03,                        # mov dx, 0x3f8 (COM1)
        0xAC,                                    # next: lodsb
        0x84, 0xC0,                              # test al, al
        0x74, 0x03,                              # jz end
        0xEE,                                    # out dx, al
        0xEB, 0xF8,                              # jmp next
    ]) + tail                                    # end:
    assert len(code) == size
    if len(code) + len(message) > 510:
        raise ValueError("marker too long for a boot sector")
    return (code + message).ljust(510, b"\0") + b"\x55\xaa"


def marker_disk(marker: str, size: int = 1 << 16, then: str = "halt") -> bytes:
    """A raw disk of SIZE bytes booting boot_sector(marker), with one partition covering the rest:
    image format inspectors (Glance's) refuse an MBR that defines no partition."""
    sectors = size // 512
    last = sectors - 1          # CHS of the last sector, on the usual 255 heads x 63 sectors
    head, sector = divmod(last, 63)
    entry = bytes([0x80, 0, 2, 0, 0xDA, head & 0xFF, sector + 1, 0]) \
        + (1).to_bytes(4, "little") + (sectors - 1).to_bytes(4, "little")
    sector0 = boot_sector(marker, then)
    return (sector0[:446] + entry + sector0[462:]).ljust(size, b"\0")


def uefi_marker_disk(marker: str, path: Path) -> Path:
    """The UEFI counterpart of marker_disk: an EFI system partition whose GRUB prints the marker
    on the console (OVMF copies it to the serial port) and then idles."""
    # GRUB runs an embedded config with its rescue parser: no loops, so one long sleep
    config = f'set timeout=0\necho "{marker}"\nsleep 86400\n'
    with tempfile.TemporaryDirectory(prefix="qo-marker-") as work:
        esp_disk(path, Path(work), config, {})
    return path


GRUB_PC_MODULES = Path("/usr/lib/grub/i386-pc")
DISK_GRUB_MODULES = "part_gpt fat normal echo sleep test configfile"
DISK_GRUB_CFG = """\
set timeout=0
if [ "$grub_platform" = "pc" ]; then
    serial --unit=0 --speed=115200
    terminal_output --append serial
fi
echo "{marker}"
echo "QuintupleO whole-disk image: GRUB ($grub_platform) booted it from its own disk"
sleep 86400
"""


DISK_MARKER = "QO-DEPLOYED-DISK-4c1a"


BIOS_BOOT_LBA, ESP_LBA = 2048, 4096   # BIOS boot partition (GRUB's core) at 1 MiB, the ESP at 2
DISK_GUIDS = ("51a7e0b0-0000-4000-8000-000000000000", "51a7e0b0-0000-4000-8000-000000000001",
              "51a7e0b0-0000-4000-8000-000000000002")   # fixed: reproducible images


def whole_disk_image(path: Path, marker: str = DISK_MARKER, size: int = 16 << 20,
                     signed: SignedChain | None = None) -> Path:
    """A whole-disk image as provisioning tools deploy them, for BIOS and UEFI alike: GPT with a
    BIOS boot partition (GRUB's core image; boot.img in the protective MBR) and an EFI system
    partition (FAT: GRUB as the removable-media loader and one grub.cfg that prints `marker` on
    the serial console and idles). GPT, not DOS: Ironic's agent finds an ESP by GPT only.
    With `signed`, the removable-media loader is Debian's signed shim and its signed GRUB
    (which finds /boot/grub/grub.cfg too): the image boots with UEFI secure boot on."""
    with tempfile.TemporaryDirectory(prefix="qo-disk-") as scratch:
        work = Path(scratch)
        (work / "grub.cfg").write_text(DISK_GRUB_CFG.format(marker=marker))
        core, loader = work / "core.img", work / "bootx64.efi"
        run_tool("grub-mkimage", "-O", "i386-pc", "-d", GRUB_PC_MODULES,
                 "-p", "(hd0,gpt2)/boot/grub", "-o", core,
                 "biosdisk", "serial", "terminal", *DISK_GRUB_MODULES.split())
        run_tool("grub-mkimage", "-O", "x86_64-efi", "-d", GRUB_EFI_MODULES, "-p", "/boot/grub",
                 "-o", loader, *DISK_GRUB_MODULES.split())
        grub_core = bytearray(core.read_bytes())
        if len(grub_core) > (ESP_LBA - BIOS_BOOT_LBA) * 512:
            raise ValueError("GRUB's core image does not fit its partition")
        with path.open("wb") as disk:
            disk.truncate(size)
        disk_guid, bios_guid, esp_guid = DISK_GUIDS
        run_tool("sgdisk", "-U", disk_guid,
                 "-n", f"1:{BIOS_BOOT_LBA}:{ESP_LBA - 1}", "-t", "1:EF02", "-u", f"1:{bios_guid}",
                 "-c", "1:BIOS boot", "-n", f"2:{ESP_LBA}:0", "-t", "2:EF00",
                 "-u", f"2:{esp_guid}", "-c", "2:EFI system partition", path)
        # boot.img loads the first sector of core.img (diskboot) from kernel_sector; diskboot's
        # block list (the sector's last 12 bytes) names where the rest starts
        boot = bytearray((GRUB_PC_MODULES / "boot.img").read_bytes())
        boot[0x5C:0x64] = BIOS_BOOT_LBA.to_bytes(8, "little")
        grub_core[0x1F4:0x1FC] = (BIOS_BOOT_LBA + 1).to_bytes(8, "little")
        with path.open("r+b") as disk:
            disk.write(bytes(boot[:440]))
            disk.seek(BIOS_BOOT_LBA * 512)
            disk.write(bytes(grub_core))
        esp_offset = ESP_LBA * 512
        run_tool("mkfs.fat", "-i", VOLUME_ID, "--offset", str(ESP_LBA), path,
                 str((size - esp_offset - 34 * 512) // 1024))
        esp = f"{path}@@{esp_offset}"
        loaders = {"BOOTX64.EFI": loader}
        if signed is not None:   # shim loads grubx64.efi from its own directory
            loaders = {"BOOTX64.EFI": work / "shimx64.efi", "grubx64.efi": work / "grubx64.efi"}
            shutil.copyfile(signed.shim, loaders["BOOTX64.EFI"])
            shutil.copyfile(signed.grub, loaders["grubx64.efi"])
        for copied in (*loaders.values(), work / "grub.cfg"):   # mcopy -m keeps their times
            os.utime(copied, (int(EPOCH), int(EPOCH)))
        run_tool("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/boot", "::/boot/grub")
        for name, copied in loaders.items():
            run_tool("mcopy", "-m", "-i", esp, copied, f"::/EFI/BOOT/{name}")
        run_tool("mcopy", "-m", "-i", esp, work / "grub.cfg", "::/boot/grub/grub.cfg")
    return path
