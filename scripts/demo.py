"""The main job on the local cloud: an environment of virtual bare metal, driven through its BMC.

Creates an environment on the devcloud (a provisioning and a storage network, two powered-off
nodes on the fake host and one real VM in zone `qemu`, boot strategy `rescue`), serves its BMC
(`quintupleo bmc serve --environment`: IPMI on 127.0.0.1:16230-16232, Redfish on
https://127.0.0.1:16230), writes Ironic's nodes.json, powers a node on and off with the real
ipmitool and resets another over Redfish while showing what Nova says. Then a real network
boot: a dnsmasq in a `devcloud netns` on the provisioning network, `bootdev pxe` + `power on`
of the real node, the DHCP request it sent in dnsmasq's log, then `bootdev disk` + `power cycle`
and its disk's marker in its console log. Last, deletes the environment and audits that nothing
is left.
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

from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.devcloud.layout import Layout, State, default_home
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
  vm: {{count: 1, flavor: qo.tiny, image: quintupleo-tiny, profile: control,
       availability_zone: qemu}}
bmc: {{address: 127.0.0.1, ipmi_port_base: {port}, redfish_port: {port}, boot_strategy: rescue}}
"""


def wait_for(check, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"no {what} within {timeout:.0f} s")
        time.sleep(0.3)
    return found


def real_network_boot(name: str, node: dict, index: int, password: str, conn, work: Path) -> None:
    """The real node network-boots (a rescue into the iPXE image) into the dnsmasq we run."""
    network = conn.network.find_network(f"qo-{name}-provisioning")
    namespace = qo("devcloud", "netns", network.id, "--name", f"qo-demo-{name}",
                   "--address", "192.168.24.1/24").splitlines()[-1]
    console.print(f"[green]✓[/] namespace {namespace} on {network.name}")
    log = work / "dnsmasq.log"
    dnsmasq = ["ip", "netns", "exec", namespace, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
               "--port=0", "--interface=eth0", "--bind-interfaces", "--no-ping", "--log-dhcp",
               "--dhcp-range=192.168.24.100,192.168.24.200", f"--dhcp-leasefile={work}/leases"]
    console.print(f"[dim]$ {' '.join(dnsmasq)} &[/]")
    server = subprocess.Popen(dnsmasq, stdout=log.open("w"), stderr=subprocess.STDOUT)
    mac = node["ports"][0]["address"]
    nova_id = next(s.id for s in conn.compute.servers(name=node["name"]))
    try:
        ipmitool(index, password, "chassis", "bootdev", "pxe")
        ipmitool(index, password, "power", "on")
        line = wait_for(lambda: next((ln for ln in log.read_text().splitlines()
                                      if "DHCPDISCOVER" in ln and mac in ln), None),
                        120, f"DHCPDISCOVER from {mac}")
        console.print(f"[green]✓[/] dnsmasq saw the node network-boot: {line}")
        console.print(f"  Nova: {settle(conn, nova_id, 'RESCUE', timeout=120).status} "
                      "(rescued into the iPXE image)")
        power_reads(index, password, "on")
        ipmitool(index, password, "chassis", "bootdev", "disk")
        ipmitool(index, password, "power", "cycle")
        console.print(f"  Nova: {settle(conn, nova_id, 'ACTIVE', timeout=120).status}")
        marker = wait_for(lambda: next((ln for ln in conn.compute.get_server_console_output(
            nova_id)["output"].splitlines() if IMAGE_MARKER in ln), None), 120, "disk boot")
        console.print(f"[green]✓[/] its console log (compute API): {marker.strip()}")
        power_reads(index, password, "on")
        ipmitool(index, password, "power", "off")
    finally:
        server.terminate()
        server.wait(10)
        qo("devcloud", "netns", "--delete", namespace)


def qo(*args: str) -> str:
    console.print(f"[dim]$ quintupleo {' '.join(args)}[/]")
    result = subprocess.run([sys.executable, "-m", "quintupleo", *args], capture_output=True,
                            text=True, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"quintupleo {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip()


def power_reads(node: int, password: str, wanted: str) -> None:
    """Until the BMC says the node is WANTED: its boot strategy's Nova tasks have ended."""
    def reads() -> bool:
        result = subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                                 str(PORT_BASE + node), "-U", "admin", "-E", "power", "status"],
                                capture_output=True, text=True, timeout=60,
                                env={"IPMI_PASSWORD": password, "PATH": "/usr/bin:/bin"})
        return result.stdout.strip().endswith(wanted)
    wait_for(reads, 120, f"power {wanted}")


def ipmitool(node: int, password: str, *command: str) -> None:
    console.print(f"[dim]$ ipmitool -I lanplus -H 127.0.0.1 -p {PORT_BASE + node} -U admin "
                  f"-P *** {' '.join(command)}[/]")
    deadline = time.monotonic() + 120
    while True:
        result = subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                                 str(PORT_BASE + node), "-U", "admin", "-E", *command],
                                capture_output=True, text=True, timeout=60,
                                env={"IPMI_PASSWORD": password, "PATH": "/usr/bin:/bin"})
        # A BMC answers "node busy" while the node's last action runs (Nova's tasks): ask again.
        if "Node busy" not in result.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
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
    real = State.load(Layout(default_home())).vms
    if not real:
        spec.write_text(spec.read_text().replace("availability_zone: qemu", ""))
        console.print("[yellow]the devcloud runs without real VMs: the third node is fake[/]")
    try:
        console.print(qo("image", "upload", "--cloud", "devcloud"))
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
        qo("env", "nodes", name, "--kind", "ironic", "-o", str(work / "nodes.json"))
        ipmi_nodes = json.loads((work / "nodes.json").read_text())["nodes"]
        redfish_nodes = json.loads(qo("env", "nodes", name, "--driver", "redfish"))["nodes"]
        console.print(f"[green]✓[/] Ironic enrollment file: {work / 'nodes.json'}")
        password = ipmi_nodes[0]["driver_info"]["ipmi_password"]
        servers = {s.name: s.id for s in conn.compute.servers(tags=f"quintupleo:{name}")}
        first, second = (servers[n["name"]] for n in ipmi_nodes[:2])
        ipmitool(0, password, "power", "status")
        ipmitool(0, password, "chassis", "bootdev", "pxe", "options=efiboot")
        ipmitool(0, password, "power", "on")
        console.print(f"  Nova: {settle(conn, first, 'RESCUE').status} (network boot: a rescue "
                      "into the UEFI iPXE image)")
        power_reads(0, password, "on")
        ipmitool(0, password, "power", "off")
        console.print(f"  Nova: {settle(conn, first, 'SHUTOFF').status}")
        redfish(redfish_nodes[1], "On")
        console.print(f"  Nova: {settle(conn, second, 'ACTIVE').status}")
        if real:
            real_network_boot(name, ipmi_nodes[2], 2, password, conn, work)
    finally:
        if bmc is not None:
            bmc.terminate()
            bmc.wait(15)
        console.print(qo("env", "delete", name))
        console.print(qo("env", "audit", name))


if __name__ == "__main__":
    main()
