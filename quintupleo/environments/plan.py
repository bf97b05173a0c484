"""A spec becomes the ordered list of cloud resources it needs (pure: no cloud call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from quintupleo.environments.spec import BMC_NETWORK, EnvironmentSpec


class Kind(StrEnum):
    """In creation order; deletion goes the other way."""

    NETWORK = "network"
    SUBNET = "subnet"
    ROUTER = "router"            # the BMC network's way to the external network
    VIP = "vip"                  # a device-less port reserving a virtual IP
    PORT = "port"
    SERVER = "server"
    FLOATING_IP = "floating-ip"  # the undercloud's
    CREDENTIAL = "credential"    # the BMC host's application credential (Keystone)
    BMC_HOST = "bmc-host"        # a server running `bmc serve` for the nodes above


@dataclass(frozen=True)
class Planned:
    kind: Kind
    name: str                                   # the cloud name, unique in the environment
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    needs: tuple[str, ...] = ()                 # names of resources whose IDs params refer to


def plan(spec: EnvironmentSpec) -> list[Planned]:
    resources: list[Planned] = []
    secured = {net.name for net in spec.networks if net.port_security}
    addressless = {net.name for net in spec.networks if not net.fixed_ips}
    for net in spec.networks:
        name = spec.resource_name(net.name)
        resources.append(Planned(Kind.NETWORK, name, {"network": net.name}))
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        resources.append(Planned(Kind.SUBNET, f"{name}-subnet",
                                 {"cidr": net.cidr, "network": name, "routed": net.routed},
                                 needs=(name,)))
    if spec.external is not None:
        subnet = f"{spec.resource_name(BMC_NETWORK)}-subnet"
        resources.append(Planned(Kind.ROUTER, spec.resource_name("router"), {
            "external": spec.external, "subnet": subnet}, needs=(subnet,)))
    vips: dict[str, list[str]] = {}
    for vip in spec.vips:
        name = spec.resource_name("vip", vip.name)
        vips.setdefault(vip.network, []).append(name)
        resources.append(Planned(Kind.VIP, name, {
            "network": spec.resource_name(vip.network), "ip": vip.ip,
            "security": vip.network in secured}, needs=_on(spec, vip.network)))

    def ports_for(owner: str, networks: tuple[str, ...], node: bool,
                  addresses: int = 1) -> tuple[str, ...]:
        names = []
        for net in networks:
            port = f"{owner}-{net}"
            names.append(port)
            # Without port security the nodes' DHCP, PXE and VIP traffic is not filtered;
            # with it, the network's VIPs are the node's allowed address pairs.
            pairs = tuple(vips.get(net, [])) if net in secured else ()
            resources.append(Planned(Kind.PORT, port, {
                "network": spec.resource_name(net), "security": net in secured,
                "pairs": pairs, "node": node,
                "addresses": 0 if node and net in addressless else addresses},
                needs=(*_on(spec, net), *pairs)))
        return tuple(names)

    nodes = []
    for role in spec.roles:
        # `boot: image` (the original design's "deploy without PXE"): plain servers booted
        # from the role's image and left running, not behind the BMC nor in the inventory
        baremetal = role.boot == "network"
        for index in range(role.count):
            node = spec.resource_name(role.name, str(index))
            if baremetal:
                nodes.append(node)
            ports = ports_for(node, role.networks, node=baremetal)
            resources.append(Planned(Kind.SERVER, node, {
                "role": role.name, "index": index, "flavor": role.flavor, "image": role.image,
                "profile": role.profile, "ports": ports, "baremetal": baremetal, "key": None,
                **_zone(role.availability_zone)}, needs=ports))
    if spec.undercloud is not None:
        host = spec.resource_name("undercloud")
        ports = ports_for(host, spec.undercloud.networks, node=False)
        resources.append(Planned(Kind.SERVER, host, {
            "role": "undercloud", "index": 0, "flavor": spec.undercloud.flavor,
            "image": spec.undercloud.image, "profile": None, "ports": ports,
            "baremetal": False, "key": spec.undercloud.key,
            **_zone(spec.undercloud.availability_zone)}, needs=ports))
        if spec.undercloud.floating_ip:
            port = f"{host}-{BMC_NETWORK}"
            resources.append(Planned(Kind.FLOATING_IP, f"{host}-fip", {
                "external": spec.external, "port": port},
                needs=(port, spec.resource_name("router"))))
    if spec.bmc.host is not None:
        host, credential = spec.resource_name("bmc-host"), spec.resource_name("bmc-credential")
        resources.append(Planned(Kind.CREDENTIAL, credential))
        # Per-node addresses: the host's port holds one fixed IP for itself and one per node.
        many = 1 + len(nodes) if spec.bmc.addressing == "addresses" else 1
        ports = ports_for(host, (BMC_NETWORK,), node=False, addresses=many)
        resources.append(Planned(Kind.BMC_HOST, host, {
            "flavor": spec.bmc.host.flavor, "image": spec.bmc.host.image,
            "key": spec.bmc.host.key, "ports": ports, "credential": credential,
            "nodes": tuple(nodes), **_zone(spec.bmc.host.availability_zone)},
            needs=(*ports, credential)))   # nodes: by name
    return resources


def _zone(zone: str | None) -> dict[str, str]:
    """Only a zone that is asked for is planned: a spec without one plans as it always did."""
    return {"availability_zone": zone} if zone else {}


def _on(spec: EnvironmentSpec, network: str) -> tuple[str, str]:
    name = spec.resource_name(network)
    return name, f"{name}-subnet"
