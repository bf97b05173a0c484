"""The nodes Ironic deploys in the Ironic tier and in bench/ironic.py, and what they need
around them: an environment of real Nova VMs (zone `qemu`) with its BMC and the undercloud's place
(a `devcloud netns` running dnsmasq and Ironic's HTTP), a lab of QEMU nodes, and the consoles
read through the BMC."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import aiohttp
import requests

from harness.bmc_process import BmcProcess, SolClient
from harness.ironic import Ironic
from harness.ramdisk import initramfs
from quintupleo.devcloud.dataplane import namespaces
from quintupleo.devcloud.layout import Layout, default_home

KERNEL = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quintupleo" / \
    "linux" / "vmlinuz"
NET = "192.168.24"
HTTP = f"http://{NET}.1:8089"


def dnsmasq_argv(interface: str, net: str, http: str) -> list[str]:
    """The undercloud's DHCP: iPXE clients (the NICs' ROMs, our iPXE images) get Ironic's
    boot.ipxe over HTTP; efi64 only marks the UEFI client in the log."""
    return ["dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
            f"--interface={interface}", "--bind-interfaces", "--pid-file=", "--no-ping",
            f"--dhcp-range={net}.100,{net}.200,1h", "--dhcp-userclass=set:ipxe,iPXE",
            "--dhcp-option=tag:ipxe,encap:175,176,1",
            "--dhcp-match=set:efi64,option:client-arch,7",
            f"--dhcp-boot=tag:ipxe,{http}/boot.ipxe", "--log-dhcp"]


def ramdisk_instance(ir: Ironic, name: str, marker: str) -> None:
    """What Ironic's ramdisk deploy boots: Debian's kernel and an initramfs whose /init prints
    `marker` on the serial console (file:// sources in Ironic's allowed path)."""
    assert KERNEL.exists(), f"no kernel at {KERNEL}: run scripts/setup.sh"
    shutil.copyfile(KERNEL, ir.sources / "vmlinuz")
    (ir.sources / "initramfs").write_bytes(initramfs(marker))
    ir.call("PATCH", f"nodes/{name}", [
        {"op": "add", "path": "/instance_info",
         "value": {"kernel": f"file://{ir.sources / 'vmlinuz'}",
                   "ramdisk": f"file://{ir.sources / 'initramfs'}",
                   "ramdisk_kernel_arguments": "console=ttyS0 quiet"}}])


class UndercloudLink:
    """A veth from the root namespace onto the nodes' bridge (in a lab's namespace, or the
    devcloud's own), with an address on the nodes' network: the undercloud's NIC. Ironic's API
    listens there for the real agent, and Ironic reaches the agent's API through it."""

    def __init__(self, bridge: str, address: str, netns: str | None = None) -> None:
        tag = uuid.uuid4().hex[:8]
        self.name, peer = f"qouc{tag}", f"qoup{tag}"
        self.address = address.split("/")[0]
        inside = ["-n", netns] if netns else []
        _ip("link", "add", self.name, "type", "veth", "peer", "name", peer,
            *(["netns", netns] if netns else []))
        for device, where in ((self.name, []), (peer, inside)):   # IPv4 only, no RA answers
            subprocess.run(["ip", *where, "link", "set", device, "up"], check=True)
        subprocess.run(["sysctl", "-qw", f"net.ipv6.conf.{self.name}.disable_ipv6=1"],
                       check=True)
        _ip(*inside, "link", "set", peer, "master", bridge)
        _ip("addr", "add", address, "dev", self.name)

    def close(self) -> None:
        subprocess.run(["ip", "link", "delete", self.name], capture_output=True, check=False)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"ip {' '.join(args)}: {result.stderr}"


class RedfishConsole:
    """The Redfish SerialConsole WebSocket, read in a thread as it runs."""

    def __init__(self, url: str, cert: str, auth: tuple[str, str]) -> None:
        self.output = b""
        self._url, self._cert, self._auth = url, cert, auth
        self._opened = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)
        self._thread.start()
        assert self._opened.wait(30), "the Redfish console did not open"

    async def _watch(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        context = ssl.create_default_context(cafile=self._cert)
        basic = {"Authorization": aiohttp.encode_basic_auth(*self._auth)}
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(self._url, ssl=context, headers=basic) as socket:
            self._opened.set()
            reading = asyncio.ensure_future(self._read(socket))
            await self._stop.wait()
            reading.cancel()

    async def _read(self, socket) -> None:
        async for message in socket:
            self.output += message.data if isinstance(message.data, bytes) else \
                message.data.encode()

    def read_until(self, text: str, timeout: float, count: int = 1) -> bool:
        deadline = time.monotonic() + timeout
        while self.output.count(text.encode()) < count and time.monotonic() < deadline:
            time.sleep(0.2)
        return self.output.count(text.encode()) >= count

    def close(self) -> int:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        return 0


class CloudNode:
    """An environment of one node in zone qemu, its BMC, and the netns where its DHCP/HTTP run."""

    def __init__(self, work: Path, image: str, strategy: str, port: int,
                 flavor: str = "qo.tiny") -> None:
        self.name = f"nv{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, XDG_STATE_HOME=str(work / "state"))
        self.work, self.port = work, port
        work.mkdir(parents=True, exist_ok=True)
        spec = work / "env.yaml"
        spec.write_text(
            f"name: {self.name}\ncloud: devcloud\n"
            f"networks: {{provisioning: {{cidr: {NET}.0/24}}}}\n"
            f"roles: {{node: {{count: 1, flavor: {flavor}, image: {image}, "
            "availability_zone: qemu}}\n"
            f"bmc: {{boot_strategy: {strategy}, ipmi_port_base: {port}, "
            f"redfish_port: {port}}}\n")
        self.created = False
        self.netns: str | None = None
        self.services: list[subprocess.Popen] = []
        self.qo("env", "create", str(spec))
        self.created = True
        self.inventory = {d: work / f"{d}.json" for d in ("ipmi", "redfish")}
        for driver, path in self.inventory.items():
            self.qo("env", "nodes", self.name, "--kind", "ironic", "--driver", driver,
                    "--output", str(path))
        node = json.loads(self.inventory["redfish"].read_text())["nodes"][0]
        self.node_name, self.server_id = node["name"], node["extra"]["quintupleo_node_id"]
        self.mac = node["ports"][0]["address"]
        self.redfish = node["driver_info"]
        self.ipmi_password = json.loads(self.inventory["ipmi"].read_text())["nodes"][0][
            "driver_info"]["ipmi_password"]
        state = work / "state" / "quintupleo" / "environments" / self.name / "bmc"
        self.bmc = BmcProcess(["--environment", self.name], state, port, self.env).start()

    def qo(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "quintupleo", *args], env=self.env,
                                capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, f"{' '.join(args[:2])}: {result.stdout}{result.stderr}"
        return result.stdout

    def undercloud(self, http_root: Path) -> None:
        """`devcloud netns` on the provisioning network; dnsmasq and Ironic's HTTP in it."""
        self._join()
        self.dhcp_log, self.http_log = self.work / "dnsmasq.log", self.work / "http.log"
        self.services.append(self._in_netns(*dnsmasq_argv("eth0", NET, HTTP),
                                            log=self.dhcp_log))
        self.services.append(self._in_netns(
            sys.executable, "-m", "http.server", "8089", "--bind", f"{NET}.1", "--directory",
            str(http_root), log=self.http_log))

    def link(self, address: str) -> UndercloudLink:
        """The undercloud's link onto the provisioning network's bridge (the one `devcloud
        netns` joined)."""
        self._join()
        [bridge] = [n.bridge for n in namespaces(Layout(default_home())) if n.name == self.netns]
        return UndercloudLink(bridge, address)

    def _join(self) -> None:
        if self.netns is None:
            out = self.qo("devcloud", "netns", f"qo-{self.name}-provisioning", "--address",
                          f"{NET}.1/24")
            self.netns = out.strip().splitlines()[-1]

    def _in_netns(self, *argv: str, log: Path) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv],
                                stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def console(self, driver: str):
        """The BMC's console of the node, opened now (the node is off)."""
        if driver == "ipmi":
            sol = SolClient(self.port, password=self.ipmi_password)
            assert sol.read_until("SOL Session operational", 20), sol.output
            return sol
        system = f"{self.bmc.redfish_url}/redfish/v1/Systems/{self.server_id}"
        auth = ("admin", self.redfish["redfish_password"])
        cert = self.redfish["redfish_verify_ca"]
        uri = requests.get(system, auth=auth, verify=cert, timeout=10).json()[
            "SerialConsole"]["WebSocket"]["ConsoleURI"]
        return RedfishConsole(f"wss://127.0.0.1:{self.port}{uri}", cert, auth)

    def ipmi(self) -> _EnvironmentBmc:
        """ipmitool against the environment's BMC with its own password (for IpmiView)."""
        return _EnvironmentBmc(self)

    def close(self) -> None:
        for service in self.services:
            service.terminate()
            service.wait(10)
        if self.netns:
            self.qo("devcloud", "netns", "--delete", self.netns)
        self.bmc.stop()
        if self.created:
            self.qo("env", "delete", self.name)


