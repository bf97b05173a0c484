"""The lab end to end: QEMU nodes really network-boot and disk-boot through our BMC.

The test runs its own DHCP/TFTP server (dnsmasq) on the lab network and builds its own boot
programs (a 512-byte marker boot sector served as the PXE program, another written to the
node's disk): nothing is downloaded. Needs root (network namespace, taps).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
import sushy

from harness.bmc_process import SolClient
from quintupleo.images.ipxe import build
from quintupleo.images.marker import boot_sector

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("dnsmasq") is None
                                or shutil.which("qemu-system-x86_64") is None,
                                reason="the lab tests need root, QEMU and dnsmasq")

PXE_MARKER, DISK_MARKER = "QO-PXE-MARKER-5e1c", "QO-DISK-MARKER-0b7a"
CD_MARKER, UEFI_MARKER = "QO-CD-MARKER-93d2", "QO-UEFI-MARKER-c4a8"
V6_MARKER = "QO-IPV6-MARKER-2f6b"


class LabRun:
    def __init__(self, home: Path, name: str, port_base: int) -> None:
        self.home, self.name, self.port_base = home, name, port_base
        # the password the tests type (a lab's own is random)
        self.env = dict(os.environ, QUINTUPLEO_HOME=str(home), QUINTUPLEO_BMC_PASSWORD="password")
        self.dir = home / "labs" / name
        self.netns = f"qo-lab-{name}"

    def qo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "quintupleo", "lab", *args, "--name",
                                 self.name], env=self.env, capture_output=True, text=True,
                                timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"lab {args[0]}: {result.stdout}{result.stderr}")
        return result

    def ipmitool(self, node: int, *command: str) -> str:
        return subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                               str(self.port_base + node), "-U", "admin", "-P", "password",
                               *command], capture_output=True, text=True, check=True,
                              timeout=30).stdout

    def node_dir(self, node: int | str) -> Path:
        return self.dir / "nodes" / (node if isinstance(node, str) else f"node-{node}")

    def serial(self, node: int | str) -> str:
        path = self.node_dir(node) / "serial.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def qemu_pid(self, node: int | str) -> int:
        return int((self.node_dir(node) / "qemu.pid").read_text())

    def wait_marker(self, node: int | str, marker: str, count: int,
                    timeout: float = 60) -> float:
        started = time.monotonic()
        while self.serial(node).count(marker) < count:
            assert time.monotonic() - started < timeout, \
                f"no {marker} #{count} on node-{node}:\n{self.serial(node)[-1500:]}"
            time.sleep(0.2)
        return time.monotonic() - started


@pytest.fixture
def lab(tmp_path):
    run = LabRun(tmp_path / "home", f"t{uuid.uuid4().hex[:6]}", 17300)
    run.qo("up", "--nodes", "2", "--cidr", "10.251.0.0/24", "--ipmi-port-base",
           str(run.port_base), "--redfish-port", str(run.port_base + 50))
    # node-0's disk holds the disk marker (the lab made an empty qcow2; replace it)
    raw = tmp_path / "disk.raw"
    raw.write_bytes(boot_sector(DISK_MARKER).ljust(1 << 20, b"\0"))
    disk = run.dir / "nodes" / "node-0" / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(disk)], check=True)
    # the user's DHCP/TFTP server on the lab network, serving the PXE marker program
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "pxe.bin").write_bytes(boot_sector(PXE_MARKER))
    with dnsmasq(run, "10.251.0", tftp, "--dhcp-boot=pxe.bin"):
        yield run
    run.qo("down", check=False)


@contextlib.contextmanager
def dnsmasq(run: LabRun, prefix: str, tftp: Path, *boot: str):
    """The user's DHCP/TFTP server (dnsmasq) on the lab's bridge, with router advertisements
    and the option that ends iPXE's ProxyDHCP wait (see ../shared/notes/qemu.md)."""
    subprocess.run(["ip", "-n", run.netns, "addr", "add", "fd00:51::1/64", "dev", "br0"],
                   check=True)
    run.dhcp_log = tftp.parent / "dnsmasq.log"
    server = subprocess.Popen(
        ["ip", "netns", "exec", run.netns, "dnsmasq", "--no-daemon", "--conf-file=/dev/null",
         "--port=0", "--interface=br0", "--bind-interfaces", "--pid-file=",
         f"--dhcp-range={prefix}.100,{prefix}.200,1h", "--dhcp-range=fd00:51::,ra-only",
         "--enable-ra", "--enable-tftp", f"--tftp-root={tftp}", *boot,
         "--dhcp-userclass=set:ipxe,iPXE", "--dhcp-option=tag:ipxe,encap:175,176,1",
         "--no-ping",   # else a first lease waits 3 s for a ping reply
         "--log-dhcp", f"--log-facility={run.dhcp_log}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield server
    finally:
        server.terminate()
        server.wait(10)


def test_pxe_then_disk_then_one_time_pxe_over_ipmi(lab):
    assert "Chassis Power is off" in lab.ipmitool(0, "power", "status")
    lab.ipmitool(0, "chassis", "bootdev", "pxe")
    lab.ipmitool(0, "power", "on")
    lab.wait_marker(0, PXE_MARKER, 1)
    mac = json.loads((lab.dir / "lab.json").read_text())["nodes"][0]["mac"]
    dhcp = lab.dhcp_log.read_text()
    assert f"DHCPDISCOVER(br0) {mac}" in dhcp          # a DHCP request on the wire
    assert "sent " in dhcp and "pxe.bin" in dhcp       # the boot program fetched by TFTP
    assert "No override" in lab.ipmitool(0, "chassis", "bootparam", "get", "5")   # consumed

    lab.ipmitool(0, "chassis", "bootdev", "disk")
    lab.ipmitool(0, "power", "cycle")
    lab.wait_marker(0, DISK_MARKER, 1)

    lab.ipmitool(0, "chassis", "bootdev", "pxe")          # one time: this boot only
    lab.ipmitool(0, "power", "reset")
    lab.wait_marker(0, PXE_MARKER, 2)
    lab.ipmitool(0, "power", "reset")                     # the next boot is the disk again
    lab.wait_marker(0, DISK_MARKER, 2)
    assert "Chassis Power is on" in lab.ipmitool(0, "power", "status")
    assert "Chassis Power is off" in lab.ipmitool(1, "power", "status")   # untouched

    lab.ipmitool(0, "power", "off")
    deadline = time.monotonic() + 10
    while "qo-lab-" + lab.name + "-node-0" in " ".join(
            " ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])):
        assert time.monotonic() < deadline, "node-0's QEMU still runs after power off"
        time.sleep(0.1)


def test_the_same_over_redfish(lab):
    """One-time and persistent overrides through sushy; the RAID controller's volumes, which
    become disks of the machine at its next boot and are gone after their deletion; and the
    BIOS's BootMode, which switches the machine's firmware at the next boot."""
    root = sushy.Sushy(f"https://127.0.0.1:{lab.port_base + 50}/redfish/v1", username="admin",
                       password="password", verify=str(lab.dir / "bmc" / "redfish-cert.pem"))
    system = root.get_system("/redfish/v1/Systems/node-0")
    system.set_system_boot_options(sushy.BootSource.PXE,
                                   enabled=sushy.BootSourceOverrideEnabled.ONCE)
    system.reset_system(sushy.ResetType.ON)
    lab.wait_marker(0, PXE_MARKER, 1)
    system.reset_system(sushy.ResetType.FORCE_RESTART)   # the one-time override was used
    lab.wait_marker(0, DISK_MARKER, 1)
    system.set_system_boot_options(sushy.BootSource.PXE,
                                   enabled=sushy.BootSourceOverrideEnabled.CONTINUOUS)
    pid = lab.qemu_pid(0)
    for count in (2, 3):                                 # persistent: every boot
        system.reset_system(sushy.ResetType.FORCE_RESTART)
        lab.wait_marker(0, PXE_MARKER, count)
    system.set_system_boot_options(sushy.BootSource.HDD,
                                   enabled=sushy.BootSourceOverrideEnabled.CONTINUOUS)
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    lab.wait_marker(0, DISK_MARKER, 2)
    assert lab.qemu_pid(0) == pid    # the boot order changed by QMP and a reset: no restart
    system.refresh()
    assert system.power_state == sushy.PowerState.ON
    assert system.boot.enabled == sushy.BootSourceOverrideEnabled.CONTINUOUS

    # a RAID volume made at the controller is a disk of the machine from its next boot on
    raid = system.storage.get_member("/redfish/v1/Systems/node-0/Storage/1")
    volume = raid.volumes.create({"RAIDType": "RAID1", "CapacityBytes": 1 << 30},
                                 apply_time=sushy.APPLY_TIME_IMMEDIATE)
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    lab.wait_marker(0, DISK_MARKER, 3)                  # still boots its own disk
    image = lab.node_dir(0) / "volume-1.qcow2"
    assert f"file={image}" in " ".join(psutil.Process(lab.qemu_pid(0)).cmdline())
    assert lab.qemu_pid(0) != pid                       # new disks: QEMU started again
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", str(image)],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["virtual-size"] == volume.capacity_bytes == 1 << 30
    volume.delete(apply_time=sushy.APPLY_TIME_IMMEDIATE)
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    lab.wait_marker(0, DISK_MARKER, 4)
    assert "volume-" not in " ".join(psutil.Process(lab.qemu_pid(0)).cmdline())
    assert not image.exists()

    # the BIOS setting BootMode is the machine's firmware from the next boot: OVMF, SeaBIOS
    system.bios.set_attributes({"BootMode": "Uefi"})
    seen = len(lab.serial(0))
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    deadline = time.monotonic() + 60
    while "BdsDxe" not in lab.serial(0)[seen:]:         # OVMF's boot manager speaks
        assert time.monotonic() < deadline, lab.serial(0)[-1500:]
        time.sleep(0.5)
    assert "OVMF_CODE" in " ".join(psutil.Process(lab.qemu_pid(0)).cmdline())
    system.bios.refresh()
    assert system.bios.attributes["BootMode"] == "Uefi"
    system.bios.set_attributes({"BootMode": "Bios"})
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    lab.wait_marker(0, DISK_MARKER, 5)                  # SeaBIOS boots the boot sector again
    system.reset_system(sushy.ResetType.FORCE_OFF)
    root.__del__()


def test_a_node_whose_qemu_dies_reads_off_and_powers_on_again(lab):
    """The node's QEMU killed behind the BMC's back (its QMP connection open): the BMC keeps
    observing, says off, and powers the node on again."""
    lab.ipmitool(1, "power", "on")
    deadline = time.monotonic() + 10
    while not (lab.node_dir(1) / "qemu.pid").exists():
        assert time.monotonic() < deadline, "node-1 did not start"
        time.sleep(0.05)
    time.sleep(2.5)                     # a few observations: the BMC holds a QMP connection
    os.kill(lab.qemu_pid(1), signal.SIGKILL)
    deadline = time.monotonic() + 15
    while "Chassis Power is off" not in lab.ipmitool(1, "power", "status"):
        assert time.monotonic() < deadline, "the BMC still says on"
        time.sleep(0.3)
    lab.ipmitool(1, "power", "on")
    deadline = time.monotonic() + 15
    while "Chassis Power is on" not in lab.ipmitool(1, "power", "status"):
        assert time.monotonic() < deadline, "the node did not power on again"
        time.sleep(0.3)
    assert "Traceback" not in (lab.dir / "bmc.log").read_text()


def test_down_after_kill_9_leaves_nothing(lab):
    lab.ipmitool(0, "power", "on")
    lab.ipmitool(1, "power", "on")
    pid_files = [lab.dir / "nodes" / f"node-{i}" / "qemu.pid" for i in (0, 1)]
    deadline = time.monotonic() + 10
    while not all(p.exists() for p in pid_files):
        assert time.monotonic() < deadline, "the nodes did not start"
        time.sleep(0.05)
    bmc_pid = int((lab.dir / "bmc.pid").read_text())
    os.kill(bmc_pid, signal.SIGKILL)                     # the BMC dies; the nodes keep running
    (lab.dir / "nodes" / "node-1" / "qemu.pid").unlink()  # and a PID file is lost
    removed = lab.qo("down").stdout
    assert "2 QEMU process(es)" in removed and "network namespace" in removed
    cmdlines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert not [c for c in cmdlines if f"qo-lab-{lab.name}-" in c]
    assert not [c for c in cmdlines if "--lab" in c and lab.name in c]
    assert lab.netns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                           text=True).stdout
    assert not lab.dir.exists()


def test_the_ipxe_image_network_boots_a_lab_node_from_its_disk(lab, tmp_path):
    """What the rescue and rebuild strategies do on Nova, on a real VM: the node's boot disk is
    our BIOS iPXE image, and booting "from disk" network-boots it on the lab network."""
    image = next(i for i in build(tmp_path / "images") if i.firmware == "bios")
    disk = lab.dir / "nodes" / "node-1" / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(image.path),
                    str(disk)], check=True)
    lab.ipmitool(1, "chassis", "bootdev", "disk")
    lab.ipmitool(1, "power", "on")
    lab.wait_marker(1, PXE_MARKER, 1, timeout=90)
    assert "QuintupleO network boot (BIOS)" in lab.serial(1)


