"""Part of bench/ironic.py: Ironic's ramdisk deploy of one real Nova VM (the devcloud's real host,
strategy rescue, the undercloud in a `devcloud netns`) beside one lab node (QEMU without
OpenStack), with the parts the acceptance tier uses too (harness/nodes.py).

Timed for each, one after the other (one VM at a time): deploy until the ramdisk's marker is on
the node's serial console (IPMI SOL through our BMC for the VM, the lab's serial log for the lab
node); disk boot + reboot until the disk's marker; then Ironic's power off, on and reboot.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))   # the repository's harness/
from harness.ironic import Ironic, install
from harness.nodes import HTTP, CloudNode, Lab, ramdisk_instance
from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.images.marker import boot_sector

RAMDISK_MARKER = "QO-BENCH-RAMDISK-31f0"
LAB_DISK_MARKER = "QO-BENCH-LAB-DISK-77b2"
VM_PORT, LAB_PORT, IRONIC_PORT = 18700, 18750, 18610
POWER = [("power off", "power off"), ("power on", "power on"), ("rebooting", "reboot")]


def deploy_rows(rounds: int) -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        nova = _on_nova(tmp / "nova", rounds)
        lab = _on_lab(tmp / "lab", rounds)
    rows = []
    for what in nova:
        rows.append(("1 node, BIOS, IPMI", what, f"{nova[what]:.2f} s", f"{lab[what]:.2f} s",
                     f"{nova[what] / lab[what]:.2f}x"))
    return rows


def _timed(action: Callable[[], object]) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def _deploy(ir: Ironic, name: str, ramdisk: Callable[[], object],
            disk: Callable[[], object], rounds: int) -> dict[str, float]:
    """The figures of one node, enrolled and available."""
    ramdisk_instance(ir, name, RAMDISK_MARKER)
    figures = {"deploy → ramdisk marker on the console": _timed(lambda: (
        ir.provision(name, "active", "active", timeout=300), ramdisk()))}
    ir.set_boot_device(name, "disk", True)
    figures["disk boot + reboot → disk marker"] = _timed(lambda: (
        ir.power(name, "rebooting", timeout=180), disk()))
    times: dict[str, list[float]] = {}
    for _ in range(rounds):
        for target, what in POWER:
            times.setdefault(f"Ironic {what}", []).append(
                _timed(lambda target=target: ir.power(name, target, timeout=180)))
    figures |= {what: statistics.median(values) for what, values in times.items()}
    ir.power(name, "power off", timeout=180)
    return figures


def _on_nova(work: Path, rounds: int) -> dict[str, float]:
    work.mkdir()
    ir = Ironic(install(), work / "ironic", IRONIC_PORT, boot="ipxe", http_url=HTTP).start()
    node = sol = None
    try:
        node = CloudNode(work, "quintupleo-tiny", "rescue", VM_PORT)
        node.undercloud(ir.work / "http")
        ir.enroll(node.inventory["ipmi"])
        ir.provision(node.node_name, "manage", "manageable")
        ir.provision(node.node_name, "provide", "available")
        sol = node.console("ipmi")
        console = sol

        def seen(marker: str, timeout: float) -> None:
            if not console.read_until(marker, timeout):
                raise SystemExit(f"no {marker} on the node's console:\n"
                                 f"{console.output[-1500:]!r}\nDHCP: "
                                 f"{node.dhcp_log.read_text()[-1500:]}\nHTTP: "
                                 f"{node.http_log.read_text()[-1500:]}\nBMC: "
                                 f"{node.bmc.log[-2500:]}")
        return _deploy(ir, node.node_name, lambda: seen(RAMDISK_MARKER, 300),
                       lambda: seen(IMAGE_MARKER, 180), rounds)
    finally:
        if sol is not None:
            sol.close()
        if node is not None:
            node.close()
        ir.stop()


def _on_lab(work: Path, rounds: int) -> dict[str, float]:
    work.mkdir()
    lab = Lab(work / "home")
    ir = None
    try:
        lab.qo("up", "--nodes", "1", "--cidr", f"{Lab.NET}.0/24", "--ipmi-port-base",
               str(LAB_PORT), "--redfish-port", str(LAB_PORT + 1))
        disk = work / "disk.raw"
        disk.write_bytes(boot_sector(LAB_DISK_MARKER).ljust(1 << 20, b"\0"))
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(disk),
                        str(lab.dir / "nodes" / "node-0" / "disk.qcow2")], check=True)
        ir = Ironic(install(), work / "ironic", IRONIC_PORT + 1, boot="ipxe",
                    http_url=Lab.HTTP).start()
        lab.undercloud(ir.work / "http", work)
        inventory = lab.dir / "nodes.json"
        [name] = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
        ir.enroll(inventory)
        ir.provision(name, "manage", "manageable")
        ir.provision(name, "provide", "available")
        return _deploy(ir, name, lambda: lab.wait_console(RAMDISK_MARKER, 1, 300),
                       lambda: lab.wait_console(LAB_DISK_MARKER, 1, 180), rounds)
    finally:
        if ir is not None:
            ir.stop()
        lab.close()

