"""The RAID controller as Redfish has it (`Storage/1`): its drives, and a `Volumes` collection
where a client creates volumes (POST) and deletes them (DELETE), applied at once
(`@Redfish.OperationApplyTimeSupport`: Immediate) — what Ironic's `redfish` raid interface
drives. The node's own disk stays `Storage/0`, a controller without RAID."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from quintupleo.bmc import raid
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata, read_body, reply

Match = dict[str, str]
Reply = web.StreamResponse
ENABLED = {"State": "Enabled", "Health": "OK"}
ID = "1"                       # the controller's Id in the Storage collection
APPLY_TIMES = {"@Redfish.OperationApplyTimeSupport": {
    "@odata.type": "#Settings.v1_4_0.OperationApplyTimeSupport",
    "SupportedValues": ["Immediate"]}}


def _path(controller: NodeController) -> str:
    return f"{ROOT}/Systems/{controller.info.id}/Storage/{ID}"


def storage(controller: NodeController) -> dict[str, Any]:
    path = _path(controller)
    return odata("Storage.v1_21_0.Storage", path, Id=ID, Name="RAID controller",
                 Status=ENABLED, Drives=[link(f"{path}/Drives/{d}") for d in range(raid.DRIVES)],
                 **{"Drives@odata.count": raid.DRIVES},
                 StorageControllers=[{
                     "@odata.id": f"{path}#/StorageControllers/0", "MemberId": "0",
                     "Name": "RAID controller", "Status": ENABLED,
                     "SupportedControllerProtocols": ["PCIe"],
                     "SupportedDeviceProtocols": ["SAS"],
                     "SupportedRAIDTypes": list(raid.LEVELS)}],
                 Volumes=link(f"{path}/Volumes"))


def drive(controller: NodeController, index: int) -> dict[str, Any]:
    path, hardware = _path(controller), controller.info.hardware
    users = [v for v in controller.platform.volumes if index in v.drives]
    return odata("Drive.v1_22_0.Drive", f"{path}/Drives/{index}", Id=str(index),
                 Name=f"Physical drive {index}", CapacityBytes=controller.platform.drive_bytes,
                 MediaType="HDD", Protocol="SAS", Manufacturer=hardware.manufacturer,
                 Model="Virtual SAS drive",
                 SerialNumber=f"{hardware.serial or controller.info.uuid[:8]}-R{index}",
                 Status=ENABLED,
                 Links={"Volumes": [link(f"{path}/Volumes/{v.id}") for v in users]})


def volumes(controller: NodeController) -> dict[str, Any]:
    path = f"{_path(controller)}/Volumes"
    return {**collection("VolumeCollection", path, "Volumes",
                         [f"{path}/{v.id}" for v in controller.platform.volumes]), **APPLY_TIMES}


def volume(controller: NodeController, entry: raid.Volume) -> dict[str, Any]:
    path = _path(controller)
    return odata("Volume.v1_10_2.Volume", f"{path}/Volumes/{entry.id}", Id=entry.id,
                 Name=entry.name, RAIDType=entry.raid_type, CapacityBytes=entry.capacity,
                 BlockSizeBytes=512, Status=ENABLED, **APPLY_TIMES,
                 Links={"Drives": [link(f"{path}/Drives/{d}") for d in entry.drives]})


def _drives(controller: NodeController, body: dict[str, Any]) -> list[int] | None:
    links = body.get("Links", {})
    refs = links.get("Drives") if isinstance(links, dict) else None
    if refs is None:
        return None
    prefix = f"{_path(controller)}/Drives/"
    if not isinstance(refs, list) or not all(
            isinstance(r, dict) and str(r.get("@odata.id", "")).startswith(prefix)
            and str(r["@odata.id"])[len(prefix):].isdigit() for r in refs):
        raise RedfishError(400, f"Links/Drives must list drives of this controller ({prefix}N).",
                           "PropertyValueFormatError", (json.dumps(refs), "Links/Drives"))
    return [int(str(r["@odata.id"])[len(prefix):]) for r in refs]


class RaidHandlers:
    """The RAID controller's handlers; `node` finds a node's controller (404)."""

    def __init__(self, node: Callable[[str], NodeController]) -> None:
        self._node = node

    def routes(self, system: str) -> dict[str, dict[str, Any]]:
        path = system + f"/Storage/{ID}"
        return {
            path: {"GET": self.storage},
            path + r"/Drives/(?P<drive>\d+)": {"GET": self.drive},
            path + "/Volumes": {"GET": self.volumes, "POST": self.create},
            path + r"/Volumes/(?P<volume>[^/]+)": {"GET": self.volume, "DELETE": self.delete},
        }

    def _volume(self, controller: NodeController, volume_id: str) -> raid.Volume:
        found = next((v for v in controller.platform.volumes if v.id == volume_id), None)
        if found is None:
            raise RedfishError(404, f"No volume {volume_id}.", "ResourceNotFound",
                               ("Volume", volume_id))
        return found

    async def storage(self, request: web.Request, match: Match) -> Reply:
        return reply(storage(self._node(match["node"])))

    async def drive(self, request: web.Request, match: Match) -> Reply:
        controller, index = self._node(match["node"]), int(match["drive"])
        if index >= raid.DRIVES:
            raise RedfishError(404, f"No drive {index}.", "ResourceNotFound",
                               ("Drive", str(index)))
        return reply(drive(controller, index))

    async def volumes(self, request: web.Request, match: Match) -> Reply:
        return reply(volumes(self._node(match["node"])))

    async def volume(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        return reply(volume(controller, self._volume(controller, match["volume"])))

    async def create(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        body = await read_body(request)
        _check_apply_time(body)
        raid_type, capacity, name = (body.get("RAIDType"), body.get("CapacityBytes"),
                                     body.get("Name"))
        if not isinstance(raid_type, str):
            raise RedfishError(400, "RAIDType is required: one of " + ", ".join(raid.LEVELS)
                               + ".", "PropertyMissing", ("RAIDType",))
        if capacity is not None and (not isinstance(capacity, int) or isinstance(capacity, bool)):
            raise RedfishError(400, "CapacityBytes must be an integer.",
                               "PropertyValueTypeError", (json.dumps(capacity), "CapacityBytes"))
        if name is not None and not isinstance(name, str):
            raise RedfishError(400, "Name must be a string.", "PropertyValueTypeError",
                               (json.dumps(name), "Name"))
        entry = controller.platform.create_volume(   # 400 (InvalidSetting) when it cannot be
            raid_type, _drives(controller, body), capacity, name)
        resource = volume(controller, entry)
        return reply(resource, 201, {"Location": resource["@odata.id"]})

    async def delete(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        entry = self._volume(controller, match["volume"])
        if await request.read():   # sushy sends its apply time in the body of a DELETE
            _check_apply_time(await read_body(request))
        controller.platform.delete_volume(entry.id)
        return web.Response(status=204)


def _check_apply_time(body: dict[str, Any]) -> None:
    apply_time = body.pop("@Redfish.OperationApplyTime", "Immediate")
    if apply_time != "Immediate":
        raise RedfishError(400, "This controller applies volume changes Immediately only.",
                           "PropertyValueNotInList",
                           (json.dumps(apply_time), "@Redfish.OperationApplyTime"))