def test_virtual_media_boots_a_cd_fetched_by_url(lab, tmp_path):
    """Redfish InsertMedia on a lab node: the BMC fetches the ISO (served here over HTTP), puts
    it in the node's CD drive, a one-time Cd boot runs its El Torito boot program."""
    import functools
    import http.server
    import threading

    root_dir = tmp_path / "iso-root"
    root_dir.mkdir()
    (root_dir / "boot.img").write_bytes(boot_sector(CD_MARKER).ljust(2048, b"\0"))
    www = tmp_path / "www"
    www.mkdir()
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(www / "cd.iso"), "-b",
                    "boot.img", "-no-emul-boot", "-boot-load-size", "4", str(root_dir)],
                   check=True, capture_output=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = sushy.Sushy(f"https://127.0.0.1:{lab.port_base + 50}/redfish/v1", username="admin",
                       password="password", verify=str(lab.dir / "bmc" / "redfish-cert.pem"))
    try:
        cd = root.get_manager("/redfish/v1/Managers/node-0").virtual_media.get_member(
            "/redfish/v1/Managers/node-0/VirtualMedia/Cd")
        cd.insert_media(f"http://127.0.0.1:{server.server_address[1]}/cd.iso", inserted=True,
                        write_protected=True)
        cd.refresh()
        assert cd.inserted and cd.image.endswith("/cd.iso")
        media = list(lab.node_dir(0).glob("media-*.iso"))
        assert len(media) == 1 and media[0].read_bytes() == (www / "cd.iso").read_bytes()
        system = root.get_system("/redfish/v1/Systems/node-0")
        system.set_system_boot_options(sushy.BootSource.CD,
                                       enabled=sushy.BootSourceOverrideEnabled.ONCE)
        system.reset_system(sushy.ResetType.ON)
        lab.wait_marker(0, CD_MARKER, 1)
        system.reset_system(sushy.ResetType.FORCE_RESTART)   # once: then the disk again
        lab.wait_marker(0, DISK_MARKER, 1)
        assert lab.serial(0).count(CD_MARKER) == 1
        cd.eject_media()
        assert not list(lab.node_dir(0).glob("media-*.iso"))
    finally:
        server.shutdown()
        root.__del__()


