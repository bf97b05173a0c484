"""Unmodified Ironic enrolls and drives the fake backend's nodes over IPMI and over Redfish
(session and Basic auth), every step cross-checked at the BMC with a client of our own choosing
(ipmitool, plain HTTP). Each step lands in the run's report."""

from __future__ import annotations

import json

import pytest
import requests
from ironic_report import Report
from ironic_steps import IpmiView, RedfishView, enroll, set_boot_mode, wait_for

from harness.ironic import Ironic


def drive(ir: Ironic, report: Report, section: str, name: str, bmc) -> None:
    """Power and boot devices through Ironic, each cross-checked at the BMC."""
    with report.step(section, f"{name}: power on"):
        assert ir.power(name, "power on")["power_state"] == "power on"
        assert bmc.power() == "on"
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
    with report.step(section, f"{name}: power off"):
        assert ir.power(name, "power off")["power_state"] == "power off"
        assert bmc.power() == "off"


def test_ironic_over_ipmi(bmc_server, ironic, report, tmp_path):
    section = "fake backend · IPMI"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "2", "--inventory-out",
                     str(inventory))
    with report.step(section, "start Ironic (standalone: SQLite, no auth, no bus)"):
        ir = ironic()
    names = enroll(ir, report, section, inventory)
    for index, name in enumerate(names):
        drive(ir, report, section, name, IpmiView(bmc, index))


@pytest.mark.parametrize("auth", ["session", "basic"])
def test_ironic_over_redfish(bmc_server, ironic, report, tmp_path, auth):
    section = f"fake backend · Redfish ({auth} auth)"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-out",
                     str(inventory), "--inventory-driver", "redfish")
    with report.step(section, "start Ironic"):
        ir = ironic()
    [name] = enroll(ir, report, section, inventory,
                    {"driver_info/redfish_auth_type": auth})
    cert = json.loads(inventory.read_text())["nodes"][0]["driver_info"]["redfish_verify_ca"]
    drive(ir, report, section, name, RedfishView(bmc, "fake-0", cert))
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
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-out",
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


def test_ironic_inspects_out_of_band_over_redfish(bmc_server, ironic, report, tmp_path):
    """Ironic's `redfish` inspect interface, on a node it knows nothing of (no properties, no
    ports): it records the memory, disk and architecture the BMC's inventory gives, and one
    port per NIC; its inspection data holds the CPU count and the system's identity; the same
    figures read at the BMC. (Ironic 39 no longer sets a `cpus` property: its `cpus` hook's
    value is overwritten by the redfish inspect interface, so the count is read from the data.)"""
    section = "fake backend · Redfish inspection"
    inventory = tmp_path / "nodes.json"
    bmc = bmc_server("--backend", "fake", "--fake-nodes", "1", "--inventory-out",
                     str(inventory), "--inventory-driver", "redfish")
    ir = ironic()
    [name] = enroll(ir, report, section, inventory, {"inspect_interface": "redfish"})
    ir.provision(name, "manage", "manageable")
    ir.call("PATCH", f"nodes/{name}", [{"op": "remove", "path": f"/properties/{key}"}
                                       for key in ir.node(name)["properties"]])
    for port in ir.call("GET", f"ports?node={name}")["ports"]:
        ir.call("DELETE", f"ports/{port['uuid']}")
    cert = json.loads(inventory.read_text())["nodes"][0]["driver_info"]["redfish_verify_ca"]
    at_bmc = RedfishView(bmc, "fake-0", cert)
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
