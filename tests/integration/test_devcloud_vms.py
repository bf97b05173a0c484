"""The devcloud's real host: Nova's libvirt driver on QEMU (zone qemu) and its L2 data plane,
seen on the wire from a `devcloud netns` (a real dnsmasq, tcpdump) and in libvirt itself.

At most two real VMs run at once, and each is deleted (or powers itself off) as soon as its
check is done: a TCG guest looping in iPXE costs half a core.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from wire import Capture, Dnsmasq, links, virsh, wait_until

from harness.linux_guest import KERNEL, initramfs
from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.devcloud.hypervisor import our_qemus
from quintupleo.devcloud.plugins.names import bridge_name, tap_name
from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud


def domain_of(layout, server) -> str:
    return virsh(layout, "dumpxml", server.id)   # libvirt knows the domain by its UUID too


def console(conn, server) -> str:
    return conn.compute.get_server_console_output(server)["output"]


def test_servers_without_a_zone_stay_on_the_fake_host(conn, boot, real_host):
    server = boot()
    assert server.availability_zone == "nova"
    assert our_qemus(real_host.layout) == [] or all(
        server.id not in " ".join(q.cmdline()) for q in our_qemus(real_host.layout))


def test_ipxe_dhcp_reaches_its_own_network_only(conn, real_host, ipxe_images, segment,
                                               real_server, tmp_path):
    """A server from the BIOS iPXE image, on a port without port security on a network without
    DHCP, asks the user's dnsmasq from its port's MAC; a dnsmasq on another network sees
    nothing. Its root disk is unsafe-cached; its tap is on its network's bridge."""
    provisioning, ns = segment("prov")
    _, other_ns = segment("other")
    with Dnsmasq(ns, tmp_path) as ours, Dnsmasq(other_ns, tmp_path) as theirs:
        server, port = real_server(provisioning, ipxe_images["bios"])
        ours.wait_discover(port.mac_address)
        assert "iPXE" in ours.text()        # the user class of our image's iPXE
        wait_until(lambda: re.search(r"DHCPACK\(eth0\) 198\.51\.100\.\d+ " + port.mac_address,
                                     ours.text()), 30, "DHCPACK")
        xml = domain_of(real_host.layout, server)
        assert re.search(r"<disk type='file' device='disk'>\s*<driver name='qemu' "
                         r"type='qcow2' cache='unsafe'/>", xml), xml
        tap = tap_name(port.id)
        assert f"<target dev='{tap}'" in xml
        assert links()[tap] == bridge_name(provisioning.id)
        conn.compute.delete_server(server)
        conn.compute.wait_for_delete(server, wait=60, interval=0.3)
    assert theirs.discovers() == [], theirs.text()
    assert tap not in links()
    assert not any(server.id in " ".join(q.cmdline()) for q in our_qemus(real_host.layout))


SPOOFER = """
ip link set lo up; ip link set eth0 up
mac=$(cat /sys/class/net/eth0/address)
echo "QO-GUEST up $mac"; sleep 1
udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true >/dev/null 2>&1    # from its own MAC
ip addr add 198.51.100.77/24 dev eth0      # the guarded port's allowed address pair
ip addr add 198.51.100.78/24 dev eth0      # nobody's address
arping -c 2 -s 198.51.100.77 -I eth0 198.51.100.1 >/dev/null
arping -c 2 -s 198.51.100.78 -I eth0 198.51.100.1 >/dev/null
ip link set eth0 down; ip link set eth0 address 02:${mac#*:}; ip link set eth0 up; sleep 1
udhcpc -i eth0 -n -q -t 3 -T 1 -s /bin/true >/dev/null 2>&1    # from a MAC not its own
echo "QO-GUEST done"
"""


@pytest.fixture
def linux_guest(conn, real_host):
    """Image factory: a root image that direct-boots Debian's kernel into an initramfs running
    a script (reused by content: kernel, ramdisk and script)."""
    made = []

    def _image(script: str):
        ramdisk = initramfs(script)
        digest = hashlib.sha256(KERNEL.read_bytes() + ramdisk).hexdigest()[:12]
        found = conn.image.find_image(f"qo-test-linux-{digest}")
        if found is not None:
            return found
        kernel = conn.image.create_image(
            name=f"qo-test-vmlinuz-{digest}", data=io.BytesIO(KERNEL.read_bytes()),
            disk_format="aki", container_format="aki", wait=True)
        initrd = conn.image.create_image(
            name=f"qo-test-initrd-{digest}", data=io.BytesIO(ramdisk), disk_format="ari",
            container_format="ari", wait=True)
        root = conn.image.create_image(
            name=f"qo-test-linux-{digest}", data=io.BytesIO(b"\0" * 65536), disk_format="raw",
            container_format="bare", wait=True, kernel_id=kernel.id, ramdisk_id=initrd.id,
            os_command_line="console=ttyS0 panic=-1")
        made.extend([root, initrd, kernel])
        return root

    yield _image
    for image in made:
        conn.image.delete_image(image, ignore_missing=True)


