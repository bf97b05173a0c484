"""One machine as a QEMU process: off means no process, on means a running one.

A machine is described by what made it (a lab: `MachineSpec`); the backend knows machines, not
labs.

QEMU runs daemonized (a BMC restart leaves running nodes running), found again by its PID file
and its `-name`. Its serial port is a Unix socket for a live console that also logs everything
to serial.log; SeaBIOS and the NIC's iPXE print there too (sercon), so a boot can be read.
Firmware is SeaBIOS or OVMF (UEFI, its variables kept per node): the node's own, or what its
BIOS setting BootMode says (Bios: SeaBIOS, Uefi: OVMF) once changed. The boot order is the
devices' `bootindex` (disk, NIC, CD), which both firmwares read from QEMU at every reset.
The RAID controller's volumes are more virtio disks (`volume-N.qcow2`, serial QO-VOLUME-N),
attached from the boot after they were made; a deleted volume's disk is gone at that boot. A
UEFI node's secure boot is its variable store's (uefi.py), set before QEMU starts. What a QEMU
was started with is kept beside it (started.json): a reset that asks for other disks, secure
boot or boot mode starts QEMU again, as the firmware reads them only then.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from quintupleo.backends.qemu import uefi
from quintupleo.errors import BackendError
from quintupleo.model import (
    PLAIN_MACHINE,
    BootDevice,
    BootOverride,
    Hardware,
    LogicalDisk,
    MachineSettings,
)

log = logging.getLogger(__name__)

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")

#: the boot devices' QEMU ids, and their usual order: the disk, then the network (a blank disk
#: falls through to PXE, as on a new server), then the virtual CD
DEVICES = {BootDevice.DISK: "disk", BootDevice.PXE: "nic", BootDevice.HTTP: "nic",
           BootDevice.CDROM: "cd"}
USUAL_ORDER = ("disk", "nic", "cd")


@functools.cache
def package_version(package: str) -> str:
    """The installed Debian package's version ("" when dpkg does not know it)."""
    try:
        result = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", package],
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


def boot_order(override: BootOverride) -> tuple[str, ...]:
    """Device ids, first to boot first: the override's device, then the usual order."""
    first = DEVICES.get(override.device)
    if first is None:
        return USUAL_ORDER
    return (first, *(device for device in USUAL_ORDER if device != first))


@dataclass(frozen=True)
class MachineSpec:
    """A machine as the QEMU backend needs to know it."""

    name: str
    uuid: str
    mac: str
    dir: Path                      # its disk, UEFI variables, sockets, logs
    tag: str                       # in its QEMU's -name: finds its process without a PID file
    netdev: str                    # QEMU's -netdev of its one NIC (id net0): a tap, a socket
    cpus: int = 1
    memory_mb: int = 512
    disk_gb: int = 2
    firmware: str = "bios"         # bios (SeaBIOS) or uefi (OVMF)
    accel: str = "tcg"
    runs_under: tuple[str, ...] = ()   # a command QEMU runs under (`ip netns exec NS`)
    extra: dict[str, str] = field(default_factory=dict)   # what inventories add (profile)


