"""The BIOS as Redfish has it: current `Attributes`, a pending settings object applied `OnReset`,
the `ResetBios` action, and the attribute registry (behind the service's Registries) that says
which attributes exist and what values they take; and UEFI secure boot (`SecureBootEnable` at
the next boot, `ResetKeys`). A firmware without keys says so by its mode: SetupMode."""

from __future__ import annotations

from typing import Any

from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.platform import REGISTRY, Attribute
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata

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
