"""Unmodified Ironic drives an environment's nodes — Nova servers on the devcloud — through the
environment's BMC (boot strategy rescue), enrolled from `env nodes --format ironic`. Every step
is cross-checked at the BMC and in Nova: the server's state, and what its hypervisor was asked to
boot (the rescue with the iPXE image is the network boot)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import openstack
import pytest
from ironic_steps import IpmiView, RedfishView, enroll, set_boot_mode, wait_for
from virt_events import VirtEvents

from harness.bmc_process import BmcProcess
from harness.ironic import Ironic

pytestmark = pytest.mark.devcloud
PORT = 15700   # the environment's BMC: IPMI (UDP) and Redfish (TCP), as its spec says


class Environment:
    """One environment of one node (boot strategy rescue), its BMC, and its inventories."""

    def __init__(self, work, devcloud_home) -> None:
        self.name = f"ir{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, XDG_STATE_HOME=str(work / "state"))
        self.work = work
        spec = work / "env.yaml"
        spec.write_text(f"name: {self.name}\ncloud: devcloud\n"
                        "networks: {provisioning: {cidr: 192.168.24.0/24}}\n"
                        "roles: {node: {count: 1, flavor: qo.tiny, image: quintupleo-tiny}}\n"
                        f"bmc: {{boot_strategy: rescue, ipmi_port_base: {PORT}, "
                        f"redfish_port: {PORT}}}\n")
        self.qo("create", str(spec))
        self.inventory = {}
        for driver in ("ipmi", "redfish"):
            self.inventory[driver] = work / f"{driver}.json"
            self.qo("nodes", self.name, "--kind", "ironic", "--driver", driver,
                    "--output", str(self.inventory[driver]))
        # the environment's own BMC state: the Redfish certificate the inventory names
        state = work / "state" / "quintupleo" / "environments" / self.name / "bmc"
        self.bmc = BmcProcess(["--environment", self.name], state, PORT, self.env).start()
        node = json.loads(self.inventory["ipmi"].read_text())["nodes"][0]
        self.node_name = node["name"]
        self.password = node["driver_info"]["ipmi_password"]
        self.server_id = node["extra"]["quintupleo_node_id"]
        self.events_home = devcloud_home

    def qo(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "quintupleo", "env", *args],
                                env=self.env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"env {args[0]}: {result.stdout}{result.stderr}"
        return result.stdout

    def close(self) -> None:
        self.bmc.stop()
        self.qo("delete", self.name)


@pytest.fixture(scope="module")
def environment(tmp_path_factory, devcloud_home):
    from quintupleo.devcloud.manager import Devcloud
    Devcloud(devcloud_home).up()
    env = Environment(tmp_path_factory.mktemp("ironic-env"), devcloud_home)
    yield env
    env.close()


@pytest.fixture
def nova():
    connection = openstack.connect(cloud="devcloud")
    yield connection
    connection.close()


class BmcWithPassword:
    """ipmitool against the environment's BMC, with the environment's own password."""

    def __init__(self, env: Environment) -> None:
        self.env = env

    def ipmitool(self, *command: str, node: int = 0):
        return self.env.bmc.ipmitool(*command, node=node, password=self.env.password)


def server_status(nova, server_id: str) -> str:
    return nova.compute.get_server(server_id).status


def ipxe_image(nova, firmware: str):
    """The iPXE image the BMC rescues with (the newest active one, as the BMC chooses)."""
    return max((i for i in nova.image.images(name=f"quintupleo-ipxe-{firmware}")
                if i.status == "active"), key=lambda i: i.created_at)


def drive_on_nova(ir: Ironic, report, section: str, env: Environment, view, nova) -> None:
    name, server = env.node_name, env.server_id
    assert ir.node(name)["properties"]["capabilities"] == "boot_mode:bios"   # the tiny image's
    set_boot_mode(ir, name, "uefi", view)     # what the override's mode picks is checked below
    with report.step(section, f"{name}: power on → Nova server ACTIVE"):
        ir.call("PUT", f"nodes/{name}/management/boot_device",
                {"boot_device": "disk", "persistent": True})
        assert ir.power(name, "power on")["power_state"] == "power on"
        wait_for(lambda: server_status(nova, server) == "ACTIVE", "ACTIVE")
        assert view.power() == "on"
    with report.step(section, f"{name}: one-time UEFI PXE + reboot → Nova rescues the server "
                     "with the UEFI iPXE image"):
        events = VirtEvents(env.events_home, server)
        uefi = ipxe_image(nova, "uefi")
        ir.set_boot_device(name, "pxe", False)
        assert view.boot() == ("pxe", False, "uefi")
        assert ir.power(name, "rebooting", timeout=180)["power_state"] == "power on"
        assert events.wait_for("rescue")[0]["image"] == uefi.id
        wait_for(lambda: server_status(nova, server) == "RESCUE", "RESCUE", 60)
        assert view.boot()[0] == "none"          # the override was used up by that boot
    with report.step(section, f"{name}: power off → unrescued and SHUTOFF"):
        assert ir.power(name, "power off", timeout=180)["power_state"] == "power off"
        wait_for(lambda: server_status(nova, server) == "SHUTOFF", "SHUTOFF", 60)
        assert view.power() == "off"
    with report.step(section, f"{name}: persistent legacy PXE, power on → rescued with the "
                     "BIOS iPXE image; power off"):
        events = VirtEvents(env.events_home, server)
        bios = ipxe_image(nova, "bios")
        set_boot_mode(ir, name, "bios", view)
        ir.set_boot_device(name, "pxe", True)
        assert view.boot() == ("pxe", True, "bios")
        assert ir.power(name, "power on", timeout=180)["power_state"] == "power on"
        assert events.wait_for("rescue")[0]["image"] == bios.id
        wait_for(lambda: server_status(nova, server) == "RESCUE", "RESCUE", 60)
        assert view.boot() == ("pxe", True, "bios")   # persistent: still there
        assert ir.power(name, "power off", timeout=180)["power_state"] == "power off"
        wait_for(lambda: server_status(nova, server) == "SHUTOFF", "SHUTOFF", 60)
        set_boot_mode(ir, name, "uefi", view)
    with report.step(section, f"{name}: persistent disk boot, power on → ACTIVE, no rescue"):
        events = VirtEvents(env.events_home, server)
        ir.set_boot_device(name, "disk", True)
        assert view.boot() == ("disk", True, "uefi")
        assert ir.power(name, "power on")["power_state"] == "power on"
        wait_for(lambda: server_status(nova, server) == "ACTIVE", "ACTIVE")
        assert not [e for e in events.all() if e["event"] == "rescue"]


def test_ironic_drives_nova_servers_over_ipmi(environment, ironic, report, nova):
    section = "devcloud (Nova) · IPMI"
    with report.step(section, "start Ironic"):
        ir = ironic()
    [name] = enroll(ir, report, section, environment.inventory["ipmi"])
    assert name == environment.node_name
    drive_on_nova(ir, report, section, environment, IpmiView(BmcWithPassword(environment), 0),
                  nova)
    ir.power(name, "power off", timeout=180)


@pytest.mark.parametrize("auth", ["session", "basic"])
def test_ironic_drives_nova_servers_over_redfish(environment, ironic, report, nova, auth):
    section = f"devcloud (Nova) · Redfish ({auth} auth)"
    ir = ironic()
    [name] = enroll(ir, report, section, environment.inventory["redfish"],
                    {"driver_info/redfish_auth_type": auth})
    info = json.loads(environment.inventory["redfish"].read_text())["nodes"][0]["driver_info"]
    view = RedfishView(environment.bmc, environment.server_id, info["redfish_verify_ca"],
                       ("admin", info["redfish_password"]))
    drive_on_nova(ir, report, section, environment, view, nova)
    ir.power(name, "power off", timeout=180)


@pytest.mark.parametrize("force", [False, True])
def test_power_sync_sees_openstack_server_stop(environment, ironic, report, nova, force):
    """`openstack server stop` behind Ironic's back: its periodic sync records power off, or
    (force_power_state_during_sync = true) powers the node on again: ACTIVE in Nova."""
    section = f"devcloud (Nova) · power sync (force_power_state_during_sync={force})"
    ir = ironic(force_power_sync=force, sync_interval=2)
    [name] = enroll(ir, report, section, environment.inventory["ipmi"])
    ir.set_boot_device(name, "disk", True)
    ir.power(name, "power on")
    server = environment.server_id
    wait_for(lambda: server_status(nova, server) == "ACTIVE", "ACTIVE")
    with report.step(section, f"{name}: `openstack server stop`, Ironic notices"):
        nova.compute.stop_server(server)
        wait_for(lambda: server_status(nova, server) == "SHUTOFF", "SHUTOFF", 60)
        if force:
            wait_for(lambda: server_status(nova, server) == "ACTIVE",
                     "Ironic to power the server back on", 90)
            assert ir.node(name)["power_state"] == "power on"
        else:
            wait_for(lambda: ir.node(name)["power_state"] == "power off",
                     "Ironic to record power off", 90)
            time.sleep(3)   # a sync or two later, still off: Ironic did not push it back
            assert server_status(nova, server) == "SHUTOFF"
    ir.power(name, "power off", timeout=180)
