"""Part of bench/ironic.py: Ironic's `direct` deploy with the real Ironic Python Agent, phase by
phase, on one real Nova VM (the devcloud's real host, strategy rescue) beside one lab node
(QEMU without OpenStack), with the parts the acceptance tier uses (harness/agent.py).

Each node, one after the other (one VM at a time): inspect (the agent's boot, then its
inspection), provide (cleaning), deploy (the image write, then the reboot to the image until its
marker), undeploy (the agent's boot again, then cleaning). Both are SeaBIOS nodes over IPMI.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))   # the repository's harness/
from harness import agent
from harness.ironic import Ironic, install

VM_PORT, LAB_PORT, IRONIC_PORT = 18800, 18850, 18620


def agent_rows() -> list[tuple[str, ...]]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        ramdisk = agent.build(tmp / "agent")
        venv = install()
        started: list[Ironic] = []

        def start(work: Path):
            def _start(**settings) -> Ironic:
                server = Ironic(venv, work / "ironic", IRONIC_PORT + len(started), **settings)
                started.append(server)
                return server.start()
            return _start

        try:
            with agent.cloud_node(tmp / "nova", start(tmp / "nova"), ramdisk, VM_PORT) as \
                    (ir, name, _node, sol):
                nova = agent.deploy(ir, name, sol.text).seconds
                ir.power(name, "power off", timeout=180)
            started[-1].stop()
            with agent.lab_node(tmp / "lab", start(tmp / "lab"), ramdisk, "bios", "ipmi",
                                LAB_PORT) as (ir, name, _lab):
                lab = agent.deploy(ir, name, _lab.console).seconds
        finally:
            for server in started:
                server.stop()
    rows = [("1 node, BIOS, IPMI", phase, f"{nova[phase]:.1f} s", f"{lab[phase]:.1f} s",
             f"{nova[phase] / lab[phase]:.2f}x") for phase in nova]
    total_nova, total_lab = sum(nova.values()), sum(lab.values())
    rows.append(("", "all phases", f"{total_nova:.1f} s", f"{total_lab:.1f} s",
                 f"{total_nova / total_lab:.2f}x"))
    return rows
