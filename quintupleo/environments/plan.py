"""A spec becomes the ordered list of cloud resources it needs (pure: no cloud call)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from enum import StrEnum

from quintupleo.environments.hosts import BMC_NETWORK
from quintupleo.environments.relay import relay_addresses, relay_script
from quintupleo.environments.spec import EnvironmentSpec


class Kind(StrEnum):
    """In creation order; deletion goes the other way."""

    NETWORK = "network"
    SUBNET = "subnet"
    ROUTER = "router"            # the BMC network's way to the external network
    VIP = "vip"                  # a device-less port reserving a virtual IP
    PORT = "port"
    SERVER_GROUP = "server-group"  # a role's anti-affinity
    SERVER = "server"
    FLOATING_IP = "floating-ip"  # the undercloud's
    CREDENTIAL = "credential"    # the BMC host's application credential (Keystone)
    BMC_HOST = "bmc-host"        # a server running `bmc serve` for the nodes above


# What each kind of resource is made with. Names of other resources are their plan names
# (the cloud IDs are known only when they exist).
@dataclass(frozen=True)
class NetworkParams:
    network: str                 # the spec's name of it


@dataclass(frozen=True)
class SubnetParams:
    network: str
    cidr: str
    routed: bool                 # the BMC network: DHCP and a gateway; else neither


@dataclass(frozen=True)
class RouterParams:
    external: str                # the external network's name
    subnet: str


@dataclass(frozen=True)
class VipParams:
    network: str
    ip: str | None               # None: Neutron chooses
    security: bool
    existing: str | None = None  # on an existing network of the cloud (its name)


@dataclass(frozen=True)
class PortParams:
    network: str
    security: bool
    pairs: tuple[str, ...] = ()  # VIPs the port may answer for (allowed address pairs)
    node: bool = False           # a bare-metal node's: down until it is handed over
    addresses: int = 1           # fixed IPs: 0 (the user's DHCP), 1, or a BMC host's many
    mac: str | None = None       # a node's: set, not Neutron's (see node_mac)
    existing: str | None = None  # on an existing network of the cloud (its name)
    ip: str | None = None        # a chosen fixed IP (the relay's on each leaf)


def node_mac(port: str) -> str:
    """A node's MAC: QEMU's and libvirt's prefix 52:54:00 and three bytes of the port's name.
    Not Neutron's default fa:16:3e:…: Ironic Python Agent ignores every NIC whose MAC starts
    with fa: (a locally assigned address, to it), so it could not find the node's own NIC."""
    digest = hashlib.sha256(port.encode()).digest()
    return "52:54:00:" + ":".join(f"{b:02x}" for b in digest[:3])


@dataclass(frozen=True)
class ServerGroupParams:
    policy: str                  # anti-affinity or soft-anti-affinity


@dataclass(frozen=True)
class ServerParams:
    role: str
    index: int
    flavor: str
    image: str
    ports: tuple[str, ...]       # in NIC order
    profile: str | None = None
    baremetal: bool = False      # a node behind the BMC (else it runs from its image)
    key: str | None = None
    availability_zone: str | None = None
    user_data: str | None = None   # base64
    group: str | None = None       # the server group it goes in (by name)
    leaf: str | None = None        # routed provisioning: the leaf of its first NIC
    config_drive: bool = False     # its user data on a config drive too (the relay image's)


@dataclass(frozen=True)
class FloatingIpParams:
    external: str
    port: str


@dataclass(frozen=True)
class CredentialParams:
    pass


@dataclass(frozen=True)
class BmcHostParams:
    flavor: str
    image: str
    ports: tuple[str, ...]
    credential: str
    nodes: tuple[str, ...]       # the nodes it serves, by name
    key: str | None = None
    availability_zone: str | None = None


Params = (NetworkParams | SubnetParams | RouterParams | VipParams | PortParams
          | ServerGroupParams | ServerParams | FloatingIpParams | CredentialParams
          | BmcHostParams)