def test_uefi_nodes_network_boot_and_boot_the_uefi_ipxe_image_from_disk(tmp_path):
    """OVMF nodes (a role with boot-mode=uefi): a one-time UEFI PXE boot (the NIC's EFI iPXE
    ROM, an x86-64 UEFI client, gets the test's script, which prints the marker), then the
    disk, which holds our UEFI iPXE image as the rescue/rebuild strategies boot it on Nova:
    GRUB, then iPXE network-boots the node. Secure boot switched on at the BMC: the firmware
    refuses that unsigned GRUB; off again, it boots."""
    run = LabRun(tmp_path / "home", f"u{uuid.uuid4().hex[:6]}", 17500)
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "marker.ipxe").write_text(f"#!ipxe\necho {UEFI_MARKER} ${{mac}}\nsleep 600\n")
    try:
        run.qo("up", "--role", "efi=1,boot-mode=uefi,memory=768", "--cidr", "10.252.0.0/24",
               "--ipmi-port-base", str(run.port_base), "--redfish-port", str(run.port_base + 50))
        nodes = json.loads((run.dir / "nodes.json").read_text())["nodes"]
        assert "boot_mode:uefi" in nodes[0]["properties"]["capabilities"]
        image = next(i for i in build(tmp_path / "images") if i.firmware == "uefi")
        subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                        str(image.path), str(run.node_dir("efi-0") / "disk.qcow2")], check=True)
        with dnsmasq(run, "10.252.0", tftp, "--dhcp-match=set:efi64,option:client-arch,7",
                     "--dhcp-boot=tag:ipxe,marker.ipxe"):
            run.ipmitool(0, "chassis", "bootdev", "pxe", "options=efiboot")
            run.ipmitool(0, "power", "on")
            run.wait_marker("efi-0", UEFI_MARKER, 1, timeout=120)
            assert "QuintupleO network boot (UEFI)" not in run.serial("efi-0")   # the NIC's
            assert "tags: ipxe, efi64" in run.dhcp_log.read_text()   # a UEFI x86-64 client
            run.ipmitool(0, "power", "reset")                # the override was for one boot
            run.wait_marker("efi-0", UEFI_MARKER, 2, timeout=120)
            assert "QuintupleO network boot (UEFI)" in run.serial("efi-0")       # the disk's

            # secure boot, switched at the BMC: OVMF (Microsoft's keys) refuses our unsigned GRUB
            secure = f"https://127.0.0.1:{run.port_base + 50}/redfish/v1/Systems/efi-0/SecureBoot"
            http = {"auth": ("admin", "password"), "timeout": 10,
                    "verify": str(run.dir / "bmc" / "redfish-cert.pem")}
            assert requests.get(secure, **http).json()["SecureBootMode"] == "UserMode"
            requests.patch(secure, json={"SecureBootEnable": True}, **http).raise_for_status()
            denied = run.serial("efi-0").count("Access Denied")
            run.ipmitool(0, "power", "reset")
            deadline = time.monotonic() + 120
            while run.serial("efi-0").count("Access Denied") == denied:
                assert time.monotonic() < deadline, run.serial("efi-0")[-1500:]
                time.sleep(0.5)
            assert requests.get(secure, **http).json()["SecureBootCurrentBoot"] == "Enabled"
            requests.patch(secure, json={"SecureBootEnable": False}, **http).raise_for_status()
            run.ipmitool(0, "power", "reset")                # off again: GRUB boots, iPXE runs
            run.wait_marker("efi-0", UEFI_MARKER, 3, timeout=120)
        mac = nodes[0]["ports"][0]["address"]
        assert f"{UEFI_MARKER} {mac}" in run.serial("efi-0")
    finally:
        run.qo("down")


