"""Ironic's bulk-enrollment file: `baremetal create FILE` takes {"nodes": [...]}."""

from __future__ import annotations

import json
from typing import Any

from quintupleo.inventory import InventoryNode


def driver_info(node: InventoryNode, driver: str) -> dict[str, Any]:
    bmc = node.bmc
    if driver == "redfish":
        if bmc.redfish_url is None:
            raise ValueError("the redfish driver needs the BMC's Redfish endpoint")
        return {"redfish_address": bmc.redfish_url, "redfish_system_id": node.redfish_system_id,
                "redfish_username": bmc.redfish.username,
                "redfish_password": bmc.redfish.password, "redfish_verify_ca": bmc.verify_ca}
    return {"ipmi_address": bmc.ipmi_address, "ipmi_port": bmc.ipmi_port,
            "ipmi_username": bmc.ipmi.username, "ipmi_password": bmc.ipmi.password}


def ironic_node(node: InventoryNode, driver: str = "ipmi",
                interfaces: dict[str, str] | None = None) -> dict[str, Any]:
    info = node.info
    capabilities = [f"boot_mode:{node.boot_mode}"]
    if node.profile:
        capabilities.append(f"profile:{node.profile}")
    properties: dict[str, Any] = {
        "cpus": info.cpus, "memory_mb": info.memory_mb, "local_gb": info.local_gb,
        "cpu_arch": info.cpu_arch, "capabilities": ",".join(capabilities)}
    if info.local_gb:
        # the agent must write the node's own disk, not the one a rescue into iPXE adds
        properties["root_device"] = {"size": info.local_gb}
    return {
        "name": info.name,
        "driver": driver,
        **{f"{kind}_interface": name for kind, name in (interfaces or {}).items()},
        "driver_info": driver_info(node, driver),
        "properties": properties,
        "extra": {"quintupleo_node_id": info.id, "system_uuid": info.uuid},
        "ports": node.ports(),
    }


def ironic_document(nodes: list[InventoryNode], driver: str = "ipmi",
                    interfaces: dict[str, str] | None = None) -> str:
    return json.dumps({"nodes": [ironic_node(n, driver, interfaces) for n in nodes]},
                      indent=2) + "\n"
