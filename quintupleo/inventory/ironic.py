"""Ironic's bulk-enrollment file: `baremetal create FILE` takes {"nodes": [...]}."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quintupleo.bmc.ipmi.session import Credentials
from quintupleo.model import NodeInfo


@dataclass(frozen=True)
class IpmiNode:
    info: NodeInfo
    address: str
    port: int
    credentials: Credentials


@dataclass(frozen=True)
class RedfishEndpoint:
    url: str                         # https://address:port
    credentials: Credentials
    verify_ca: str | bool            # a CA file, or False (plain HTTP / unverified)


def driver_info(node: IpmiNode, redfish: RedfishEndpoint | None) -> tuple[str, dict[str, Any]]:
    if redfish is not None:
        return "redfish", {
            "redfish_address": redfish.url,
            "redfish_system_id": f"/redfish/v1/Systems/{node.info.id}",
            "redfish_username": redfish.credentials.username,
            "redfish_password": redfish.credentials.password,
            "redfish_verify_ca": redfish.verify_ca,
        }
    return "ipmi", {
        "ipmi_address": node.address,
        "ipmi_port": node.port,
        "ipmi_username": node.credentials.username,
        "ipmi_password": node.credentials.password,
    }


def ironic_node(node: IpmiNode, redfish: RedfishEndpoint | None = None) -> dict[str, Any]:
    info = node.info
    driver, details = driver_info(node, redfish)
    return {
        "name": info.name,
        "driver": driver,
        "driver_info": details,
        "properties": {
            "cpus": info.cpus,
            "memory_mb": info.memory_mb,
            "local_gb": info.local_gb,
            "cpu_arch": info.cpu_arch,
        },
        "extra": {"quintupleo_node_id": info.id, "system_uuid": info.uuid},
        "ports": [{"address": mac} for mac in info.macs],
    }


def write_ironic_nodes(path: Path, nodes: list[IpmiNode],
                       redfish: RedfishEndpoint | None = None) -> None:
    """Write the file readable by its owner only: it holds BMC passwords. With `redfish`, the
    nodes use Ironic's redfish driver, else its ipmi driver."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"nodes": [ironic_node(n, redfish) for n in nodes]}, indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