def test_serial_over_lan_shows_the_whole_boot(lab):
    sol = SolClient(lab.port_base)
    try:
        assert sol.read_until("SOL Session operational", 15)
        second = subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                                 str(lab.port_base), "-U", "admin", "-P", "password", "sol",
                                 "activate"], capture_output=True, text=True, timeout=30,
                                stdin=subprocess.DEVNULL)
        assert second.returncode != 0     # one SOL session per node
        lab.ipmitool(0, "chassis", "bootdev", "pxe")
        lab.ipmitool(0, "power", "on")    # activated while off: the boot from its first line
        assert sol.read_until(PXE_MARKER, 60), sol.output[-1500:]
        assert b"SeaBIOS" in sol.output and b"pxe.bin" in sol.output
        lab.ipmitool(0, "power", "cycle")   # the console follows the node through a restart
        assert sol.read_until(DISK_MARKER, 60), sol.output[-1500:]
    finally:
        assert sol.close() == 0
    status = subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p",
                             str(lab.port_base), "-U", "admin", "-P", "password", "sol",
                             "info"], capture_output=True, text=True, timeout=30)
    assert "Enabled                         : true" in status.stdout
    assert f"Payload Port                    : {lab.port_base}" in status.stdout


def test_redfish_websocket_console_and_the_dmtf_validator(lab, redfish_validator):
    """SerialConsole.WebSocket (Redfish 2025.4): the console over a WebSocket with Basic auth,
    through aiohttp's own client; and the lab's Redfish service passes the DMTF validator."""
    import asyncio
    import ssl

    import aiohttp
    import requests

    base = f"https://127.0.0.1:{lab.port_base + 50}"
    cert = str(lab.dir / "bmc" / "redfish-cert.pem")
    system = requests.get(f"{base}/redfish/v1/Systems/node-0", auth=("admin", "password"),
                          verify=cert, timeout=10).json()
    websocket = system["SerialConsole"]["WebSocket"]
    assert websocket["ServiceEnabled"] and websocket["Interactive"]
    # the machine's inventory: QEMU's pc machine, its SMBIOS serial (on QEMU's command line,
    # so the guest reads the same), SeaBIOS's Debian version; secure boot in setup mode
    assert system["Manufacturer"] == "QEMU" and system["BiosVersion"].startswith("SeaBIOS 1.")
    secure = requests.get(f"{base}/redfish/v1/Systems/node-0/SecureBoot", timeout=10,
                          auth=("admin", "password"), verify=cert).json()
    assert (secure["SecureBootEnable"], secure["SecureBootMode"]) == (False, "SetupMode")

    async def watch() -> bytes:
        seen = b""
        context = ssl.create_default_context(cafile=cert)
        basic = {"Authorization": aiohttp.encode_basic_auth("admin", "password")}
        async with aiohttp.ClientSession() as http, \
                http.ws_connect(f"wss://127.0.0.1:{lab.port_base + 50}"
                                f"{websocket['ConsoleURI']}", ssl=context,
                                headers=basic) as socket:
            await asyncio.to_thread(lab.ipmitool, 0, "chassis", "bootdev", "pxe")
            await asyncio.to_thread(lab.ipmitool, 0, "power", "on")
            async with asyncio.timeout(60):
                async for message in socket:
                    seen += message.data
                    if PXE_MARKER.encode() in seen:
                        return seen
        return seen

    seen = asyncio.run(watch())
    assert b"SeaBIOS" in seen and PXE_MARKER.encode() in seen
    qemu = subprocess.run(["pgrep", "-af", "qemu-system"], capture_output=True, text=True)
    assert f"type=1,serial={system['SerialNumber']}" in qemu.stdout
    counts = redfish_validator(base, "Basic")
    assert counts.get("fail", 0) == 0, counts


