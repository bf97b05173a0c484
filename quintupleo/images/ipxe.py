"""iPXE network-boot disk images, built offline from Debian's prebuilt iPXE.

Debian's iPXE (1.0.0+git-20190125) cannot take an embedded script without a rebuild, and its
source is not in the package registry, so each variant wraps the prebuilt binary in a boot loader
that can:

- **bios**: a FAT "superfloppy" booted by SYSLINUX, which loads `ipxe.lkrn` with our script as
  its initrd (iPXE runs an initrd that is a script). The script tries DHCP/PXE on every NIC in
  turn, sets the MTU first (overlay networks), and starts over after a pause.
- **uefi**: an MBR disk with one EFI system partition holding a GRUB image (config embedded)
  that chain-loads `ipxe.efi`; iPXE's autoboot tries every NIC, and when it gives up GRUB loops.
  This iPXE has no EFI script hook (no `autoexec.ipxe`, no command line), so the MTU comes from
  the DHCP server's option 26, which iPXE applies.

Builds are reproducible (fixed timestamps, volume serial): same inputs, same SHA-256, so an
upload can reuse the identical image already in Glance.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from quintupleo.errors import ConfigError
from quintupleo.paths import state_dir

FIRMWARES = ("bios", "uefi")
IPXE_LKRN = Path("/usr/lib/ipxe/ipxe.lkrn")
IPXE_EFI = Path("/usr/lib/ipxe/ipxe.efi")
GRUB_EFI_MODULES = Path("/usr/lib/grub/x86_64-efi")
GRUB_MODULES = "normal search search_fs_file fat part_msdos chain echo sleep true test"
TOOLS = {"mkfs.fat": "dosfstools", "mcopy": "mtools", "mmd": "mtools", "syslinux": "syslinux",
         "grub-mkimage": "grub-common"}
FILES = {IPXE_LKRN: "ipxe", IPXE_EFI: "ipxe", GRUB_EFI_MODULES: "grub-efi-amd64-bin"}
EPOCH = "1577836800"          # 2020-01-01: FAT cannot hold earlier times; any fixed time will do
VOLUME_ID = "51a7e0b0"
ESP_OFFSET = 1024 * 1024      # the EFI system partition starts at 1 MiB
DEFAULT_MTU = 1442            # fits Geneve (OVN) and VXLAN overlays; harmless on 1500 networks


@dataclass(frozen=True)
class IpxeOptions:
    mtu: int | None = DEFAULT_MTU   # None: leave the NIC's own MTU
    rounds: int = 0                 # passes over all NICs before giving up; 0: never give up
    pause: int = 5                  # seconds between passes

    def __post_init__(self) -> None:
        if self.mtu is not None and not 576 <= self.mtu <= 9000:
            raise ConfigError("mtu must be between 576 and 9000 (or none)")
        if self.rounds < 0 or not 0 <= self.pause <= 3600:
            raise ConfigError("rounds must be >= 0 and pause between 0 and 3600 seconds")


@dataclass(frozen=True)
class BuiltImage:
    firmware: str
    path: Path
    sha256: str
    size: int


def default_dir() -> Path:
    """Where built images are kept (`qo image build`, `env create`)."""
    return state_dir("images")


def ipxe_image_name(firmware: str) -> str:
    """The image's one name: its file (`.img`) and its Glance image."""
    return f"quintupleo-ipxe-{firmware}"


def ipxe_script(options: IpxeOptions) -> str:
    """The BIOS variant's script: every NIC in turn, MTU first, forever or `rounds` times."""
    mtu = f"set net${{idx}}/mtu {options.mtu} ||\n" if options.mtu else ""
    give_up = (f"iseq ${{round}} {options.rounds} && goto give_up ||\n"
               if options.rounds else "")
    return (
        "#!ipxe\n"
        "echo QuintupleO network boot (BIOS)\n"
        "set round:int32 0\n"
        ":round\n"
        "set idx:int32 0\n"
        ":nic\n"
        "isset ${net${idx}/mac} || goto next_round\n"
        f"{mtu}"
        "autoboot net${idx} ||\n"
        "inc idx\n"
        "goto nic\n"
        ":next_round\n"
        "inc round\n"
        f"{give_up}"
        "echo No network boot on any NIC (pass ${round}); trying again\n"
        f"sleep {options.pause}\n"
        "goto round\n"
        ":give_up\n"
        "echo No network boot; giving up\n"
        "exit 1\n")


