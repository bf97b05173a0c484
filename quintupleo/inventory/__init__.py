"""Inventories for provisioning tools: what each node is and how its BMC is reached."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from quintupleo.model import Credentials, NodeInfo


@dataclass(frozen=True)
class BmcAccess:
    """How a provisioning tool reaches one node's virtual BMC."""

    ipmi_address: str
    ipmi_port: int
    ipmi: Credentials
    redfish_url: str | None          # https://address:port, or None when Redfish is off
    redfish: Credentials
    verify_ca: str | bool            # the CA file for redfish_url, or False (plain HTTP)


@dataclass(frozen=True)
class InventoryNode:
    info: NodeInfo
    bmc: BmcAccess
    profile: str | None = None
    boot_mode: str = "uefi"
    # routed provisioning: the leaf its first (PXE) NIC is on, Ironic's port physical_network
    physical_network: str | None = None

    def ports(self) -> list[dict[str, str]]:
        """Ironic's ports: one per NIC in order, the first on its leaf (if routed)."""
        ports = [{"address": mac} for mac in self.info.macs]
        if ports and self.physical_network:
            ports[0]["physical_network"] = self.physical_network
        return ports

    @property
    def redfish_system_id(self) -> str:
        return f"/redfish/v1/Systems/{self.info.id}"


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: inventories hold BMC passwords."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
