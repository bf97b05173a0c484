"""The mission end to end on real VMs: unmodified Ironic, with its own iPXE boot and the
`ramdisk` deploy interface, network-boots a lab node (QEMU) through our BMC into a Linux kernel
and an initramfs the test builds — the initramfs's /init prints a marker on the node's serial
console — then switches the node to boot from its disk, whose boot sector prints another.

The lab network holds the user's services, as an Ironic deployment would have them: dnsmasq
(DHCP; iPXE clients are sent to Ironic's boot.ipxe over HTTP) and an HTTP server for Ironic's
http_root. Needs root (network namespace) and the kernel scripts/setup.sh unpacks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from ramdisk import initramfs

from quintupleo.images.ipxe import build
from quintupleo.images.marker import boot_sector

KERNEL = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quintupleo" / \
    "linux" / "vmlinuz"
RAMDISK_MARKER, DISK_MARKER = "QO-IRONIC-RAMDISK-7f3e", "QO-IRONIC-DISK-21c9"
PORT = 17700
NET = "10.253.0"
HTTP = f"http://{NET}.1:8089"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab's network needs root")


class Lab:
    def __init__(self, home: Path) -> None:
        self.name = f"i{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, QUINTUPLEO_HOME=str(home))
        self.dir = home / "labs" / self.name
        self.netns = f"qo-lab-{self.name}"
        self.serial = self.dir / "nodes" / "node-0" / "serial.log"

    def qo(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "quintupleo", "lab", *args, "--name",
                                 self.name], env=self.env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"lab {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_console(self, marker: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.console().count(marker) < count:
            assert time.monotonic() < deadline, \
                f"no {marker} on the console:\n{self.console()[-2500:]}"
            time.sleep(0.3)


def in_lab(lab: Lab, *argv: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", lab.netns, *argv],
                            stdout=log.open("ab"), stderr=subprocess.STDOUT)


def disk_image(firmware: str, tmp: Path) -> tuple[Path, str]:
    """The node's disk and what it prints when it boots: for SeaBIOS a marker boot sector; for
    OVMF our UEFI iPXE image (GRUB's line shows first)."""
    if firmware == "uefi":
        image = next(i for i in build(tmp / "images", firmwares=("uefi",)))
        return image.path, "QuintupleO network boot (UEFI)"
    raw = tmp / "disk.raw"
    raw.write_bytes(boot_sector(DISK_MARKER).ljust(1 << 20, b"\0"))
    return raw, DISK_MARKER


@pytest.mark.parametrize(("firmware", "driver"), [("bios", "ipmi"), ("uefi", "redfish")])
def test_ironic_ramdisk_deploy_network_boots_a_lab_node(ironic, report, tmp_path, firmware,
                                                        driver):
    assert KERNEL.exists(), f"no kernel at {KERNEL}: run scripts/setup.sh"
    section = f"lab (QEMU, {'SeaBIOS' if firmware == 'bios' else 'OVMF'}, {driver}) · " \
              "Ironic ramdisk deploy over iPXE"
    lab = Lab(tmp_path / "home")
    services: list[subprocess.Popen] = []
    try:
        with report.step(section, f"lab up: 1 node ({firmware}), its network, its BMC"):
            lab.qo("up", "--nodes", "1", "--boot-mode", firmware, "--cidr", f"{NET}.0/24",
                   "--ipmi-port-base", str(PORT), "--redfish-port", str(PORT + 50),
                   "--inventory-driver", driver)
            disk, disk_marker = disk_image(firmware, tmp_path)
            subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(disk),
                            str(lab.dir / "nodes" / "node-0" / "disk.qcow2")], check=True)
        with report.step(section, "start Ironic (boot interface ipxe, deploy ramdisk)"):
            ir = ironic(boot="ipxe", http_url=HTTP)
            subprocess.run(["ip", "-n", lab.netns, "addr", "add", "fd00:53::1/64", "dev",
                            "br0"], check=True)
            # the NICs' ROMs are iPXE (BIOS or EFI): every node gets Ironic's script at once;
            # efi64 only marks the UEFI client in the log
            services.append(in_lab(
                lab, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                "--interface=br0", "--bind-interfaces", "--pid-file=", "--no-ping",
                f"--dhcp-range={NET}.100,{NET}.200,1h", "--dhcp-range=fd00:53::,ra-only",
                "--enable-ra", "--dhcp-userclass=set:ipxe,iPXE",
                "--dhcp-option=tag:ipxe,encap:175,176,1",
                "--dhcp-match=set:efi64,option:client-arch,7",
                f"--dhcp-boot=tag:ipxe,{HTTP}/boot.ipxe", "--log-dhcp",
                log=tmp_path / "dnsmasq.log"))
            services.append(in_lab(
                lab, sys.executable, "-m", "http.server", "8089", "--bind", f"{NET}.1",
                "--directory", str(ir.work / "http"), log=tmp_path / "http.log"))
        inventory = lab.dir / "nodes.json"
        [name] = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
        with report.step(section, f"{name}: enroll the lab's inventory ({driver}), manage, "
                                  "provide"):
            ir.enroll(inventory)
            assert ir.node(name)["driver"] == driver
            ir.provision(name, "manage", "manageable")
            ir.provision(name, "provide", "available")
        shutil.copyfile(KERNEL, ir.sources / "vmlinuz")   # where Ironic may read file:// URLs
        (ir.sources / "initramfs").write_bytes(initramfs(RAMDISK_MARKER))
        ir.call("PATCH", f"nodes/{name}", [
            {"op": "add", "path": "/instance_info",
             "value": {"kernel": f"file://{ir.sources / 'vmlinuz'}",
                       "ramdisk": f"file://{ir.sources / 'initramfs'}",
                       "ramdisk_kernel_arguments": "console=ttyS0 quiet"}}])
        with report.step(section, f"{name}: deploy → Ironic's iPXE network-boots the node "
                                  "into the kernel and initramfs: /init's marker on its "
                                  "serial console"):
            ir.provision(name, "active", "active", timeout=300)
            lab.wait_console(RAMDISK_MARKER, 1, timeout=180)
            assert ir.node(name)["properties"]["capabilities"] == f"boot_mode:{firmware}"
            dhcp = (tmp_path / "dnsmasq.log").read_text()
            mac = json.loads(inventory.read_text())["nodes"][0]["ports"][0]["address"]
            assert f"DHCPDISCOVER(br0) {mac}" in dhcp
            assert ("tags: ipxe, efi64" in dhcp) == (firmware == "uefi")   # x86-64 UEFI client
            served = (tmp_path / "http.log").read_text()   # what the node's iPXE fetched
            uuid_ = ir.node(name)["uuid"]
            for path in ("/boot.ipxe", f"/pxelinux.cfg/{mac.replace(':', '-')}",
                         f"/{uuid_}/kernel", f"/{uuid_}/ramdisk"):
                assert f'"GET {path} HTTP/1.1" 200' in served, served
        with report.step(section, f"{name}: boot device disk (persistent) + reboot → the "
                                  "disk's marker"):
            ir.set_boot_device(name, "disk", True)
            ir.power(name, "rebooting")
            lab.wait_console(disk_marker, 1, timeout=120)
            assert ir.node(name)["provision_state"] == "active"
    finally:
        for service in services:
            service.terminate()
            service.wait(10)
        lab.qo("down")
        shutil.rmtree(tmp_path / "home", ignore_errors=True)
