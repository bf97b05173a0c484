"""`lab status` and `lab list`: each node as the lab's BMC shows it (power, boot override,
health), beside its QEMU process and the last line of its serial console; every lab here."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from quintupleo.bmc.client import at_a_glance, kept_overrides, override_text, served_nodes
from quintupleo.errors import ConfigError
from quintupleo.lab import network
from quintupleo.lab.layout import Lab, labs_dir
from quintupleo.lab.machines import machine
from quintupleo.lab.manager import bmc_password, bmc_pid
from quintupleo.model import Credentials

COLUMNS = ("node", "power", "boot", "qemu", "health", "console", "ipmi_port", "mac", "made")
LIST_COLUMNS = ("lab", "nodes", "on", "bmc", "network", "redfish")
_ESCAPES = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[()][A-Z0-9]|[=>])")   # terminal controls


@dataclass(frozen=True)
class LabNodeStatus:
    node: str
    power: str
    boot: str
    qemu: str
    health: str
    console: str
    ipmi_port: int
    mac: str
    made: str


def redfish_url(lab: Lab) -> str:
    return f"https://127.0.0.1:{lab.redfish_port}"


def lab_status(name: str) -> tuple[Lab, list[LabNodeStatus], dict[str, Any]]:
    """The lab's nodes, and the lab itself (BMC, network) as a document's head."""
    lab = Lab.load(name)
    pid = bmc_pid(lab)
    served = served_nodes(redfish_url(lab), Credentials("admin", bmc_password(lab)),
                          str(lab.dir / "bmc" / "redfish-cert.pem")) if pid else None
    kept = kept_overrides(lab.dir / "bmc", "qemu") if served is None else {}
    rows = []
    for node in lab.nodes:
        qemu = machine(lab, node)
        process = qemu.pid()
        at_bmc = (served or {}).get(node.name)
        if at_bmc is not None:
            power, boot_shown, health = at_a_glance(at_bmc)
        else:
            power = "On" if process else "Off"
            boot_shown = override_text(kept[node.name]) if node.name in kept else "no override"
            health = "-"
        rows.append(LabNodeStatus(
            node.name, power, boot_shown, f"running (pid {process})" if process else "off",
            health, _last_line(lab, node.name), lab.ipmi_port_base + node.index, node.mac,
            f"{node.cpus} CPU, {node.memory_mb} MiB, {node.firmware}"))
    head = {"lab": lab.name, "bmc": f"running, pid {pid}" if pid else "not running",
            "redfish": redfish_url(lab),
            "network": (f"{lab.netns} {'present' if network.exists(lab.netns) else 'MISSING'}"
                        if lab.netns else f"multicast {lab.mcast}")}
    return lab, rows, head


def document(rows: list[LabNodeStatus], head: dict[str, Any]) -> dict[str, Any]:
    return {**head, "nodes": [asdict(row) for row in rows]}


def labs() -> list[dict[str, Any]]:
    """Every lab on this machine, a row each."""
    found: list[dict[str, Any]] = []
    root = labs_dir()
    for path in sorted(root.glob("*/lab.json")) if root.exists() else []:
        try:
            lab = Lab.load(path.parent.name)
        except ConfigError as exc:
            found.append({"lab": path.parent.name, "nodes": "-", "on": "-",
                          "bmc": f"damaged: {exc}", "network": "-", "redfish": "-"})
            continue
        pid = bmc_pid(lab)
        found.append({"lab": lab.name, "nodes": len(lab.nodes),
                      "on": sum(1 for n in lab.nodes if machine(lab, n).pid()),
                      "bmc": f"running, pid {pid}" if pid else "not running",
                      "network": lab.netns or f"multicast {lab.mcast}",
                      "redfish": redfish_url(lab)})
    return found


def _last_line(lab: Lab, node: str) -> str:
    """The last non-empty line of the node's serial log (read from its end)."""
    path = lab.dir / "nodes" / node / "serial.log"
    try:
        with path.open("rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 4096))
            tail = log.read().decode(errors="replace")
    except OSError:
        return ""
    plain = _ESCAPES.sub("", tail).replace("\r", "\n")
    lines = ["".join(c for c in line if c.isprintable()).strip() for line in plain.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1][:200] if lines else ""
