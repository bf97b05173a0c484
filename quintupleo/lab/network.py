"""The lab's L2 network; nothing on it leaves the machine.

As root: a network namespace `qo-lab-NAME` holding a bridge `br0` (with the first address of the
lab's CIDR, for the user's own DHCP/PXE server run there with `ip netns exec`) and one tap per
node. Rootless: the nodes share a UDP multicast group on loopback (QEMU's socket netdev).
Deleting the namespace removes the bridge and taps with it.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

from quintupleo.errors import ConfigError
from quintupleo.lab.layout import Lab, LabNode

BRIDGE = "br0"


def is_root() -> bool:
    return os.geteuid() == 0


def netns_name(lab: str) -> str:
    return f"qo-lab-{lab}"


def tap_name(node: LabNode) -> str:
    return f"tap{node.index}"


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    command = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ConfigError(f"`{' '.join(command)}` failed: {result.stderr.strip()}")
    return result


def exists(netns: str) -> bool:
    return netns in _ip("netns", "list", check=False).stdout.split()


def create(lab: Lab) -> None:
    """Make the namespace, bridge and taps (again, if a crash left part of them)."""
    assert lab.netns is not None
    if exists(lab.netns):
        delete(lab.netns)
    _ip("netns", "add", lab.netns)
    network = ipaddress.ip_network(lab.cidr)
    _ip("link", "set", "lo", "up", netns=lab.netns)
    _ip("link", "add", BRIDGE, "type", "bridge", netns=lab.netns)
    _ip("addr", "add", f"{next(network.hosts())}/{network.prefixlen}", "dev", BRIDGE,
        netns=lab.netns)
    _ip("link", "set", BRIDGE, "up", netns=lab.netns)
    for node in lab.nodes:
        _ip("tuntap", "add", tap_name(node), "mode", "tap", netns=lab.netns)
        _ip("link", "set", tap_name(node), "master", BRIDGE, "up", netns=lab.netns)


def delete(netns: str) -> bool:
    """Remove the namespace (and the bridge and taps in it); True if there was one."""
    if not exists(netns):
        return False
    _ip("netns", "delete", netns)
    return True


def qemu_netdev(lab: Lab, node: LabNode) -> list[str]:
    """QEMU arguments for the node's one NIC on the lab network."""
    device = ["-device", f"virtio-net-pci,netdev=net0,mac={node.mac}"]
    if lab.netns:
        return ["-netdev", f"tap,id=net0,ifname={tap_name(node)},script=no,downscript=no",
                *device]
    return ["-netdev", f"socket,id=net0,mcast={lab.mcast},localaddr=127.0.0.1", *device]


def qemu_prefix(lab: Lab) -> list[str]:
    """How to start a node's QEMU: inside the namespace (its tap is there) or as it is."""
    return ["ip", "netns", "exec", lab.netns] if lab.netns else []
