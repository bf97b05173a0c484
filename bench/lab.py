"""Benchmark of the lab: QEMU nodes that really PXE-boot through our BMC.

    python bench/lab.py [--nodes 10]

Time from `ipmitool power on` to the node's DHCP request (seen by dnsmasq on the lab network)
and to its marker on the serial console; the same boot with QEMU started by hand (no BMC) beside
it; memory (RSS) of an idle node; how long N nodes take to PXE-boot when all are powered on at
once. Needs root (network namespace). TCG: no KVM.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
from common import print_table

from quintupleo.lab.marker import boot_sector

MARKER = "QO-BENCH-MARKER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        name = f"b{uuid.uuid4().hex[:5]}"
        env = dict(os.environ, QUINTUPLEO_HOME=str(tmp / "home"))
        qo = [sys.executable, "-m", "quintupleo", "lab"]
        subprocess.run([*qo, "up", "--name", name, "--nodes", str(args.nodes), "--cidr",
                        "10.252.0.0/24", "--ipmi-port-base", "17500", "--redfish-port",
                        "17490"], env=env, check=True, capture_output=True)
        lab_dir = tmp / "home" / "labs" / name
        netns = f"qo-lab-{name}"
        (tmp / "tftp").mkdir()
        (tmp / "tftp" / "pxe.bin").write_bytes(boot_sector(MARKER))
        subprocess.run(["ip", "-n", netns, "addr", "add", "fd00:52::1/64", "dev", "br0"],
                       check=True)
        log = tmp / "dnsmasq.log"
        dnsmasq = subprocess.Popen(
            ["ip", "netns", "exec", netns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
             "--port=0", "--interface=br0", "--bind-interfaces", "--pid-file=",
             "--dhcp-range=10.252.0.10,10.252.0.250,1h", "--dhcp-range=fd00:52::,ra-only",
             "--enable-ra", "--enable-tftp", f"--tftp-root={tmp / 'tftp'}",
             "--dhcp-boot=pxe.bin", "--dhcp-userclass=set:ipxe,iPXE",
             "--dhcp-option=tag:ipxe,encap:175,176,1", "--log-dhcp",
             f"--log-facility={log}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rows = measure(lab_dir, log, args.nodes, tmp)
        finally:
            dnsmasq.terminate()
            subprocess.run([*qo, "down", "--name", name], env=env, capture_output=True)
    print_table("lab: PXE boots through the BMC (TCG, 2 cores shared by all)", "QEMU by hand",
                rows)


def ipmitool(port: int, *command: str) -> None:
    subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U",
                    "admin", "-P", "password", *command], check=True, capture_output=True)


def serial(lab_dir: Path, index: int) -> str:
    path = lab_dir / "nodes" / f"node-{index}" / "serial.log"
    return path.read_text(errors="replace") if path.exists() else ""


def mac_of(lab_dir: Path, index: int) -> str:
    import json
    return json.loads((lab_dir / "lab.json").read_text())["nodes"][index]["mac"]


def one_boot(lab_dir: Path, log: Path, index: int) -> tuple[float, float]:
    """Power on node `index` for PXE: seconds to its DHCP request, and to its marker."""
    mac = mac_of(lab_dir, index)
    ipmitool(17500 + index, "chassis", "bootdev", "pxe")
    started = time.monotonic()
    ipmitool(17500 + index, "power", "on")
    dhcp = None
    while MARKER not in serial(lab_dir, index):
        if dhcp is None and f"DHCPDISCOVER(br0) {mac}" in log.read_text(errors="replace"):
            dhcp = time.monotonic() - started
        if time.monotonic() - started > 120:
            raise SystemExit(f"node-{index} did not boot:\n{serial(lab_dir, index)[-800:]}")
        time.sleep(0.02 if dhcp is None else 0.2)
    return dhcp or float("nan"), time.monotonic() - started


def by_hand(tmp: Path) -> float:
    """The same PXE boot, QEMU started directly (QEMU's own DHCP/TFTP, no BMC, no netns)."""
    out = tmp / "hand.serial"
    sercon = tmp / "sercon"
    sercon.write_bytes((0x3F8).to_bytes(8, "little"))
    started = time.monotonic()
    process = subprocess.Popen(
        ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", "512", "-nodefaults",
         "-display", "none", "-serial", f"file:{out}", "-fw_cfg",
         f"name=etc/sercon-port,file={sercon}", "-netdev",
         f"user,id=n0,tftp={tmp / 'tftp'},bootfile=pxe.bin", "-device",
         "virtio-net-pci,netdev=n0", "-boot", "n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not out.exists() or MARKER not in out.read_text(errors="replace"):
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        process.kill()
        process.wait()


def measure(lab_dir: Path, log: Path, nodes: int, tmp: Path) -> list[tuple[str, ...]]:
    dhcp, marker = one_boot(lab_dir, log, 0)
    hand = by_hand(tmp)
    time.sleep(2)   # node-0 idles (halted after its marker)
    rss = [p.memory_info().rss / 2**20 for p in psutil.process_iter(["cmdline"])
           if any("qo-lab-" in a for a in (p.info["cmdline"] or []))]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=nodes) as pool:
        times = list(pool.map(lambda i: one_boot(lab_dir, log, i)[1], range(1, nodes)))
    together = time.monotonic() - started
    return [
        ("1 node", "power on -> DHCP request", f"{dhcp:.2f} s", "", ""),
        ("1 node", "power on -> marker on serial", f"{marker:.2f} s", f"{hand:.2f} s",
         f"{marker / hand:.2f}x"),
        ("idle node", "RSS", f"{statistics.mean(rss):.0f} MiB", "", ""),
        (f"{nodes - 1} nodes at once", "all markers", f"{together:.1f} s",
         "", f"median {statistics.median(times):.1f} s per node"),
    ]


if __name__ == "__main__":
    main()
