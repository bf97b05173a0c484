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
SERVER_TAP = "srv0"   # the lab's own DHCP/TFTP server, when it has one


def is_root() -> bool:
    return os.geteuid() == 0


def netns_name(lab: str) -> str:
    return f"qo-lab-{lab}"


def tap_name(node: LabNode) -> str:
    return f"tap{node.index}"


def _ip(*args: str, netns: str | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
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
    # IPv6: usable at once (no duplicate detection on the lab's own segment)
    _ip("addr", "add", f"{next(network.hosts())}/{network.prefixlen}", "dev", BRIDGE,
        *(["nodad"] if network.version == 6 else []), netns=lab.netns)
    _ip("link", "set", BRIDGE, "up", netns=lab.netns)
    for tap in [tap_name(node) for node in lab.nodes] + ([SERVER_TAP] if lab.tftp_root else []):
        _ip("tuntap", "add", tap, "mode", "tap", netns=lab.netns)
        _ip("link", "set", tap, "master", BRIDGE, "up", netns=lab.netns)


def delete(netns: str) -> bool:
    """Remove the namespace (and the bridge and taps in it); True if there was one."""
    if not exists(netns):
        return False
    _ip("netns", "delete", netns)
    return True


def qemu_netdev(lab: Lab, node: LabNode) -> str:
    """QEMU's -netdev (id net0) for the node's one NIC on the lab network."""
    if lab.netns:
        return f"tap,id=net0,ifname={tap_name(node)},script=no,downscript=no"
    return f"socket,id=net0,mcast={lab.mcast},localaddr=127.0.0.1"


def server_argv(lab: Lab) -> list[str]:
    """The lab's own DHCP/TFTP server: a QEMU with no machine whose user-mode network (DHCP,
    TFTP; `restrict=on`: no way out of the machine) is joined by a hub to the lab network."""
    network = ipaddress.ip_network(lab.cidr)
    segment = (f"tap,id=lab,ifname={SERVER_TAP},script=no,downscript=no" if lab.netns
               else f"socket,id=lab,mcast={lab.mcast},localaddr=127.0.0.1")
    server = list(network.hosts())[1]   # the first address is the bridge's
    return [*qemu_prefix(lab), "qemu-system-x86_64", "-name",
            f"{lab.process_tag}network,process={lab.process_tag}network", "-machine", "none",
            "-nodefaults", "-display", "none", "-daemonize",
            "-pidfile", str(lab.dir / "network.pid"), "-netdev", segment,
            "-netdev", f"user,id=services,restrict=on,net={lab.cidr},host={server},"
                       f"dhcpstart={list(network.hosts())[99]},tftp={lab.tftp_root},"
                       f"bootfile={lab.bootfile or ''}",
            "-netdev", "hubport,id=p1,hubid=0,netdev=lab",
            "-netdev", "hubport,id=p2,hubid=0,netdev=services"]


def qemu_prefix(lab: Lab) -> list[str]:
    """How to start a node's QEMU: inside the namespace (its tap is there) or as it is."""
    return ["ip", "netns", "exec", lab.netns] if lab.netns else []
