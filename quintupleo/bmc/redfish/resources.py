"""Redfish resources as JSON, built from node controllers on every read (no cloud call)."""

from __future__ import annotations

import json
import uuid
from typing import Any

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.redfish import inventory
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata
from quintupleo.errors import BmcError
from quintupleo.model import BootDevice, BootMode, BootOverride, PowerAction, PowerState

SERVICE_UUID = uuid.UUID("8c1b9e43-5a8f-4d0e-a2a4-6b1f1f6a7c0e")

RESET_TYPES = {
    "On": PowerAction.ON,
    "ForceOff": PowerAction.OFF,
    "GracefulShutdown": PowerAction.SOFT_OFF,
    "GracefulRestart": PowerAction.SOFT_RESET,
    "ForceRestart": PowerAction.RESET,
    "PowerCycle": PowerAction.CYCLE,
    "Nmi": PowerAction.DIAG_INTERRUPT,
}
BOOT_TARGETS = {
    "None": BootDevice.NONE, "Pxe": BootDevice.PXE, "Hdd": BootDevice.DISK,
    "Cd": BootDevice.CDROM, "BiosSetup": BootDevice.BIOS, "UefiHttp": BootDevice.HTTP,
}
BOOT_MODES = {"UEFI": BootMode.UEFI, "Legacy": BootMode.LEGACY}
BOOT_ENABLED = ("Disabled", "Once", "Continuous")
INDICATOR = ("IndicatorLED", "LocationIndicatorActive")   # one LED, two ways to say it


def service_root() -> dict[str, Any]:
    return odata("ServiceRoot.v1_20_0.ServiceRoot", f"{ROOT}/", Id="RootService",
                 Name="QuintupleO virtual BMC", RedfishVersion="1.20.0",
                 UUID=str(SERVICE_UUID), Product="QuintupleO",
                 Systems=link(f"{ROOT}/Systems"), Managers=link(f"{ROOT}/Managers"),
                 Chassis=link(f"{ROOT}/Chassis"),
                 SessionService=link(f"{ROOT}/SessionService"),
                 Registries=link(f"{ROOT}/Registries"),
                 EventService=link(f"{ROOT}/EventService"),
                 AccountService=link(f"{ROOT}/AccountService"),
                 UpdateService=link(f"{ROOT}/UpdateService"),
                 Tasks=link(f"{ROOT}/TaskService"),
                 Links={"Sessions": link(f"{ROOT}/SessionService/Sessions")})


def odata_service_document(controllers: list[NodeController]) -> dict[str, Any]:
    names = ("Systems", "Managers", "Chassis", "SessionService", "AccountService",
             "Registries", "EventService", "UpdateService")
    return {"@odata.context": f"{ROOT}/$metadata",
            "value": [{"name": n, "kind": "Singleton", "url": f"{ROOT}/{n}"} for n in names]
            + [{"name": "Tasks", "kind": "Singleton", "url": f"{ROOT}/TaskService"}]}


def _status(controller: NodeController) -> dict[str, str]:
    if controller.missing:
        return {"State": "Absent", "Health": "Critical"}
    return {"State": "Enabled", "Health": "Critical" if controller.fault else "OK"}


def power_state(controller: NodeController) -> str | None:
    if controller.transition is not None:   # a staged boot (rescue, rebuild) under way
        return "PoweringOn" if controller.transition is PowerState.ON else "PoweringOff"
    try:
        return "On" if controller.power_state() is PowerState.ON else "Off"
    except BmcError:
        return None


def reset_types(controller: NodeController) -> list[str]:
    return [name for name, action in RESET_TYPES.items() if controller.supports(action)]