@dataclass(frozen=True)
class Planned:
    kind: Kind
    name: str                                   # the cloud name, unique in the environment
    params: Params
    needs: tuple[str, ...] = ()                 # names of resources whose IDs params refer to

    @property
    def server(self) -> ServerParams | None:
        """The server's parameters, if it is a server (a node, the undercloud, a plain one)."""
        return self.params if isinstance(self.params, ServerParams) else None

    @property
    def node(self) -> bool:
        """A bare-metal node: behind the BMC, in the inventory, handed over powered off."""
        return self.server is not None and self.server.baremetal


def plan(spec: EnvironmentSpec) -> list[Planned]:
    resources: list[Planned] = []
    secured = {net.name for net in spec.networks if net.port_security}
    addressless = {net.name for net in spec.networks if not net.fixed_ips}
    existing = {net.name: net.existing for net in spec.networks if net.existing}
    for net in spec.networks:
        if net.existing:
            continue        # the cloud's: used, never made or deleted
        assert net.cidr is not None
        name = spec.resource_name(net.name)
        resources.append(Planned(Kind.NETWORK, name, NetworkParams(net.name)))
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        resources.append(Planned(Kind.SUBNET, f"{name}-subnet",
                                 SubnetParams(name, net.cidr, net.routed), needs=(name,)))
    if spec.external is not None:
        subnet = f"{spec.resource_name(BMC_NETWORK)}-subnet"
        resources.append(Planned(Kind.ROUTER, spec.resource_name("router"),
                                 RouterParams(spec.external, subnet), needs=(subnet,)))
    vips: dict[str, list[str]] = {}
    for vip in spec.vips:
        name = spec.resource_name("vip", vip.name)
        vips.setdefault(vip.network, []).append(name)
        resources.append(Planned(Kind.VIP, name, VipParams(
            spec.resource_name(vip.network), vip.ip, vip.network in secured,
            existing.get(vip.network)), needs=_on(spec, vip.network)))

    def ports_for(owner: str, networks: tuple[str, ...], node: bool,
                  addresses: int = 1) -> tuple[str, ...]:
        names = []
        for net in networks:
            port = f"{owner}-{net}"
            names.append(port)
            # Without port security the nodes' DHCP, PXE and VIP traffic is not filtered;
            # with it, the network's VIPs are the node's allowed address pairs.
            pairs = tuple(vips.get(net, [])) if net in secured else ()
            resources.append(Planned(Kind.PORT, port, PortParams(
                spec.resource_name(net), net in secured, pairs, node,
                0 if node and net in addressless else addresses,
                node_mac(spec.resource_name(port)) if node else None, existing.get(net)),
                needs=(*_on(spec, net), *pairs)))
        return tuple(names)

    nodes = []
    for role in spec.roles:
        # `boot: image` (the original design's "deploy without PXE"): plain servers booted
        # from the role's image and left running, not behind the BMC nor in the inventory
        baremetal = role.boot == "network"
        group = spec.resource_name(role.name, "group") if role.anti_affinity else None
        if group is not None:
            resources.append(Planned(Kind.SERVER_GROUP, group,
                                     ServerGroupParams(str(role.anti_affinity))))
        for index in range(role.count):
            node = spec.resource_name(role.name, str(index))
            if baremetal:
                nodes.append(node)
            ports = ports_for(node, role.networks, node=baremetal)
            resources.append(Planned(Kind.SERVER, node, ServerParams(
                role.name, index, role.flavor, role.image, ports, role.profile, baremetal,
                availability_zone=role.availability_zone, group=group, leaf=role.leaf),
                needs=(*ports, *([group] if group else []))))
    if spec.relay is not None:
        resources += _relay(spec)
    if spec.undercloud is not None:
        host = spec.resource_name("undercloud")
        ports = ports_for(host, spec.undercloud.networks, node=False)
        resources.append(Planned(Kind.SERVER, host, ServerParams(
            "undercloud", 0, spec.undercloud.flavor, spec.undercloud.image, ports,
            key=spec.undercloud.key, availability_zone=spec.undercloud.availability_zone),
            needs=ports))
        if spec.undercloud.floating_ip:
            port = f"{host}-{BMC_NETWORK}"
            assert spec.external is not None   # spec.py: a floating IP needs one
            resources.append(Planned(Kind.FLOATING_IP, f"{host}-fip",
                                     FloatingIpParams(spec.external, port),
                                     needs=(port, spec.resource_name("router"))))
    if spec.bmc.host is not None:
        credential = spec.resource_name("bmc-credential")
        resources.append(Planned(Kind.CREDENTIAL, credential, CredentialParams()))
        for host, served in bmc_hosts(spec, tuple(nodes)):
            # Per-node addresses: the host's port holds one fixed IP for itself and one per
            # node it serves.
            many = 1 + len(served) if spec.bmc.addressing == "addresses" else 1
            ports = ports_for(host, (BMC_NETWORK,), node=False, addresses=many)
            resources.append(Planned(Kind.BMC_HOST, host, BmcHostParams(
                spec.bmc.host.flavor, spec.bmc.host.image, ports, credential, served,
                spec.bmc.host.key, spec.bmc.host.availability_zone),
                needs=(*ports, credential)))   # nodes: by name
    return resources


