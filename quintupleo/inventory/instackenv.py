"""TripleO's instackenv.json (`openstack overcloud node import`)."""

from __future__ import annotations

import json
from typing import Any

from quintupleo.inventory import InventoryNode


def instackenv_node(node: InventoryNode, driver: str = "ipmi") -> dict[str, Any]:
    info, bmc = node.info, node.bmc
    access: dict[str, Any]
    if driver == "redfish":
        if bmc.redfish_url is None:
            raise ValueError("the redfish driver needs the BMC's Redfish endpoint")
        access = {"pm_type": "redfish", "pm_addr": bmc.redfish_url.split("://", 1)[1],
                  "pm_system_id": node.redfish_system_id, "pm_user": bmc.redfish.username,
                  "pm_password": bmc.redfish.password}
    else:
        access = {"pm_type": "ipmi", "pm_addr": bmc.ipmi_address, "pm_port": bmc.ipmi_port,
                  "pm_user": bmc.ipmi.username, "pm_password": bmc.ipmi.password}
    capabilities = [f"boot_mode:{node.boot_mode}"]
    if node.profile:
        capabilities.append(f"profile:{node.profile}")
    # TripleO takes `ports` (with their physical network) instead of `mac` for routed leaves
    nics = {"ports": node.ports()} if node.physical_network else {"mac": list(info.macs)}
    return {"name": info.name, **access, **nics, "cpu": info.cpus,
            "memory": info.memory_mb, "disk": info.local_gb, "arch": info.cpu_arch,
            "capabilities": ",".join(capabilities)}


def instackenv_document(nodes: list[InventoryNode], driver: str = "ipmi") -> str:
    return json.dumps({"nodes": [instackenv_node(n, driver) for n in nodes]}, indent=2) + "\n"
