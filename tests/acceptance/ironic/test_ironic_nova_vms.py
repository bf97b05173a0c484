"""The mission end to end through OpenStack: unmodified Ironic deploys an environment's node — a
real Nova VM on the devcloud's real host (zone `qemu`, QEMU TCG) — through the environment's BMC.

The provisioning network's services run in a `devcloud netns` on the environment's provisioning
network, where an undercloud would be: dnsmasq (DHCP; iPXE clients get Ironic's boot.ipxe) and
an HTTP server for Ironic's http_root. Ironic's `ipxe` boot and `ramdisk` deploy network-boot
the VM (the BMC's boot strategy turns "boot from network" into a rescue or rebuild with the iPXE
image) into Debian's kernel and the test's initramfs, whose /init prints a marker on the serial
console; then Ironic sets disk boot and reboots, and the disk's own marker shows. The console is
read through the BMC (IPMI SOL or the Redfish WebSocket, opened while the node is off) and
through the compute API's console log. One VM at a time (two cores, TCG)."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from ironic_steps import IpmiView, RedfishView, enroll, set_boot_mode

from harness.nodes import HTTP, CloudNode, ramdisk_instance
from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.images.glance import publish
from quintupleo.images.marker import uefi_marker_disk

pytestmark = [pytest.mark.devcloud,
              pytest.mark.skipif(os.geteuid() != 0, reason="the real host and netns need root")]

RAMDISK_MARKER = "QO-NOVA-RAMDISK-5b1d"
UEFI_DISK_MARKER = "QO-NOVA-UEFI-DISK-93ae"
IPXE_UEFI_MARKER = "QuintupleO network boot (UEFI)"
PORT = 15720


@pytest.fixture
def uefi_disk(conn, tmp_path):
    """A UEFI disk image (hw_firmware_type=uefi) whose GRUB prints UEFI_DISK_MARKER."""
    path = uefi_marker_disk(UEFI_DISK_MARKER, tmp_path / "uefi-disk.img")
    image = publish(conn, path, f"qo-test-uefi-{uuid.uuid4().hex[:6]}", "raw",
                    {"hw_firmware_type": "uefi"})
    yield image.name
    conn.image.delete_image(image, ignore_missing=True)


def ipxe_image_id(conn, firmware: str) -> str:
    return max((i for i in conn.image.images(name=f"quintupleo-ipxe-{firmware}")
                if i.status == "active"), key=lambda i: i.created_at).id


def console_log(conn, server_id: str) -> str:
    return conn.compute.get_server_console_output(server_id)["output"] or ""


def wait_console_log(conn, server_id: str, marker: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while console_log(conn, server_id).count(marker) < count:
        assert time.monotonic() < deadline, \
            f"{marker} not in the console log:\n{console_log(conn, server_id)[-2000:]}"
        time.sleep(1)


@pytest.mark.parametrize(("firmware", "driver", "strategy"),
                         # SeaBIOS, IPMI, rescue: test_ironic_agent.py's real deploy
                         [("uefi", "redfish", "rescue"), ("uefi", "ipmi", "rebuild")])
def test_ironic_deploys_a_nova_vm_through_the_bmc(ironic, report, conn, real_host, request,
                                                  tmp_path, firmware, driver,
                                                  strategy):
    image = request.getfixturevalue("uefi_disk") if firmware == "uefi" else "quintupleo-tiny"
    # rescue keeps the node's disk; a rebuild wrote the iPXE image over it, which network-boots
    # again from the disk (GRUB's line first), as OVB's nodes do
    disk_marker = IPXE_UEFI_MARKER if strategy == "rebuild" else \
        UEFI_DISK_MARKER if firmware == "uefi" else IMAGE_MARKER
    section = (f"devcloud real VM (Nova libvirt, {'OVMF' if firmware == 'uefi' else 'SeaBIOS'},"
               f" {driver}, strategy {strategy}) · Ironic ramdisk deploy over iPXE")
    node: CloudNode | None = None
    console = None
    try:
        with report.step(section, "env create: 1 node in zone qemu, powered off; its BMC"):
            node = CloudNode(tmp_path, image, strategy, PORT)
            assert conn.compute.get_server(node.server_id).status == "SHUTOFF"
        with report.step(section, "start Ironic (ipxe, ramdisk); `devcloud netns` on the "
                                  "provisioning network with dnsmasq and Ironic's HTTP"):
            ir = ironic(boot="ipxe", http_url=HTTP)
            node.undercloud(ir.work / "http")
        [name] = enroll(ir, report, section, node.inventory[driver])
        view = IpmiView(node.ipmi(), 0) if driver == "ipmi" else \
            RedfishView(node.bmc, node.server_id, node.redfish["redfish_verify_ca"],
                        ("admin", node.redfish["redfish_password"]))
        # the inventory says the image's firmware (Ironic would assume UEFI); Redfish nodes
        # also get it through Ironic's boot mode API
        assert ir.node(name)["properties"]["capabilities"] == f"boot_mode:{firmware}"
        set_boot_mode(ir, name, firmware, view)
        ramdisk_instance(ir, name, RAMDISK_MARKER)
        with report.step(section, f"{name}: open the BMC's console while the node is off"):
            console = node.console(driver)
        with report.step(section, f"{name}: deploy → the BMC {strategy}s the VM with the "
                                  f"{firmware} iPXE image, our dnsmasq answers, Ironic's iPXE "
                                  "boots the kernel and initramfs: /init's marker on the BMC's "
                                  "console and in the compute API's console log"):
            ir.provision(name, "active", "active", timeout=300)
            assert console.read_until(RAMDISK_MARKER, 240), console.output[-2000:]
            wait_console_log(conn, node.server_id, RAMDISK_MARKER, 1, 30)
            dhcp = node.dhcp_log.read_text()
            assert f"DHCPDISCOVER(eth0) {node.mac}" in dhcp, dhcp[-2000:]
            assert ("tags: ipxe, efi64" in dhcp) == (firmware == "uefi")
            served = node.http_log.read_text()
            uuid_ = ir.node(name)["uuid"]
            for path in ("/boot.ipxe", f"/{uuid_}/kernel", f"/{uuid_}/ramdisk"):
                assert f'"GET {path} HTTP/1.1" 200' in served, served
            assert conn.compute.get_server(node.server_id).status == \
                ("RESCUE" if strategy == "rescue" else "ACTIVE")
        with report.step(section, f"{name}: boot device disk (persistent) + reboot → the "
                                  "disk's own marker, on the same console"):
            seen = console.output.count(disk_marker.encode())
            ir.set_boot_device(name, "disk", True)
            ir.power(name, "rebooting", timeout=180)
            assert console.read_until(disk_marker, 120, seen + 1), console.output[-2000:]
            wait_console_log(conn, node.server_id, disk_marker, 1, 30)   # this boot's log
            server = conn.compute.get_server(node.server_id)
            assert server.status == "ACTIVE"
            if strategy == "rebuild":
                assert server.image.id == ipxe_image_id(conn, firmware)   # not rebuilt back
                assert console.read_until(RAMDISK_MARKER, 240, 2), console.output[-2000:]
            assert ir.node(name)["provision_state"] == "active"
        ir.power(name, "power off", timeout=180)
    finally:
        if console is not None:
            console.close()
        if node is not None:
            node.close()

