"""The devcloud's L2 segments from the host's side: namespaces put on a network for the user's own
DHCP/PXE server (`devcloud netns`), and removing every tap, bridge, namespace and nftables table
of the cloud on `down`.

A network's segment is its bridge (plugins/l2_agent.py makes them and wires the VMs' taps). A
namespace joins it by a veth pair: `qov…` on the bridge, `eth0` inside. Each namespace made is
recorded under run/netns/, so `status` lists them and `down` removes them, also after a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import sqlite3
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

from quintupleo.devcloud.layout import Layout, State
from quintupleo.devcloud.plugins.l2_agent import ensure_bridge, links, no_ipv6
from quintupleo.devcloud.plugins.names import BRIDGE_PREFIX, VETH_PREFIX, bridge_name, tap_name
from quintupleo.devcloud.services import nft_table
from quintupleo.errors import DevcloudError

INTERFACE = "eth0"
NETNS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class Namespace:
    name: str
    network: str        # the network's name (or ID when it has none)
    network_id: str
    interface: str
    address: str | None
    bridge: str


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise DevcloudError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _record(layout: Layout, name: str) -> Path:
    return layout.netns_records / f"{name}.json"


def default_name(network: str) -> str:
    return "devcloud-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", network)[:40]


def create(layout: Layout, network_id: str, network: str, mtu: int | None = None,
           name: str | None = None, address: str | None = None) -> Namespace:
    """A namespace on the network's segment: `eth0` with ADDRESS (CIDR notation) and the
    network's MTU, `lo` up."""
    if os.geteuid() != 0:
        raise DevcloudError("devcloud netns needs root (network namespaces, veth, bridges)")
    name = name or default_name(network)
    if not NETNS_NAME.match(name):
        raise DevcloudError(f"{name!r} is not a namespace name: letters, digits, '.', '_', '-'")
    if address is not None:
        try:
            ipaddress.ip_interface(address)
        except ValueError:
            raise DevcloudError(f"--address {address!r} is not an address with a prefix "
                                "length, such as 192.168.24.1/24") from None
    if _record(layout, name).exists() or Path(f"/run/netns/{name}").exists():
        raise DevcloudError(f"namespace {name} exists",
                            hint=f"Remove it with `quintupleo devcloud netns --delete {name}`.")
    bridge = bridge_name(network_id)
    outer = VETH_PREFIX + hashlib.sha1(name.encode()).hexdigest()[:11]
    _ip("netns", "add", name)
    try:
        _ip("link", "add", outer, *(["mtu", str(mtu)] if mtu else []), "type", "veth", "peer",
            "name", INTERFACE, *(["mtu", str(mtu)] if mtu else []), "netns", name)
        ensure_bridge(bridge)
        no_ipv6(outer)
        _ip("link", "set", outer, "master", bridge, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", name, "link", "set", INTERFACE, "up")
        if address:
            # An IPv6 address is usable at once: no duplicate detection on our own segment
            # (a server started right after would find it still tentative).
            nodad = ["nodad"] if ipaddress.ip_interface(address).version == 6 else []
            _ip("-n", name, "addr", "add", address, "dev", INTERFACE, *nodad)
    except DevcloudError:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
        raise
    found = Namespace(name, network, network_id, INTERFACE, address, bridge)
    layout.netns_records.mkdir(parents=True, exist_ok=True)
    _record(layout, name).write_text(json.dumps(asdict(found)))
    return found


def delete(layout: Layout, name: str) -> None:
    record = _record(layout, name)
    if not record.exists():
        raise DevcloudError(f"no namespace {name} made by this devcloud",
                            hint="`quintupleo devcloud status` lists them.")
    subprocess.run(["ip", "netns", "delete", name], capture_output=True, check=False)
    record.unlink()


def namespaces(layout: Layout) -> list[Namespace]:
    found = []
    for record in sorted(layout.netns_records.glob("*.json")):
        with contextlib.suppress(ValueError, TypeError):
            found.append(Namespace(**json.loads(record.read_text())))
    return found


def _ours(layout: Layout) -> tuple[set[str], set[str]]:
    """The bridge and tap names this cloud's networks and ports would have."""
    try:
        with sqlite3.connect(f"file:{layout.db('neutron')}?mode=ro", uri=True) as db:
            networks = {bridge_name(row[0]) for row in db.execute("SELECT id FROM networks")}
            taps = {tap_name(row[0]) for row in db.execute("SELECT id FROM ports")}
    except sqlite3.Error:
        return set(), set()
    return networks, taps


def remove_all(layout: Layout, state: State) -> None:
    """Every namespace, tap, bridge and the nftables table of this cloud (root only; where
    iproute2 is not to be found, nothing of the data plane can have been made)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return
    for found in namespaces(layout):
        delete(layout, found.name)
    bridges, taps = _ours(layout)
    for link in links():
        name = link["ifname"]
        on_ours = link.get("master") in bridges
        if name in taps or (on_ours and name.startswith(VETH_PREFIX)):
            subprocess.run(["ip", "link", "delete", name], capture_output=True, check=False)
    for link in links():
        if link["ifname"].startswith(BRIDGE_PREFIX) and link["ifname"] in bridges:
            subprocess.run(["ip", "link", "delete", link["ifname"]], capture_output=True,
                           check=False)
    subprocess.run(["nft", "delete", "table", "bridge", nft_table(state)], capture_output=True,
                   check=False)