def test_a_rootless_lab_with_its_own_pxe_server(tmp_path):
    """No namespace: the nodes share a UDP multicast segment on loopback, and the lab's own
    DHCP/TFTP server (QEMU's user-mode network behind a hub, restrict=on) boots them."""
    run = LabRun(tmp_path / "home", f"r{uuid.uuid4().hex[:6]}", 17400)
    tftp = tmp_path / "tftp"
    tftp.mkdir()
    (tftp / "pxe.bin").write_bytes(boot_sector(PXE_MARKER))
    try:
        run.qo("up", "--nodes", "1", "--rootless", "--tftp-root", str(tftp), "--bootfile",
               "pxe.bin", "--cidr", "10.254.0.0/24", "--ipmi-port-base", str(run.port_base),
               "--redfish-port", str(run.port_base + 50))
        assert not (set(subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True).stdout.split()) & {run.netns})
        run.ipmitool(0, "chassis", "bootdev", "pxe")
        run.ipmitool(0, "power", "on")
        run.wait_marker(0, PXE_MARKER, 1)
        assert "10.254.0." in run.serial(0)          # an address from the lab's own server
    finally:
        removed = run.qo("down").stdout
    assert "2 QEMU process(es)" in removed           # the node and the network server
    cmdlines = [" ".join(p.info["cmdline"] or []) for p in psutil.process_iter(["cmdline"])]
    assert not [c for c in cmdlines if f"qo-lab-{run.name}-" in c]


