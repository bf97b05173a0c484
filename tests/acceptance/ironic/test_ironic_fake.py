"""Unmodified Ironic enrolls and drives the fake backend's nodes over IPMI and over Redfish
(session and Basic auth), every step cross-checked at the BMC with a client of our own choosing
(ipmitool, plain HTTP). Each step lands in the run's report."""

from __future__ import annotations

import json

import pytest
import requests
from ironic_report import Report
from ironic_steps import IpmiView, RedfishView, enroll, http_server, set_boot_mode, wait_for

from harness.ironic import Ironic


def drive(ir: Ironic, report: Report, section: str, name: str, bmc, boots: bool = True
          ) -> None:
    """Power and (with `boots`) boot devices through Ironic, each cross-checked at the BMC."""
    with report.step(section, f"{name}: power on"):
        assert ir.power(name, "power on")["power_state"] == "power on"
        assert bmc.power() == "on"
    if boots:
        boot_devices(ir, report, section, name, bmc)
    with report.step(section, f"{name}: power off"):
        assert ir.power(name, "power off")["power_state"] == "power off"
        assert bmc.power() == "off"


def boot_devices(ir: Ironic, report: Report, section: str, name: str, bmc) -> None:
    """PXE and disk, one-time and persistent, UEFI and legacy; a reboot uses up a one-time."""
    for device, persistent, mode in [("pxe", False, "uefi"), ("disk", True, "uefi"),
                                     ("pxe", True, "bios"), ("disk", False, "bios")]:
        label = f"{name}: boot device {device}, {'persistent' if persistent else 'one-time'}, " \
                f"{'UEFI' if mode == 'uefi' else 'legacy'}"
        with report.step(section, label):
            set_boot_mode(ir, name, mode, bmc)
            ir.set_boot_device(name, device, persistent)
            assert bmc.boot() == (device, persistent, mode)
            assert ir.boot_device(name) == {"boot_device": device, "persistent": persistent}
    with report.step(section, f"{name}: one-time PXE, then reboot uses it up"):
        ir.set_boot_device(name, "pxe", False)
        assert ir.power(name, "rebooting")["power_state"] == "power on"
        assert bmc.power() == "on"
        assert bmc.boot()[0] == "none"          # consumed by the boot that used it


def test_ironic_over_ipmi(bmc_server, ironic, report, tmp_path):
    section = "fake backend · IPMI"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "2", "--inventory-output",
                     str(inventory))
    with report.step(section, "start Ironic (standalone: SQLite, no auth, no bus)"):
        ir = ironic()
    names = enroll(ir, report, section, inventory)
    for index, name in enumerate(names):   # boot devices once: the second node has its own port
        drive(ir, report, section, name, IpmiView(bmc, index), boots=index == 0)


@pytest.mark.parametrize("auth", ["session", "basic"])
def test_ironic_over_redfish(bmc_server, ironic, report, tmp_path, auth):
    section = f"fake backend · Redfish ({auth} auth)"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-output",
                     str(inventory), "--inventory-driver", "redfish")
    with report.step(section, "start Ironic"):
        ir = ironic()
    [name] = enroll(ir, report, section, inventory,
                    {"driver_info/redfish_auth_type": auth})
    cert = json.loads(inventory.read_text())["nodes"][0]["driver_info"]["redfish_verify_ca"]
    # boot devices once (session auth): how Ironic authenticates changes no other request
    drive(ir, report, section, name, RedfishView(bmc, "fake-0", cert), boots=auth == "session")
    with report.step(section, f"Ironic authenticated as asked ({auth})"):
        sessions = requests.get(f"{bmc.redfish_url}/redfish/v1/SessionService/Sessions",
                                auth=("admin", "password"), verify=cert, timeout=10).json()
        assert (sessions["Members@odata.count"] > 0) == (auth == "session"), sessions


