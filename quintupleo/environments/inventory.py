"""An environment's nodes as inventories: the cloud's view of each node (MACs, flavor) joined
with the BMC that `bmc serve --environment NAME` runs for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import openstack

from quintupleo.backends.openstack.driver import OpenStackBackend
from quintupleo.bmc.settings import BmcSettings
from quintupleo.environments import store
from quintupleo.inventory import InventoryNode
from quintupleo.inventory.instackenv import instackenv_document
from quintupleo.inventory.ironic import ironic_document
from quintupleo.inventory.metal3 import metal3_document
from quintupleo.model import NodeInfo
from quintupleo.tls import self_signed


def environment_nodes(name: str) -> tuple[list[BmcSettings], list[InventoryNode]]:
    """The environment's BMCs (one, or one per BMC host) and its nodes, in the spec's order."""
    bmcs = store.bmcs(name)
    journal = store.open_journal(name)
    try:
        spec = store.stored_spec(journal)
        planned = dict(store.node_ids(journal, spec))
    finally:
        journal.close()
    conn = openstack.connect(cloud=spec.cloud)

    # MACs in NIC order (the first one PXE-boots), from the ports the plan named.
    macs = {p.name: p.mac_address for p in conn.network.ports(tags=spec.tag)}
    servers = {node_id: item.server for node_id, item in planned.items() if item.server}
    modes = {image: boot_mode(conn, image) for image in {s.image for s in servers.values()}}

    async def discover() -> list[NodeInfo]:
        """Every node in one server listing (not one per BMC host)."""
        backend = OpenStackBackend(spec.cloud, servers=list(planned), connection=conn)
        try:
            return await backend.discover()
        finally:
            await backend.close()

    # each node's BMC, and its index there (its IPMI port's)
    served = {node_id: (bmc, index) for bmc in bmcs
              for index, node_id in enumerate(bmc.servers)}
    nodes = []
    for info in asyncio.run(discover()):     # in the spec's order
        server = servers[info.id]
        bmc, index = served[info.id]
        ordered = tuple(macs[port] for port in server.ports if port in macs)
        nodes.append(InventoryNode(replace(info, macs=ordered or info.macs),
                                   bmc.access(info, index), server.profile,
                                   modes[server.image], server.leaf))
    return bmcs, nodes


def boot_mode(conn: Any, image: str) -> str:
    """A node's firmware is its image's (`hw_firmware_type`; Nova's default is BIOS), also
    through a rescue: the inventory tells the provisioning tool so (Ironic assumes UEFI)."""
    found = conn.image.find_image(image)
    firmware = (found.properties or {}).get("hw_firmware_type") if found is not None else None
    return "uefi" if firmware == "uefi" else "bios"


def inventory_text(name: str, kind: str, driver: str,
                   interfaces: dict[str, str] | None = None, namespace: str = "metal3") -> str:
    bmcs, nodes = environment_nodes(name)
    for bmc in bmcs:
        if driver == "redfish" and bmc.tls and bmc.tls_cert is None:
            # The CA file the inventory names is the certificate the BMC will serve.
            self_signed(bmc.state_dir, bmc.redfish_address)
    if kind == "ironic":
        return ironic_document(nodes, driver, interfaces)
    if kind == "instackenv":
        return instackenv_document(nodes, driver)
    return metal3_document(nodes, driver, namespace)