class Machine:
    def __init__(self, node: MachineSpec) -> None:
        self.node = node
        self.dir = node.dir
        self.qmp_socket = self.dir / "qmp.sock"
        self.console_socket = self.dir / "console.sock"
        self.serial_log = self.dir / "serial.log"
        self.pid_file = self.dir / "qemu.pid"
        self.disk = self.dir / "disk.qcow2"

    @property
    def tag(self) -> str:
        return self.node.tag

    def volume(self, disk: LogicalDisk) -> Path:
        if not disk.id.isalnum():
            raise BackendError(f"node {self.node.name}: volume id {disk.id!r} is not a name")
        return self.dir / f"volume-{disk.id}.qcow2"

    def firmware(self, settings: MachineSettings) -> str:
        """The firmware this boot runs: "uefi" (OVMF) or "bios" (SeaBIOS)."""
        return {"Uefi": "uefi", "Bios": "bios"}.get(settings.boot_mode, self.node.firmware)

    def argv(self, order: tuple[str, ...], media: str | None = None,
             settings: MachineSettings = PLAIN_MACHINE) -> list[str]:
        node, disks = self.node, settings.disks
        index = {device: number for number, device in enumerate(order, 1)}
        cd = "if=none,id=cd0,media=cdrom,readonly=on" + (f",file={media},format=raw"
                                                          if media else "")
        return [
            *node.runs_under, QEMU, "-name", f"{self.tag},process={self.tag}",
            "-accel", node.accel, "-machine", "pc", "-m", str(node.memory_mb),
            "-smp", str(node.cpus), "-uuid", node.uuid,
            "-smbios", f"type=1,serial={self.serial}",   # what the BMC reports, the OS reads
            "-nodefaults", "-no-user-config", "-display", "none",
            "-S",   # paused until the backend says cont: a console can attach first
            "-daemonize", "-pidfile", str(self.pid_file),
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-chardev", f"socket,id=serial0,path={self.console_socket},server=on,wait=off,"
                        f"logfile={self.serial_log},logappend=on",
            "-serial", "chardev:serial0",
            *self.firmware_args(self.firmware(settings)),
            "-drive", f"file={self.disk},if=none,id=disk0,format=qcow2,cache=unsafe",
            "-device", f"virtio-blk-pci,drive=disk0,id=disk,bootindex={index['disk']}",
            "-drive", cd, "-device", f"ide-cd,drive=cd0,id=cd,bootindex={index['cd']}",
            "-netdev", node.netdev,
            "-device", f"virtio-net-pci,netdev=net0,mac={node.mac},id=nic,"
                       f"bootindex={index['nic']}",
            *[arg for disk in disks for arg in (
                "-drive", f"file={self.volume(disk)},if=none,id=vol{disk.id},format=qcow2,"
                          "cache=unsafe",
                "-device", f"virtio-blk-pci,drive=vol{disk.id},id=volume{disk.id},"
                           f"serial=QO-VOLUME-{disk.id}")],
        ]

    @property
    def serial(self) -> str:
        """The machine's serial number (SMBIOS type 1), from its UUID."""
        return "QO-" + self.node.uuid.replace("-", "")[:12].upper()

    def hardware(self) -> Hardware:
        """The inventory the machine shows: QEMU's `pc` machine with this node's firmware."""
        firmware = ("OVMF", "ovmf") if self.node.firmware == "uefi" else ("SeaBIOS", "seabios")
        return Hardware(manufacturer="QEMU", model="Standard PC (i440FX + PIIX, 1996)",
                        serial=self.serial, secure_boot=self.node.firmware == "uefi",
                        boot_mode="Uefi" if self.node.firmware == "uefi" else "Bios",
                        firmware=" ".join(filter(None, (firmware[0],
                                                        package_version(firmware[1])))))

    def firmware_args(self, firmware: str) -> list[str]:
        if firmware != "uefi":   # SeaBIOS, QEMU's default; its console on COM1 too
            return ["-fw_cfg", f"name=etc/sercon-port,file={self.dir / 'sercon'}"]
        return ["-drive", f"if=pflash,format=raw,readonly=on,file={OVMF_CODE}",
                "-drive", f"if=pflash,format=raw,file={self.dir / 'uefi-vars.fd'}"]

    def create_disk(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # SeaBIOS's serial console (sercon) port, as the little-endian integer it reads
        (self.dir / "sercon").write_bytes((0x3F8).to_bytes(8, "little"))
        if self.node.firmware == "uefi":
            self.create_variables()
        if not self.disk.exists():
            _run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.disk),
                  f"{self.node.disk_gb}G"])

    def create_variables(self) -> None:
        vars_file = self.dir / "uefi-vars.fd"
        if not vars_file.exists():
            shutil.copyfile(uefi.TEMPLATE, vars_file)   # the node's own UEFI variables

    # ---- life -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The node's running QEMU, if any (a stale PID file is not believed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            process = psutil.Process(pid)
            if self.tag in " ".join(process.cmdline()) and process.status() != "zombie":
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def started_with(self, settings: MachineSettings) -> bool:
        """Whether the running QEMU was started with these settings (disks, secure boot)."""
        try:
            started = json.loads((self.dir / "started.json").read_text())
        except (OSError, ValueError):
            return False
        return bool(started == json.loads(json.dumps(dataclasses.asdict(settings))))

    def sync_volumes(self, disks: tuple[LogicalDisk, ...]) -> None:
        """Make the volumes' disk files, and remove those of volumes deleted since."""
        wanted = {self.volume(d): d for d in disks}
        for stale in set(self.dir.glob("volume-*.qcow2")) - set(wanted):
            stale.unlink()
            log.info("node %s: %s removed (its volume was deleted)", self.node.name, stale.name)
        for path, disk in wanted.items():
            if not path.exists():
                _run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), str(disk.capacity)])

    def start(self, order: tuple[str, ...], media: str | None,
              settings: MachineSettings = PLAIN_MACHINE) -> None:
        if self.running():
            return
        self.sync_volumes(settings.disks)
        if self.firmware(settings) == "uefi":
            self.create_variables()
        if self.firmware(settings) == "uefi" and uefi.set_secure_boot(
                self.dir / "uefi-vars.fd", settings.secure_boot, settings.keys):
            log.info("node %s: secure boot %s (keys %s)", self.node.name,
                     "on" if settings.secure_boot else "off",
                     "enrolled" if settings.keys else "deleted")
        (self.dir / "started.json").write_text(json.dumps(dataclasses.asdict(settings)))
        self.pid_file.unlink(missing_ok=True)
        self.qmp_socket.unlink(missing_ok=True)
        self.console_socket.unlink(missing_ok=True)
        if media and not Path(media).exists():   # the lab was made again since it was inserted
            log.warning("node %s: its virtual CD is gone; starting with an empty drive",
                        self.node.name)
            media = None
        _run(self.argv(order, media, settings))   # returns once QEMU has daemonized

    def keep_media(self, download: Path) -> str:
        """Keep a fetched CD image as the node's media, named by its content (the same image
        inserted again is the same media)."""
        digest = hashlib.sha256()
        with download.open("rb") as source:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                digest.update(chunk)
        media = self.dir / f"media-{digest.hexdigest()[:16]}.iso"
        download.replace(media)
        return str(media)

    def prune_media(self, keep: str | None) -> None:
        """Remove CD images other than `keep`: downloads and CDs an insert interrupted by a
        kill of the BMC left in the node's directory."""
        for path in [*self.dir.glob("qo-media-*.iso"), *self.dir.glob("media-*.iso")]:
            if str(path) != keep:
                path.unlink(missing_ok=True)

    def kill(self) -> None:
        """Hard power off: the process ends now (no guest shutdown)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.01)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackendError(f"{Path(argv[0]).name} failed: {result.stderr.strip()[-500:]}")


def find_processes(tag: str) -> list[psutil.Process]:
    """Every QEMU whose -name carries `tag` (a lab's processes, PID files or not)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if cmdline and QEMU in Path(cmdline[0]).name and any(tag in a for a in cmdline):
            found.append(process)
    return found
