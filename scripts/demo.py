"""The main job on the local cloud: two Nova servers become bare-metal nodes behind virtual BMCs.

Boots two servers on the devcloud, serves them with `quintupleo bmc serve` (IPMI on
127.0.0.1:16230-16231, Redfish on https://127.0.0.1:16230), writes Ironic's enrollment file,
drives them with the real ipmitool (power off, boot device PXE, power on) and over Redfish while
showing what Nova says, then removes everything.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import openstack
import requests
from rich.console import Console

from quintupleo.devcloud.smoke import scratch_servers, settle

PORT_BASE = 16230
console = Console()


def ipmitool(node: int, *command: str) -> str:
    args = ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(PORT_BASE + node),
            "-U", "admin", "-P", "password", *command]
    console.print(f"[dim]$ {' '.join(args)}[/]")
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    output = (result.stdout + result.stderr).strip()
    console.print(output)
    if result.returncode != 0:
        raise SystemExit(f"ipmitool failed: {output}")
    return output


def redfish(work: Path, system_id: str, reset_type: str) -> None:
    """The same BMC over Redfish (HTTPS, checked against the certificate it generated)."""
    url = f"https://127.0.0.1:{PORT_BASE}/redfish/v1/Systems/{system_id}"
    options = {"auth": ("admin", "password"), "verify": str(work / "state" / "redfish-cert.pem"),
               "timeout": 30}
    system = requests.get(url, **options).json()
    console.print(f"[dim]$ GET {url}[/]\n  PowerState {system['PowerState']}, boot override "
                  f"{system['Boot']['BootSourceOverrideTarget']} "
                  f"({system['Boot']['BootSourceOverrideEnabled']})")
    console.print(f"[dim]$ POST {url}/Actions/ComputerSystem.Reset ResetType={reset_type}[/]")
    requests.post(f"{url}/Actions/ComputerSystem.Reset", json={"ResetType": reset_type},
                  **options).raise_for_status()


def main() -> None:
    conn = openstack.connect(cloud="devcloud")
    name = f"qo-demo-{uuid.uuid4().hex[:6]}"
    work = Path(tempfile.mkdtemp(prefix="qo-demo-"))
    with scratch_servers(conn, [f"{name}-0", f"{name}-1"]) as servers:
        console.print(f"[green]✓[/] booted {', '.join(s.name for s in servers)}")
        log = work / "bmc.log"
        bmc = subprocess.Popen(
            [sys.executable, "-m", "quintupleo", "bmc", "serve", "--backend", "openstack",
             "--cloud", "devcloud", "--prefix", f"{name}-", "--ipmi-port-base", str(PORT_BASE),
             "--state-dir", str(work / "state"), "--inventory-out", str(work / "nodes.json"),
             "--redfish-port", str(PORT_BASE)],
            stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            while "ready:" not in log.read_text():
                if bmc.poll() is not None:
                    raise SystemExit(log.read_text())
                time.sleep(0.1)
            console.print(f"[green]✓[/] virtual BMCs up; Ironic enrollment file: "
                          f"{work}/nodes.json")
            ipmitool(0, "power", "status")
            ipmitool(0, "power", "off")
            console.print(f"  Nova: {settle(conn, servers[0].id, 'SHUTOFF').status}")
            ipmitool(0, "chassis", "bootdev", "pxe", "options=efiboot")
            ipmitool(0, "chassis", "bootparam", "get", "5")
            ipmitool(0, "power", "on")
            console.print(f"  Nova: {settle(conn, servers[0].id, 'ACTIVE').status}")
            ipmitool(1, "power", "status")
            redfish(work, servers[1].id, "ForceOff")
            console.print(f"  Nova: {settle(conn, servers[1].id, 'SHUTOFF').status}")
        finally:
            bmc.terminate()
            bmc.wait(15)
    console.print("[green]✓[/] demo done, servers and network removed")

if __name__ == "__main__":
    main()