class _EnvironmentBmc:
    def __init__(self, node: CloudNode) -> None:
        self.node = node

    def ipmitool(self, *command: str, node: int = 0):
        return self.node.bmc.ipmitool(*command, node=node, password=self.node.ipmi_password)


class Lab:
    """A lab of one QEMU node (`qo lab up`), its BMC, and the undercloud's services on its
    network."""

    NET = "10.253.0"
    HTTP = f"http://{NET}.1:8089"

    def __init__(self, home: Path) -> None:
        self.name = f"i{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, QUINTUPLEO_HOME=str(home))
        self.home = home
        self.dir = home / "labs" / self.name
        self.netns = f"qo-lab-{self.name}"
        self.serial = self.dir / "nodes" / "node-0" / "serial.log"
        self.services: list[subprocess.Popen] = []
        self.up = False

    @property
    def password(self) -> str:
        """The lab's BMC password (random, made by `lab up`)."""
        return (self.dir / "bmc-password").read_text().strip()

    def qo(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", "quintupleo", "lab", *args, "--name",
                                 self.name], env=self.env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, f"lab {args[0]}: {result.stdout}{result.stderr}"
        self.up = self.up or args[0] == "up"
        return result.stdout

    def undercloud(self, http_root: Path, logs: Path) -> None:
        """dnsmasq (with IPv6 router advertisements, as a dual-stack network has) and Ironic's
        HTTP in the lab's namespace."""
        subprocess.run(["ip", "-n", self.netns, "addr", "add", "fd00:53::1/64", "dev", "br0"],
                       check=True)
        self.dhcp_log, self.http_log = logs / "dnsmasq.log", logs / "http.log"
        self.services.append(self._in_lab(
            *dnsmasq_argv("br0", self.NET, self.HTTP), "--dhcp-range=fd00:53::,ra-only",
            "--enable-ra", log=self.dhcp_log))
        self.services.append(self._in_lab(
            sys.executable, "-m", "http.server", "8089", "--bind", f"{self.NET}.1",
            "--directory", str(http_root), log=self.http_log))

    def _in_lab(self, *argv: str, log: Path) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.netns, *argv],
                                stdout=log.open("ab"), stderr=subprocess.STDOUT)

    def console(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_console(self, marker: str, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.console().count(marker) < count:
            assert time.monotonic() < deadline, \
                f"no {marker} on the console:\n{self.console()[-2500:]}"
            time.sleep(0.3)

    def close(self) -> None:
        for service in self.services:
            service.terminate()
            service.wait(10)
        if self.up:
            self.qo("down")
        shutil.rmtree(self.home, ignore_errors=True)
