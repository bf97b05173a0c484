"""Benchmark: unmodified Ironic driving Nova servers as bare metal, through our BMC and through
openstack-virtual-baremetal's `openstackbmc` (the IPMI BMC people use instead), in one run; and
(as root, with the devcloud's real host) Ironic deploying a real Nova VM beside a lab node.

    python bench/ironic.py [--rounds 3] [--no-deploy]

One Ironic (the acceptance tier's harness: standalone, `min_command_interval = 1`) enrolls one
devcloud server behind each BMC and times, until Ironic is done: manage (Ironic checks the
credentials), power on, power off, reboot. The servers' states are checked in Nova after each
action. Then the deploy: Ironic's `ipxe` boot and `ramdisk` deploy of one node, power on until
the ramdisk's marker is on the node's serial console, and the disk-boot reboot until the disk's
marker, on a real VM of the devcloud (zone qemu, strategy rescue, the undercloud in a `devcloud
netns`) beside the same on a lab node (QEMU without OpenStack): the OpenStack path's overhead as
a ratio; and Ironic's power off, on and reboot of each. Last, the real deploy (`direct`, with
Ironic Python Agent) on the same two, phase by phase (bench/agent_deploy.py). One VM at a time.
Ratios matter, not absolute times: Ironic, the BMCs, the cloud and TCG share two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import print_table, serve, stop, venv_with, wait_ready

sys.path.insert(0, str(Path(__file__).parents[1]))   # the repository's harness/
from harness.ironic import Ironic, install

OVB = "openstack-virtual-baremetal==1.0.2.dev28"
OURS_PORT, OVB_PORT = 18500, 18550


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-deploy", action="store_true",
                        help="leave out the real-VM deploy (it needs root and the real host)")
    args = parser.parse_args()

    import openstack

    from quintupleo.devcloud.layout import default_home
    from quintupleo.devcloud.manager import Devcloud
    from quintupleo.devcloud.smoke import scratch_servers

    Devcloud(default_home()).up()
    conn = openstack.connect(cloud="devcloud")
    ovb_python = venv_with("ovb-venv", OVB)
    run_id = os.urandom(3).hex()
    with tempfile.TemporaryDirectory() as tmp_name, \
            scratch_servers(conn, [f"qoi-{run_id}-ours", f"qoi-{run_id}-ovb"]) as servers:
        tmp = Path(tmp_name)
        ours, _ = serve(tmp, "ours", "--backend", "openstack", "--cloud", "devcloud",
                        "--prefix", f"qoi-{run_id}-ours", "--ipmi-port-base", str(OURS_PORT),
                        "--redfish-port", str(OURS_PORT), "--inventory-output",
                        str(tmp / "nodes.json"))
        log = tmp / "ovb.log"
        ovb = subprocess.Popen(
            [str(ovb_python), "-m", "openstack_virtual_baremetal.openstackbmc", "--os-cloud",
             "devcloud", "--instance", servers[1].id, "--address", "127.0.0.1", "--port",
             str(OVB_PORT)], stdout=log.open("w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONWARNINGS="ignore"))
        ironic = None
        try:
            wait_ready(ovb, log, "Managing instance", 120)
            document = json.loads((tmp / "nodes.json").read_text())
            document["nodes"].append({
                "name": "ovb", "driver": "ipmi", "ports": [],
                "driver_info": {"ipmi_address": "127.0.0.1", "ipmi_port": OVB_PORT,
                                "ipmi_username": "admin", "ipmi_password": "password"}})
            (tmp / "nodes.json").write_text(json.dumps(document))
            ironic = Ironic(install(), tmp / "ironic", 18600).start()
            ironic.enroll(tmp / "nodes.json")
            nodes = {"ours": document["nodes"][0]["name"], "ovb": "ovb"}
            rows = measure(ironic, conn, nodes, {"ours": servers[0].id, "ovb": servers[1].id},
                           args.rounds)
        finally:
            if ironic is not None:
                ironic.stop()
            stop(ours, ovb)
    print_table(f"Ironic {ironic_version()} driving Nova servers over IPMI "
                f"(median of {args.rounds})", "openstackbmc", rows)
    if args.no_deploy or os.geteuid() != 0:
        return
    from deploy import deploy_rows  # bench/deploy.py
    print_table(f"Ironic {ironic_version()} ramdisk deploy over iPXE through our BMC, one node "
                f"(power actions: median of {args.rounds})", "lab node (QEMU, no OpenStack)",
                deploy_rows(args.rounds),
                ("setup", "figure", "real Nova VM", "lab node", "Nova / lab"))
    from agent_deploy import agent_rows  # bench/agent_deploy.py
    print_table(f"Ironic {ironic_version()} direct deploy with Ironic Python Agent through our "
                "BMC, by phase", "lab node (QEMU, no OpenStack)", agent_rows(),
                ("setup", "phase", "real Nova VM", "lab node", "Nova / lab"))


def ironic_version() -> str:
    result = subprocess.run([str(install() / "bin" / "python"), "-c",
                             "import importlib.metadata as m; print(m.version('ironic'))"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip()


def measure(ironic: Ironic, conn, nodes: dict[str, str], servers: dict[str, str],
            rounds: int) -> list[tuple[str, ...]]:
    from quintupleo.devcloud.smoke import settle

    times: dict[tuple[str, str], list[float]] = {}

    def timed(what: str, who: str, action) -> None:
        started = time.monotonic()
        action()
        times.setdefault((what, who), []).append(time.monotonic() - started)

    for who, name in nodes.items():
        timed("manage (Ironic checks the credentials)", who,
              lambda name=name: ironic.provision(name, "manage", "manageable"))
    for _ in range(rounds):
        for who, name in nodes.items():
            for target, what, status in [("power off", "power off", "SHUTOFF"),
                                         ("power on", "power on", "ACTIVE"),
                                         ("rebooting", "reboot (off, then on)", "ACTIVE")]:
                timed(what, who, lambda name=name, target=target: ironic.power(name, target))
                settle(conn, servers[who], status)
    rows = []
    for what in dict.fromkeys(w for w, _ in times):
        mine = statistics.median(times[(what, "ours")])
        theirs = statistics.median(times[(what, "ovb")])
        rows.append(("1 node each", what, f"{mine:.2f} s", f"{theirs:.2f} s",
                     f"{theirs / mine:.2f}x"))
    return rows


if __name__ == "__main__":
    main()
