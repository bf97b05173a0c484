"""`lab up | down`: nodes powered off, their network, their BMC; and all of it gone.

`up` is safe to run again (it completes what is missing: disks, network, BMC); `down` finds
what the lab started by PID file and by name, so it also cleans up after a kill -9.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from quintupleo.backends.qemu.machine import find_processes
from quintupleo.errors import ConfigError
from quintupleo.inventory import write_private
from quintupleo.lab import network
from quintupleo.lab.accel import choose as choose_accel
from quintupleo.lab.layout import Lab, Role, check_name, labs_dir, new_nodes
from quintupleo.lab.machines import machine
from quintupleo.reaping import wait_gone

BMC_READY_TIMEOUT = 60.0


def up(name: str, roles: int | list[Role], cidr: str = "192.168.24.0/24",
       ipmi_port_base: int = 6230, redfish_port: int = 8000,
       password: str | None = None, accel: str = "tcg", rootless: bool | None = None,
       tftp_root: str | None = None, bootfile: str | None = None,
       inventory_driver: str = "ipmi") -> Lab:
    check_name(name)
    roles = [Role(None, roles)] if isinstance(roles, int) else roles
    if not 1 <= sum(role.count for role in roles) <= 200:
        raise ConfigError("a lab has between 1 and 200 nodes")
    if shutil.which("qemu-system-x86_64") is None:
        raise ConfigError("QEMU is not installed: run scripts/setup.sh (Debian qemu-system-x86)")
    rootless = not network.is_root() if rootless is None else rootless
    if not rootless and not network.is_root():
        raise ConfigError("a network namespace needs root; without root the lab is rootless")
    if inventory_driver not in ("ipmi", "redfish"):
        raise ConfigError(f"--inventory-driver {inventory_driver}: ipmi or redfish")
    if tftp_root is not None and not Path(tftp_root).is_dir():
        raise ConfigError(f"--tftp-root {tftp_root}: no such directory")
    try:
        version = ipaddress.ip_network(cidr).version
    except ValueError as exc:
        raise ConfigError(f"--cidr {cidr}: not a network ({exc})") from None
    if version == 6 and tftp_root is not None:
        raise ConfigError(f"--cidr {cidr}: the lab's own DHCP/TFTP server (QEMU's user-mode "
                          "network) is IPv4 only; for IPv6 run your own DHCPv6 server on the "
                          "lab's bridge")
    try:
        lab = Lab.load(name)
    except ConfigError:
        port = 10000 + int(hashlib.sha256(name.encode()).hexdigest(), 16) % 50000
        lab = Lab(name, new_nodes(name, roles), cidr,
                  netns=None if rootless else network.netns_name(name),
                  mcast=f"230.0.0.1:{port}" if rootless else None,
                  ipmi_port_base=ipmi_port_base, redfish_port=redfish_port,
                  accel=choose_accel(accel),
                  tftp_root=str(Path(tftp_root).resolve()) if tftp_root else None,
                  bootfile=bootfile, inventory_driver=inventory_driver)
    for node in lab.nodes:
        machine(lab, node).create_disk()
    if lab.netns and not network.exists(lab.netns):
        network.create(lab)
    lab.save()
    if lab.tftp_root and not find_processes(f"{lab.process_tag}network"):
        result = subprocess.run(network.server_argv(lab), capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise ConfigError(f"the lab's DHCP/TFTP server did not start: "
                              f"{result.stderr.strip()[-500:]}")
    if bmc_pid(lab) is None:
        _start_bmc(lab, bmc_password(lab, password))
    return lab


def bmc_password(lab: Lab, given: str | None = None) -> str:
    """The lab's BMC password: the one given (kept for the next `up`), else the one kept, else
    a new random one (RAKP lets anyone who asks test guesses offline: a well-known password
    is no password). Kept in the lab's directory, readable by its owner only."""
    path = lab.dir / "bmc-password"
    if given is None and path.exists():
        return path.read_text().strip()
    password = given or secrets.token_urlsafe(12)     # 16 characters: IPMI allows 20 bytes
    write_private(path, password + "\n")
    return password


def _start_bmc(lab: Lab, password: str) -> None:
    log = lab.dir / "bmc.log"
    command = [sys.executable, "-m", "quintupleo", "bmc", "serve", "--backend", "qemu",
               "--lab", lab.name, "--ipmi-port-base", str(lab.ipmi_port_base),
               "--redfish-port", str(lab.redfish_port), "--state-dir", str(lab.dir / "bmc"),
               "--inventory-output", str(lab.dir / "nodes.json"), "--inventory-driver",
               lab.inventory_driver, "--refresh-interval", "1"]
    with log.open("ab") as out:
        offset = out.tell()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True,
                                   env={**os.environ, "QUINTUPLEO_BMC_PASSWORD": password})
    deadline = time.monotonic() + BMC_READY_TIMEOUT
    while "ready:" not in log.read_text(errors="replace")[offset:]:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            tail = log.read_text(errors="replace")[offset:][-1500:]
            raise ConfigError(f"the lab's BMC did not start (log: {log}):\n{tail}")
        time.sleep(0.05)
    (lab.dir / "bmc.pid").write_text(f"{process.pid}\n")


def _bmc_processes(name: str) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if "bmc" in cmdline and "serve" in cmdline and "--lab" in cmdline \
                and cmdline[cmdline.index("--lab") + 1:][:1] == [name]:
            found.append(process)
    return found


def bmc_pid(lab: Lab) -> int | None:
    processes = _bmc_processes(lab.name)
    return processes[0].pid if processes else None


def down(name: str) -> list[str]:
    """Stop and remove everything of the lab; what was removed, in words."""
    check_name(name)
    removed = []
    processes = _bmc_processes(name)
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGTERM)
    for process in wait_gone(processes, 10):
        with contextlib.suppress(psutil.Error):
            process.kill()
    if processes:
        removed.append(f"BMC (pid {', '.join(str(p.pid) for p in processes)})")
    nodes = find_processes(f"qo-lab-{name}-")
    for process in nodes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    wait_gone(nodes, 10)
    if nodes:
        removed.append(f"{len(nodes)} QEMU process(es)")
    if network.is_root() and network.delete(network.netns_name(name)):
        removed.append(f"network namespace {network.netns_name(name)} (bridge and taps)")
    directory = labs_dir() / name
    if directory.exists():
        shutil.rmtree(directory)
        removed.append(f"{directory}")
    return removed
