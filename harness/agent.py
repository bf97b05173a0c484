"""The real deploy, shared by the Ironic tier and bench/ironic.py: Ironic's `direct` deploy with
Ironic Python Agent (`qo image build-agent`) writing the whole-disk image to a node's disk.

A node goes manage → inspect (in-band, by the agent) → provide (automated cleaning: metadata
erase) → deploy (the agent writes the image; Ironic reboots the node through the BMC; the
image's GRUB prints its marker) → undeploy (cleaning again). Each phase is timed; where the
agent boots, its boot is timed apart (power on → its first line on the console).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from harness.bmc_process import SolClient
from harness.ironic import Ironic
from harness.nodes import HTTP, NET, CloudNode, Lab, UndercloudLink
from quintupleo.images.marker import DISK_MARKER

AGENT_LINE = "QuintupleO agent ramdisk: Ironic Python Agent"   # /init, as the agent starts
IMAGE = "disk.raw"


def build(out: Path) -> Path:
    """`qo image build-agent --output OUT`, as a user runs it (cached after the first build)."""
    result = subprocess.run([sys.executable, "-m", "quintupleo", "image", "build-agent",
                             "--output", str(out)], capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"image build-agent: {result.stdout}{result.stderr}"
    return out


def prepare(ir: Ironic, name: str, agent: Path, image_base_url: str,
            root_device: dict | None = None, secure_boot: bool = False) -> None:
    """The node set for the real agent: its kernel and ramdisk (file:// sources), `direct`
    deploy of the whole-disk image (served from Ironic's http_root), in-band inspection,
    automated cleaning; with `secure_boot`, the instance asks for it (Ironic switches it on
    through the BMC before the image's boot, off when undeploying)."""
    for part in ("ipa.kernel", "ipa.initramfs"):
        shutil.copyfile(agent / part, ir.sources / part)
    shutil.copyfile(agent / IMAGE, ir.work / "http" / IMAGE)
    digest = hashlib.sha256((agent / IMAGE).read_bytes()).hexdigest()
    patch = {"driver_info/deploy_kernel": f"file://{ir.sources / 'ipa.kernel'}",
             "driver_info/deploy_ramdisk": f"file://{ir.sources / 'ipa.initramfs'}",
             "deploy_interface": "direct", "inspect_interface": "agent",
             "automated_clean": True,
             "instance_info": {"image_source": f"{image_base_url}/{IMAGE}",
                               "image_os_hash_algo": "sha256", "image_os_hash_value": digest,
                               "image_disk_format": "raw",
                               **({"capabilities": {"secure_boot": "true"}} if secure_boot
                                  else {})}}
    if root_device:
        patch["properties/root_device"] = root_device
    ir.call("PATCH", f"nodes/{name}", [{"op": "add", "path": f"/{path}", "value": value}
                                       for path, value in patch.items()])


class Phases:
    """Seconds per phase, in the order they ran; each phase also runs inside `around(phase)`
    (a report's step, say)."""

    def __init__(self, around: Callable[[str], AbstractContextManager] | None = None) -> None:
        self.seconds: dict[str, float] = {}
        self._around = around or (lambda _: contextlib.nullcontext())

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        with self._around(name):
            yield
        self.seconds[name] = round(time.monotonic() - began, 2)


def wait_text(console: Callable[[], str], text: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while console().count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} on the console:\n{console()[-3000:]}"
        time.sleep(0.5)


def deploy(ir: Ironic, name: str, console: Callable[[], str],
           around: Callable[[str], AbstractContextManager] | None = None,
           deployed: Callable[[], None] = lambda: None) -> Phases:
    """Inspect, provide, deploy and undeploy NAME; CONSOLE() is all its serial output so far;
    DEPLOYED() checks the node while its image runs. Asserts what each phase must leave
    behind."""
    phases = Phases(around)
    with phases.phase("inspect: the agent boots (iPXE through the BMC)"):
        agents = console().count(AGENT_LINE)
        ir.call("PUT", f"nodes/{name}/states/provision", {"target": "inspect"})
        wait_text(console, AGENT_LINE, agents + 1, 600)
    with phases.phase("inspect: the agent inspects the node (in-band)"):
        node = ir.wait(name, lambda n: n["provision_state"] in ("manageable", "inspect failed"),
                       "inspection", 300)
        assert node["provision_state"] == "manageable", node["last_error"]
    with phases.phase("provide: automated cleaning, metadata erase (fast track: same agent)"):
        ir.provision(name, "provide", "available", timeout=600)
    with phases.phase("deploy: the agent writes the whole-disk image"):
        ir.call("PUT", f"nodes/{name}/states/provision", {"target": "active"})
        node = ir.wait(name, lambda n: n["provision_state"].endswith("failed") or (
            n["deploy_step"] or {}).get("step") not in (None, "deploy", "write_image")
            or n["provision_state"] == "active", "image written", 900)
        assert not node["provision_state"].endswith("failed"), node["last_error"]
    with phases.phase("deploy: reboot through the BMC to the image (its marker)"):
        disks = console().count(DISK_MARKER)
        node = ir.wait(name, lambda n: n["provision_state"] in ("active", "deploy failed"),
                       "active", 600)
        assert node["provision_state"] == "active", node["last_error"]
        wait_text(console, DISK_MARKER, disks + 1, 300)
    deployed()
    with phases.phase("undeploy: the agent boots again"):
        agents = console().count(AGENT_LINE)
        ir.call("PUT", f"nodes/{name}/states/provision", {"target": "deleted"})
        wait_text(console, AGENT_LINE, agents + 1, 600)
    with phases.phase("undeploy: cleaning"):
        ir.wait(name, lambda n: n["provision_state"] in ("available", "clean failed"),
                "undeploy and cleaning", 900)
        assert ir.node(name)["provision_state"] == "available", ir.node(name)["last_error"]
    return phases


LAB_DISK_GB = 5        # the agent ignores disks under 4 GiB
UNDERCLOUD_HOST = 254  # the undercloud link's address on the nodes' network: .254


@contextlib.contextmanager
def lab_node(work: Path, start_ironic: Callable[..., Ironic], agent: Path, firmware: str,
             driver: str, port: int, secure_boot: bool = False
             ) -> Iterator[tuple[Ironic, str, Lab]]:
    """A lab of one node (2 GiB), the undercloud's link and services on its network, and an
    Ironic for the agent with the node enrolled, managed and set for the agent (and its
    instance for secure boot, with `secure_boot`)."""
    lab = Lab(work / "home")
    link = None
    try:
        lab.qo("up", "--nodes", "1", "--boot-mode", firmware, "--cidr", f"{Lab.NET}.0/24",
               "--memory", "2048", "--disk", str(LAB_DISK_GB), "--ipmi-port-base", str(port),
               "--redfish-port", str(port + 50), "--inventory-driver", driver)
        host = f"{Lab.NET}.{UNDERCLOUD_HOST}"
        link = UndercloudLink("br0", f"{host}/24", lab.netns)
        ir = start_ironic(boot="ipxe", http_url=Lab.HTTP, host=host, agent=True)
        lab.undercloud(ir.work / "http", work)
        inventory = lab.dir / "nodes.json"
        [name] = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
        ir.enroll(inventory)
        ir.provision(name, "manage", "manageable")
        prepare(ir, name, agent, Lab.HTTP, secure_boot=secure_boot)
        yield ir, name, lab
    finally:
        lab.close()
        if link is not None:
            link.close()


@contextlib.contextmanager
def cloud_node(work: Path, start_ironic: Callable[..., Ironic], agent: Path,
               port: int) -> Iterator[tuple[Ironic, str, CloudNode, SolClient]]:
    """An environment of one node on the devcloud's real host (qo.small: 2 GiB, 10 GiB; SeaBIOS;
    strategy rescue), the undercloud's link and `devcloud netns` on its provisioning network,
    an Ironic for the agent with the node enrolled over IPMI, managed and set, and the BMC's SOL
    console opened while the node is off."""
    node = link = sol = None
    try:
        node = CloudNode(work, "quintupleo-tiny", "rescue", port, "qo.small")
        host = f"{NET}.{UNDERCLOUD_HOST}"
        link = node.link(f"{host}/24")
        ir = start_ironic(boot="ipxe", http_url=HTTP, host=host, agent=True)
        node.undercloud(ir.work / "http")
        ir.enroll(node.inventory["ipmi"])
        ir.provision(node.node_name, "manage", "manageable")
        prepare(ir, node.node_name, agent, HTTP)
        sol = node.console("ipmi")
        yield ir, node.node_name, node, sol
    finally:
        if sol is not None:
            (work / "console.log").write_text(sol.text())
            sol.close()
        if node is not None:
            node.close()
        if link is not None:
            link.close()