def test_roles_name_the_nodes_and_reach_the_inventory(tmp_path):
    run = LabRun(tmp_path / "home", f"p{uuid.uuid4().hex[:6]}", 17450)
    try:
        run.qo("up", "--role", "controller=1", "--role", "compute=2", "--rootless",
               "--ipmi-port-base", str(run.port_base), "--redfish-port", str(run.port_base + 40))
        nodes = json.loads((run.dir / "nodes.json").read_text())["nodes"]
        assert [n["name"] for n in nodes] == ["controller-0", "compute-0", "compute-1"]
        capabilities = [n["properties"]["capabilities"] for n in nodes]
        assert "profile:controller" in capabilities[0] and "profile:compute" in capabilities[2]
        assert all("boot_mode:bios" in c for c in capabilities)   # SeaBIOS nodes
        assert [n["driver_info"]["ipmi_port"] for n in nodes] == \
            [run.port_base, run.port_base + 1, run.port_base + 2]
        assert "compute-1" in run.qo("status").stdout
    finally:
        run.qo("down")


def test_a_lab_from_an_environment_spec(tmp_path):
    """`lab up --spec`: an environment's roles, profiles, provisioning CIDR and BMC ports."""
    run = LabRun(tmp_path / "home", f"s{uuid.uuid4().hex[:6]}", 17560)
    spec = tmp_path / "env.yaml"
    spec.write_text("name: e1\ncloud: somecloud\n"
                    "networks: {provisioning: {cidr: 10.77.0.0/24}}\n"
                    "roles:\n"
                    "  controller: {count: 1, flavor: big, image: x, profile: control}\n"
                    "  compute: {count: 2, flavor: big, image: x}\n"
                    f"bmc: {{ipmi_port_base: {run.port_base}, "
                    f"redfish_port: {run.port_base + 30}}}\n")
    refused = run.qo("up", "--spec", str(spec), "--role", "a=1", check=False)
    assert refused.returncode == 1 and "no --role with it" in refused.stderr
    try:
        run.qo("up", "--spec", str(spec), "--rootless", "--boot-mode", "uefi")
        nodes = json.loads((run.dir / "nodes.json").read_text())["nodes"]
        assert [n["name"] for n in nodes] == ["controller-0", "compute-0", "compute-1"]
        capabilities = [n["properties"]["capabilities"] for n in nodes]
        assert "profile:control" in capabilities[0] and "profile:compute" in capabilities[1]
        assert all("boot_mode:uefi" in c for c in capabilities)
        assert [n["driver_info"]["ipmi_port"] for n in nodes] == \
            [run.port_base, run.port_base + 1, run.port_base + 2]
        assert json.loads((run.dir / "lab.json").read_text())["cidr"] == "10.77.0.0/24"
    finally:
        run.qo("down")