@pytest.mark.parametrize("force", [False, True])
def test_power_sync_sees_a_change_made_outside_ironic(bmc_server, ironic, report, tmp_path,
                                                      force):
    """Someone powers the node off at the BMC, not through Ironic. Ironic's periodic sync
    either records it (force_power_state_during_sync = false) or powers the node back on."""
    section = f"fake backend · power sync (force_power_state_during_sync={force})"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-output",
                     str(inventory))
    ir = ironic(force_power_sync=force, sync_interval=2)
    [name] = enroll(ir, report, section, inventory)
    view = IpmiView(bmc, 0)
    ir.power(name, "power on")
    with report.step(section, f"{name}: powered off at the BMC (ipmitool), Ironic notices"):
        view.set_power("off")
        if force:   # Ironic puts back what it recorded: on, at the BMC
            wait_for(lambda: view.power() == "on", "Ironic to power the node back on", 60)
            assert ir.node(name)["power_state"] == "power on"
        else:       # Ironic takes the BMC's word
            wait_for(lambda: ir.node(name)["power_state"] == "power off",
                     "Ironic to record power off", 60)
            assert view.power() == "off"


def manageable_redfish_node(bmc_server, ironic, report, tmp_path, section: str,
                            interface: str):
    """One fake node enrolled in a new Ironic with the redfish driver and `interface` set to
    redfish, manageable: (Ironic, the node's name, the BMC, the BMC's own view of it)."""
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-output",
                     str(inventory), "--inventory-driver", "redfish")
    ir = ironic()
    [name] = enroll(ir, report, section, inventory, {interface: "redfish"})
    ir.provision(name, "manage", "manageable")
    cert = json.loads(inventory.read_text())["nodes"][0]["driver_info"]["redfish_verify_ca"]
    return ir, name, bmc, RedfishView(bmc, "fake-0", cert)


def test_ironic_inspects_out_of_band_over_redfish(bmc_server, ironic, report, tmp_path):
    """Ironic's `redfish` inspect interface, on a node it knows nothing of (no properties, no
    ports): it records the memory, disk and architecture the BMC's inventory gives, and one
    port per NIC; its inspection data holds the CPU count and the system's identity; the same
    figures read at the BMC. (Ironic 39 no longer sets a `cpus` property: its `cpus` hook's
    value is overwritten by the redfish inspect interface, so the count is read from the data.)"""
    section = "fake backend · Redfish inspection"
    ir, name, _, at_bmc = manageable_redfish_node(bmc_server, ironic, report, tmp_path,
                                                    section, "inspect_interface")
    ir.call("PATCH", f"nodes/{name}", [{"op": "remove", "path": f"/properties/{key}"}
                                       for key in ir.node(name)["properties"]])
    for port in ir.call("GET", f"ports?node={name}")["ports"]:
        ir.call("DELETE", f"ports/{port['uuid']}")
    with report.step(section, f"{name}: inspect (manageable → inspecting → manageable)"):
        ir.provision(name, "inspect", "manageable")
        properties = ir.node(name)["properties"]
    with report.step(section, f"{name}: memory_mb, local_gb and cpu_arch as the BMC says"):
        system = at_bmc.get("/redfish/v1/Systems/fake-0")
        [cpu] = at_bmc.get(system["Processors"]["@odata.id"])["Members"]
        [disk] = at_bmc.get(system["Storage"]["@odata.id"] + "/0")["Drives"]
        assert properties["memory_mb"] == system["MemorySummary"]["TotalSystemMemoryGiB"] * 1024
        assert properties["local_gb"] == at_bmc.get(disk["@odata.id"])["CapacityBytes"] // 2**30 - 1
        assert properties["cpu_arch"] == "x86_64"
    with report.step(section, f"{name}: one port per NIC the BMC lists"):
        nics = at_bmc.get(system["EthernetInterfaces"]["@odata.id"])["Members"]
        macs = {at_bmc.get(n["@odata.id"])["MACAddress"].lower() for n in nics}
        ports = ir.call("GET", f"ports?node={name}")["ports"]
        assert {p["address"] for p in ports} == macs and len(ports) == len(nics) == 1
    with report.step(section, f"{name}: the inspection data: CPUs, disks, system identity"):
        data = ir.call("GET", f"nodes/{name}/inventory")["inventory"]
        assert data["cpu"]["count"] == at_bmc.get(cpu["@odata.id"])["TotalThreads"] == 2
        assert data["cpu"]["model_name"] == at_bmc.get(cpu["@odata.id"])["Model"]
        assert data["system_vendor"]["system_uuid"] == system["UUID"]
        assert data["system_vendor"]["serial_number"] == system["SerialNumber"]
        assert data["disks"][0]["size"] == 10 * 2**30


