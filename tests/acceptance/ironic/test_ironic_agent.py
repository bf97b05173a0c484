"""The real deploy: unmodified Ironic's `direct` deploy with the real Ironic Python Agent
(`qo image build-agent`: Debian packages and the agent from the Python index) on a lab node.

Ironic's iPXE boots the agent over the lab network through our BMC; the agent inspects the node
(in-band), erases its disk's metadata (automated cleaning), writes the whole-disk image (a DOS
partition table, a FAT file system, GRUB for BIOS and UEFI); Ironic reboots the node through the
BMC and GRUB prints the image's marker from the node's own disk; undeploying cleans it again.
Ironic runs in the root namespace; the undercloud's link (a veth onto the lab's bridge) is where
the agent reaches its API and Ironic the agent's. One node at a time."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from harness import agent
from harness.nodes import HTTP, NET, CloudNode, Lab, UndercloudLink
from quintupleo.images.marker import DISK_MARKER

PORT = 17800
DISK_GB = 5      # the agent ignores disks under 4 GiB
UNDERCLOUD = f"{Lab.NET}.254"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab's network needs root")


@pytest.fixture(scope="session")
def agent_dir(tmp_path_factory):
    return agent.build(tmp_path_factory.mktemp("agent"))


def disk_head(qcow2) -> bytes:
    """The first sector of the node's disk, read beside the running QEMU."""
    raw = qcow2.with_suffix(".head")
    subprocess.run(["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=512", "count=1",
                    f"if={qcow2}", f"of={raw}"], check=True, capture_output=True)
    return raw.read_bytes()[:512]


@pytest.mark.parametrize(("firmware", "driver"), [("bios", "ipmi"), ("uefi", "redfish")])
def test_ironic_direct_deploy_with_the_real_agent_on_a_lab_node(ironic, report, tmp_path,
                                                                agent_dir, firmware, driver):
    section = f"lab (QEMU, {'SeaBIOS' if firmware == 'bios' else 'OVMF'}, {driver}) · " \
              "Ironic direct deploy with Ironic Python Agent"
    lab = Lab(tmp_path / "home")
    link = None
    try:
        with report.step(section, f"lab up: 1 node ({firmware}, 2 GiB, {DISK_GB} GiB disk); "
                                  "the undercloud's link on its network"):
            lab.qo("up", "--nodes", "1", "--boot-mode", firmware, "--cidr", f"{Lab.NET}.0/24",
                   "--memory", "2048", "--disk", str(DISK_GB),
                   "--ipmi-port-base", str(PORT), "--redfish-port", str(PORT + 50),
                   "--inventory-driver", driver)
            link = UndercloudLink("br0", f"{UNDERCLOUD}/24", lab.netns)
        with report.step(section, "start Ironic (ipxe boot, direct deploy, agent inspection, "
                                  "fast track); dnsmasq and Ironic's HTTP on the lab network"):
            ir = ironic(boot="ipxe", http_url=Lab.HTTP, host=UNDERCLOUD, agent=True)
            lab.undercloud(ir.work / "http", tmp_path)
        inventory = lab.dir / "nodes.json"
        [name] = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
        with report.step(section, f"{name}: enroll, manage; set for the agent"):
            ir.enroll(inventory)
            ir.provision(name, "manage", "manageable")
            agent.prepare(ir, name, agent_dir, Lab.HTTP)
        agent.deploy(ir, name, lab.console, lambda phase: report.step(section, f"{name}: {phase}"))
        node = ir.node(name)
        properties = node["properties"]
        assert properties["cpu_arch"] == "x86_64" and int(properties["cpus"]) == 1
        assert int(properties["memory_mb"]) in range(1900, 2049), properties
        assert int(properties["local_gb"]) in (DISK_GB - 1, DISK_GB), properties
        ports = ir.call("GET", f"ports?node={node['uuid']}")["ports"]
        mac = json.loads(inventory.read_text())["nodes"][0]["ports"][0]["address"]
        assert [p["address"] for p in ports] == [mac]
        assert lab.console().count(DISK_MARKER) == 1
        # the agent's cleaning after undeploy erased the partition table it had written
        assert disk_head(lab.dir / "nodes" / "node-0" / "disk.qcow2")[510:] != b"\x55\xaa"
        served = lab.http_log.read_text()
        assert f'"GET /{agent.IMAGE} HTTP/1.1" 200' in served, served[-2000:]
    finally:
        lab.close()
        if link is not None:
            link.close()


CLOUD_PORT = 15760
CLOUD_UNDERCLOUD = f"{NET}.254"


@pytest.mark.devcloud
def test_ironic_direct_deploy_with_the_real_agent_on_a_nova_vm(ironic, report, conn, real_host,
                                                               tmp_path, agent_dir):
    """The same on the devcloud's real host: the BMC rescues the VM into the iPXE image to
    network-boot it, so the agent sees two disks and must write the node's own (the
    inventory's root device hint: the flavor's disk size); unrescued, the server boots what the
    agent wrote."""
    section = "devcloud real VM (Nova libvirt, SeaBIOS, ipmi, strategy rescue) · Ironic direct " \
              "deploy with Ironic Python Agent"
    node: CloudNode | None = None
    link = sol = None
    try:
        with report.step(section, "env create: 1 node (qo.small: 2 GiB, 10 GiB disk) in zone "
                                  "qemu, powered off; its BMC"):
            node = CloudNode(tmp_path, "quintupleo-tiny", "rescue", CLOUD_PORT, "qo.small")
        with report.step(section, "`devcloud netns` with dnsmasq and Ironic's HTTP; the "
                                  "undercloud's link; Ironic (direct deploy, agent inspection)"):
            link = node.link(f"{CLOUD_UNDERCLOUD}/24")
            ir = ironic(boot="ipxe", http_url=HTTP, host=CLOUD_UNDERCLOUD, agent=True)
            node.undercloud(ir.work / "http")
        with report.step(section, "enroll (root device hint: the flavor's 10 GiB), manage; "
                                  "set for the agent"):
            ir.enroll(node.inventory["ipmi"])
            name = node.node_name
            assert ir.node(name)["properties"]["root_device"] == {"size": 10}
            ir.provision(name, "manage", "manageable")
            agent.prepare(ir, name, agent_dir, HTTP)

        with report.step(section, f"{name}: open the BMC's console (SOL) while it is off"):
            sol = node.console("ipmi")      # across the rescue, the agent, the unrescue
        agent.deploy(ir, name, sol.text,
                     lambda phase: report.step(section, f"{name}: {phase}"))
        properties = ir.node(name)["properties"]
        assert int(properties["local_gb"]) in (9, 10) and int(properties["cpus"]) == 1
        assert int(properties["memory_mb"]) in range(1900, 2049), properties
        assert conn.compute.get_server(node.server_id).status in ("ACTIVE", "RESCUE")
        ir.power(name, "power off", timeout=180)
    finally:
        if sol is not None:
            (tmp_path / "console.log").write_text(sol.text())
            sol.close()
        if node is not None:
            node.close()
        if link is not None:
            link.close()