def test_lab_status_list_and_watch(tmp_path):
    """What `lab status` and `lab list` say, with the lab's BMC serving and stopped."""
    run = LabRun(tmp_path / "home", f"w{uuid.uuid4().hex[:6]}", 17650)
    try:
        run.qo("up", "--nodes", "2", "--rootless", "--ipmi-port-base", str(run.port_base),
               "--redfish-port", str(run.port_base + 40))
        listed = json.loads(subprocess.run(
            [sys.executable, "-m", "quintupleo", "lab", "list", "-f", "json"], env=run.env,
            capture_output=True, text=True, check=True).stdout)
        assert [(lab["lab"], lab["nodes"], lab["on"]) for lab in listed] == [(run.name, 2, 0)]
        run.ipmitool(1, "chassis", "bootdev", "pxe")
        status = json.loads(run.qo("status", "-f", "json").stdout)
        assert status["bmc"].startswith("running") and status["network"].startswith("multicast")
        nodes = {n["node"]: n for n in status["nodes"]}
        assert (nodes["node-0"]["power"], nodes["node-0"]["boot"], nodes["node-0"]["qemu"]) == \
            ("Off", "no override", "off")
        assert nodes["node-1"]["boot"] == "Pxe, once, Legacy"
        assert nodes["node-1"]["ipmi_port"] == run.port_base + 1

        watching = subprocess.Popen([sys.executable, "-m", "quintupleo", "lab", "status",
                                     "--name", run.name, "--watch", "0.5"], env=run.env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        watching.send_signal(signal.SIGINT)
        out, err = watching.communicate(timeout=10)
        assert watching.returncode == 0, err
        assert "node-1" in out and "Traceback" not in err

        os.kill(int((run.dir / "bmc.pid").read_text()), signal.SIGTERM)
        time.sleep(1)
        stopped = json.loads(run.qo("status", "-f", "json").stdout)
        assert stopped["bmc"] == "not running"
        kept = {n["node"]: n for n in stopped["nodes"]}
        assert kept["node-1"]["boot"] == "Pxe, once, Legacy"      # as the BMC kept it
    finally:
        run.qo("down")


def test_the_ipxe_images_network_boot_over_dhcpv6(tmp_path):
    """IPv6 provisioning: an IPv6-only lab network, a dnsmasq on it doing router advertisements
    (managed: use DHCPv6) and DHCPv6 with a boot URL, and no DHCPv4 at all. Our BIOS and UEFI
    iPXE images, each on a node's disk as the rescue and rebuild strategies put them, get an
    IPv6 address and the URL by DHCPv6 and fetch the script over HTTP on IPv6."""
    run = LabRun(tmp_path / "home", f"v{uuid.uuid4().hex[:6]}", 17600)
    root = tmp_path / "http"
    root.mkdir()
    (root / "boot.ipxe").write_text(f"#!ipxe\necho {V6_MARKER} ${{mac}}\nsleep 600\n")
    logs, services = tmp_path, []
    try:
        run.qo("up", "--role", "bios=1", "--role", "efi=1,boot-mode=uefi,memory=768",
               "--cidr", "fd00:54::/64", "--ipmi-port-base", str(run.port_base),
               "--redfish-port", str(run.port_base + 50))
        for image in build(tmp_path / "images"):
            node = "bios-0" if image.firmware == "bios" else "efi-0"
            subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2",
                            str(image.path), str(run.node_dir(node) / "disk.qcow2")], check=True)
        in_lab = ["ip", "netns", "exec", run.netns]
        services.append(subprocess.Popen(
            [*in_lab, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
             "--interface=br0", "--bind-interfaces", "--pid-file=", "--enable-ra",
             "--dhcp-range=fd00:54::100,fd00:54::1ff,64,1h",
             "--dhcp-userclass=set:ipxe,iPXE",
             "--dhcp-option=tag:ipxe,option6:bootfile-url,http://[fd00:54::1]:8089/boot.ipxe",
             "--log-dhcp", f"--log-facility={logs / 'dnsmasq.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        services.append(subprocess.Popen(
            [*in_lab, sys.executable, "-m", "http.server", "8089", "--bind", "fd00:54::1",
             "--directory", str(root)], stdout=(logs / "http.log").open("wb"),
            stderr=subprocess.STDOUT))
        for node in (0, 1):
            run.ipmitool(node, "chassis", "bootdev", "disk")
            run.ipmitool(node, "power", "on")
        for node in ("bios-0", "efi-0"):
            run.wait_marker(node, V6_MARKER, 1, timeout=180)
            run.ipmitool(0 if node == "bios-0" else 1, "power", "off")   # done: free the core
        nodes = {n["name"]: n for n in json.loads((run.dir / "nodes.json").read_text())["nodes"]}
        for node in ("bios-0", "efi-0"):
            assert f"{V6_MARKER} {nodes[node]['ports'][0]['address']}" in run.serial(node)
        assert "QuintupleO network boot (BIOS)" in run.serial("bios-0")
        assert "QuintupleO network boot (UEFI)" in run.serial("efi-0")
        dhcp = (logs / "dnsmasq.log").read_text()
        assert dhcp.count("DHCPREPLY") >= 2 and "DHCPACK" not in dhcp    # v6 only, no v4
        requests_seen = [line for line in (logs / "http.log").read_text().splitlines()
                         if "GET /boot.ipxe" in line]
        assert len(requests_seen) >= 2 and all(
            line.startswith("fd00:54::") for line in requests_seen), requests_seen
    finally:
        for service in services:
            service.terminate()
            service.wait(10)
        run.qo("down", check=False)