def clean(ir: Ironic, name: str, steps: list[dict]) -> None:
    """Manual cleaning with out-of-band steps only (no agent ramdisk is booted)."""
    ir.call("PUT", f"nodes/{name}/states/provision",
            {"target": "clean", "clean_steps": steps, "disable_ramdisk": True})
    node = ir.wait(name, lambda n: n["provision_state"] in ("manageable", "clean failed"),
                   "the end of cleaning", 120)
    assert node["provision_state"] == "manageable", node["last_error"]


def test_ironic_bios_settings_and_indicator_over_redfish(bmc_server, ironic, report, tmp_path):
    """Ironic's `redfish` bios interface: its cache of the settings (with the registry's
    types), `apply_configuration` (staged, applied by the reboot Ironic makes, then checked),
    `factory_reset`; and the management interface's indicator. Each read back at the BMC."""
    section = "fake backend · Redfish BIOS and indicator"
    ir, name, bmc, at_bmc = manageable_redfish_node(bmc_server, ironic, report, tmp_path,
                                                    section, "bios_interface")
    bios_path = "/redfish/v1/Systems/fake-0/Bios"
    with report.step(section, f"{name}: Ironic caches the BIOS settings and their registry"):
        cached = {s["name"]: s for s in ir.call("GET", f"nodes/{name}/bios?detail=True")["bios"]}
        assert {k: v["value"] for k, v in cached.items()} == {   # Ironic keeps strings: "1"
            k: str(int(v) if isinstance(v, bool) else v)         # for true
            for k, v in at_bmc.get(bios_path)["Attributes"].items()}
        assert cached["PxeRetries"]["attribute_type"] == "Integer"
        assert cached["PxeRetries"]["upper_bound"] == 10
        assert cached["FirmwareRevision"]["read_only"] is True
    with report.step(section, f"{name}: apply_configuration → reboot → the settings show"):
        ir.power(name, "power on")
        clean(ir, name, [{"interface": "bios", "step": "apply_configuration", "args": {
            "settings": [{"name": "ProcVirtualization", "value": "Disabled"},
                         {"name": "PxeRetries", "value": "3"}]}}])
        attributes = at_bmc.get(bios_path)["Attributes"]
        assert attributes["ProcVirtualization"] == "Disabled" and attributes["PxeRetries"] == 3
        assert at_bmc.get(f"{bios_path}/Settings")["Attributes"] == {}   # nothing pending
        cached = {s["name"]: s["value"] for s in ir.call("GET", f"nodes/{name}/bios")["bios"]}
        assert cached["ProcVirtualization"] == "Disabled" and cached["PxeRetries"] == "3"
    with report.step(section, f"{name}: the settings outlive a restart of the BMC"):
        bmc.stop()
        bmc.start()
        attributes = at_bmc.get(bios_path)["Attributes"]
        assert attributes["ProcVirtualization"] == "Disabled" and attributes["PxeRetries"] == 3
    with report.step(section, f"{name}: a value outside the registry's bounds is refused"):
        ir.call("PUT", f"nodes/{name}/states/provision", {
            "target": "clean", "disable_ramdisk": True, "clean_steps": [{
                "interface": "bios", "step": "apply_configuration",
                "args": {"settings": [{"name": "PxeRetries", "value": "99"}]}}]})
        node = ir.wait(name, lambda n: n["provision_state"] in ("manageable", "clean failed"),
                       "the end of cleaning", 60)
        assert node["provision_state"] == "clean failed" and "PxeRetries" in node["last_error"]
        assert at_bmc.get(f"{bios_path}/Settings")["Attributes"] == {}
        ir.call("DELETE", f"nodes/{name}/maintenance")   # a failed clean step sets it
        ir.provision(name, "manage", "manageable")
    with report.step(section, f"{name}: factory_reset → reboot → the defaults again"):
        clean(ir, name, [{"interface": "bios", "step": "factory_reset"}])
        attributes = at_bmc.get(bios_path)["Attributes"]
        assert attributes["ProcVirtualization"] == "Enabled" and attributes["PxeRetries"] == 1
    with report.step(section, f"{name}: the indicator, set through Ironic, lit at the BMC"):
        indicators = ir.call("GET", f"nodes/{name}/management/indicators")["indicators"]
        assert {i["component"] for i in indicators} >= {"system", "chassis"}
        uuid = at_bmc.get("/redfish/v1/Systems/fake-0")["UUID"]   # Ironic names LEDs so
        ir.call("PUT", f"nodes/{name}/management/indicators/{uuid}@system",
                {"state": "blinking"})
        assert at_bmc.get("/redfish/v1/Systems/fake-0")["IndicatorLED"] == "Blinking"
        assert at_bmc.get("/redfish/v1/Chassis/fake-0")["LocationIndicatorActive"] is True
        assert ir.call("GET", f"nodes/{name}/management/indicators/{uuid}@system")["state"] \
            == "blinking"
        ir.call("PUT", f"nodes/{name}/management/indicators/{uuid}@chassis", {"state": "off"})
        assert at_bmc.get("/redfish/v1/Systems/fake-0")["LocationIndicatorActive"] is False


