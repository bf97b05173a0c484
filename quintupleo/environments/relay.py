"""The relay host of routed provisioning: what it runs, from the spec alone (pure).

It has a port on every leaf, at the leaf's last address (its router: nodes on a leaf reach the
undercloud's TFTP and HTTP through it), forwards between the leaves, and relays the DHCP of every
leaf but the first to the server on the first (dnsmasq's relay: it puts its own address on the
client's leaf in `giaddr`, so the server picks the range of that leaf, and answers back to it).
The server needs a route to each leaf through the relay's address on the first leaf.

The same shell script is its user data for cloud-init (any small image with cloud-init and a
package manager) and for our relay image, whose /init runs it from the config drive.
"""

from __future__ import annotations

import ipaddress

from quintupleo.environments.spec import EnvironmentSpec

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def leaf_networks(spec: EnvironmentSpec) -> dict[str, Network]:
    networks = {}
    for leaf in spec.leaves:
        network = spec.network(leaf)
        assert network is not None and network.cidr is not None   # leaves are ours (spec.py)
        networks[leaf] = ipaddress.ip_network(network.cidr)
    return networks


def relay_addresses(spec: EnvironmentSpec) -> dict[str, str]:
    """Leaf name -> the relay's address on it (the leaf's last host address)."""
    return {leaf: str(network.broadcast_address - 1)
            for leaf, network in leaf_networks(spec).items()}


def relay_script(spec: EnvironmentSpec, macs: dict[str, str]) -> str:
    """`macs`: leaf name -> the MAC of the relay's port on it."""
    assert spec.relay is not None
    addresses = relay_addresses(spec)
    first, *others = spec.leaves
    lines = [
        "#!/bin/sh",
        f"# QuintupleO DHCP relay of environment {spec.name}: leaves "
        f"{', '.join(others)} relayed to {spec.relay.server} on {first}",
        "set -e",
        "nic() {   # the interface with MAC $1",
        "  for dev in /sys/class/net/*; do",
        '    [ "$(cat "$dev/address")" = "$1" ] && { basename "$dev"; return 0; }',
        "  done",
        '  echo "no interface with MAC $1" >&2; return 1',
        "}",
    ]
    for leaf, network in leaf_networks(spec).items():
        lines += [f"dev=$(nic {macs[leaf]}); ip link set \"$dev\" up",
                  f'ip addr replace {addresses[leaf]}/{network.prefixlen} dev "$dev"   # {leaf}']
    relays = " ".join(f"--dhcp-relay={addresses[leaf]},{spec.relay.server}" for leaf in others)
    lines += [
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
        "command -v dnsmasq >/dev/null || apt-get install -y dnsmasq-base "
        "|| dnf install -y dnsmasq || apk add dnsmasq",
        # in the background, its log on the console: cloud-init waits for the script to end
        "dnsmasq --keep-in-foreground --conf-file=/dev/null --port=0 --user=root "
        f"--log-dhcp --log-facility=- {relays} </dev/null >/dev/console 2>&1 &",
        'sleep 1; kill -0 $!   # still running: its options were good',
        'echo "QuintupleO relay ready" >/dev/console',
    ]
    return "\n".join(lines) + "\n"