def system(controller: NodeController) -> dict[str, Any]:
    info, override = controller.info, controller.override
    path = f"{ROOT}/Systems/{info.id}"
    target = next(k for k, v in BOOT_TARGETS.items() if v is override.device)
    enabled = "Disabled" if not override.active else (
        "Continuous" if override.persistent else "Once")
    return odata(
        "ComputerSystem.v1_27_0.ComputerSystem", path, Id=info.id, Name=info.name,
        UUID=info.uuid, SystemType="Virtual", Manufacturer=info.hardware.manufacturer,
        Model=info.hardware.model, PowerState=power_state(controller),
        Status=_status(controller), **inventory.summaries(controller),
        Boot={
            "BootSourceOverrideTarget": target,
            "BootSourceOverrideTarget@Redfish.AllowableValues": [
                name for name, device in BOOT_TARGETS.items()
                if device is BootDevice.NONE or device in controller.boot_devices],
            "BootSourceOverrideEnabled": enabled,
            "BootSourceOverrideEnabled@Redfish.AllowableValues": list(BOOT_ENABLED),
            "BootSourceOverrideMode": "UEFI" if override.mode is BootMode.UEFI else "Legacy",
            "BootSourceOverrideMode@Redfish.AllowableValues": list(BOOT_MODES),
        },
        **_serial_console(controller, path), **_indicator(controller),
        Bios=link(f"{path}/Bios"), SecureBoot=link(f"{path}/SecureBoot"),
        EthernetInterfaces=link(f"{path}/EthernetInterfaces"),
        Links={"Chassis": [link(f"{ROOT}/Chassis/{info.id}")],
               "ManagedBy": [link(f"{ROOT}/Managers/{info.id}")]},
        Actions={"#ComputerSystem.Reset": {
            "target": f"{path}/Actions/ComputerSystem.Reset",
            "ResetType@Redfish.AllowableValues": reset_types(controller)}},
    )


def _indicator(controller: NodeController) -> dict[str, Any]:
    state = controller.platform.indicator
    return {"IndicatorLED": state, "LocationIndicatorActive": state != "Off"}


def patched_indicator(body: dict[str, Any]) -> str | None:
    """The indicator state a PATCH asks for (None: not asked)."""
    if "IndicatorLED" in body:
        value = body["IndicatorLED"]
        if value not in ("Lit", "Blinking", "Off"):
            raise RedfishError(400, f"{value!r} is not an allowed value of IndicatorLED.",
                               "PropertyValueNotInList", (json.dumps(value), "IndicatorLED"))
        return str(value)
    if "LocationIndicatorActive" in body:
        value = body["LocationIndicatorActive"]
        if not isinstance(value, bool):
            raise RedfishError(400, "LocationIndicatorActive must be true or false.",
                               "PropertyValueTypeError",
                               (json.dumps(value), "LocationIndicatorActive"))
        return "Lit" if value else "Off"
    return None


def _serial_console(controller: NodeController, path: str) -> dict[str, Any]:
    """The node's serial console over IPMI SOL and a WebSocket (Redfish 2025.4), if it has one."""
    if not controller.has_console:
        return {}
    return {"SerialConsole": {
        "MaxConcurrentSessions": 1,
        "IPMI": {"ServiceEnabled": True},
        "WebSocket": {"ServiceEnabled": True, "ConsoleURI": f"{path}/SerialConsole",
                      "Interactive": True}}}


def ethernet_interfaces(controller: NodeController) -> dict[str, Any]:
    path = f"{ROOT}/Systems/{controller.info.id}/EthernetInterfaces"
    return collection("EthernetInterfaceCollection", path, "Ethernet interfaces",
                      [f"{path}/{i}" for i in range(len(controller.info.macs))])


def ethernet_interface(controller: NodeController, index: int) -> dict[str, Any]:
    mac = controller.info.macs[index].upper()
    path = f"{ROOT}/Systems/{controller.info.id}/EthernetInterfaces/{index}"
    return odata("EthernetInterface.v1_12_4.EthernetInterface", path, Id=str(index),
                 Name=f"NIC {index}", MACAddress=mac, PermanentMACAddress=mac,
                 InterfaceEnabled=True, LinkStatus=_link_status(controller),
                 Status={"State": "Enabled", "Health": "OK"})


def _link_status(controller: NodeController) -> str | None:
    """A virtual NIC has a link while its machine runs (a switch sees nothing when it is off)."""
    state = power_state(controller)
    return None if state is None else "LinkUp" if state == "On" else "LinkDown"


def manager(controller: NodeController) -> dict[str, Any]:
    node = controller.info.id
    return odata("Manager.v1_24_0.Manager", f"{ROOT}/Managers/{node}", Id=node,
                 Name=f"BMC of {controller.info.name}", ManagerType="BMC",
                 Status={"State": "Enabled", "Health": "OK"},
                 FirmwareVersion=controller.platform.bmc_version,
                 VirtualMedia=link(f"{ROOT}/Managers/{node}/VirtualMedia"),
                 Links={"ManagerForServers": [link(f"{ROOT}/Systems/{node}")],
                        "ManagerForChassis": [link(f"{ROOT}/Chassis/{node}")]})


