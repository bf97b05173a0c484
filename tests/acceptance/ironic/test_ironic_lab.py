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
import subprocess
from pathlib import Path

import pytest

from harness.nodes import Lab, ramdisk_instance
from quintupleo.images.ipxe import build
from quintupleo.images.marker import boot_sector

RAMDISK_MARKER, DISK_MARKER = "QO-IRONIC-RAMDISK-7f3e", "QO-IRONIC-DISK-21c9"
PORT = 17700
NET, HTTP = Lab.NET, Lab.HTTP

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab's network needs root")


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
    section = f"lab (QEMU, {'SeaBIOS' if firmware == 'bios' else 'OVMF'}, {driver}) · " \
              "Ironic ramdisk deploy over iPXE"
    lab = Lab(tmp_path / "home")
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
            lab.undercloud(ir.work / "http", tmp_path)
        inventory = lab.dir / "nodes.json"
        [name] = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
        with report.step(section, f"{name}: enroll the lab's inventory ({driver}), manage, "
                                  "provide"):
            ir.enroll(inventory)
            assert ir.node(name)["driver"] == driver
            ir.provision(name, "manage", "manageable")
            ir.provision(name, "provide", "available")
        ramdisk_instance(ir, name, RAMDISK_MARKER)
        with report.step(section, f"{name}: deploy → Ironic's iPXE network-boots the node "
                                  "into the kernel and initramfs: /init's marker on its "
                                  "serial console"):
            ir.provision(name, "active", "active", timeout=300)
            lab.wait_console(RAMDISK_MARKER, 1, timeout=180)
            assert ir.node(name)["properties"]["capabilities"] == f"boot_mode:{firmware}"
            dhcp = lab.dhcp_log.read_text()
            mac = json.loads(inventory.read_text())["nodes"][0]["ports"][0]["address"]
            assert f"DHCPDISCOVER(br0) {mac}" in dhcp
            assert ("tags: ipxe, efi64" in dhcp) == (firmware == "uefi")   # x86-64 UEFI client
            served = lab.http_log.read_text()   # what the node's iPXE fetched
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
        lab.close()