def deploy(ir: Ironic, name: str, steps: list[dict], **capabilities: str) -> None:
    """A ramdisk deploy (of files a fake node does not boot) with `steps` as deploy steps and
    the instance's `capabilities`."""
    for source in ("vmlinuz", "initramfs"):
        (ir.sources / source).write_bytes(b"not booted by a fake node\n")
    ir.call("PATCH", f"nodes/{name}", [{"op": "add", "path": "/instance_info", "value": {
        "kernel": f"file://{ir.sources / 'vmlinuz'}",
        "ramdisk": f"file://{ir.sources / 'initramfs'}", "capabilities": capabilities}}])
    ir.call("PUT", f"nodes/{name}/states/provision", {"target": "active", "deploy_steps": steps})
    node = ir.wait(name, lambda n: n["provision_state"] in ("active", "deploy failed"),
                   "the end of the deploy", 240)
    assert node["provision_state"] == "active", node["last_error"]


def test_ironic_raid_firmware_and_secure_boot_over_redfish(bmc_server, ironic, report,
                                                           tmp_path):
    """Ironic's `redfish` raid and firmware interfaces as deploy steps: apply_configuration
    builds the volume Ironic planned on the RAID controller's drives, and a later deploy
    replaces it (delete_configuration first: Ironic's redfish raid ignores delete_existing);
    firmware `update` flashes the BIOS (the task runs until
    the reboot Ironic makes, the BIOS version changes at that boot) and the BMC (its version
    changes when its task ends); and secure boot, which the instance asks for: on for the
    deploy, off again when it is undeployed. Each read back at the BMC."""
    section = "fake backend · Redfish RAID, firmware and secure boot"
    ir, name, _, at_bmc = manageable_redfish_node(bmc_server, ironic, report, tmp_path,
                                                  section, "raid_interface")
    ir.call("PATCH", f"nodes/{name}", [
        {"op": "add", "path": "/firmware_interface", "value": "redfish"},
        {"op": "add", "path": "/properties/capabilities", "value": "boot_mode:uefi"}])
    ir.provision(name, "provide", "available")
    system, storage = "/redfish/v1/Systems/fake-0", "/redfish/v1/Systems/fake-0/Storage/1"
    images = tmp_path / "images"
    images.mkdir()
    for image in ("bios-2.1.0.bin", "bmc-1.5.0.bin"):
        (images / image).write_bytes(b"\x55\xaa" * 4096)

    def volumes() -> list[dict]:
        return [at_bmc.get(v["@odata.id"]) for v in at_bmc.get(f"{storage}/Volumes")["Members"]]

    with http_server(images) as url, report.step(
            section, f"{name}: deploy (secure boot) with RAID 1, BIOS and BMC firmware steps"):
        deploy(ir, name, [
            {"interface": "raid", "step": "apply_configuration", "priority": 150,
             "args": {"raid_config": {"logical_disks": [
                 {"size_gb": 8, "raid_level": "1", "is_root_volume": True}]}}},
            {"interface": "firmware", "step": "update", "priority": 140, "args": {
                "settings": [{"component": "bios", "url": f"{url}/bios-2.1.0.bin"},
                             {"component": "bmc", "url": f"{url}/bmc-1.5.0.bin"}]}}],
               secure_boot="true")
    secure = at_bmc.get(f"{system}/SecureBoot")
    with report.step(section, f"{name}: secure boot on, in this boot (at the BMC, in Ironic)"):
        assert (secure["SecureBootEnable"], secure["SecureBootCurrentBoot"]) == (True, "Enabled")
        assert ir.node(name)["secure_boot"] is True
    with report.step(section, f"{name}: the volume at the BMC is Ironic's raid_config"):
        [volume] = volumes()
        assert volume["RAIDType"] == "RAID1" and volume["CapacityBytes"] == 8 * 2**30
        assert len(volume["Links"]["Drives"]) == 2
        [disk] = ir.node(name)["raid_config"]["logical_disks"]
        assert (disk["raid_level"], disk["size_gb"], disk["id"]) == ("1", 8, volume["Id"])
    with report.step(section, f"{name}: BIOS 2.1.0 (after Ironic's reboot) and BMC 1.5.0"):
        assert at_bmc.get(system)["BiosVersion"] == "2.1.0"
        assert at_bmc.get("/redfish/v1/Managers/fake-0")["FirmwareVersion"] == "1.5.0"
        firmware = {c["component"]: c["current_version"]
                    for c in ir.call("GET", f"nodes/{name}/firmware")["firmware"]}
        assert firmware == {"bios": "2.1.0", "bmc": "1.5.0"}
        tasks = [at_bmc.get(t["@odata.id"])
                 for t in at_bmc.get("/redfish/v1/TaskService/Tasks")["Members"]]
        assert [(t["Name"], t["TaskState"]) for t in tasks] == [
            ("BIOS firmware 2.1.0 for fake-0", "Completed"),
            ("BMC firmware 1.5.0 for fake-0", "Completed")]
    with report.step(section, f"{name}: undeploy; deploy with RAID 0 replacing the volume"):
        ir.provision(name, "deleted", "available")
        assert at_bmc.get(f"{system}/SecureBoot")["SecureBootEnable"] is False
        deploy(ir, name, [
            {"interface": "raid", "step": "delete_configuration", "priority": 160, "args": {}},
            {"interface": "raid", "step": "apply_configuration", "priority": 150,
             "args": {"raid_config": {"logical_disks": [
                 {"size_gb": 15, "raid_level": "0", "is_root_volume": True}]}}}])
        [volume] = volumes()
        assert volume["RAIDType"] == "RAID0" and volume["CapacityBytes"] == 15 * 2**30
        [disk] = ir.node(name)["raid_config"]["logical_disks"]
        assert (disk["raid_level"], disk["size_gb"]) == ("0", 15)
