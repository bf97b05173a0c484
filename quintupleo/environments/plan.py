"""A spec becomes the ordered list of cloud resources it needs (pure: no cloud call)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from quintupleo.environments.spec import EnvironmentSpec


class Kind(StrEnum):
    """In creation order; deletion goes the other way."""

    NETWORK = "network"
    SUBNET = "subnet"
    VIP = "vip"          # a device-less port reserving a virtual IP
    PORT = "port"
    SERVER = "server"


@dataclass(frozen=True)
class Planned:
    kind: Kind
    name: str                                   # the cloud name, unique in the environment
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    needs: tuple[str, ...] = ()                 # names of resources whose IDs params refer to


def plan(spec: EnvironmentSpec) -> list[Planned]:
    resources: list[Planned] = []
    secured = {net.name for net in spec.networks if net.port_security}
    for net in spec.networks:
        name = spec.resource_name(net.name)
        resources.append(Planned(Kind.NETWORK, name, {"network": net.name}))
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        resources.append(Planned(Kind.SUBNET, f"{name}-subnet",
                                 {"cidr": net.cidr, "network": name}, needs=(name,)))
    vips: dict[str, list[str]] = {}
    for vip in spec.vips:
        name = spec.resource_name("vip", vip.name)
        vips.setdefault(vip.network, []).append(name)
        resources.append(Planned(Kind.VIP, name, {
            "network": spec.resource_name(vip.network), "ip": vip.ip,
            "security": vip.network in secured}, needs=_on(spec, vip.network)))

    def ports_for(owner: str, networks: tuple[str, ...], node: bool) -> tuple[str, ...]:
        names = []
        for net in networks:
            port = f"{owner}-{net}"
            names.append(port)
            # Without port security the nodes' DHCP, PXE and VIP traffic is not filtered;
            # with it, the network's VIPs are the node's allowed address pairs.
            pairs = tuple(vips.get(net, [])) if net in secured else ()
            resources.append(Planned(Kind.PORT, port, {
                "network": spec.resource_name(net), "security": net in secured,
                "pairs": pairs, "node": node}, needs=(*_on(spec, net), *pairs)))
        return tuple(names)

    for role in spec.roles:
        for index in range(role.count):
            node = spec.resource_name(role.name, str(index))
            ports = ports_for(node, role.networks, node=True)
            resources.append(Planned(Kind.SERVER, node, {
                "role": role.name, "index": index, "flavor": role.flavor, "image": role.image,
                "profile": role.profile, "ports": ports, "baremetal": True, "key": None},
                needs=ports))
    if spec.undercloud is not None:
        host = spec.resource_name("undercloud")
        ports = ports_for(host, spec.undercloud.networks, node=False)
        resources.append(Planned(Kind.SERVER, host, {
            "role": "undercloud", "index": 0, "flavor": spec.undercloud.flavor,
            "image": spec.undercloud.image, "profile": None, "ports": ports,
            "baremetal": False, "key": spec.undercloud.key}, needs=ports))
    return resources


def _on(spec: EnvironmentSpec, network: str) -> tuple[str, str]:
    name = spec.resource_name(network)
    return name, f"{name}-subnet"
