"""The real deploy: unmodified Ironic's `direct` deploy with the real Ironic Python Agent
(`qo image build-agent`: Debian packages and the agent from the Python index).

Ironic's iPXE boots the agent through our BMC; the agent inspects the node (in-band), erases its
disk's metadata (automated cleaning), writes the whole-disk image (GPT, a FAT file system, GRUB
for BIOS and UEFI); Ironic reboots the node through the BMC and GRUB prints the image's marker
from the node's own disk; undeploying cleans it again. Ironic runs in the root namespace; the
undercloud's link (a veth onto the nodes' bridge) is where the agent reaches its API and Ironic
the agent's. On a lab node (BIOS and UEFI) and on a real Nova VM; one node at a time."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess

import pytest
import requests

from harness import agent
from harness.nodes import Lab
from quintupleo.images.marker import DISK_MARKER

LAB_PORT, CLOUD_PORT = 17800, 15760

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the nodes' networks need root")


@pytest.fixture(scope="session")
def agent_dir(tmp_path_factory):
    return agent.build(tmp_path_factory.mktemp("agent"))


def disk_head(qcow2) -> bytes:
    """The first sector of the node's disk, read beside the running QEMU."""
    raw = qcow2.with_suffix(".head")
    subprocess.run(["qemu-img", "dd", "-U", "-f", "qcow2", "-O", "raw", "bs=512", "count=1",
                    f"if={qcow2}", f"of={raw}"], check=True, capture_output=True)
    return raw.read_bytes()[:512]


def assert_inspected(ir, name: str, disk_gb: int, mac: str) -> None:
    """What Ironic's in-band inspection recorded: the node as it was made."""
    node = ir.node(name)
    properties = node["properties"]
    assert properties["cpu_arch"] == "x86_64" and int(properties["cpus"]) == 1, properties
    assert int(properties["memory_mb"]) in range(1900, 2049), properties
    assert int(properties["local_gb"]) in (disk_gb - 1, disk_gb), properties
    ports = ir.call("GET", f"ports?node={node['uuid']}")["ports"]
    assert [p["address"] for p in ports] == [mac]


def secure_boot(lab: Lab) -> dict:
    """The node's SecureBoot resource, at its BMC."""
    return requests.get(f"https://127.0.0.1:{LAB_PORT + 50}/redfish/v1/Systems/node-0/SecureBoot",
                        auth=("admin", lab.password), timeout=10,
                        verify=str(lab.dir / "bmc" / "redfish-cert.pem")).json()


@pytest.mark.parametrize(("firmware", "driver"), [("bios", "ipmi"), ("uefi", "redfish")])
def test_ironic_direct_deploy_with_the_real_agent_on_a_lab_node(ironic, report, tmp_path,
                                                                agent_dir, firmware, driver):
    """On UEFI the instance asks for secure boot: Ironic switches it on through our BMC for
    the image's boot (OVMF with Microsoft's keys enforces it: the image's signed shim and
    GRUB boot, an unsigned loader would not) and off before the agent boots again."""
    section = f"lab (QEMU, {'SeaBIOS' if firmware == 'bios' else 'OVMF'}, {driver}) · " \
              "Ironic direct deploy with Ironic Python Agent"
    secure = firmware == "uefi"
    with contextlib.ExitStack() as stack:
        with report.step(section, f"lab up: 1 node ({firmware}, 2 GiB, {agent.LAB_DISK_GB} GiB "
                                  "disk), the undercloud's link, dnsmasq and HTTP; Ironic "
                                  "(ipxe, direct, agent inspection, fast track); enroll, manage"):
            ir, name, lab = stack.enter_context(
                agent.lab_node(tmp_path, ironic, agent_dir, firmware, driver, LAB_PORT, secure))

        def deployed() -> None:   # the image booted from disk with secure boot as asked
            at_bmc = secure_boot(lab)
            assert (at_bmc["SecureBootEnable"], at_bmc["SecureBootCurrentBoot"]) == \
                (secure, "Enabled" if secure else "Disabled")
            assert ir.node(name)["secure_boot"] is (True if secure else None)

        agent.deploy(ir, name, lab.console,
                     lambda phase: report.step(section, f"{name}: {phase}"), deployed)
        assert secure_boot(lab)["SecureBootEnable"] is False        # off again for the agent
        mac = json.loads((lab.dir / "nodes.json").read_text())["nodes"][0]["ports"][0]["address"]
        assert_inspected(ir, name, agent.LAB_DISK_GB, mac)
        assert lab.console().count(DISK_MARKER) == 1
        # the agent's cleaning after undeploy erased the partition table it had written
        assert disk_head(lab.dir / "nodes" / "node-0" / "disk.qcow2")[510:] != b"\x55\xaa"
        dhcp = lab.dhcp_log.read_text()
        assert f"DHCPDISCOVER(br0) {mac}" in dhcp
        assert ("tags: ipxe, efi64" in dhcp) == (firmware == "uefi")   # x86-64 UEFI client
        served = lab.http_log.read_text()   # what the node's iPXE and the agent fetched
        uuid_ = ir.node(name)["uuid"]
        for path in ("/boot.ipxe", f"/pxelinux.cfg/{mac.replace(':', '-')}",
                     f"/{uuid_}/deploy_kernel", f"/{uuid_}/deploy_ramdisk", f"/{agent.IMAGE}"):
            assert f'"GET {path} HTTP/1.1" 200' in served, served[-2000:]


@pytest.mark.devcloud
def test_ironic_direct_deploy_with_the_real_agent_on_a_nova_vm(ironic, report, conn, real_host,
                                                               tmp_path, agent_dir):
    """The same on the devcloud's real host: the BMC rescues the VM into the iPXE image to
    network-boot it, so the agent sees two disks and must write the node's own (the
    inventory's root device hint: the flavor's disk size); unrescued, the server boots what the
    agent wrote. The console is the BMC's (SOL), across rescue, agent and unrescue."""
    section = "devcloud real VM (Nova libvirt, SeaBIOS, ipmi, strategy rescue) · Ironic direct " \
              "deploy with Ironic Python Agent"
    with contextlib.ExitStack() as stack:
        with report.step(section, "env create: 1 node (qo.small: 2 GiB, 10 GiB disk) in zone "
                                  "qemu, off; its BMC; `devcloud netns` with dnsmasq and HTTP, "
                                  "the undercloud's link; Ironic; enroll, manage; SOL opened"):
            ir, name, node, sol = stack.enter_context(
                agent.cloud_node(tmp_path, ironic, agent_dir, CLOUD_PORT))
        assert ir.node(name)["properties"]["root_device"] == {"size": 10}
        agent.deploy(ir, name, sol.text, lambda phase: report.step(section, f"{name}: {phase}"))
        assert_inspected(ir, name, 10, node.mac)
        assert node.mac.startswith("52:54:00:")     # not Neutron's fa:16:3e:…
        assert conn.compute.get_server(node.server_id).status == "RESCUE"   # the agent again
        ir.power(name, "power off", timeout=180)
