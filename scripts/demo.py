"""The main job on the local cloud: an environment of virtual bare metal, driven through its BMC.

Creates an environment on the devcloud (a provisioning and a storage network, two powered-off
nodes), serves its BMC (`quintupleo bmc serve --environment`: IPMI on 127.0.0.1:16230-16231,
Redfish on https://127.0.0.1:16230), writes Ironic's nodes.json, powers a node on and off with
the real ipmitool and resets the other over Redfish while showing what Nova says, then deletes
the environment and audits that nothing is left.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import openstack
import requests
from rich.console import Console

from quintupleo.devcloud.smoke import settle

PORT_BASE = 16230
console = Console()
SPEC = """\
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  extra:
    storage: {{cidr: 172.16.1.0/24}}
roles:
  baremetal: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny, profile: compute,
              networks: [provisioning, storage]}}
bmc: {{address: 127.0.0.1, ipmi_port_base: {port}, redfish_port: {port}}}
"""


def qo(*args: str) -> str:
    console.print(f"[dim]$ quintupleo {' '.join(args)}[/]")
    result = subprocess.run([sys.executable, "-m", "quintupleo", *args], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"quintupleo {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def ipmitool(node: int, password: str, *command: str) -> None:
    console.print(f"[dim]$ ipmitool -I lanplus -H 127.0.0.1 -p {PORT_BASE + node} -U admin "
                  f"-P *** {' '.join(command)}[/]")
    result = subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                             str(PORT_BASE + node), "-U", "admin", "-E", *command],
                            capture_output=True, text=True, timeout=60,
                            env={"IPMI_PASSWORD": password, "PATH": "/usr/bin:/bin"})
    console.print((result.stdout + result.stderr).strip())
    if result.returncode != 0:
        raise SystemExit("ipmitool failed")


def redfish(node: dict, reset_type: str) -> None:
    info = node["driver_info"]
    url = info["redfish_address"] + info["redfish_system_id"]
    options = {"auth": (info["redfish_username"], info["redfish_password"]),
               "verify": info["redfish_verify_ca"], "timeout": 30}
    system = requests.get(url, **options).json()
    console.print(f"[dim]$ GET {url}[/]\n  PowerState {system['PowerState']}, boot override "
                  f"{system['Boot']['BootSourceOverrideTarget']}")
    console.print(f"[dim]$ POST …/Actions/ComputerSystem.Reset ResetType={reset_type}[/]")
    requests.post(f"{url}/Actions/ComputerSystem.Reset", json={"ResetType": reset_type},
                  **options).raise_for_status()


def main() -> None:
    conn = openstack.connect(cloud="devcloud")
    name = f"demo-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="qo-demo-"))
    spec = work / "lab.yaml"
    spec.write_text(SPEC.format(name=name, port=PORT_BASE))
    console.print(f"[bold]environment spec[/] {spec}:")
    console.print(spec.read_text(), markup=False, highlight=False)
    bmc = None
    try:
        console.print(qo("env", "create", str(spec)))
        log = work / "bmc.log"
        bmc = subprocess.Popen([sys.executable, "-m", "quintupleo", "bmc", "serve",
                                "--environment", name], stdout=log.open("w"),
                               stderr=subprocess.STDOUT)
        while "ready:" not in log.read_text():
            if bmc.poll() is not None:
                raise SystemExit(log.read_text())
            time.sleep(0.1)
        ready = log.read_text().strip().splitlines()[-1].split("ready: ", 1)[1]
        console.print(f"[green]✓[/] BMC ready: {ready}")
        qo("env", "nodes", name, "--format", "ironic", "-o", str(work / "nodes.json"))
        ipmi_nodes = json.loads((work / "nodes.json").read_text())["nodes"]
        redfish_nodes = json.loads(qo("env", "nodes", name, "--driver", "redfish"))["nodes"]
        console.print(f"[green]✓[/] Ironic enrollment file: {work / 'nodes.json'}")
        password = ipmi_nodes[0]["driver_info"]["ipmi_password"]
        servers = {s.name: s.id for s in conn.compute.servers(tags=f"quintupleo:{name}")}
        first, second = (servers[n["name"]] for n in ipmi_nodes)
        ipmitool(0, password, "power", "status")
        ipmitool(0, password, "chassis", "bootdev", "pxe", "options=efiboot")
        ipmitool(0, password, "power", "on")
        console.print(f"  Nova: {settle(conn, first, 'ACTIVE').status}")
        ipmitool(0, password, "power", "off")
        console.print(f"  Nova: {settle(conn, first, 'SHUTOFF').status}")
        redfish(redfish_nodes[1], "On")
        console.print(f"  Nova: {settle(conn, second, 'ACTIVE').status}")
    finally:
        if bmc is not None:
            bmc.terminate()
            bmc.wait(15)
        console.print(qo("env", "delete", name))
        console.print(qo("env", "audit", name))


if __name__ == "__main__":
    main()
