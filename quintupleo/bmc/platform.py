"""The node's platform firmware as its BMC emulates it: BIOS settings, firmware versions, RAID
volumes and the location indicator.

Like a real BIOS, settings are changed by staging them (the pending settings) and take effect
at the node's next boot; a BIOS reset stages the defaults the same way. The indicator (IPMI
`chassis identify`, Redfish `LocationIndicatorActive` / `IndicatorLED`) is the BMC's own and
changes at once. Both survive a restart of the BMC (the boot store keeps them). The event log
(IPMI's SEL) records each power change the BMC sees; it lives as long as the BMC process.
What a virtual machine's firmware cannot act on is only recorded: these settings are what a
BMC reports, and what Ironic's bios interface checks, not switches inside QEMU or Nova.
Firmware versions change as an update is applied: the BMC's at once, the BIOS's at the next
boot (`on_boot` tells whoever waits for it). RAID volumes are raid.py's rules, kept here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quintupleo import __version__
from quintupleo.bmc import raid
from quintupleo.bmc.store import BootStore
from quintupleo.errors import InvalidSetting
from quintupleo.model import LogicalDisk, MachineSettings

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Attribute:
    """One BIOS attribute as its registry describes it."""

    name: str
    kind: str                          # Enumeration, Integer, String, Boolean
    default: Any
    text: str
    values: tuple[str, ...] = ()       # an Enumeration's allowable values
    lower: int | None = None
    upper: int | None = None
    max_length: int | None = None
    read_only: bool = False

    def check(self, value: Any) -> None:
        if self.read_only:
            raise InvalidSetting(f"BIOS attribute {self.name} is read-only")
        if not self._fits(value):
            raise InvalidSetting(f"{value!r} is not a valid value of BIOS attribute {self.name}")

    def _fits(self, value: Any) -> bool:
        if self.kind == "Enumeration":
            return isinstance(value, str) and value in self.values
        if self.kind == "Integer":
            return (isinstance(value, int) and not isinstance(value, bool)
                    and (self.lower is None or value >= self.lower)
                    and (self.upper is None or value <= self.upper))
        if self.kind == "String":
            return isinstance(value, str) and (self.max_length is None
                                               or len(value) <= self.max_length)
        return isinstance(value, bool)


#: the settings a virtual node's BIOS has, with their factory defaults
REGISTRY = (
    Attribute("BootMode", "Enumeration", "Bios", "Boot mode", values=("Bios", "Uefi")),
    Attribute("ProcVirtualization", "Enumeration", "Enabled", "Processor virtualization",
              values=("Enabled", "Disabled")),
    Attribute("NumLock", "Enumeration", "On", "NumLock at boot", values=("On", "Off")),
    Attribute("PxeRetries", "Integer", 1, "Network boot attempts", lower=0, upper=10),
    Attribute("AssetTag", "String", "", "Asset tag", max_length=32),
    Attribute("SerialConsole", "Boolean", True, "Console redirection to COM1"),
    Attribute("FirmwareRevision", "String", "1.0", "BIOS revision", read_only=True),
)
ATTRIBUTES = {a.name: a for a in REGISTRY}
DEFAULTS = {a.name: a.default for a in REGISTRY}
INDICATOR_STATES = ("Off", "Lit", "Blinking")
#: what a node's sensors read, (on, off): a nominal draw and warmth while it runs, none drawn
#: and room temperature when off; a virtual machine has no fans or power supplies to report
POWER_WATTS = (25, 0)
INLET_CELSIUS = (24, 21)
EVENT_LOG_SIZE = 512   # the oldest events go first, as in a full SEL set to overwrite


@dataclass(frozen=True)
class Event:
    """One entry of the node's event log: when (Unix time), and what ("power on", …)."""

    id: int
    time: int
    what: str


