"""The BIOS as Redfish has it: current `Attributes`, a pending settings object applied `OnReset`,
the `ResetBios` action, and the attribute registry (behind the service's Registries) that says
which attributes exist and what values they take; and UEFI secure boot (`SecureBootEnable` at
the next boot, `ResetKeys`). A firmware without keys says so by its mode: SetupMode."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.platform import REGISTRY, Attribute
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata, read_body, reply, writable

Match = dict[str, str]
Reply = web.StreamResponse
REGISTRY_ID = "BiosAttributeRegistry.v1_0_0"
REGISTRIES = f"{ROOT}/Registries"
REGISTRY_FILE = f"{REGISTRIES}/BiosAttributeRegistry"
REGISTRY_URI = f"{REGISTRY_FILE}/{REGISTRY_ID}"


def _path(controller: NodeController) -> str:
    return f"{ROOT}/Systems/{controller.info.id}/Bios"


def bios(controller: NodeController) -> dict[str, Any]:
    path = _path(controller)
    return odata("Bios.v1_2_3.Bios", path, Id="BIOS", Name="BIOS current settings",
                 AttributeRegistry=REGISTRY_ID, Attributes=dict(controller.platform.bios),
                 **{"@Redfish.Settings": {
                     "@odata.type": "#Settings.v1_4_0.Settings",
                     "SettingsObject": link(f"{path}/Settings"),
                     "SupportedApplyTimes": ["OnReset"]}},
                 Actions={"#Bios.ResetBios": {"target": f"{path}/Actions/Bios.ResetBios"}})


def pending(controller: NodeController) -> dict[str, Any]:
    """The settings object: what the next boot applies (only the attributes changed)."""
    return odata("Bios.v1_2_3.Bios", f"{_path(controller)}/Settings", Id="Settings",
                 Name="BIOS pending settings", AttributeRegistry=REGISTRY_ID,
                 Attributes=dict(controller.platform.pending))


def registries() -> dict[str, Any]:
    return collection("MessageRegistryFileCollection", REGISTRIES, "Registries",
                      [REGISTRY_FILE])


def registry_file() -> dict[str, Any]:
    return odata("MessageRegistryFile.v1_1_5.MessageRegistryFile", REGISTRY_FILE,
                 Id="BiosAttributeRegistry", Name="BIOS attribute registry",
                 Registry="BiosAttributeRegistry.1.0", Languages=["en"],
                 Location=[{"Language": "en", "Uri": REGISTRY_URI}])


def _entry(attribute: Attribute) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "AttributeName": attribute.name, "Type": attribute.kind,
        "DisplayName": attribute.text, "DefaultValue": attribute.default,
        "ReadOnly": attribute.read_only, "ResetRequired": True}
    if attribute.values:
        entry["Value"] = [{"ValueName": v, "ValueDisplayName": v} for v in attribute.values]
    if attribute.lower is not None:
        entry["LowerBound"] = attribute.lower
    if attribute.upper is not None:
        entry["UpperBound"] = attribute.upper
    if attribute.max_length is not None:
        entry["MaxLength"] = attribute.max_length
    return entry


def attribute_registry() -> dict[str, Any]:
    return odata("AttributeRegistry.v1_4_0.AttributeRegistry", REGISTRY_URI, Id=REGISTRY_ID,
                 Name="BIOS attribute registry", Language="en", OwningEntity="QuintupleO",
                 RegistryVersion="1.0.0",
                 RegistryEntries={"Attributes": [_entry(a) for a in REGISTRY]})


RESET_KEYS = ("ResetAllKeysToDefault", "DeleteAllKeys")


def secure_boot(controller: NodeController) -> dict[str, Any]:
    platform = controller.platform
    path = f"{ROOT}/Systems/{controller.info.id}/SecureBoot"
    return odata("SecureBoot.v1_1_2.SecureBoot", path, Id="SecureBoot", Name="UEFI secure boot",
                 SecureBootEnable=platform.secure_boot,
                 SecureBootCurrentBoot="Enabled" if platform.secure_boot_now else "Disabled",
                 SecureBootMode="UserMode" if platform.has_keys else "SetupMode",
                 Actions={"#SecureBoot.ResetKeys": {
                     "target": f"{path}/Actions/SecureBoot.ResetKeys",
                     "ResetKeysType@Redfish.AllowableValues": list(RESET_KEYS)}})


class BiosHandlers:
    """The BIOS, secure boot and registry handlers; `node` finds a node's controller (404)."""

    def __init__(self, node: Callable[[str], NodeController]) -> None:
        self._node = node

    def routes(self, system: str) -> dict[str, dict[str, Any]]:
        return {
            system + "/SecureBoot": {"GET": self.secure_boot, "PATCH": self.patch_secure_boot},
            system + r"/SecureBoot/Actions/SecureBoot\.ResetKeys": {"POST": self.reset_keys},
            system + "/Bios": {"GET": self.bios},
            system + "/Bios/Settings": {"GET": self.bios_settings,
                                        "PATCH": self.patch_bios_settings},
            system + r"/Bios/Actions/Bios\.ResetBios": {"POST": self.reset_bios},
            REGISTRIES: {"GET": self.registries}, REGISTRY_FILE: {"GET": self.registry_file},
            REGISTRY_URI: {"GET": self.attribute_registry},
        }

    async def bios(self, request: web.Request, match: Match) -> Reply:
        return reply(bios(self._node(match["node"])))

    async def bios_settings(self, request: web.Request, match: Match) -> Reply:
        return reply(pending(self._node(match["node"])))

    async def patch_bios_settings(self, request: web.Request, match: Match
                                  ) -> Reply:
        controller = self._node(match["node"])
        body = await read_body(request)
        apply_time = body.pop("@Redfish.SettingsApplyTime", {"ApplyTime": "OnReset"})
        if not isinstance(apply_time, dict) or apply_time.get("ApplyTime") != "OnReset":
            raise RedfishError(400, "BIOS settings apply OnReset only.",
                               "PropertyValueNotInList",
                               (json.dumps(apply_time), "@Redfish.SettingsApplyTime"))
        writable(body, pending(controller), {"Attributes"})
        attributes = body.get("Attributes")
        if not isinstance(attributes, dict):
            raise RedfishError(400, "Attributes must be an object.", "PropertyValueTypeError",
                               (json.dumps(attributes), "Attributes"))
        controller.platform.stage(attributes)   # 400 (InvalidSetting) when one is wrong
        return reply(pending(controller))

    async def reset_bios(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        if await request.read():   # sushy sends no body; a body must be an (empty) object
            await read_body(request)
        controller.platform.reset_to_defaults()
        return web.Response(status=204)

    async def secure_boot(self, request: web.Request, match: Match) -> Reply:
        return reply(secure_boot(self._node(match["node"])))

    async def patch_secure_boot(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        body = await read_body(request)
        writable(body, secure_boot(controller), {"SecureBootEnable"})
        enabled = body.get("SecureBootEnable")
        if not isinstance(enabled, bool):
            raise RedfishError(400, "SecureBootEnable must be true or false.",
                               "PropertyValueTypeError", (json.dumps(enabled), "SecureBootEnable"))
        controller.platform.enable_secure_boot(enabled)   # 400 in setup mode
        return reply(secure_boot(controller))

    async def reset_keys(self, request: web.Request, match: Match) -> Reply:
        controller = self._node(match["node"])
        kind = (await read_body(request)).get("ResetKeysType")
        if kind not in RESET_KEYS:
            raise RedfishError(400, f"ResetKeysType must be one of {list(RESET_KEYS)}.",
                               "ActionParameterValueNotInList",
                               (str(kind), "ResetKeysType", "SecureBoot.ResetKeys"))
        controller.platform.reset_keys(keep=kind == "ResetAllKeysToDefault")
        return web.Response(status=204)

    async def registries(self, request: web.Request, _: Match) -> Reply:
        return reply(registries())

    async def registry_file(self, request: web.Request, _: Match) -> Reply:
        return reply(registry_file())

    async def attribute_registry(self, request: web.Request, _: Match) -> Reply:
        return reply(attribute_registry())
