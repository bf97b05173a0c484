"""Benchmark of the devcloud's real host (zone qemu): the cloud path beside QEMU started by hand.

On the running devcloud (its real host: as root), a server from the BIOS iPXE image on a network
without DHCP, a dnsmasq in a `devcloud netns` on it: create → ACTIVE and → first DHCPDISCOVER,
rescue (with the iPXE image, from the tiny disk image) → DHCPDISCOVER, unrescue → ACTIVE, delete,
and the RSS of its QEMU. The floor: the same iPXE disk in QEMU started by hand on a tap of the
same kind of bridge (no libvirt, no Nova), start → DHCPDISCOVER and its RSS. One VM at a time;
each is deleted when measured.

    python bench/devcloud_vms.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openstack
import psutil
from common import print_table

from quintupleo.devcloud.hypervisor import our_qemus
from quintupleo.devcloud.layout import Layout, State, default_home
from quintupleo.devcloud.plugins.names import bridge_name
from quintupleo.images.ipxe import IpxeOptions, build

POOL = "--dhcp-range=198.51.100.100,198.51.100.200"


def qo(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "quintupleo", *args], check=True, text=True,
                          capture_output=True, timeout=600).stdout


def until(check, timeout: float = 120) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise SystemExit("timed out")
        time.sleep(0.05)
    return time.monotonic() - started


def discovers(log: Path, mac: str) -> int:
    return log.read_text(errors="replace").count(f"DHCPDISCOVER(eth0) {mac}")


def cloud_round(conn, network, images: dict[str, str], log: Path) -> dict[str, float]:
    flavor = conn.compute.find_flavor("qo.tiny")
    port = conn.network.create_port(network_id=network.id, port_security_enabled=False)
    mac, figures = port.mac_address, {}
    started = time.monotonic()
    server = conn.compute.create_server(name="qo-bench-vm", image_id=images["bios"],
                                        flavor_id=flavor.id, networks=[{"port": port.id}],
                                        availability_zone="qemu")
    until(lambda: conn.compute.get_server(server).status == "ACTIVE")
    figures["create → ACTIVE"] = time.monotonic() - started
    until(lambda: discovers(log, mac) > 0)
    figures["create → first DHCP"] = time.monotonic() - started
    qemu = next(q for q in our_qemus(Layout(default_home())) if server.id in " ".join(q.cmdline()))
    figures["RSS per VM (MiB)"] = qemu.memory_info().rss / 2**20
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120, interval=0.05)
    # rescue: from a node whose disk is the tiny image, as environments make them
    server = conn.compute.create_server(name="qo-bench-vm", image_id=images["tiny"],
                                        flavor_id=flavor.id, networks=[{"port": port.id}],
                                        availability_zone="qemu")
    until(lambda: conn.compute.get_server(server).status == "ACTIVE")
    seen, started = discovers(log, mac), time.monotonic()
    conn.compute.rescue_server(server, image=images["bios"])
    until(lambda: discovers(log, mac) > seen)
    figures["rescue → DHCP"] = time.monotonic() - started
    until(lambda: conn.compute.get_server(server).status == "RESCUE")
    started = time.monotonic()
    conn.compute.unrescue_server(server)
    until(lambda: conn.compute.get_server(server).status == "ACTIVE")
    figures["unrescue → ACTIVE"] = time.monotonic() - started
    started = time.monotonic()
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120, interval=0.05)
    figures["delete"] = time.monotonic() - started
    conn.network.delete_port(port)
    return figures


def by_hand(image: Path, bridge: str, log: Path) -> dict[str, float]:
    mac = "52:54:00:ba:5e:01"
    subprocess.run(["ip", "tuntap", "add", "qobenchtap", "mode", "tap"], check=True)
    subprocess.run(["ip", "link", "set", "qobenchtap", "master", bridge, "up"], check=True)
    seen, started = discovers(log, mac), time.monotonic()   # one MAC for every round
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "512", "-nodefaults",
         "-display", "none", "-drive", f"file={image},format=raw,if=virtio,cache=unsafe,"
         "snapshot=on", "-netdev", "tap,id=n0,ifname=qobenchtap,script=no,downscript=no",
         "-device", f"virtio-net-pci,netdev=n0,mac={mac}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        until(lambda: discovers(log, mac) > seen)
        figures = {"create → first DHCP": time.monotonic() - started,
                   "RSS per VM (MiB)": psutil.Process(process.pid).memory_info().rss / 2**20}
    finally:
        process.kill()
        process.wait()
        subprocess.run(["ip", "link", "delete", "qobenchtap"], check=False)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not (State.load(Layout(default_home())) or State()).vms:
        raise SystemExit("the devcloud runs without its real host: `qo devcloud up` as root")
    conn = openstack.connect(cloud="devcloud")
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-vms-"))
    image = next(b.path for b in build(tmp, IpxeOptions()) if b.firmware == "bios")
    qo("image", "upload", "--cloud", "devcloud")
    images = {"bios": conn.image.find_image("quintupleo-ipxe-bios").id,
              "tiny": conn.image.find_image("quintupleo-tiny").id}
    network = conn.network.create_network(name="qo-bench-vms")
    conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="198.51.100.0/24",
                               enable_dhcp=False, gateway_ip=None)
    namespace = qo("devcloud", "netns", network.id, "--name", "qo-bench-vms", "--address",
                   "198.51.100.1/24").split()[-1]
    log = tmp / "dnsmasq.log"
    dnsmasq = subprocess.Popen(
        ["ip", "netns", "exec", namespace, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
         "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping", POOL,
         f"--dhcp-leasefile={tmp / 'leases'}"], stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        cloud = [cloud_round(conn, network, images, log) for _ in range(args.rounds)]
        hand = [by_hand(image, bridge_name(network.id), log) for _ in range(args.rounds)]
    finally:
        dnsmasq.terminate()
        qo("devcloud", "netns", "--delete", namespace)
        conn.network.delete_network(network)
    rows = []
    for figure in cloud[0]:
        ours = statistics.median(r[figure] for r in cloud)
        floor = statistics.median(r[figure] for r in hand) if figure in hand[0] else None
        unit = "" if "MiB" in figure else " s"
        rows.append((f"median of {args.rounds}", figure, f"{ours:.2f}{unit}",
                     f"{floor:.2f}{unit}" if floor else "-",
                     f"{ours / floor:.1f}x" if floor else "-"))
    print_table("devcloud real host (Nova, libvirt, TCG) beside QEMU by hand on a bridge",
                "QEMU by hand", rows)


if __name__ == "__main__":
    main()