def grub_config(options: IpxeOptions) -> str:
    """The UEFI variant's GRUB config: chain-load iPXE (autoboot on every NIC) in a loop."""
    loop = ("while true; do" if not options.rounds else
            f"for round in {' '.join(str(i) for i in range(1, options.rounds + 1))}; do")
    return (
        "set timeout=0\n"
        "search --no-floppy --file --set=root /EFI/quintupleo/ipxe.efi\n"
        f"{loop}\n"
        '  echo "QuintupleO network boot (UEFI)"\n'
        "  chainloader /EFI/quintupleo/ipxe.efi\n"
        "  boot\n"
        '  echo "No network boot on any NIC; trying again"\n'
        f"  sleep {options.pause}\n"
        "done\n")


def missing_tools() -> list[str]:
    """Debian packages to install before images can be built (empty when all are there)."""
    packages = {pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None}
    packages |= {pkg for path, pkg in FILES.items() if not path.exists()}
    return sorted(packages)


def build(out_dir: Path, options: IpxeOptions = IpxeOptions(),
          firmwares: tuple[str, ...] = FIRMWARES) -> list[BuiltImage]:
    missing = missing_tools()
    if missing:
        raise ConfigError(f"building iPXE images needs the Debian packages {' '.join(missing)} "
                          "(scripts/setup.sh installs them)")
    out_dir.mkdir(parents=True, exist_ok=True)
    built = []
    with tempfile.TemporaryDirectory(prefix="qo-image-") as tmp:
        work = Path(tmp)
        for firmware in firmwares:
            path = out_dir / f"{ipxe_image_name(firmware)}.img"
            partial = path.with_suffix(".partial")
            partial.unlink(missing_ok=True)
            (_bios if firmware == "bios" else _uefi)(partial, work, options)
            partial.replace(path)   # never a half-written image under the final name
            data = path.read_bytes()
            built.append(BuiltImage(firmware, path, hashlib.sha256(data).hexdigest(), len(data)))
    return built


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def run_tool(*argv: str | Path) -> None:
    env = {**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "MTOOLS_SKIP_CHECK": "1"}
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, env=env,
                            check=False)
    if result.returncode != 0:
        raise ConfigError(f"{Path(str(argv[0])).name} failed: "
                          f"{(result.stderr or result.stdout).strip()[-500:]}")


def _file(work: Path, name: str, text: str) -> Path:
    path = work / name
    path.write_text(text)
    stamp = int(EPOCH)
    os.utime(path, (stamp, stamp))
    return path


def _bios(image: Path, work: Path, options: IpxeOptions) -> None:
    script = _file(work, "boot.ipxe", ipxe_script(options))
    config = _file(work, "syslinux.cfg",
                   "DEFAULT ipxe\nPROMPT 0\nLABEL ipxe\n  LINUX ipxe.lkrn\n  INITRD boot.ipxe\n")
    run_tool("mkfs.fat", "-i", VOLUME_ID, "-C", image, "2048")
    run_tool("syslinux", "--install", image)
    run_tool("mcopy", "-m", "-i", image, IPXE_LKRN, script, config, "::/")


def _uefi(image: Path, work: Path, options: IpxeOptions) -> None:
    esp_disk(image, work, grub_config(options), {IPXE_EFI: "::/EFI/quintupleo/ipxe.efi"})


def esp_disk(image: Path, work: Path, grub_cfg: str, files: dict[Path, str]) -> None:
    """A 4 MiB MBR disk with one EFI system partition: GRUB (config embedded) as the removable
    media boot loader, and `files` at their ESP paths (under ::/EFI/quintupleo)."""
    config = _file(work, "grub.cfg", grub_cfg)
    loader = work / "bootx64.efi"
    run_tool("grub-mkimage", "-O", "x86_64-efi", "-d", GRUB_EFI_MODULES, "-p", "/EFI/BOOT",
         "-c", config, "-o", loader, *GRUB_MODULES.split())
    os.utime(loader, (int(EPOCH), int(EPOCH)))
    size = 4 * 1024 * 1024
    with image.open("wb") as disk:
        disk.write(_mbr(size))
        disk.truncate(size)
    run_tool("mkfs.fat", "-i", VOLUME_ID, "--offset", str(ESP_OFFSET // 512),
         image, str((size - ESP_OFFSET) // 1024))
    esp = f"{image}@@{ESP_OFFSET}"
    run_tool("mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/EFI/quintupleo")
    run_tool("mcopy", "-m", "-i", esp, loader, "::/EFI/BOOT/BOOTX64.EFI")
    for source, target in files.items():
        run_tool("mcopy", "-m", "-i", esp, source, target)


def _mbr(size: int) -> bytes:
    """A DOS partition table with one EFI system partition (type 0xEF) from 1 MiB to the end."""
    start = ESP_OFFSET // 512
    entry = struct.pack("<B3sB3sII", 0, b"\xfe\xff\xff", 0xEF, b"\xfe\xff\xff",
                        start, size // 512 - start)
    return bytes(446) + entry + bytes(48) + b"\x55\xaa"
