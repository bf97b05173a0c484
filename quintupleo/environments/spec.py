"""The environment spec (YAML), validated with messages that point at the bad key.

    name: lab1
    cloud: devcloud
    networks:
      provisioning: {cidr: 192.168.24.0/24}
      bmc: {cidr: 10.0.1.0/24}        # optional: where the undercloud and the BMC host meet
      external: public                # optional: an existing external network, routed to `bmc`
      extra:
        internal_api: {cidr: 172.16.2.0/24}
        tenant: {existing: shared-net, port_security: true}   # one of the cloud's, kept
        storage: {cidr: 172.16.1.0/24}
    roles:
      controller: {count: 2, flavor: qo.small, image: quintupleo-tiny, profile: control,
                   networks: [provisioning, internal_api, storage]}
      compute: {count: 2, flavor: qo.small, image: quintupleo-tiny, profile: compute,
                anti_affinity: true}          # on different hypervisors (or: soft)
      services: {count: 1, flavor: qo.small, image: debian-12, boot: image}   # no PXE: a
                                      # plain server, running, not behind the BMC
    bmc: {address: 127.0.0.1, ipmi_port_base: 6230, redfish_port: 8000,   # optional
          boot_strategy: rescue}          # how network/CD boots are done: none|rescue|rebuild
    vips: [{name: api, network: internal-api, ip: 172.16.2.250}]          # optional
    undercloud: {image: centos-9, flavor: m1.large, key: mykey,            # optional
                 networks: [bmc, provisioning], floating_ip: true}

A provisioning (or extra) network may be IPv6 (`cidr: fd00:1:2::/64`): Neutron then sends no
router advertisements and runs no DHCPv6 on it; the user's server does both. Routed (spine-leaf)
provisioning: `networks.provisioning` is a list of leaves `[{name, cidr}, ...]`, roles say
`leaf: NAME` (default: the first, the undercloud's), and `relay: {flavor, image, server}` joins
them (relay.py).

`bmc.host: {image, flavor, key}` serves the BMC from a host in the cloud instead (see bmc_host.py);
`bmc.hosts: N` from N such hosts, each serving every N-th node (for environments too large
or too busy for one).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from quintupleo.environments.hosts import (
    BMC_NETWORK,
    PROVISIONING,
    BmcSpec,
    RelaySpec,
    UndercloudSpec,
    bmc_spec,
    relay_spec,
    undercloud_spec,
)
from quintupleo.environments.reader import Reader
from quintupleo.errors import ConfigError

ROLE_BOOTS = ("network", "image")


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    cidr: str | None               # None: an existing network's own
    # False: ports without port security (the user's DHCP/PXE and VIPs just work). True: ports
    # keep Neutron's filtering and the network's VIPs go in their allowed-address-pairs.
    port_security: bool = False
    # The BMC network is an ordinary routed one: DHCP, a gateway, the cloud's security groups.
    routed: bool = False
    # False: node ports get no address from Neutron; the user's DHCP hands them out (needs
    # port security off, and a cloud that allows it: `quintupleo check` says).
    fixed_ips: bool = True
    # An existing network of the cloud (name or ID) used instead of making one, for clouds
    # where users may not make networks: ports go on it; delete never touches it.
    existing: str | None = None


@dataclass(frozen=True)
class VipSpec:
    """A virtual IP for HA (keepalived/pacemaker): a reserved, device-less port."""

    name: str
    network: str
    ip: str | None = None


@dataclass(frozen=True)
class RoleSpec:
    name: str
    count: int
    flavor: str
    image: str
    profile: str | None
    networks: tuple[str, ...]      # NICs, in order; the first is the one that PXE-boots
    availability_zone: str | None = None   # e.g. `qemu`: the devcloud's real VMs
    boot: str = "network"          # network: bare metal behind the BMC; image: a plain server
    # a server group's policy: its nodes on different hypervisors (anti-affinity, strict; or
    # soft-anti-affinity, as far as the cloud can); None: wherever the scheduler puts them
    anti_affinity: str | None = None
    leaf: str | None = None        # routed provisioning: the leaf its first NIC is on


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    cloud: str
    networks: tuple[NetworkSpec, ...]     # the provisioning network first
    roles: tuple[RoleSpec, ...]
    bmc: BmcSpec = BmcSpec()  # noqa: RUF009 (frozen: one shared default is safe)
    vips: tuple[VipSpec, ...] = ()
    undercloud: UndercloudSpec | None = None
    external: str | None = None            # an existing external network (name or ID)
    leaves: tuple[str, ...] = ()           # routed provisioning: its leaves' networks
    relay: RelaySpec | None = None

    def network(self, name: str) -> NetworkSpec | None:
        return next((net for net in self.networks if net.name == name), None)

    @property
    def tag(self) -> str:
        """Carried by every resource of the environment (Neutron and Nova tags)."""
        return f"quintupleo:{self.name}"

    def resource_name(self, *parts: str) -> str:
        return "-".join(("qo", self.name, *parts))


def parse(data: Any, source: str = "spec") -> EnvironmentSpec:
    r = Reader(source)
    top = r.mapping(data, "", {"name", "cloud", "networks", "roles", "bmc", "vips",
                               "undercloud", "relay"}, {"name", "cloud", "networks", "roles"})
    name = r.name(top["name"], "name")
    cloud = r.text(top["cloud"], "cloud")
    nets = r.mapping(top["networks"], "networks", {PROVISIONING, BMC_NETWORK, "external",
                                                   "extra"}, {PROVISIONING})
    key = f"networks.{PROVISIONING}"
    if isinstance(nets[PROVISIONING], list):     # routed: leaves, joined by the relay host
        networks = _leaves(r, nets[PROVISIONING])
    else:
        provisioning = r.mapping(nets[PROVISIONING], key,
                                 {"cidr", "fixed_ips", "existing", "port_security"})
        cidr, existing_net = r.where(provisioning, key)
        networks = [NetworkSpec(PROVISIONING, cidr,
                                r.flag(provisioning, key, "port_security", False)
                                if existing_net else False,
                                fixed_ips=r.flag(provisioning, key, "fixed_ips", True),
                                existing=existing_net)]
        if not existing_net and "port_security" in provisioning:
            raise r.fail(f"{key}.port_security", "only for an existing network (ours has none)")
    leaves = tuple(n.name for n in networks) if networks[0].name != PROVISIONING else ()
    if BMC_NETWORK in nets:
        key = f"networks.{BMC_NETWORK}"
        networks.append(NetworkSpec(BMC_NETWORK, r.cidr(
            r.mapping(nets[BMC_NETWORK], key, {"cidr"}, {"cidr"})["cidr"], f"{key}.cidr"),
            port_security=True, routed=True))
    external = nets.get("external")
    if external is not None:
        external = r.text(external, "networks.external")
        if BMC_NETWORK not in nets:
            raise r.fail("networks.external", f"needs networks.{BMC_NETWORK}: the router to the "
                                              "external network is on it")
    extra = nets.get("extra") or {}
    if not isinstance(extra, dict):
        raise r.fail("networks.extra", "expected a mapping of network name to {cidr}")
    for net_name, net in extra.items():
        key = f"networks.extra.{net_name}"
        r.name(net_name, key)
        if net_name in (PROVISIONING, BMC_NETWORK, *leaves):
            raise r.fail(key, f"the {net_name} network is declared above")
        net = r.mapping(net, key, {"cidr", "port_security", "fixed_ips", "existing"})
        security = r.flag(net, key, "port_security", False)
        fixed_ips = r.flag(net, key, "fixed_ips", True)
        if security and not fixed_ips:
            raise r.fail(f"{key}.fixed_ips", "false needs port_security false (Neutron would "
                                             "drop the traffic of a port with no address)")
        cidr, existing_net = r.where(net, key)
        networks.append(NetworkSpec(net_name, cidr, security, fixed_ips=fixed_ips,
                                    existing=existing_net))
    known = {n.name for n in networks} | {PROVISIONING}
    roles = []
    role_map = top["roles"]
    if not isinstance(role_map, dict) or not role_map:
        raise r.fail("roles", "a mapping of role name to {count, flavor, image, ...}")
    for role_name, role in role_map.items():
        key = f"roles.{role_name}"
        r.name(role_name, key)
        role = r.mapping(role, key, {"count", "flavor", "image", "profile", "networks",
                                     "availability_zone", "boot", "anti_affinity", "leaf"},
                         {"count", "flavor", "image"})
        boot = role.get("boot", "network")
        if boot not in ROLE_BOOTS:
            raise r.fail(f"{key}.boot", "network (bare metal, served by the BMC) or image "
                                        "(plain servers booted from the image, left running)")
        count = role["count"]
        if not isinstance(count, int) or isinstance(count, bool) or not 0 < count <= 1000:
            raise r.fail(f"{key}.count", "an integer from 1 to 1000")
        nics = role.get("networks", [PROVISIONING])
        if not isinstance(nics, list) or not nics:
            raise r.fail(f"{key}.networks", "a list of network names")
        for index, nic in enumerate(nics):
            if nic not in known:
                raise r.fail(f"{key}.networks[{index}]",
                             f"no network {nic!r}; declared: {', '.join(sorted(known))}")
        if nics[0] != PROVISIONING:
            raise r.fail(f"{key}.networks[0]", "the first NIC must be on the provisioning network "
                                               "(it is the one that PXE-boots)")
        leaf = _leaf(r, role.get("leaf"), leaves, f"{key}.leaf")
        nics = [leaf if nic == PROVISIONING and leaf else nic for nic in nics]
        profile = role.get("profile")
        roles.append(RoleSpec(role_name, count, r.text(role["flavor"], f"{key}.flavor"),
                              r.text(role["image"], f"{key}.image"),
                              r.text(profile, f"{key}.profile") if profile is not None else None,
                              tuple(nics), r.zone(role, key), boot,
                              _anti_affinity(r, role, key), leaf))
    bmc = bmc_spec(r, top.get("bmc") or {})
    baremetal = sum(role.count for role in roles if role.boot == "network")
    if bmc.hosts > baremetal:
        raise r.fail("bmc.hosts", f"{bmc.hosts} BMC hosts for {baremetal} nodes: at most one "
                                  "host per node")
    if bmc.host is not None and external is None:
        raise r.fail("bmc.host", "the BMC host reaches the cloud's APIs through a router: give "
                                 f"networks.{BMC_NETWORK} and networks.external")
    undercloud = undercloud_spec(r, top.get("undercloud"), known)
    vips = _vips(r, top.get("vips") or [], known)
    if leaves:     # `provisioning` names the first leaf: the undercloud's, where DHCP answers
        first = {PROVISIONING: leaves[0]}
        vips = tuple(replace(v, network=first.get(v.network, v.network)) for v in vips)
        if undercloud is not None:
            undercloud = replace(undercloud, networks=tuple(first.get(n, n)
                                                            for n in undercloud.networks))
    relay = relay_spec(r, top.get("relay"), networks[0].cidr, leaves)
    if (undercloud is not None and undercloud.floating_ip
            and (external is None or BMC_NETWORK not in undercloud.networks)):
        raise r.fail("undercloud.floating_ip", f"needs networks.external and a NIC on "
                                               f"networks.{BMC_NETWORK} (the routed one)")
    return EnvironmentSpec(name, cloud, tuple(networks), tuple(roles), bmc, vips, undercloud,
                           external, leaves, relay)


def _vips(r: Reader, data: Any, networks: set[str]) -> tuple[VipSpec, ...]:
    if not isinstance(data, list):
        raise r.fail("vips", "a list of {name, network, ip}")
    vips, names = [], set()
    for index, vip in enumerate(data):
        key = f"vips[{index}]"
        vip = r.mapping(vip, key, {"name", "network", "ip"}, {"name", "network"})
        name = r.name(vip["name"], f"{key}.name")
        if name in names:
            raise r.fail(f"{key}.name", "used twice")
        names.add(name)
        if vip["network"] not in networks:
            raise r.fail(f"{key}.network", f"no network {vip['network']!r}")
        ip = vip.get("ip")
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip))
            except ValueError as exc:
                raise r.fail(f"{key}.ip", str(exc)) from None
        vips.append(VipSpec(name, vip["network"], ip))
    return tuple(vips)


def _leaves(r: Reader, data: list[Any]) -> list[NetworkSpec]:
    """Routed provisioning: each leaf its own network; the first is the undercloud's."""
    key = f"networks.{PROVISIONING}"
    if len(data) < 2:
        raise r.fail(key, "a list of at least two leaves {name, cidr} (one network: a mapping)")
    leaves: list[NetworkSpec] = []
    for index, leaf in enumerate(data):
        where = f"{key}[{index}]"
        leaf = r.mapping(leaf, where, {"name", "cidr", "fixed_ips"}, {"name", "cidr"})
        name = r.name(leaf["name"], f"{where}.name")
        if name in (PROVISIONING, BMC_NETWORK) or name in {n.name for n in leaves}:
            raise r.fail(f"{where}.name", f"{name!r} is taken")
        cidr = r.cidr(leaf["cidr"], f"{where}.cidr")
        if any(ipaddress.ip_network(cidr).overlaps(ipaddress.ip_network(str(n.cidr)))
               for n in leaves):
            raise r.fail(f"{where}.cidr", "overlaps another leaf (the relay routes between them)")
        leaves.append(NetworkSpec(name, cidr, fixed_ips=r.flag(leaf, where, "fixed_ips", True)))
    return leaves


def _leaf(r: Reader, value: Any, leaves: tuple[str, ...], key: str) -> str | None:
    if value is None:
        return leaves[0] if leaves else None
    if not leaves:
        raise r.fail(key, "only with provisioning leaves (networks.provisioning as a list)")
    if value not in leaves:
        raise r.fail(key, f"no leaf {value!r}; the leaves: {', '.join(leaves)}")
    return str(value)


def _anti_affinity(r: Reader, data: dict[str, Any], where: str) -> str | None:
    value = data.get("anti_affinity", False)
    if value is True:
        return "anti-affinity"
    if value == "soft":
        return "soft-anti-affinity"
    if value is not False:
        raise r.fail(f"{where}.anti_affinity", "true (every node on another hypervisor), soft "
                                               "(as far as the cloud can) or false")
    return None


def load(path: Path) -> EnvironmentSpec:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse(data, str(path))
