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


def ironic_node(node: IpmiNode) -> dict[str, Any]:
    info = node.info
    return {
        "name": info.name,
        "driver": "ipmi",
        "driver_info": {
            "ipmi_address": node.address,
            "ipmi_port": node.port,
            "ipmi_username": node.credentials.username,
            "ipmi_password": node.credentials.password,
        },
        "properties": {
            "cpus": info.cpus,
            "memory_mb": info.memory_mb,
            "local_gb": info.local_gb,
            "cpu_arch": info.cpu_arch,
        },
        "extra": {"quintupleo_node_id": info.id, "system_uuid": info.uuid},
        "ports": [{"address": mac} for mac in info.macs],
    }


def write_ironic_nodes(path: Path, nodes: list[IpmiNode]) -> None:
    """Write the file readable by its owner only: it holds BMC passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"nodes": [ironic_node(n) for n in nodes]}, indent=2) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
