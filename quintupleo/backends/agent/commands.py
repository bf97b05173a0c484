"""What the fake agent answers to each command of Ironic Python Agent's API (`POST
/v1/commands/`, `{"name": "EXTENSION.COMMAND", "params": {...}}`), as IPA 13 answers it.

Steps and image writes take `delay` seconds and succeed: nothing is erased or written. A
command this table does not know is refused as IPA refuses it (HTTP 400, "Unknown command").
"""

from __future__ import annotations

import base64
import io
import tarfile
from dataclasses import dataclass
from typing import Any

HARDWARE_MANAGER = "GenericHardwareManager"
HARDWARE_MANAGER_VERSION = {HARDWARE_MANAGER: "1.2"}


def _step(name: str, priority: int, interface: str = "deploy", **extra: Any) -> dict[str, Any]:
    return {"step": name, "priority": priority, "interface": interface,
            "reboot_requested": False, "abortable": True, **extra}


# IPA's generic hardware manager's steps (the ones Ironic's defaults run, and their siblings)
CLEAN_STEPS = [_step("erase_devices", 10), _step("erase_devices_metadata", 99),
               _step("erase_pstore", 0), _step("delete_configuration", 0, "raid"),
               _step("create_configuration", 0, "raid"), _step("burnin_cpu", 0)]
DEPLOY_STEPS = [_step("erase_devices_metadata", 0), _step("apply_configuration", 0, "raid",
                argsinfo={"raid_config": {"description": "The RAID configuration to apply.",
                                          "required": True}}),
                _step("write_image", 0), _step("inject_files", 0)]
SERVICE_STEPS = [_step("burnin_cpu", 0), _step("burnin_disk", 0)]


class UnknownCommand(Exception):
    pass


@dataclass(frozen=True)
class Outcome:
    """A command's result; `slow`: it runs in the background (RUNNING until `delay` passed);
    `then`: what the node does after it (power off, reboot)."""

    result: dict[str, Any] | None
    slow: bool = False
    then: str | None = None


def run(name: str, params: dict[str, Any]) -> Outcome:
    """The outcome of command `name` (EXTENSION.COMMAND)."""
    extension, _, command = name.partition(".")
    if (extension, command) == ("clean", "get_clean_steps"):
        return Outcome({"clean_steps": {HARDWARE_MANAGER: CLEAN_STEPS},
                        "hardware_manager_version": HARDWARE_MANAGER_VERSION})
    if (extension, command) == ("deploy", "get_deploy_steps"):
        return Outcome({"deploy_steps": {HARDWARE_MANAGER: DEPLOY_STEPS},
                        "hardware_manager_version": HARDWARE_MANAGER_VERSION})
    if (extension, command) == ("service", "get_service_steps"):
        return Outcome({"service_steps": {HARDWARE_MANAGER: SERVICE_STEPS},
                        "hardware_manager_version": HARDWARE_MANAGER_VERSION})
    if command in ("execute_clean_step", "execute_deploy_step", "execute_service_step"):
        kind = command.split("_")[1]             # clean, deploy, service
        return Outcome({f"{kind}_result": None, f"{kind}_step": params.get("step")}, slow=True)
    if (extension, command) == ("standby", "get_partition_uuids"):
        # a whole-disk image: the disk's identifier stands for the root partition's
        return Outcome({"root uuid": "0x5154f01e", "efi system partition uuid": None,
                        "PReP Boot partition uuid": None, "partitions": {}})
    if (extension, command) in (("image", "install_bootloader"), ("standby", "sync"),
                                ("standby", "prepare_image"), ("standby", "cache_image"),
                                ("rescue", "finalize_rescue")):
        return Outcome(None, slow=command in ("install_bootloader", "prepare_image",
                                              "cache_image"))
    if (extension, command) == ("standby", "power_off"):
        return Outcome(None, slow=True, then="power off")
    if (extension, command) in (("standby", "run_image"), ("standby", "reboot")):
        return Outcome(None, slow=True, then="reboot")
    if (extension, command) == ("system", "lockdown"):
        return Outcome(None, then="lockdown")
    if (extension, command) == ("log", "collect_system_logs"):
        return Outcome({"system_logs": _logs()})
    raise UnknownCommand(f"Unknown command: {name}")


def _logs() -> str:
    """What IPA sends: a base64 gzipped tar; ours holds one file saying what this is."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        text = b"QuintupleO fake agent: no logs (nothing ran)\n"
        info = tarfile.TarInfo("README")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return base64.b64encode(data.getvalue()).decode()
