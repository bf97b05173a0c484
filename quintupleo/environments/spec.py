"""The environment spec (YAML), validated with messages that point at the bad key.

    name: lab1
    cloud: devcloud
    networks:
      provisioning: {cidr: 192.168.24.0/24}
      extra:
        internal_api: {cidr: 172.16.2.0/24}
        storage: {cidr: 172.16.1.0/24}
    roles:
      controller: {count: 2, flavor: qo.small, image: quintupleo-tiny, profile: control,
                   networks: [provisioning, internal_api, storage]}
      compute: {count: 2, flavor: qo.small, image: quintupleo-tiny, profile: compute}
    bmc: {address: 127.0.0.1, ipmi_port_base: 6230, redfish_port: 8000}   # optional
    vips: [{name: api, network: internal-api, ip: 172.16.2.250}]          # optional
    undercloud: {image: centos-9, flavor: m1.large, key: mykey}            # optional
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML, YAMLError

from quintupleo.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
PROVISIONING = "provisioning"


class SpecError(ConfigError):
    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    cidr: str
    # False: ports without port security (the user's DHCP/PXE and VIPs just work). True: ports
    # keep Neutron's filtering and the network's VIPs go in their allowed-address-pairs.
    port_security: bool = False


@dataclass(frozen=True)
class VipSpec:
    """A virtual IP for HA (keepalived/pacemaker): a reserved, device-less port."""

    name: str
    network: str
    ip: str | None = None


@dataclass(frozen=True)
class UndercloudSpec:
    """The host that runs the provisioning tool; it stays powered on."""

    image: str
    flavor: str
    key: str | None = None
    networks: tuple[str, ...] = ("provisioning",)


@dataclass(frozen=True)
class RoleSpec:
    name: str
    count: int
    flavor: str
    image: str
    profile: str | None
    networks: tuple[str, ...]      # NICs, in order; the first is the one that PXE-boots


@dataclass(frozen=True)
class BmcSpec:
    """Where the environment's virtual BMC (`bmc serve --environment NAME`) listens."""

    address: str = "127.0.0.1"
    ipmi_port_base: int = 6230
    redfish_port: int = 8000
    tls: bool = True
    username: str = "admin"


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    cloud: str
    networks: tuple[NetworkSpec, ...]     # the provisioning network first
    roles: tuple[RoleSpec, ...]
    bmc: BmcSpec = BmcSpec()
    vips: tuple[VipSpec, ...] = ()
    undercloud: UndercloudSpec | None = None

    @property
    def tag(self) -> str:
        """Carried by every resource of the environment (Neutron and Nova tags)."""
        return f"quintupleo:{self.name}"

    def resource_name(self, *parts: str) -> str:
        return "-".join(("qo", self.name, *parts))


