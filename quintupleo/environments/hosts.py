"""The spec's servers that are not nodes (the undercloud, the relay host of routed leaves, the
BMC host) and where the BMC serves: their dataclasses and how their YAML is read."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from quintupleo.backends.openstack.boot import STRATEGIES as BOOT_STRATEGIES
from quintupleo.environments.reader import Reader

PROVISIONING = "provisioning"
BMC_NETWORK = "bmc"
ADDRESSING = ("ports", "addresses")
RELAY_IMAGE = "quintupleo-relay"     # built here from Debian's packages (images/relay.py)
MAX_BMC_HOSTS = 64


@dataclass(frozen=True)
class HostSpec:
    """A server of the environment that is not a bare-metal node (it stays powered on)."""

    image: str
    flavor: str
    key: str | None = None
    availability_zone: str | None = None   # the cloud's zone for it; None: the cloud's default


@dataclass(frozen=True)
class UndercloudSpec(HostSpec):
    """The host that runs the provisioning tool."""

    networks: tuple[str, ...] = ("provisioning",)
    floating_ip: bool = False


@dataclass(frozen=True)
class RelaySpec(HostSpec):
    """The host joining routed provisioning leaves: it routes between them (its address on
    each is the leaf's last) and relays their DHCP to `server` on the first leaf."""

    server: str = ""


@dataclass(frozen=True)
class BmcSpec:
    """Where the environment's virtual BMC listens: served from here by `bmc serve
    --environment NAME` (`address`), or from a host in the cloud (`host`), where each node
    gets a port of the host's address (`addressing: ports`) or an address of its own on 623."""

    address: str = "127.0.0.1"
    ipmi_port_base: int = 6230
    redfish_port: int = 8000
    tls: bool = True
    username: str = "admin"
    host: HostSpec | None = None
    addressing: str = "ports"
    install: str | None = None          # what the host pip-installs; default: this version
    hosts: int = 1                      # BMC hosts (shards): node k is served by host k mod N
    boot_strategy: str = "none"         # network and CD boots: none, rescue or rebuild


def host_spec(r: Reader, data: dict[str, Any], where: str) -> HostSpec:
    """The image, flavor, key and zone of a host (its mapping already checked)."""
    key = data.get("key")
    return HostSpec(r.text(data["image"], f"{where}.image"), r.text(data["flavor"],
                    f"{where}.flavor"), r.text(key, f"{where}.key") if key is not None else None,
                    r.zone(data, where))


def undercloud_spec(r: Reader, data: Any, networks: set[str]) -> UndercloudSpec | None:
    if data is None:
        return None
    data = r.mapping(data, "undercloud", {"image", "flavor", "key", "networks", "floating_ip",
                                          "availability_zone"}, {"image", "flavor"})
    nics = data.get("networks", [PROVISIONING])
    if not isinstance(nics, list) or not nics:
        raise r.fail("undercloud.networks", "a list of network names")
    for index, nic in enumerate(nics):
        if nic not in networks:
            raise r.fail(f"undercloud.networks[{index}]", f"no network {nic!r}")
    host = host_spec(r, data, "undercloud")
    return UndercloudSpec(host.image, host.flavor, host.key, host.availability_zone,
                          tuple(nics), r.flag(data, "undercloud", "floating_ip", False))


def bmc_spec(r: Reader, data: Any) -> BmcSpec:
    fields = dict(r.mapping(data, "bmc", {"address", "ipmi_port_base", "redfish_port", "tls",
                                          "username", "host", "addressing", "install",
                                          "boot_strategy", "hosts"}))
    for key in ("ipmi_port_base", "redfish_port"):
        if key in fields and (not isinstance(fields[key], int) or not 0 < fields[key] < 65536):
            raise r.fail(f"bmc.{key}", "a port number")
    if "tls" in fields and not isinstance(fields["tls"], bool):
        raise r.fail("bmc.tls", "true or false")
    for key in ("address", "username", "install"):
        if key in fields:
            r.text(fields[key], f"bmc.{key}")
    if fields.get("boot_strategy", "none") not in BOOT_STRATEGIES:
        raise r.fail("bmc.boot_strategy", f"one of {', '.join(BOOT_STRATEGIES)}")
    if fields.get("addressing", "ports") not in ADDRESSING:
        raise r.fail("bmc.addressing", f"one of {', '.join(ADDRESSING)}")
    if "host" in fields:
        fields["host"] = host_spec(r, r.mapping(fields["host"], "bmc.host",
                                            {"image", "flavor", "key", "availability_zone"},
                                            {"image", "flavor"}), "bmc.host")
    else:
        for key in ("addressing", "install", "hosts"):
            if key in fields:
                raise r.fail(f"bmc.{key}", "only for a BMC host in the cloud (bmc.host)")
    hosts = fields.get("hosts", 1)
    if not isinstance(hosts, int) or isinstance(hosts, bool) or not 1 <= hosts <= MAX_BMC_HOSTS:
        raise r.fail("bmc.hosts", f"an integer from 1 to {MAX_BMC_HOSTS}")
    return BmcSpec(**fields)


def relay_spec(r: Reader, data: Any, first_leaf: str | None,
               leaves: tuple[str, ...]) -> RelaySpec | None:
    if (data is None) == bool(leaves):
        raise r.fail("relay", "needed with provisioning leaves, and only with them")
    if data is None:
        return None
    data = r.mapping(data, "relay", {"image", "flavor", "key", "availability_zone", "server"},
                     {"flavor"})
    host = host_spec(r, {"image": RELAY_IMAGE, **data}, "relay")
    first = ipaddress.ip_network(str(first_leaf))
    if first.version == 6:
        raise r.fail(f"networks.{PROVISIONING}[0].cidr", "routed leaves are IPv4 (the relay "
                                                         "relays DHCPv4)")
    server = data.get("server", str(next(first.hosts())))
    try:
        if ipaddress.ip_address(server) not in first:
            raise r.fail("relay.server", f"not on the first leaf ({first})")
    except ValueError as exc:
        raise r.fail("relay.server", str(exc)) from None
    return RelaySpec(host.image, host.flavor, host.key, host.availability_zone, str(server))
