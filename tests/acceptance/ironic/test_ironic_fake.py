"""Unmodified Ironic enrolls and drives the fake backend's nodes over IPMI and over Redfish
(session and Basic auth), every step cross-checked at the BMC with a client of our own choosing
(ipmitool, plain HTTP). Each step lands in the run's report."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests
from ironic_harness import Ironic
from ironic_report import Report


class IpmiView:
    """What the BMC says, asked with ipmitool (not through Ironic)."""

    def __init__(self, bmc, node: int) -> None:
        self.bmc, self.node = bmc, node

    def power(self) -> str:
        out = self.bmc.ipmitool("power", "status", node=self.node).stdout
        return "on" if "is on" in out else "off"

    def set_power(self, state: str) -> None:
        self.bmc.ipmitool("power", state, node=self.node)

    def boot(self) -> tuple[str, bool, str]:
        """(device, persistent, mode) of the boot flags."""
        out = self.bmc.ipmitool("chassis", "bootparam", "get", "5", node=self.node).stdout
        device = ("pxe" if "Force PXE" in out else "disk" if "Hard-Drive" in out
                  else "none")
        return (device, "all future boots" in out,
                "uefi" if "BIOS EFI boot" in out else "bios")


class RedfishView:
    """What the BMC says, asked over plain HTTP (not through Ironic)."""

    def __init__(self, bmc, node: str, cert: str,
                 auth: tuple[str, str] = ("admin", "password")) -> None:
        self.url = f"{bmc.redfish_url}/redfish/v1/Systems/{node}"
        self.cert, self.auth = cert, auth

    def _system(self) -> dict:
        return requests.get(self.url, auth=self.auth, verify=self.cert, timeout=10).json()

    def power(self) -> str:
        return self._system()["PowerState"].lower()

    def set_power(self, state: str) -> None:
        reset = {"on": "On", "off": "ForceOff"}[state]
        requests.post(f"{self.url}/Actions/ComputerSystem.Reset", json={"ResetType": reset},
                      auth=self.auth, verify=self.cert, timeout=10).raise_for_status()

    def boot(self) -> tuple[str, bool, str]:
        boot = self._system()["Boot"]
        device = {"Pxe": "pxe", "Hdd": "disk"}.get(boot["BootSourceOverrideTarget"], "none")
        if boot["BootSourceOverrideEnabled"] == "Disabled":
            device = "none"
        return (device, boot["BootSourceOverrideEnabled"] == "Continuous",
                "uefi" if boot["BootSourceOverrideMode"] == "UEFI" else "bios")


def wait_for(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def enroll(ir: Ironic, report: Report, section: str, inventory: Path,
           patch: dict | None = None) -> list[str]:
    """`baremetal create` on QuintupleO's inventory, then manage (Ironic checks the BMC's
    credentials) and provide; validate says power and management are usable."""
    names = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
    with report.step(section, f"enroll {len(names)} node(s) with `baremetal create`"):
        ir.enroll(inventory)
        assert [ir.node(n)["provision_state"] for n in names] == ["enroll"] * len(names)
    for name in names:
        if patch:
            ir.call("PATCH", f"nodes/{name}", [{"op": "add", "path": f"/{path}", "value": value}
                                               for path, value in patch.items()])
        with report.step(section, f"{name}: manage (credentials verified) → provide"):
            ir.provision(name, "manage", "manageable")
            ir.provision(name, "provide", "available")
        with report.step(section, f"{name}: validate power and management"):
            result = ir.validate(name)
            assert result["power"]["result"] is True, result["power"]
            assert result["management"]["result"] is True, result["management"]
    return names


def set_boot_mode(ir: Ironic, name: str, mode: str, bmc) -> None:
    """The node's boot mode, as a user tells Ironic: its capabilities (the ipmi hardware type
    sends the mode with each boot device), and for Redfish the boot mode API as well."""
    ir.call("PATCH", f"nodes/{name}", [{"op": "replace", "path": "/properties/capabilities",
                                        "value": f"boot_mode:{mode}"}])
    if isinstance(bmc, RedfishView):
        ir.call("PUT", f"nodes/{name}/states/boot_mode", {"target": mode})
        ir.wait(name, lambda n: n["boot_mode"] == mode, f"boot mode {mode}")


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