class _Reader:
    """Walks the YAML tree, remembering where it is for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(self.source, key, message)

    def mapping(self, value: Any, key: str, allowed: set[str], required: set[str] = frozenset()):
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping")
        unknown = set(value) - allowed
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}" if key else sorted(unknown)[0],
                            f"unknown key; allowed: {', '.join(sorted(allowed))}")
        for name in sorted(required - set(value)):
            raise self.fail(f"{key}.{name}" if key else name, "required")
        return value

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not NAME.match(value):
            raise self.fail(key, "lower-case letters, digits and '-', starting with a letter, "
                                 "at most 24 characters")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "expected a non-empty string")
        return value

    def cidr(self, value: Any, key: str) -> str:
        try:
            return str(ipaddress.ip_network(self.text(value, key)))
        except ValueError as exc:
            raise self.fail(key, f"not a network: {exc}") from None


def parse(data: Any, source: str = "spec") -> EnvironmentSpec:
    r = _Reader(source)
    top = r.mapping(data, "", {"name", "cloud", "networks", "roles", "bmc", "vips",
                               "undercloud"}, {"name", "cloud", "networks", "roles"})
    name = r.name(top["name"], "name")
    cloud = r.text(top["cloud"], "cloud")
    nets = r.mapping(top["networks"], "networks", {PROVISIONING, "extra"}, {PROVISIONING})
    networks = [NetworkSpec(PROVISIONING, r.cidr(
        r.mapping(nets[PROVISIONING], f"networks.{PROVISIONING}", {"cidr"}, {"cidr"})["cidr"],
        f"networks.{PROVISIONING}.cidr"))]
    extra = nets.get("extra") or {}
    if not isinstance(extra, dict):
        raise r.fail("networks.extra", "expected a mapping of network name to {cidr}")
    for net_name, net in extra.items():
        key = f"networks.extra.{net_name}"
        r.name(net_name, key)
        if net_name == PROVISIONING:
            raise r.fail(key, "the provisioning network is declared above")
        net = r.mapping(net, key, {"cidr", "port_security"}, {"cidr"})
        security = net.get("port_security", False)
        if not isinstance(security, bool):
            raise r.fail(f"{key}.port_security", "true or false")
        networks.append(NetworkSpec(net_name, r.cidr(net["cidr"], f"{key}.cidr"), security))
    known = {n.name for n in networks}
    roles = []
    role_map = top["roles"]
    if not isinstance(role_map, dict) or not role_map:
        raise r.fail("roles", "a mapping of role name to {count, flavor, image, ...}")
    for role_name, role in role_map.items():
        key = f"roles.{role_name}"
        r.name(role_name, key)
        role = r.mapping(role, key, {"count", "flavor", "image", "profile", "networks"},
                         {"count", "flavor", "image"})
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
        profile = role.get("profile")
        roles.append(RoleSpec(role_name, count, r.text(role["flavor"], f"{key}.flavor"),
                              r.text(role["image"], f"{key}.image"),
                              r.text(profile, f"{key}.profile") if profile is not None else None,
                              tuple(nics)))
    return EnvironmentSpec(name, cloud, tuple(networks), tuple(roles),
                           _bmc(r, top.get("bmc") or {}), _vips(r, top.get("vips") or [], known),
                           _undercloud(r, top.get("undercloud"), known))


def _vips(r: _Reader, data: Any, networks: set[str]) -> tuple[VipSpec, ...]:
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


def _undercloud(r: _Reader, data: Any, networks: set[str]) -> UndercloudSpec | None:
    if data is None:
        return None
    data = r.mapping(data, "undercloud", {"image", "flavor", "key", "networks"},
                     {"image", "flavor"})
    nics = data.get("networks", [PROVISIONING])
    if not isinstance(nics, list) or not nics:
        raise r.fail("undercloud.networks", "a list of network names")
    for index, nic in enumerate(nics):
        if nic not in networks:
            raise r.fail(f"undercloud.networks[{index}]", f"no network {nic!r}")
    key = data.get("key")
    return UndercloudSpec(r.text(data["image"], "undercloud.image"),
                          r.text(data["flavor"], "undercloud.flavor"),
                          r.text(key, "undercloud.key") if key is not None else None,
                          tuple(nics))


def _bmc(r: _Reader, data: Any) -> BmcSpec:
    fields = r.mapping(data, "bmc", {"address", "ipmi_port_base", "redfish_port", "tls",
                                     "username"})
    for key in ("ipmi_port_base", "redfish_port"):
        if key in fields and (not isinstance(fields[key], int) or not 0 < fields[key] < 65536):
            raise r.fail(f"bmc.{key}", "a port number")
    if "tls" in fields and not isinstance(fields["tls"], bool):
        raise r.fail("bmc.tls", "true or false")
    for key in ("address", "username"):
        if key in fields:
            r.text(fields[key], f"bmc.{key}")
    return BmcSpec(**fields)


def load(path: Path) -> EnvironmentSpec:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    return parse(data, str(path))
