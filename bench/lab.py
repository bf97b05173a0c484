"""Benchmark of the lab: QEMU nodes that really PXE-boot through our BMC.

    python bench/lab.py [--nodes 10]

Time from `ipmitool power on` to the node's DHCP request (seen by dnsmasq on the lab network)
and to its marker on the serial console; the same boot with QEMU started by hand (no BMC, on the
same network) beside it; a reboot by reset (the boot order set over QMP, QEMU kept) beside a
power cycle (a new QEMU); memory (RSS) of an idle node; how long N nodes take to PXE-boot when
all are powered on at once. Needs root (network namespace). TCG: no KVM.
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

from quintupleo.images.marker import boot_sector

MARKER = "QO-BENCH-MARKER"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        name = f"b{uuid.uuid4().hex[:5]}"
        env = dict(os.environ, QUINTUPLEO_HOME=str(tmp / "home"),
                   QUINTUPLEO_BMC_PASSWORD="password")
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
             # --no-ping: else dnsmasq waits 3 s for a ping reply before a first lease
             "--dhcp-boot=pxe.bin", "--dhcp-userclass=set:ipxe,iPXE", "--no-ping",
             "--dhcp-option=tag:ipxe,encap:175,176,1", "--log-dhcp",
             f"--log-facility={log}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            rows = measure(lab_dir, log, args.nodes, tmp, netns)
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
    """Power on node `index` for PXE: seconds to its DHCP request, and to its marker (NaN if
    it gave up: iPXE ends a boot whose DHCP got no answer in time)."""
    mac = mac_of(lab_dir, index)
    ipmitool(17500 + index, "chassis", "bootdev", "pxe")
    started = time.monotonic()
    ipmitool(17500 + index, "power", "on")
    dhcp = None
    while MARKER not in serial(lab_dir, index):
        if dhcp is None and f"DHCPDISCOVER(br0) {mac}" in log.read_text(errors="replace"):
            dhcp = time.monotonic() - started
        if time.monotonic() - started > 120 or "No bootable device" in serial(lab_dir, index):
            return dhcp or float("nan"), float("nan")
        time.sleep(0.02 if dhcp is None else 0.2)
    return dhcp or float("nan"), time.monotonic() - started


def reboot(lab_dir: Path, how: str) -> float:
    """node-0 (on, persistent PXE) rebooted by `power reset` (boot order over QMP, no restart)
    or `power cycle` (a new QEMU): seconds to its next marker."""
    seen = serial(lab_dir, 0).count(MARKER)
    started = time.monotonic()
    ipmitool(17500, "power", how)
    while serial(lab_dir, 0).count(MARKER) <= seen:
        if time.monotonic() - started > 120:
            raise SystemExit(f"node-0 did not boot after {how}")
        time.sleep(0.02)
    return time.monotonic() - started


def by_hand(tmp: Path, netns: str) -> float:
    """The same PXE boot, QEMU started directly (no BMC) on a tap of the same lab network."""
    out = tmp / "hand.serial"
    sercon = tmp / "sercon"
    sercon.write_bytes((0x3F8).to_bytes(8, "little"))
    for command in (["tuntap", "add", "hand0", "mode", "tap"],
                    ["link", "set", "hand0", "master", "br0", "up"]):
        subprocess.run(["ip", "-n", netns, *command], check=True)
    started = time.monotonic()
    process = subprocess.Popen(
        ["ip", "netns", "exec", netns, "qemu-system-x86_64", "-accel", "tcg", "-machine", "pc",
         "-m", "512", "-nodefaults", "-display", "none", "-serial", f"file:{out}", "-fw_cfg",
         f"name=etc/sercon-port,file={sercon}", "-netdev",
         "tap,id=n0,ifname=hand0,script=no,downscript=no", "-device",
         "virtio-net-pci,netdev=n0,mac=52:54:00:ff:00:01", "-boot", "n"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not out.exists() or MARKER not in out.read_text(errors="replace"):
            if time.monotonic() - started > 120:
                raise SystemExit(f"QEMU by hand did not boot:\n{out.read_text()[-800:]}")
            time.sleep(0.02)
        return time.monotonic() - started
    finally:
        process.kill()
        process.wait()


def measure(lab_dir: Path, log: Path, nodes: int, tmp: Path, netns: str) -> list[tuple[str, ...]]:
    dhcp, marker = one_boot(lab_dir, log, 0)
    hand = by_hand(tmp, netns)
    ipmitool(17500, "chassis", "bootdev", "pxe", "options=persistent")
    resets = [reboot(lab_dir, "reset") for _ in range(3)]
    cycles = [reboot(lab_dir, "cycle") for _ in range(3)]
    time.sleep(2)   # node-0 idles (halted after its marker)
    rss = [p.memory_info().rss / 2**20 for p in psutil.process_iter(["cmdline"])
           if any("qo-lab-" in a for a in (p.info["cmdline"] or []))]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=nodes) as pool:
        times = list(pool.map(lambda i: one_boot(lab_dir, log, i)[1], range(1, nodes)))
    together = time.monotonic() - started
    booted = [t for t in times if t == t]   # NaN: that node's DHCP timed out
    return [
        ("1 node", "power on -> DHCP request", f"{dhcp:.2f} s", "", ""),
        ("1 node", "power on -> marker on serial", f"{marker:.2f} s", f"{hand:.2f} s",
         f"{marker / hand:.2f}x"),
        ("1 node, persistent PXE", "power reset -> marker (QEMU kept)",
         f"{statistics.median(resets):.2f} s", f"{statistics.median(cycles):.2f} s (cycle)",
         f"{statistics.median(resets) / statistics.median(cycles):.2f}x"),
        ("idle node", "RSS", f"{statistics.mean(rss):.0f} MiB", "", ""),
        (f"{nodes - 1} nodes at once", f"{len(booted)} reached their marker",
         f"{together:.1f} s", "",
         f"median {statistics.median(booted):.1f} s per node" if booted else ""),
    ]


if __name__ == "__main__":
    main()
