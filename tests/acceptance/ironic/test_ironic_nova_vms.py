"""The mission end to end through OpenStack: unmodified Ironic deploys an environment's node — a
real Nova VM on the devcloud's real host (zone `qemu`, QEMU TCG) — through the environment's BMC.

The provisioning network's services run in a `devcloud netns` on the environment's provisioning
network, where an undercloud would be: dnsmasq (DHCP; iPXE clients get Ironic's boot.ipxe) and
an HTTP server for Ironic's http_root. Ironic's `ipxe` boot and `ramdisk` deploy network-boot
the VM (the BMC's boot strategy turns "boot from network" into a rescue or rebuild with the iPXE
image) into Debian's kernel and the test's initramfs, whose /init prints a marker on the serial
console; then Ironic sets disk boot and reboots, and the disk's own marker shows. The console is
read through the BMC (IPMI SOL or the Redfish WebSocket, opened while the node is off) and
through the compute API's console log. One VM at a time (two cores, TCG)."""

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
import pytest
import requests
from bmc_process import BmcProcess, SolClient
from ironic_steps import IpmiView, RedfishView, enroll, set_boot_mode
from ramdisk import initramfs

from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.images.glance import publish
from quintupleo.images.marker import uefi_marker_disk

pytestmark = [pytest.mark.devcloud,
              pytest.mark.skipif(os.geteuid() != 0, reason="the real host and netns need root")]

KERNEL = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "quintupleo" / \
    "linux" / "vmlinuz"