class Platform:
    """One node's BIOS settings (current and pending) and indicator, persisted."""

    def __init__(self, node: str, key: str, store: BootStore, secure_boot: bool = False,
                 bios_version: str = "", disk_bytes: int = 1 << 30, boot_mode: str = "Bios",
                 fixed_secure_boot: bool | None = None) -> None:
        self.node, self.key, self.store = node, key, store
        saved = store.load_platform(key)
        self.bios_version: str = saved.get("bios_version", bios_version)
        self.bios_version_pending: str | None = saved.get("bios_version_pending")
        self.bmc_version: str = saved.get("bmc_version", __version__)
        self.on_boot: list[Callable[[], None]] = []   # called once, at the next boot
        self.drive_bytes = disk_bytes                 # each RAID drive: as large as the disk
        self.volumes = [raid.Volume.from_dict(v) for v in saved.get("volumes", [])]
        # secure boot: keys enrolled (UserMode) where the firmware has them, else SetupMode
        self._can_have_keys = secure_boot
        self.has_keys = secure_boot and saved.get("keys", True) is True
        self.secure_boot = self.has_keys and saved.get("secure_boot", False) is True
        self.secure_boot_now = self.has_keys and saved.get("secure_boot_now", False) is True
        self.fixed_secure_boot = fixed_secure_boot   # set by the cloud, not here
        if fixed_secure_boot is not None:
            self.has_keys = self.secure_boot = self.secure_boot_now = fixed_secure_boot
        current = saved.get("bios", {})
        if "factory_boot_mode" not in saved:   # kept before BootMode acted on a lab's firmware,
            current.pop("BootMode", None)      # when it was "Bios" on every node: not a choice
        # the factory settings: the registry's defaults, the boot mode the firmware came with
        self.defaults = {**DEFAULTS, "BootMode": boot_mode}
        self.bios: dict[str, Any] = {**self.defaults, **{k: v for k, v in current.items()
                                                         if k in ATTRIBUTES}}
        self.pending: dict[str, Any] = {k: v for k, v in saved.get("pending", {}).items()
                                        if k in ATTRIBUTES}
        self.indicator: str = saved.get("indicator", "Off")
        if self.indicator not in INDICATOR_STATES:
            self.indicator = "Off"
        self._indicator_timer: asyncio.TimerHandle | None = None
        self.events: deque[Event] = deque(maxlen=EVENT_LOG_SIZE)   # since the BMC started
        self._next_event = 1
        self.events_cleared = 0   # when the log was last cleared (Unix time; 0: never)

    def log_event(self, what: str) -> None:
        self.events.append(Event(self._next_event, int(time.time()), what))
        self._next_event = self._next_event % 0xFFFE + 1   # IPMI record IDs: 1..0xFFFE

    def clear_events(self) -> None:
        self.events.clear()
        self.events_cleared = int(time.time())

    def stage(self, attributes: dict[str, Any]) -> None:
        """Settings to apply at the next boot (all checked first: none staged if one fails)."""
        for name, value in attributes.items():
            attribute = ATTRIBUTES.get(name)
            if attribute is None:
                raise InvalidSetting(f"the BIOS has no attribute {name}")
            attribute.check(value)
        self.pending.update(attributes)
        self._save()
        log.info("node %s: BIOS settings staged for the next boot: %s", self.node,
                 ", ".join(sorted(attributes)))

    def reset_to_defaults(self) -> None:
        """ResetBios: the factory defaults, at the next boot."""
        self.pending = {k: v for k, v in self.defaults.items() if not ATTRIBUTES[k].read_only}
        self._save()
        log.info("node %s: BIOS reset to defaults at the next boot", self.node)

    def enable_secure_boot(self, enabled: bool) -> None:
        """Secure boot at the next boot (only with keys enrolled)."""
        if self.fixed_secure_boot is not None and enabled != self.fixed_secure_boot:
            raise InvalidSetting(
                f"node {self.node}: secure boot is {'on' if self.fixed_secure_boot else 'off'} "
                "as its cloud sets it (the image's os_secure_boot property, or the flavor's "
                "os:secure_boot), which the BMC cannot change")
        if enabled and not self.has_keys:
            raise InvalidSetting(f"node {self.node}: its firmware has no secure boot keys "
                                 "(setup mode): secure boot cannot be enabled")
        self.secure_boot = enabled
        self._save()
        log.info("node %s: secure boot %s at the next boot", self.node,
                 "enabled" if enabled else "disabled")

    def reset_keys(self, keep: bool) -> None:
        """ResetKeys: the default keys again (`keep`), or none (setup mode, secure boot off)."""
        if keep and not self.has_keys and not self._can_have_keys:
            raise InvalidSetting(f"node {self.node}: its firmware has no secure boot keys")
        if self.fixed_secure_boot is not None and keep != self.has_keys:
            raise InvalidSetting(f"node {self.node}: its secure boot keys are its cloud's")
        self.has_keys = keep
        if not keep:
            self.secure_boot = False
        self._save()

    def create_volume(self, raid_type: str, drives: list[int] | None, capacity: int | None,
                      name: str | None) -> raid.Volume:
        volume = raid.plan(self.volumes, raid_type, drives, capacity, name, self.drive_bytes)
        self.volumes.append(volume)
        self._save()
        log.info("node %s: RAID volume %s created (%s, %d bytes, drives %s)", self.node,
                 volume.id, raid_type, volume.capacity, list(volume.drives))
        return volume

    def machine_settings(self) -> MachineSettings:
        """What the next boot asks of the machine: the volumes as disks, secure boot, and the
        boot mode that boot will have (the pending setting, which it applies)."""
        mode = self.pending.get("BootMode", self.bios["BootMode"])
        return MachineSettings(tuple(LogicalDisk(v.id, v.capacity) for v in self.volumes),
                               self.secure_boot, self.has_keys, str(mode))

    def delete_volume(self, volume_id: str) -> None:
        self.volumes = [v for v in self.volumes if v.id != volume_id]
        self._save()
        log.info("node %s: RAID volume %s deleted", self.node, volume_id)

    def flash_bmc(self, version: str) -> None:
        self.bmc_version = version
        self._save()
        log.info("node %s: BMC firmware %s", self.node, version)

    def stage_bios(self, version: str) -> None:
        """A BIOS image written to the flash: it runs from the next boot on."""
        self.bios_version_pending = version
        self._save()
        log.info("node %s: BIOS firmware %s staged for the next boot", self.node, version)

    def booted(self) -> None:
        """The node boots: its firmware takes the pending settings and image."""
        if self.bios_version_pending is not None:
            self.bios_version, self.bios_version_pending = self.bios_version_pending, None
            self._save()
            log.info("node %s: BIOS firmware %s runs", self.node, self.bios_version)
        if self.secure_boot_now != self.secure_boot:
            self.secure_boot_now = self.secure_boot
            self._save()
        if self.pending:
            self.bios.update(self.pending)
            log.info("node %s: BIOS settings applied at boot: %s", self.node,
                     ", ".join(sorted(self.pending)))
            self.pending = {}
            self._save()
        waiting, self.on_boot = self.on_boot, []
        for callback in waiting:
            callback()

    def set_indicator(self, state: str, for_seconds: float | None = None) -> None:
        """Set the indicator; with `for_seconds`, it goes off again by itself (IPMI's timed
        identify)."""
        if state not in INDICATOR_STATES:
            raise InvalidSetting(f"{state!r} is not an indicator state")
        if self._indicator_timer is not None:
            self._indicator_timer.cancel()
            self._indicator_timer = None
        if for_seconds is not None:
            self._indicator_timer = asyncio.get_running_loop().call_later(
                for_seconds, self.set_indicator, "Off")
        if state != self.indicator:
            self.indicator = state
            self._save()
            log.info("node %s: location indicator %s", self.node, state.lower())

    def _save(self) -> None:
        self.store.save_platform(self.key, {
            "bios": self.bios, "pending": self.pending, "indicator": self.indicator,
            "keys": self.has_keys, "secure_boot": self.secure_boot,
            "secure_boot_now": self.secure_boot_now, "bios_version": self.bios_version,
            "factory_boot_mode": self.defaults["BootMode"],
            "bios_version_pending": self.bios_version_pending, "bmc_version": self.bmc_version,
            "volumes": [v.as_dict() for v in self.volumes]})
