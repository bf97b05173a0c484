"""The devcloud's L2 agent: each Neutron network a Linux bridge, each bound tap on its bridge, and
port security as nftables rules on the bridge ports.

Our ML2 driver binds ports on the real host with `vif_type=tap`; Nova's libvirt driver then makes
a tap named for the port (`tap` + the port ID's first 11 characters) and wires it to nothing.
This agent, started and stopped with the cloud, puts each such tap on its network's bridge
(`qobr` + the network ID's first 11 characters: no address, no IPv6, no uplink, so one isolated
segment per network), removes bridges left empty, and keeps one nftables table (bridge family)
that drops what a port with port security sends from a MAC or an IP address that is not its own
or one of its allowed address pairs. Security group rules are not enforced.

Standard library only: it runs in the services' venv, and QuintupleO imports its names.
It reads Neutron's database (read-only) and reacts to netlink link events (`ip monitor`), with a
full resync every few seconds for changes made through the API (port security, address pairs).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import select
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from .names import BRIDGE_PREFIX, TAP_PREFIX, bridge_name, tap_name

RESYNC_SECONDS = 2.0
EMPTY_SECONDS = 5.0    # a bridge empty this long goes (not one `devcloud netns` is joining)


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def links() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(ip("-j", "-d", "link", "show").stdout or "[]")
    return found


def no_ipv6(dev: str) -> None:
    """A segment's bridge and ports say nothing of their own (no link-local address, no RS)."""
    try:
        with open(f"/proc/sys/net/ipv6/conf/{dev}/disable_ipv6", "w") as knob:
            knob.write("1")
    except OSError:
        pass


def ensure_bridge(name: str) -> None:
    if ip("link", "show", name, check=False).returncode != 0:
        ip("link", "add", name, "type", "bridge", "stp_state", "0", "forward_delay", "0",
           check=False)
        no_ipv6(name)
    ip("link", "set", name, "up")


@dataclass
class Port:
    id: str
    network_id: str
    mac: str
    security: bool
    ips: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)   # (MAC, IP or CIDR)


def read_ports(db: str) -> dict[str, Port]:
    """Every port, by the name its tap has."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
        ports = {row[0]: Port(row[0], row[1], row[2].lower(), bool(row[3])) for row in conn.execute(
            "SELECT p.id, p.network_id, p.mac_address, COALESCE(s.port_security_enabled, 1) "
            "FROM ports p LEFT JOIN portsecuritybindings s ON s.port_id = p.id")}
        for port_id, address in conn.execute("SELECT port_id, ip_address FROM ipallocations"):
            if port_id in ports:
                ports[port_id].ips.append(address)
        for port_id, mac, address in conn.execute(
                "SELECT port_id, mac_address, ip_address FROM allowedaddresspairs"):
            if port_id in ports:
                ports[port_id].pairs.append((mac.lower(), address))
    return {tap_name(p.id): p for p in ports.values()}


def _set(items: list[str]) -> str:
    return "{ " + ", ".join(items) + " }"


def port_rules(tap: str, port: Port) -> tuple[list[str], str]:
    """What a port with port security may send: its own and its pairs' MACs and addresses."""
    macs = sorted({port.mac, *(mac or port.mac for mac, _ in port.pairs)})
    addresses = [ipaddress.ip_network(a, strict=False) for a in
                 [*port.ips, *(address for _, address in port.pairs)]]
    v4 = sorted({str(a) for a in addresses if a.version == 4})
    v6 = sorted({str(a) for a in addresses if a.version == 6})
    chain = f"from_{tap}"
    rules = [f"ether saddr != {_set(macs)} drop"]
    # ARP: only for its own addresses (0.0.0.0 is an address probe); IPv4: the same, but a DHCP
    # client's first packets; and never a DHCP server's answer.
    rules.append(f"arp saddr ip != {_set([*v4, '0.0.0.0'])} drop")
    rules.append("ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept")
    rules.append("ether type ip udp sport 67 drop")
    rules.append(f"ip saddr != {_set(v4)} drop" if v4 else "ether type ip drop")
    # IPv6: its addresses, link-local ones and the unspecified one (duplicate address detection).
    rules.append(f"ip6 saddr != {_set([*v6, 'fe80::/10', '::'])} drop")
    return [f"chain {chain} {{", *(f"  {rule}" for rule in rules), "}"], chain