RAMDISK_MARKER = "QO-NOVA-RAMDISK-5b1d"
UEFI_DISK_MARKER = "QO-NOVA-UEFI-DISK-93ae"
IPXE_UEFI_MARKER = "QuintupleO network boot (UEFI)"
PORT = 15720
NET = "192.168.24"
HTTP = f"http://{NET}.1:8089"


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

    def __init__(self, work: Path, image: str, strategy: str, port: int) -> None:
        self.name = f"nv{uuid.uuid4().hex[:6]}"
        self.env = dict(os.environ, XDG_STATE_HOME=str(work / "state"))
        self.work, self.port = work, port
        spec = work / "env.yaml"
        spec.write_text(
            f"name: {self.name}\ncloud: devcloud\n"
            f"networks: {{provisioning: {{cidr: {NET}.0/24}}}}\n"
            f"roles: {{node: {{count: 1, flavor: qo.tiny, image: {image}, "
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
            self.qo("env", "nodes", self.name, "--format", "ironic", "--driver", driver,
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
        out = self.qo("devcloud", "netns", f"qo-{self.name}-provisioning", "--address",
                      f"{NET}.1/24")
        self.netns = out.strip().splitlines()[-1]
        self.dhcp_log, self.http_log = self.work / "dnsmasq.log", self.work / "http.log"
        self.services.append(self._in_netns(
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
            "--bind-interfaces", "--pid-file=", "--no-ping",
            f"--dhcp-range={NET}.100,{NET}.200,1h", "--dhcp-userclass=set:ipxe,iPXE",
            "--dhcp-option=tag:ipxe,encap:175,176,1",
            "--dhcp-match=set:efi64,option:client-arch,7",
            f"--dhcp-boot=tag:ipxe,{HTTP}/boot.ipxe", "--log-dhcp", log=self.dhcp_log))
        self.services.append(self._in_netns(
            sys.executable, "-m", "http.server", "8089", "--bind", f"{NET}.1", "--directory",
            str(http_root), log=self.http_log))

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

    def close(self) -> None:
        for service in self.services:
            service.terminate()
            service.wait(10)
        if self.netns:
            self.qo("devcloud", "netns", "--delete", self.netns)
        self.bmc.stop()
        if self.created:
            self.qo("env", "delete", self.name)


@pytest.fixture
def uefi_disk(conn, tmp_path):
    """A UEFI disk image (hw_firmware_type=uefi) whose GRUB prints UEFI_DISK_MARKER."""
    path = uefi_marker_disk(UEFI_DISK_MARKER, tmp_path / "uefi-disk.img")
    image = publish(conn, path, f"qo-test-uefi-{uuid.uuid4().hex[:6]}", "raw",
                    {"hw_firmware_type": "uefi"})
    yield image.name
    conn.image.delete_image(image, ignore_missing=True)


def ipxe_image_id(conn, firmware: str) -> str:
    return max((i for i in conn.image.images(name=f"quintupleo-ipxe-{firmware}")
                if i.status == "active"), key=lambda i: i.created_at).id


def console_log(conn, server_id: str) -> str:
    return conn.compute.get_server_console_output(server_id)["output"] or ""


def wait_console_log(conn, server_id: str, marker: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while console_log(conn, server_id).count(marker) < count:
        assert time.monotonic() < deadline, \
            f"{marker} not in the console log:\n{console_log(conn, server_id)[-2000:]}"
        time.sleep(1)


@pytest.mark.parametrize(("firmware", "driver", "strategy"),
                         [("bios", "ipmi", "rescue"), ("uefi", "redfish", "rescue"),
                          ("uefi", "ipmi", "rebuild")])
def test_ironic_deploys_a_nova_vm_through_the_bmc(ironic, report, conn, real_host, request,
                                                  tmp_path, firmware, driver,
                                                  strategy):
    assert KERNEL.exists(), f"no kernel at {KERNEL}: run scripts/setup.sh"
    image = request.getfixturevalue("uefi_disk") if firmware == "uefi" else "quintupleo-tiny"
    # rescue keeps the node's disk; a rebuild wrote the iPXE image over it, which network-boots
    # again from the disk (GRUB's line first), as OVB's nodes do
    disk_marker = IPXE_UEFI_MARKER if strategy == "rebuild" else \
        UEFI_DISK_MARKER if firmware == "uefi" else IMAGE_MARKER
    section = (f"devcloud real VM (Nova libvirt, {'OVMF' if firmware == 'uefi' else 'SeaBIOS'},"
               f" {driver}, strategy {strategy}) · Ironic ramdisk deploy over iPXE")
    node: CloudNode | None = None
    console = None
    try:
        with report.step(section, "env create: 1 node in zone qemu, powered off; its BMC"):
            node = CloudNode(tmp_path, image, strategy, PORT)
            assert conn.compute.get_server(node.server_id).status == "SHUTOFF"
        with report.step(section, "start Ironic (ipxe, ramdisk); `devcloud netns` on the "
                                  "provisioning network with dnsmasq and Ironic's HTTP"):
            ir = ironic(boot="ipxe", http_url=HTTP)
            node.undercloud(ir.work / "http")
        [name] = enroll(ir, report, section, node.inventory[driver])
        view = IpmiView(_Bmc(node), 0) if driver == "ipmi" else \
            RedfishView(node.bmc, node.server_id, node.redfish["redfish_verify_ca"],
                        ("admin", node.redfish["redfish_password"]))
        set_boot_mode(ir, name, firmware, view)
        shutil.copyfile(KERNEL, ir.sources / "vmlinuz")
        (ir.sources / "initramfs").write_bytes(initramfs(RAMDISK_MARKER))
        ir.call("PATCH", f"nodes/{name}", [
            {"op": "add", "path": "/instance_info",
             "value": {"kernel": f"file://{ir.sources / 'vmlinuz'}",
                       "ramdisk": f"file://{ir.sources / 'initramfs'}",
                       "ramdisk_kernel_arguments": "console=ttyS0 quiet"}}])
        with report.step(section, f"{name}: open the BMC's console while the node is off"):
            console = node.console(driver)
        with report.step(section, f"{name}: deploy → the BMC {strategy}s the VM with the "
                                  f"{firmware} iPXE image, our dnsmasq answers, Ironic's iPXE "
                                  "boots the kernel and initramfs: /init's marker on the BMC's "
                                  "console and in the compute API's console log"):
            ir.provision(name, "active", "active", timeout=300)
            assert console.read_until(RAMDISK_MARKER, 240), console.output[-2000:]
            wait_console_log(conn, node.server_id, RAMDISK_MARKER, 1, 30)
            dhcp = node.dhcp_log.read_text()
            assert f"DHCPDISCOVER(eth0) {node.mac}" in dhcp, dhcp[-2000:]
            assert ("tags: ipxe, efi64" in dhcp) == (firmware == "uefi")
            served = node.http_log.read_text()
            uuid_ = ir.node(name)["uuid"]
            for path in ("/boot.ipxe", f"/{uuid_}/kernel", f"/{uuid_}/ramdisk"):
                assert f'"GET {path} HTTP/1.1" 200' in served, served
            assert conn.compute.get_server(node.server_id).status == \
                ("RESCUE" if strategy == "rescue" else "ACTIVE")
        with report.step(section, f"{name}: boot device disk (persistent) + reboot → the "
                                  "disk's own marker, on the same console"):
            seen = console.output.count(disk_marker.encode())
            ir.set_boot_device(name, "disk", True)
            ir.power(name, "rebooting", timeout=180)
            assert console.read_until(disk_marker, 120, seen + 1), console.output[-2000:]
            wait_console_log(conn, node.server_id, disk_marker, 1, 30)   # this boot's log
            server = conn.compute.get_server(node.server_id)
            assert server.status == "ACTIVE"
            if strategy == "rebuild":
                assert server.image.id == ipxe_image_id(conn, firmware)   # not rebuilt back
                assert console.read_until(RAMDISK_MARKER, 240, 2), console.output[-2000:]
            assert ir.node(name)["provision_state"] == "active"
        ir.power(name, "power off", timeout=180)
    finally:
        if console is not None:
            console.close()
        if node is not None:
            node.close()


class _Bmc:
    """ipmitool against the environment's BMC with its own password (for IpmiView)."""

    def __init__(self, node: CloudNode) -> None:
        self.node = node

    def ipmitool(self, *command: str, node: int = 0):
        return self.node.bmc.ipmitool(*command, node=node, password=self.node.ipmi_password)