def test_port_security_is_enforced_on_the_wire(conn, real_host, segment, real_server,
                                              linux_guest, tmp_path):
    """Two Linux guests send DHCP from their own MAC, ARP from an allowed pair's address and
    from nobody's, then DHCP from a MAC not their own. Where the port has port security only
    its own MAC and addresses (and its pair) reach the wire; without, everything does."""
    network, ns = segment("spoof")
    image = linux_guest(SPOOFER)
    with Capture(ns, tmp_path, "arp or udp port 67 or udp port 68") as wire:
        guarded, guarded_port = real_server(
            network, image.id, "-guarded", wait=False, port_security_enabled=True,
            allowed_address_pairs=[{"ip_address": "198.51.100.77"}])
        open_, open_port = real_server(network, image.id, "-open", wait=False)
        for server in (guarded, open_):
            settle(conn, server.id, "SHUTOFF", timeout=180)   # the guest powered itself off
        seen = wire.text()
    consoles = "\n".join(console(conn, server) for server in (guarded, open_))
    assert consoles.count("QO-GUEST done") == 2, consoles    # console logs, through the API
    seen += consoles[-3000:]   # for the failure messages below
    mac, spoofed = guarded_port.mac_address, "02:" + guarded_port.mac_address[3:]
    from_guarded = [line for line in seen.splitlines() if f" {mac} > " in line]
    assert any("BOOTP/DHCP" in line for line in from_guarded), seen
    assert any("tell 198.51.100.77" in line for line in from_guarded), seen
    assert not any("tell 198.51.100.78" in line for line in from_guarded), seen
    assert f" {spoofed} > " not in seen, seen
    mac, spoofed = open_port.mac_address, "02:" + open_port.mac_address[3:]
    assert any("tell 198.51.100.78" in line and f" {mac} > " in line
               for line in seen.splitlines()), seen
    assert f" {spoofed} > " in seen, seen


def test_rescue_network_boots_and_unrescue_boots_the_disk(conn, real_host, ipxe_images,
                                                         segment, real_server, tmp_path):
    network, ns = segment("rescue")
    tiny = conn.image.find_image("quintupleo-tiny")
    with Dnsmasq(ns, tmp_path) as dhcp:
        server, port = real_server(network, tiny.id)
        wait_until(lambda: IMAGE_MARKER in console(conn, server), 60, "the disk's marker")
        conn.compute.rescue_server(server, image=ipxe_images["bios"])
        settle(conn, server.id, "RESCUE", timeout=120)
        dhcp.wait_discover(port.mac_address)
        xml = domain_of(real_host.layout, server)
        # The rescue disk first (stable device rescue), with the cache mode Nova gives it.
        assert re.search(r"<driver name='qemu' type='qcow2' cache='none'/>\s*"
                         r"<source file='[^']*disk.rescue'", xml), xml
        conn.compute.unrescue_server(server)
        settle(conn, server.id, "ACTIVE", timeout=120)
        before = len(dhcp.discovers())
        wait_until(lambda: IMAGE_MARKER in console(conn, server), 60, "the disk's marker again")
        assert "disk.rescue" not in domain_of(real_host.layout, server)
        assert len(dhcp.discovers()) == before


def test_power_changes_and_delete_leave_no_stray_device(conn, real_host, segment, real_server):
    network, _ = segment("power")
    tiny = conn.image.find_image("quintupleo-tiny")
    server, port = real_server(network, tiny.id)
    tap, bridge = tap_name(port.id), bridge_name(network.id)

    def one_vm_on_the_bridge() -> bool:
        qemus = [q for q in our_qemus(real_host.layout) if server.id in " ".join(q.cmdline())]
        return len(qemus) == 1 and links().get(tap) == bridge

    wait_until(one_vm_on_the_bridge, 30, "its QEMU and tap")
    conn.compute.stop_server(server)
    settle(conn, server.id, "SHUTOFF", timeout=60)
    assert not any(server.id in " ".join(q.cmdline()) for q in our_qemus(real_host.layout))
    conn.compute.start_server(server)
    settle(conn, server.id, "ACTIVE", timeout=60)
    wait_until(one_vm_on_the_bridge, 30, "its QEMU and tap after start")
    conn.compute.reboot_server(server, "HARD")
    settle(conn, server.id, "ACTIVE", timeout=60)
    wait_until(one_vm_on_the_bridge, 30, "its QEMU and tap after a hard reboot")
    wait_until(lambda: IMAGE_MARKER in console(conn, server), 60, "the disk's marker")
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60, interval=0.3)
    assert tap not in links()
    assert not any(server.id in " ".join(q.cmdline()) for q in our_qemus(real_host.layout))


ECHO = """
echo QO-SERIAL-READY
while read line; do echo "QO-ECHO $line"; done
"""


def test_serial_console_through_nova_serialproxy(conn, real_host, segment, real_server,
                                                 linux_guest):
    """The compute API's serial console URL: nova-serialproxy's WebSocket on loopback carries
    the VM's serial port live, both ways (a Linux guest echoes what is typed)."""
    import asyncio

    import aiohttp

    network, _ = segment("serial")
    server, _ = real_server(network, linux_guest(ECHO).id)
    url = conn.compute.create_console(server, console_type="serial")["url"]
    assert url.startswith("ws://127.0.0.1:")

    async def converse() -> bytes:
        received = b""
        async with aiohttp.ClientSession() as session, \
                session.ws_connect(url, protocols=("binary",)) as ws:
            async with asyncio.timeout(120):
                while b"QO-ECHO hello" not in received:
                    await ws.send_bytes(b"hello\r")
                    try:
                        async with asyncio.timeout(2):
                            message = await ws.receive()
                    except TimeoutError:
                        continue
                    assert message.type in (aiohttp.WSMsgType.BINARY,
                                            aiohttp.WSMsgType.TEXT), message
                    data = message.data
                    received += data if isinstance(data, bytes) else data.encode()
        return received

    assert b"QO-ECHO hello" in asyncio.run(converse())