def ruleset(table: str, guarded: dict[str, Port]) -> str:
    chains: list[str] = []
    jumps: list[str] = []
    for tap, port in sorted(guarded.items()):
        body, chain = port_rules(tap, port)
        chains += body
        jumps.append(f'    iifname "{tap}" jump {chain}')
    return "\n".join([
        f"table bridge {table}", f"delete table bridge {table}", f"table bridge {table} {{",
        "  chain prerouting {", "    type filter hook prerouting priority -200; policy accept;",
        *jumps, "  }", *(f"  {line}" for line in chains), "}", ""])


class Agent:
    def __init__(self, db: str, table: str) -> None:
        self.db, self.table = db, table
        self.applied: str | None = None
        self.empty_since: dict[str, float] = {}

    def log(self, message: str) -> None:
        print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}", flush=True)

    def sync(self) -> None:
        present = links()
        ports = read_ports(self.db)
        members: dict[str, list[str]] = {}
        for link in present:
            if link.get("master"):
                members.setdefault(link["master"], []).append(link["ifname"])
        guarded: dict[str, Port] = {}
        for link in present:
            name = link["ifname"]
            port = ports.get(name)
            if port is None or not name.startswith(TAP_PREFIX):
                continue
            bridge = bridge_name(port.network_id)
            if link.get("master") != bridge:
                ensure_bridge(bridge)
                no_ipv6(name)
                if ip("link", "set", name, "master", bridge, "up", check=False).returncode == 0:
                    members.setdefault(bridge, []).append(name)
                    self.log(f"{name} (port {port.id}) on {bridge}")
            if port.security:
                guarded[name] = port
        text = ruleset(self.table, guarded)
        if text != self.applied:
            result = subprocess.run(["nft", "-f", "-"], input=text, capture_output=True,
                                    text=True, check=False)
            if result.returncode == 0:
                self.applied = text
                self.log(f"port security on {len(guarded)} port(s)")
            else:
                self.log(f"nft refused the ruleset: {result.stderr.strip()}")
        empty = {link["ifname"] for link in present if link["ifname"].startswith(BRIDGE_PREFIX)
                 and not members.get(link["ifname"])}
        now = time.monotonic()
        self.empty_since = {bridge: self.empty_since.get(bridge, now) for bridge in empty}
        for bridge, since in list(self.empty_since.items()):
            if now - since >= EMPTY_SECONDS:
                ip("link", "delete", bridge, check=False)
                self.log(f"removed {bridge}: no port left on it")
                del self.empty_since[bridge]

    def run(self) -> None:
        monitor = subprocess.Popen(["ip", "-o", "monitor", "link"], stdout=subprocess.PIPE,
                                   text=True, bufsize=1)
        events = monitor.stdout
        assert events is not None
        self.log("started")
        next_sync = 0.0
        while True:
            timeout = max(0.0, next_sync - time.monotonic())
            ready, _, _ = select.select([events], [], [], timeout)
            if ready and not events.readline():
                raise SystemExit("ip monitor ended")
            try:
                self.sync()
            except (OSError, sqlite3.Error, subprocess.SubprocessError, ValueError) as exc:
                self.log(f"sync failed, retrying: {type(exc).__name__}: {exc}")
            next_sync = time.monotonic() + RESYNC_SECONDS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="Neutron's SQLite database")
    parser.add_argument("--table", required=True, help="the nftables table (bridge family)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    Agent(args.db, args.table).run()


if __name__ == "__main__":
    main()
