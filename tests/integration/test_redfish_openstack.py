"""Redfish on the devcloud: sushy and the DMTF validator against Nova servers."""

from __future__ import annotations

import time

import pytest
import requests
import sushy

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud


def newest_action(conn, server) -> str:
    return max(conn.compute.server_actions(server), key=lambda a: a.start_time).action


@pytest.fixture
def secure_image(conn, name):
    """An image Nova boots with UEFI secure boot (zone nova's fake host boots nothing)."""
    image = conn.image.create_image(name=f"{name}-secure", data=b"\0" * 512, disk_format="raw",
                                    container_format="bare", hw_firmware_type="uefi",
                                    os_secure_boot="required", wait=True)
    yield image
    conn.image.delete_image(image, ignore_missing=True)


@pytest.fixture
def nodes(conn, boot, secure_image):
    """Two servers: the tiny image (BIOS), and an image that asks for secure boot (UEFI)."""
    servers = [boot("-0", wait=False), boot("-1", wait=False, image_id=secure_image.id)]
    return [settle(conn, s.id, "ACTIVE") for s in servers]


@pytest.fixture
def bmc(bmc_server, nodes, name):
    return bmc_server("--backend", "openstack", "--cloud", "devcloud", "--prefix", f"{name}-",
                      "--refresh-interval", "2")


@pytest.fixture
def system(bmc, nodes):
    root = sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", username="admin", password="password",
                       verify=str(bmc.state_dir / "redfish-cert.pem"))
    yield root.get_system(f"/redfish/v1/Systems/{nodes[0].id}")
    root.__del__()   # log out while the BMC runs


def test_reset_actions_drive_nova(conn, system, nodes):
    server = nodes[0]
    assert system.power_state == sushy.PowerState.ON
    assert system.uuid == server.id
    system.reset_system(sushy.ResetType.FORCE_OFF)
    settle(conn, server.id, "SHUTOFF", timeout=60)
    system.reset_system(sushy.ResetType.ON)
    settle(conn, server.id, "ACTIVE", timeout=60)
    system.reset_system(sushy.ResetType.GRACEFUL_RESTART)
    deadline = time.monotonic() + 60
    while newest_action(conn, server) != "reboot":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    settle(conn, server.id, "ACTIVE", timeout=60)
    system.refresh()
    assert system.power_state == sushy.PowerState.ON


def test_system_shows_the_servers_nics_and_flavor(conn, system, nodes, bmc):
    macs = {p.mac_address.upper() for p in conn.network.ports(device_id=nodes[0].id)}
    assert {nic.mac_address.upper() for nic in system.ethernet_interfaces.get_members()} == macs
    flavor = conn.compute.find_flavor("qo.tiny")
    # Decimal in the schema; sushy reads it as an integer (0 for a 512 MiB flavor)
    assert system.json["MemorySummary"]["TotalSystemMemoryGiB"] == round(flavor.ram / 1024, 3)
    assert system.json["ProcessorSummary"]["LogicalProcessorCount"] == flavor.vcpus
    # what Ironic's redfish inspection reads, from the flavor
    assert system.processors.summary.count == flavor.vcpus
    dimm = requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/{nodes[0].id}/Memory/DIMM0",
                        auth=("admin", "password"), timeout=10,
                        verify=str(bmc.state_dir / "redfish-cert.pem")).json()
    assert dimm["CapacityMiB"] == flavor.ram
    disk = max(1, flavor.disk) * 2**30
    storage = {s.identity: s for s in system.storage.get_members()}
    assert [drive.capacity_bytes for drive in storage["0"].drives] == [disk]   # the server's disk
    assert set(system.storage.drives_sizes_bytes) == {disk}   # the RAID controller's drives: alike
    assert (system.manufacturer, system.serial_number) == ("OpenStack Foundation", nodes[0].id)
    secure = system.secure_boot   # Nova's to set (its image's): off, and no keys to enable it
    assert (secure.enabled, secure.mode) == (False, sushy.SecureBootMode.SETUP)
    assert system.bios.attributes["BootMode"] == "Bios"


def test_secure_boot_and_firmware_are_the_images(bmc, nodes):
    """The image's os_secure_boot=required and hw_firmware_type=uefi: the node says secure boot
    on and UEFI, and the BMC refuses to switch what Nova decides (400, the reason named)."""
    root = sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", username="admin", password="password",
                       verify=str(bmc.state_dir / "redfish-cert.pem"))
    try:
        plain, secured = (root.get_system(f"/redfish/v1/Systems/{n.id}") for n in nodes)
        secure = secured.secure_boot
        assert (secure.enabled, secure.current_boot, secure.mode) == (
            True, sushy.SecureBootCurrentBoot.ENABLED, sushy.SecureBootMode.USER)
        assert secured.bios.attributes["BootMode"] == "Uefi"
        for system, wanted in ((secured, False), (plain, True)):
            with pytest.raises(sushy.exceptions.BadRequestError) as refused:
                system.secure_boot.set_enabled(wanted)
            assert "os_secure_boot" in str(refused.value)
        assert secured.secure_boot.enabled is True
        secured.secure_boot.set_enabled(True)   # what it is already: accepted
    finally:
        root.__del__()


def test_out_of_band_stop_shows_in_redfish(conn, bmc, nodes):
    conn.compute.stop_server(nodes[1])
    settle(conn, nodes[1].id, "SHUTOFF", timeout=60)
    url = f"{bmc.redfish_url}/redfish/v1/Systems/{nodes[1].id}"
    deadline = time.monotonic() + 5
    while requests.get(url, auth=("admin", "password"),
                       verify=str(bmc.state_dir / "redfish-cert.pem"),
                       timeout=10).json()["PowerState"] != "Off":
        assert time.monotonic() < deadline, "the stop was not seen within a refresh"
        time.sleep(0.2)


def test_dmtf_validator_on_nova_nodes(bmc, redfish_validator):
    counts = redfish_validator(bmc.redfish_url, "Session")
    assert counts["fail"] == 0, counts["output"][-4000:]
    assert counts["pass"] > 200
