"""The words of the field as pure data: power state, boot device and mode, boot override, node."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class PowerState(StrEnum):
    ON = "on"
    OFF = "off"


class PowerAction(StrEnum):
    """What a chassis control / Redfish reset asks of the hardware."""

    ON = "on"
    OFF = "off"                  # hard power off
    SOFT_OFF = "soft_off"        # ACPI / graceful shutdown
    RESET = "reset"              # hard reset: the node reboots at once
    SOFT_RESET = "soft_reset"    # graceful restart (the OS reboots)
    CYCLE = "cycle"              # power off, then on
    DIAG_INTERRUPT = "diag_interrupt"  # NMI

    @property
    def target(self) -> PowerState | None:
        """The power state the node ends in (None: unchanged)."""
        if self in (PowerAction.OFF, PowerAction.SOFT_OFF):
            return PowerState.OFF
        if self is PowerAction.DIAG_INTERRUPT:
            return None
        return PowerState.ON

    @property
    def boots(self) -> bool:
        """Whether the node performs a boot (and so consumes a one-time boot override)."""
        return self in (PowerAction.ON, PowerAction.RESET, PowerAction.SOFT_RESET,
                        PowerAction.CYCLE)


class BootDevice(StrEnum):
    NONE = "none"    # no override: the node's own boot order
    PXE = "pxe"
    DISK = "disk"
    CDROM = "cdrom"
    BIOS = "bios"    # firmware setup
    HTTP = "http"    # UEFI HTTP boot


class BootMode(StrEnum):
    LEGACY = "legacy"
    UEFI = "uefi"


@dataclass(frozen=True)
class LogicalDisk:
    """A volume of the node's RAID controller, as the machine would see a disk: its id (the
    controller's) and size in bytes."""

    id: str
    capacity: int


@dataclass(frozen=True)
class MachineSettings:
    """What the BMC's platform asks of the machine at a boot: its RAID volumes as disks, UEFI
    secure boot (on or off; `keys`: the default keys enrolled, else setup mode), and the BIOS's
    boot mode ("Bios" or "Uefi"; empty: the machine's own)."""

    disks: tuple[LogicalDisk, ...] = ()
    secure_boot: bool = False
    keys: bool = True
    boot_mode: str = ""


PLAIN_MACHINE = MachineSettings()   # no volumes, secure boot off


@dataclass(frozen=True)
class BootOverride:
    """The next boot's (or every boot's, if persistent) device, as a BMC's boot flags say it."""

    device: BootDevice = BootDevice.NONE
    persistent: bool = False
    mode: BootMode = BootMode.LEGACY

    @property
    def active(self) -> bool:
        return self.device is not BootDevice.NONE


@dataclass(frozen=True)
class Hardware:
    """What a node's SMBIOS tables and firmware say it is: the inventory a BMC reports."""

    manufacturer: str = "QuintupleO"
    model: str = "Virtual machine"
    serial: str = ""
    firmware: str = ""                 # the BIOS/UEFI firmware and its version, if known
    cpu_model: str = "QEMU Virtual CPU"
    disk_protocol: str = "PCIe"        # virtio-blk is a PCI device (Redfish's Protocol)
    secure_boot: bool = False          # the firmware can enforce secure boot (keys enrolled)
    # secure boot fixed outside the BMC (a cloud's image or flavor says it): on or off, not the
    # BMC's to switch; None: the firmware's own switch, as `secure_boot` allows
    secure_boot_fixed: bool | None = None
    boot_mode: str = "Bios"            # the firmware's boot mode as delivered: Bios or Uefi


@dataclass(frozen=True)
class NodeInfo:
    """What a backend knows of one node: identity and what an inventory needs."""

    id: str                      # the backend's stable id (Nova server UUID, fake-N)
    name: str
    uuid: str                    # the node's system UUID (SMBIOS / IPMI GUID)
    macs: tuple[str, ...] = ()
    cpus: int = 1
    memory_mb: int = 512
    local_gb: int = 1
    cpu_arch: str = "x86_64"
    extra: dict[str, str] = field(default_factory=dict, compare=False)
    hardware: Hardware = field(default_factory=Hardware, compare=False)


@dataclass(frozen=True)
class Observation:
    """One backend reading of a node: its power state, and whether a transition is still running."""

    power: PowerState
    busy: bool = False           # the backend is in the middle of a change (e.g. a Nova task)
    fault: str | None = None     # the backend's last task failed (e.g. a Nova server in ERROR)


@dataclass(frozen=True)
class Credentials:
    """A BMC user name and password; the password never shows in a repr or a log."""

    username: str
    password: str = field(repr=False)

    @property
    def key(self) -> bytes:
        """IPMI's Kuid: the password as a 20-byte key (IPMI 2.0 passwords are ≤ 20 bytes)."""
        return self.password.encode()[:20].ljust(20, b"\0")
