"""A lab's nodes as the QEMU backend's machines: where each lives, how it joins the lab network."""

from __future__ import annotations

from quintupleo.backends.qemu.machine import Machine, MachineSpec
from quintupleo.lab.layout import Lab, LabNode
from quintupleo.lab.network import qemu_netdev, qemu_prefix


def machine_spec(lab: Lab, node: LabNode) -> MachineSpec:
    return MachineSpec(
        name=node.name, uuid=node.uuid, mac=node.mac, dir=lab.node_dir(node),
        tag=f"{lab.process_tag}{node.name}", netdev=qemu_netdev(lab, node),
        cpus=node.cpus, memory_mb=node.memory_mb, disk_gb=node.disk_gb,
        firmware=node.firmware, accel=lab.accel, runs_under=tuple(qemu_prefix(lab)),
        extra={"lab": lab.name, **({"profile": node.profile or node.role} if node.role else {})})


def machine_specs(lab: Lab) -> list[MachineSpec]:
    return [machine_spec(lab, node) for node in lab.nodes]


def machine(lab: Lab, node: LabNode) -> Machine:
    return Machine(machine_spec(lab, node))
