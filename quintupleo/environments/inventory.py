"""An environment's nodes as inventories: the cloud's view of each node (MACs, flavor) joined
with the BMC that `bmc serve --environment NAME` runs for it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import openstack

from quintupleo.backends.openstack.driver import OpenStackBackend
from quintupleo.bmc.redfish.tls import self_signed
from quintupleo.bmc.settings import BmcSettings
from quintupleo.environments import store
from quintupleo.inventory import InventoryNode
from quintupleo.inventory.instackenv import instackenv_document
from quintupleo.inventory.ironic import ironic_document
from quintupleo.inventory.metal3 import metal3_document
from quintupleo.model import NodeInfo


def environment_nodes(name: str) -> tuple[BmcSettings, list[InventoryNode]]:
    settings = BmcSettings.load(None, store.bmc_settings, environment=name)
    journal = store.open_journal(name)
    try:
        spec = store.stored_spec(journal)
        planned = dict(store.node_ids(journal, spec))
    finally:
        journal.close()
    conn = openstack.connect(cloud=settings.cloud)
    backend = OpenStackBackend(settings.cloud, servers=settings.servers, connection=conn)

    async def discover() -> list[NodeInfo]:
        try:
            return await backend.discover()
        finally:
            await backend.close()

    infos = asyncio.run(discover())
    # MACs in NIC order (the first one PXE-boots), from the ports the plan named.
    macs = {p.name: p.mac_address for p in conn.network.ports(tags=spec.tag)}
    servers = {node_id: item.server for node_id, item in planned.items() if item.server}
    modes = {image: boot_mode(conn, image) for image in {s.image for s in servers.values()}}
    nodes = []
    for index, info in enumerate(infos):
        server = servers[info.id]
        ordered = tuple(macs[port] for port in server.ports if port in macs)
        nodes.append(InventoryNode(replace(info, macs=ordered or info.macs),
                                   settings.access(info, index), server.profile,
                                   modes[server.image]))
    return settings, nodes


def boot_mode(conn: Any, image: str) -> str:
    """A node's firmware is its image's (`hw_firmware_type`; Nova's default is BIOS), also
    through a rescue: the inventory tells the provisioning tool so (Ironic assumes UEFI)."""
    found = conn.image.find_image(image)
    firmware = (found.properties or {}).get("hw_firmware_type") if found is not None else None
    return "uefi" if firmware == "uefi" else "bios"


def inventory_text(name: str, kind: str, driver: str,
                   interfaces: dict[str, str] | None = None, namespace: str = "metal3") -> str:
    settings, nodes = environment_nodes(name)
    if driver == "redfish" and settings.tls and settings.tls_cert is None:
        # The CA file the inventory names is the certificate the BMC will serve.
        self_signed(settings.state_dir, settings.redfish_address)
    if kind == "ironic":
        return ironic_document(nodes, driver, interfaces)
    if kind == "instackenv":
        return instackenv_document(nodes, driver)
    return metal3_document(nodes, driver, namespace)
