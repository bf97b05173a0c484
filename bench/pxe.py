"""Benchmark of the boot strategies on the devcloud: how long a network boot, a disk boot and a
power-off take through the BMC, measured as a provisioning tool sees them (ipmitool, until
`power status` says the new state), beside the plain start/stop of strategy `none`.

    python bench/pxe.py [--nodes 3] [--rounds 3]

The devcloud's hypervisor boots nothing, so the figures are Nova's API and task times plus ours;
on a real cloud, add the hypervisor's own work (a rescue or a rebuild recreates the VM).

Beside them, sushy-tools' `sushy-emulator` (the Redfish emulator people use instead) with its
Nova driver: Boot Pxe + Reset On, until its PowerState is On, and what Nova was asked to do
(its action log) -- whether the node network-booted at all.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import openstack
import requests
from bmc_redfish import SUSHY_TOOLS, sushy_emulator
from common import print_table, serve, stop

from quintupleo.devcloud.layout import default_home
from quintupleo.devcloud.manager import Devcloud

STRATEGIES = ("none", "rescue", "rebuild")


def ipmitool(port: int, *command: str) -> str:
    result = subprocess.run(
        ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", "admin", "-E",
         "-R", "1", "-N", "1", *command], capture_output=True, text=True,
        env=dict(os.environ, IPMI_PASSWORD="password"))
    if result.returncode != 0:
        raise SystemExit(f"ipmitool {' '.join(command)} on port {port}: {result.stderr}")
    return result.stdout


def idle(conn, server_id: str, statuses: tuple[str, ...]) -> None:
    """Until Nova is done too (strategy none answers at once, before Nova has finished)."""
    deadline = time.monotonic() + 300
    while (server := conn.compute.get_server(server_id)).status not in statuses \
            or server.task_state is not None:
        if time.monotonic() > deadline:
            raise SystemExit(f"server {server_id} stuck in {server.status}/{server.task_state}")
        time.sleep(0.1)


def timed(port: int, device: str, action: str, wanted: str) -> float:
    """Set the boot device, act, then poll until the BMC says `wanted`: the seconds it took."""
    if device:
        ipmitool(port, "chassis", "bootdev", device)
    started = time.monotonic()
    ipmitool(port, "power", action)
    while wanted not in ipmitool(port, "power", "status"):
        if time.monotonic() - started > 300:
            raise SystemExit(f"port {port}: never {wanted}")
        time.sleep(0.05)
    return time.monotonic() - started


def sushy_row(conn, tmp: Path, server_id: str) -> tuple[str, str, str]:
    """sushy-emulator: Pxe once + On, then Hdd + On: seconds until On, and Nova's actions."""
    proc = sushy_emulator(tmp, 16590, "SUSHY_EMULATOR_OS_CLOUD = 'devcloud'\n"
                          f"SUSHY_EMULATOR_ALLOWED_INSTANCES = ['{server_id}']\n")
    url = f"http://127.0.0.1:16590/redfish/v1/Systems/{server_id}"
    figures = []
    try:
        for target in ("Pxe", "Hdd"):
            requests.patch(url, json={"Boot": {"BootSourceOverrideTarget": target,
                                               "BootSourceOverrideEnabled": "Once"}},
                           timeout=120).raise_for_status()
            started = time.monotonic()
            requests.post(f"{url}/Actions/ComputerSystem.Reset", json={"ResetType": "On"},
                          timeout=120).raise_for_status()
            while requests.get(url, timeout=120).json().get("PowerState") != "On":
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            action = max(conn.compute.server_actions(server_id),
                         key=lambda a: a.start_time).action
            figures.append(f"{elapsed:.2f} s, Nova: {action}")
            requests.post(f"{url}/Actions/ComputerSystem.Reset", json={"ResetType": "ForceOff"},
                          timeout=120).raise_for_status()
            while conn.compute.get_server(server_id).status != "SHUTOFF":
                time.sleep(0.1)
    finally:
        stop(proc)
    return figures[0] + " (disk: no network boot on stock Nova)", figures[1], "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    Devcloud(default_home()).up()
    subprocess.run(["python", "-m", "quintupleo", "image", "upload", "--cloud", "devcloud"],
                   check=True, capture_output=True)
    conn = openstack.connect(cloud="devcloud")
    prefix = f"qo-bench-pxe-{uuid.uuid4().hex[:6]}-"
    network = conn.network.create_network(name=prefix)
    conn.network.create_subnet(network_id=network.id, cidr="192.0.2.0/24", ip_version=4,
                               enable_dhcp=False, gateway_ip=None)
    image = conn.image.find_image("quintupleo-tiny")
    flavor = conn.compute.find_flavor("qo.tiny")
    servers = []
    try:
        for i in range(args.nodes):
            port = conn.network.create_port(network_id=network.id, port_security_enabled=False)
            servers.append(conn.compute.create_server(
                name=f"{prefix}{i}", image_id=image.id, flavor_id=flavor.id,
                networks=[{"port": port.id}]))
        for server in servers:
            conn.compute.wait_for_server(server, wait=120)
            conn.compute.stop_server(server)
        for server in servers:
            conn.compute.wait_for_server(server, status="SHUTOFF", wait=120)
        rows = []
        base = {}
        with tempfile.TemporaryDirectory() as tmp:
            for index, strategy in enumerate(STRATEGIES):
                ports = 16600 + index * 50
                proc, _ = serve(Path(tmp), strategy, "--backend", "openstack", "--cloud",
                                "devcloud", "--prefix", prefix, "--boot-strategy", strategy,
                                "--ipmi-port-base", str(ports), "--redfish-port", str(ports + 40),
                                "--refresh-interval", "2")
                figures: dict[str, list[float]] = {"network": [], "disk": [], "off": []}
                try:
                    on, off = ("ACTIVE", "RESCUE"), ("SHUTOFF",)
                    for _ in range(args.rounds):
                        for n, server in enumerate(servers):
                            figures["network"].append(timed(ports + n, "pxe", "on", "on"))
                            idle(conn, server.id, on)
                            figures["off"].append(timed(ports + n, "", "off", "off"))
                            idle(conn, server.id, off)
                            figures["disk"].append(timed(ports + n, "disk", "on", "on"))
                            idle(conn, server.id, on)
                            figures["off"].append(timed(ports + n, "", "off", "off"))
                            idle(conn, server.id, off)
                finally:
                    stop(proc)
                medians = {k: statistics.median(v) for k, v in figures.items()}
                base = base or medians
                rows.append((strategy, *(f"{medians[k]:.2f} s ({medians[k] / base[k]:.1f}x)"
                                         for k in ("network", "disk", "off"))))
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(("sushy-tools " + SUSHY_TOOLS.split("==")[1], *sushy_row(
                conn, Path(tmp), servers[0].id)))
        print_table(f"boot strategies on the devcloud: {args.nodes} nodes x {args.rounds} "
                    "rounds, median until ipmitool `power status` shows it (ratio to none)",
                    "", rows, ("strategy", "network boot (bootdev pxe + on)",
                               "disk boot (bootdev disk + on)", "power off"))
    finally:
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=120)
        for port in conn.network.ports(network_id=network.id):
            conn.network.delete_port(port)
        conn.network.delete_network(network)


if __name__ == "__main__":
    main()