def _relay(spec: EnvironmentSpec) -> list[Planned]:
    """The relay host joining the leaves: a port at its address on each, its script (relay.py)
    as user data, also on a config drive for our relay image."""
    assert spec.relay is not None
    host, made, macs = spec.resource_name("relay"), [], {}
    for leaf, address in relay_addresses(spec).items():
        port = f"{host}-{leaf}"
        macs[leaf] = node_mac(spec.resource_name(port))
        made.append(Planned(Kind.PORT, port, PortParams(
            spec.resource_name(leaf), security=False, mac=macs[leaf], ip=address),
            needs=_on(spec, leaf)))
    script = base64.b64encode(relay_script(spec, macs).encode()).decode()
    ports = tuple(p.name for p in made)
    relay = spec.relay
    made.append(Planned(Kind.SERVER, host, ServerParams(
        "relay", 0, relay.flavor, relay.image, ports, key=relay.key,
        availability_zone=relay.availability_zone, user_data=script, config_drive=True),
        needs=ports))
    return made


def bmc_hosts(spec: EnvironmentSpec, nodes: tuple[str, ...]) -> list[tuple[str, tuple[str, ...]]]:
    """Each BMC host's name and the nodes it serves: node k on host k mod N, so every host
    serves a share of every role (one host lost takes a few nodes of each, not a whole role)."""
    shards = spec.bmc.hosts
    if shards == 1:
        return [(spec.resource_name("bmc-host"), nodes)]
    return [(spec.resource_name("bmc-host", str(i)), nodes[i::shards]) for i in range(shards)]


def changed(before: list[Planned], after: list[Planned], held: set[str]) -> set[str]:
    """Of the resources `held` (made by the `before` plan), those the `after` plan makes
    otherwise or not at all, and what refers to them: what a corrected spec replaces."""
    old, new = {p.name: p for p in before}, {p.name: p for p in after}
    stale = {name for name in held if name not in new or new[name] != old.get(name)}
    while more := {name for name in held if name not in stale and name in old
                   and stale & set(old[name].needs)}:
        stale |= more
    return stale


def _on(spec: EnvironmentSpec, network: str) -> tuple[str, ...]:
    """What a port on `network` needs made first: our network and its subnet (an existing
    network: nothing)."""
    described = spec.network(network)
    if described is not None and described.existing:
        return ()
    name = spec.resource_name(network)
    return name, f"{name}-subnet"
