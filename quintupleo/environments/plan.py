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
    for net in spec.networks:
        name = spec.resource_name(net.name)
        resources.append(Planned(Kind.NETWORK, name, {"network": net.name}))
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        resources.append(Planned(Kind.SUBNET, f"{name}-subnet",
                                 {"cidr": net.cidr, "network": name}, needs=(name,)))
    for role in spec.roles:
        for index in range(role.count):
            node = spec.resource_name(role.name, str(index))
            ports = []
            for net in role.networks:
                port = f"{node}-{net}"
                ports.append(port)
                # Port security off on every NIC: the nodes' DHCP, PXE and virtual-IP traffic
                # must not be filtered by Neutron.
                resources.append(Planned(Kind.PORT, port, {"network": spec.resource_name(net)},
                                         needs=(spec.resource_name(net),
                                                f"{spec.resource_name(net)}-subnet")))
            resources.append(Planned(
                Kind.SERVER, node,
                {"role": role.name, "index": index, "flavor": role.flavor, "image": role.image,
                 "profile": role.profile, "ports": tuple(ports)},
                needs=tuple(ports)))
    return resources