def virtual_media_collection(controller: NodeController) -> dict[str, Any]:
    path = f"{ROOT}/Managers/{controller.info.id}/VirtualMedia"
    return collection("VirtualMediaCollection", path, "Virtual media", [f"{path}/Cd"])


def virtual_cd(controller: NodeController) -> dict[str, Any]:
    path = f"{ROOT}/Managers/{controller.info.id}/VirtualMedia/Cd"
    inserted = controller.media is not None
    url = controller.media_url
    return odata(
        "VirtualMedia.v1_6_5.VirtualMedia", path, Id="Cd", Name="Virtual CD",
        MediaTypes=["CD", "DVD"], Image=url,
        ImageName=url.rsplit("/", 1)[-1].split("?")[0] if url else None,
        Inserted=inserted, WriteProtected=True,
        ConnectedVia="URI" if inserted else "NotConnected",
        TransferMethod="Upload", TransferProtocolType=(url or "").split(":")[0].upper() or None,
        Actions={
            "#VirtualMedia.InsertMedia": {"target": f"{path}/Actions/VirtualMedia.InsertMedia"},
            "#VirtualMedia.EjectMedia": {"target": f"{path}/Actions/VirtualMedia.EjectMedia"}})


def chassis(controller: NodeController) -> dict[str, Any]:
    node = controller.info.id
    return odata("Chassis.v1_28_0.Chassis", f"{ROOT}/Chassis/{node}", Id=node,
                 Name=f"Chassis of {controller.info.name}", ChassisType="Sled",
                 UUID=controller.info.uuid, Manufacturer=controller.info.hardware.manufacturer,
                 Model=controller.info.hardware.model,
                 SerialNumber=controller.info.hardware.serial or None,
                 PowerState=power_state(controller), Status=_status(controller),
                 **_indicator(controller),
                 Power=link(f"{ROOT}/Chassis/{node}/Power"),
                 Thermal=link(f"{ROOT}/Chassis/{node}/Thermal"),
                 Links={"ComputerSystems": [link(f"{ROOT}/Systems/{node}")],
                        "ManagedBy": [link(f"{ROOT}/Managers/{node}")]})


def session_service(timeout: int) -> dict[str, Any]:
    return odata("SessionService.v1_2_0.SessionService", f"{ROOT}/SessionService",
                 Id="SessionService", Name="Session Service", ServiceEnabled=True,
                 SessionTimeout=timeout, Sessions=link(f"{ROOT}/SessionService/Sessions"),
                 Status={"State": "Enabled", "Health": "OK"})


def session(session_id: str, username: str) -> dict[str, Any]:
    return odata("Session.v1_8_0.Session", f"{ROOT}/SessionService/Sessions/{session_id}",
                 Id=session_id, Name=f"Session {session_id}", UserName=username)


def patched_boot_override(current: BootOverride, boot: dict[str, Any]) -> BootOverride:
    """The override after a PATCH of Boot (only the three override properties are writable)."""
    writable: dict[str, dict[str, Any]] = {"BootSourceOverrideTarget": BOOT_TARGETS,
                "BootSourceOverrideEnabled": dict.fromkeys(BOOT_ENABLED),
                "BootSourceOverrideMode": BOOT_MODES}
    for key, value in boot.items():
        if key not in writable:
            raise RedfishError(400, f"Property Boot/{key} is unknown or read-only.",
                               "PropertyUnknown", (f"Boot/{key}",))
        if not isinstance(value, str) or value not in writable[key]:
            raise RedfishError(400, f"{value!r} is not an allowed value of {key}.",
                               "PropertyValueNotInList", (json.dumps(value), key))
    device, persistent, mode = current.device, current.persistent, current.mode
    if "BootSourceOverrideTarget" in boot:
        device = BOOT_TARGETS[boot["BootSourceOverrideTarget"]]
    enabled = boot.get("BootSourceOverrideEnabled")
    if enabled == "Disabled":
        device = BootDevice.NONE
    elif enabled is not None:
        persistent = enabled == "Continuous"
    if "BootSourceOverrideMode" in boot:
        mode = BOOT_MODES[boot["BootSourceOverrideMode"]]
    if device is BootDevice.NONE:
        persistent = False
    return BootOverride(device, persistent, mode)
