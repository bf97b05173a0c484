"""PXE boot emulation and virtual media on the devcloud, through ipmitool and sushy.

The devcloud's hypervisor boots nothing, but it writes down what Nova asked it to boot
(virt-events.jsonl): the rescue image and its properties, the image a rebuild spawns.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import threading
import time
import uuid

import pytest
import requests
import sushy
from virt_events import VirtEvents
from wire import Dnsmasq, wait_until

from harness.bmc_process import SolClient
from quintupleo.devcloud.bootstrap import IMAGE_MARKER
from quintupleo.devcloud.smoke import settle
from quintupleo.images.glance import publish
from quintupleo.images.marker import boot_sector, marker_disk

pytestmark = pytest.mark.devcloud


@pytest.fixture
def node(conn, boot):
    """A node as environments make them: booted, then powered off."""
    server = boot()
    conn.compute.stop_server(server)
    return settle(conn, server.id, "SHUTOFF", timeout=60)


def serve(bmc_server, name, strategy, *extra):
    return bmc_server("--backend", "openstack", "--cloud", "devcloud", "--prefix", name,
                      "--boot-strategy", strategy, "--refresh-interval", "2", *extra)


def wait_power(bmc, wanted: str, timeout: float = 60) -> list[str]:
    """Poll `power status` until it says `wanted`; every answer seen on the way."""
    seen = []
    deadline = time.monotonic() + timeout
    while not seen or wanted not in seen[-1]:
        assert time.monotonic() < deadline, f"power never {wanted}: {seen[-5:]}"
        seen.append(bmc.ipmitool("power", "status").stdout.strip())
        time.sleep(0.2)
    return seen


def wait_settled(bmc, node_id: str, wanted: str = "On", timeout: float = 60) -> None:
    """Until Redfish says `wanted` (not PoweringOn): the BMC saw its strategy finish."""
    url = f"{bmc.redfish_url}/redfish/v1/Systems/{node_id}"
    deadline = time.monotonic() + timeout
    while requests.get(url, auth=("admin", "password"), timeout=10,
                       verify=str(bmc.state_dir / "redfish-cert.pem")).json()["PowerState"] \
            != wanted:
        assert time.monotonic() < deadline, f"power never settled at {wanted}"
        time.sleep(0.2)


def test_rescue_strategy_over_ipmi(conn, devcloud_home, ipxe_images, node, name, bmc_server):
    bmc = serve(bmc_server, name, "rescue")
    events = VirtEvents(devcloud_home, node.id)
    original_image = node.image.id

    # one-time, legacy PXE: power on = rescue into the BIOS iPXE image
    bmc.ipmitool("chassis", "bootdev", "pxe")
    assert "Force PXE" in bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    bmc.ipmitool("power", "on")
    seen = wait_power(bmc, "on")
    assert all("off" in s for s in seen[:-1])   # never "on" before Nova finished the rescue
    assert conn.compute.get_server(node.id).status == "RESCUE"
    rescue = events.wait_for("rescue")[0]
    assert rescue["image"] == ipxe_images["bios"]
    assert rescue["properties"]["hw_rescue_device"] == "disk"
    assert rescue["properties"]["hw_firmware_type"] == "bios"
    assert "No override" in bmc.ipmitool("chassis", "bootparam", "get", "5").stdout

    # off: Nova cannot stop a rescued server -> unrescue, then stop
    bmc.ipmitool("power", "off")
    settle(conn, node.id, "SHUTOFF", timeout=60)
    assert [e["event"] for e in events.all()][-2:] == ["unrescue", "power_off"]
    wait_power(bmc, "off")

    # the next power-on boots the disk: a plain start, the node's own image untouched
    bmc.ipmitool("power", "on")
    settle(conn, node.id, "ACTIVE", timeout=60)
    wait_power(bmc, "on")
    assert events.all()[-1]["event"] == "power_on"
    assert conn.compute.get_server(node.id).image.id == original_image

    # persistent UEFI PXE: every reset network-boots the UEFI image again
    bmc.ipmitool("chassis", "bootdev", "pxe", "options=persistent,efiboot")
    for count in (1, 2):
        bmc.ipmitool("power", "reset")
        rescues = events.wait_for("rescue", count + 1)
        assert rescues[-1]["image"] == ipxe_images["uefi"]
        assert rescues[-1]["properties"]["hw_firmware_type"] == "uefi"
        settle(conn, node.id, "RESCUE", timeout=60)
        wait_settled(bmc, node.id)
    flags = bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    assert "Force PXE" in flags and "Options apply to all future boots" in flags
    assert "BIOS EFI boot" in flags
    # the second reset had to leave rescue first
    assert [e["event"] for e in events.all()].count("unrescue") == 2


def test_rebuild_strategy_over_redfish(conn, devcloud_home, ipxe_images, node, name,
                                       bmc_server):
    bmc = serve(bmc_server, name, "rebuild")
    events = VirtEvents(devcloud_home, node.id)
    root = sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", username="admin", password="password",
                       verify=str(bmc.state_dir / "redfish-cert.pem"))
    system = root.get_system(f"/redfish/v1/Systems/{node.id}")
    system.set_system_boot_options(sushy.BootSource.PXE,
                                   enabled=sushy.BootSourceOverrideEnabled.ONCE,
                                   mode=sushy.BootSourceOverrideMode.UEFI)
    system.reset_system(sushy.ResetType.ON)
    spawn = events.wait_for("spawn")[0]   # a rebuild spawns the server again, from the iPXE disk
    assert spawn["image"] == ipxe_images["uefi"]
    settle(conn, node.id, "ACTIVE", timeout=60)   # stopped before: rebuilt, then started
    assert conn.compute.get_server(node.id).image.id == ipxe_images["uefi"]
    deadline = time.monotonic() + 30
    while (system.refresh() or system.power_state) != sushy.PowerState.ON:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert system.boot.enabled == sushy.BootSourceOverrideEnabled.DISABLED   # consumed

    # disk boot: a plain reboot of what is on the disk now, no second rebuild
    system.set_system_boot_options(sushy.BootSource.HDD,
                                   enabled=sushy.BootSourceOverrideEnabled.CONTINUOUS)
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    events.wait_for("reboot_hard")
    assert len(events.wait_for("spawn")) == 1
    system.refresh()
    assert system.boot.target == sushy.BootSource.HDD
    assert system.boot.enabled == sushy.BootSourceOverrideEnabled.CONTINUOUS
    root.__del__()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def make_iso(path, payload: int) -> None:
    tree = path.parent / f"{path.stem}-tree"
    tree.mkdir()
    (tree / "payload.bin").write_bytes(os.urandom(payload))
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-V", "QO_TEST", "-o", str(path),
                    str(tree)], check=True, capture_output=True)


@pytest.fixture
def media_server(tmp_path):
    """A local HTTP server holding a 1 MiB ISO and a 3 MiB one."""
    (tmp_path / "www").mkdir()
    make_iso(tmp_path / "www" / "boot.iso", 1 << 20)
    make_iso(tmp_path / "www" / "big.iso", 3 << 20)
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tmp_path / "www")))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_virtual_media_boots_the_cd_by_rescue(conn, devcloud_home, ipxe_images, node, name,
                                              bmc_server, media_server, tmp_path):
    config = tmp_path / "bmc.yaml"
    config.write_text("media_max_mb: 2\n")
    bmc = serve(bmc_server, name, "rescue", "--config", str(config))
    events = VirtEvents(devcloud_home, node.id)
    verify = str(bmc.state_dir / "redfish-cert.pem")
    root = sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", username="admin", password="password",
                       verify=verify)
    cd = root.get_manager(f"/redfish/v1/Managers/{node.id}").virtual_media.get_member(
        f"/redfish/v1/Managers/{node.id}/VirtualMedia/Cd")
    assert not cd.inserted

    # too large: refused with the reason, nothing inserted
    url = f"{bmc.redfish_url}/redfish/v1/Managers/{node.id}/VirtualMedia/Cd/Actions/" \
          "VirtualMedia.InsertMedia"
    answer = requests.post(url, json={"Image": f"{media_server}/big.iso?token=s3cret"},
                           auth=("admin", "password"), verify=verify, timeout=60)
    assert answer.status_code == 502
    assert "limit" in answer.text and "s3cret" not in answer.text
    assert "s3cret" not in bmc.log

    cd.insert_media(f"{media_server}/boot.iso", inserted=True, write_protected=True)
    cd.refresh()
    assert cd.inserted and cd.image == f"{media_server}/boot.iso"
    media = [i for i in conn.image.images(owner=conn.current_project_id)
             if i.name.startswith("quintupleo-media-")]
    assert len(media) == 1 and media[0].disk_format == "iso"

    system = root.get_system(f"/redfish/v1/Systems/{node.id}")
    system.set_system_boot_options(sushy.BootSource.CD,
                                   enabled=sushy.BootSourceOverrideEnabled.ONCE)
    system.reset_system(sushy.ResetType.ON)
    rescue = events.wait_for("rescue")[0]
    assert rescue["image"] == media[0].id and rescue["disk_format"] == "iso"
    assert rescue["properties"]["hw_rescue_device"] == "cdrom"
    settle(conn, node.id, "RESCUE", timeout=60)

    # eject: the image leaves Glance, the next boot is the node's own disk
    cd.eject_media()
    cd.refresh()
    assert not cd.inserted
    assert conn.image.find_image(media[0].id) is None
    deadline = time.monotonic() + 30
    while (system.refresh() or system.power_state) != sushy.PowerState.ON:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    events.wait_for("unrescue")
    settle(conn, node.id, "ACTIVE", timeout=60)
    root.__del__()


def test_bmc_refuses_a_strategy_without_its_images(conn, node, name, bmc_server, tmp_path):
    config = tmp_path / "bmc.yaml"
    config.write_text("pxe_images: {legacy: no-such-ipxe-image}\n")
    with pytest.raises(AssertionError) as failed:
        serve(bmc_server, name, "rescue", "--config", str(config))
    message = str(failed.value)
    assert "no active image 'no-such-ipxe-image'" in message
    assert "quintupleo image upload --cloud devcloud" in message


def wait_status(conn, server_id: str, status: str, timeout: float = 60):
    """Until Nova shows `status` with no task (ERROR included, unlike smoke.settle)."""
    deadline = time.monotonic() + timeout
    while (server := conn.compute.get_server(server_id)).status != status \
            or server.task_state is not None:
        assert time.monotonic() < deadline, server.status
        time.sleep(0.2)
    return server


def test_a_failed_rescue_is_reported_truthfully(conn, devcloud_home, node, name, bmc_server,
                                                tmp_path):
    """The hypervisor fails the rescue (an image named qo-fault-rescue, see the devcloud's
    recording driver): Nova puts the server in ERROR; the BMC never says "on", Redfish shows
    the fault as Critical health, the log has Nova's reason; a disk boot recovers the node."""
    faulty = conn.image.create_image(name=f"{name}-qo-fault-rescue", data=b"\0" * 512,
                                     disk_format="raw", container_format="bare",
                                     allow_duplicates=True)
    try:
        config = tmp_path / "bmc.yaml"
        config.write_text(f"pxe_images: {{legacy: {faulty.id}, uefi: {faulty.id}}}\n")
        bmc = serve(bmc_server, name, "rescue", "--config", str(config))
        events = VirtEvents(devcloud_home, node.id)
        bmc.ipmitool("chassis", "bootdev", "pxe")
        bmc.ipmitool("power", "on")
        events.wait_for("rescue_failed")
        server = wait_status(conn, node.id, "ERROR")
        assert "injected rescue failure" in server.fault["message"]
        wait_settled(bmc, node.id, "Off")
        system = requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/{node.id}",
                              auth=("admin", "password"), timeout=10,
                              verify=str(bmc.state_dir / "redfish-cert.pem")).json()
        assert system["Status"]["Health"] == "Critical"
        assert "off" in bmc.ipmitool("power", "status").stdout
        deadline = time.monotonic() + 10
        while "injected rescue failure" not in bmc.log:
            assert time.monotonic() < deadline, bmc.log[-2000:]
            time.sleep(0.2)

        bmc.ipmitool("chassis", "bootdev", "disk")
        bmc.ipmitool("power", "on")
        events.wait_for("reboot_hard")
        wait_status(conn, node.id, "ACTIVE")
        wait_settled(bmc, node.id, "On")
        system = requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/{node.id}",
                              auth=("admin", "password"), timeout=10,
                              verify=str(bmc.state_dir / "redfish-cert.pem")).json()
        assert system["Status"]["Health"] == "OK"
    finally:
        conn.image.delete_image(faulty, ignore_missing=True)


def test_an_environment_with_a_boot_strategy_network_boots(conn, devcloud_home, qo_env,
                                                           tmp_path, bmc_server):
    """`env create` puts the iPXE images in Glance itself; the environment's BMC network-boots
    its nodes by rescue; the override set over IPMI reads back over Redfish at every step."""
    name = f"pxe{uuid.uuid4().hex[:6]}"
    spec = tmp_path / "pxe.yaml"
    spec.write_text(f"name: {name}\ncloud: devcloud\n"
                    "networks: {provisioning: {cidr: 192.168.24.0/24}}\n"
                    "roles: {node: {count: 1, flavor: qo.tiny, image: quintupleo-tiny}}\n"
                    "bmc: {boot_strategy: rescue}\n")
    created = qo_env("create", str(spec))
    assert "iPXE image quintupleo-ipxe-uefi" in created.stdout
    document = json.loads(qo_env("nodes", name, "--kind", "ironic").stdout)
    password = document["nodes"][0]["driver_info"]["ipmi_password"]
    server = conn.compute.find_server(document["nodes"][0]["name"])
    uefi = max((i for i in conn.image.images(name="quintupleo-ipxe-uefi")
                if i.status == "active"), key=lambda i: i.created_at)
    bmc = bmc_server("--environment", name, env={"XDG_STATE_HOME": str(tmp_path / "state")})
    events = VirtEvents(devcloud_home, server.id)
    url = f"{bmc.redfish_url}/redfish/v1/Systems/{server.id}"

    def redfish_boot() -> dict:
        return requests.get(url, auth=("admin", password), timeout=10,
                            verify=str(bmc.state_dir / "redfish-cert.pem")).json()["Boot"]

    bmc.ipmitool("chassis", "bootdev", "pxe", "options=efiboot", password=password)
    assert {k: redfish_boot()[k] for k in ("BootSourceOverrideTarget",
                                           "BootSourceOverrideEnabled",
                                           "BootSourceOverrideMode")} == \
        {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once",
         "BootSourceOverrideMode": "UEFI"}
    bmc.ipmitool("power", "on", password=password)
    assert events.wait_for("rescue")[0]["image"] == uefi.id
    settle(conn, server.id, "RESCUE", timeout=60)
    deadline = time.monotonic() + 30
    while requests.get(url, auth=("admin", password), timeout=10,
                       verify=str(bmc.state_dir / "redfish-cert.pem")).json()["PowerState"] != "On":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert redfish_boot()["BootSourceOverrideEnabled"] == "Disabled"   # consumed by that boot
    assert "No override" in bmc.ipmitool("chassis", "bootparam", "get", "5",
                                         password=password).stdout


# ---- on the real host (zone qemu): the boot the BMC asked for, seen on the wire ------------
@pytest.fixture
def real_node(conn, segment, real_server):
    """A node on the real host as environments make them (the tiny image, booted, then
    powered off), on a network without DHCP where a `devcloud netns` runs: (server, port, ns)."""
    network, namespace = segment("pxe")
    server, port = real_server(network, conn.image.find_image("quintupleo-tiny").id)
    conn.compute.stop_server(server)
    return settle(conn, server.id, "SHUTOFF", timeout=60), port, namespace


def disk_booted(conn, server) -> bool:
    return IMAGE_MARKER in conn.compute.get_server_console_output(server)["output"]


def test_rescue_network_boots_a_real_node(conn, ipxe_images, real_node, name, bmc_server,
                                          tmp_path):
    server, port, namespace = real_node
    bmc = serve(bmc_server, name, "rescue")
    with Dnsmasq(namespace, tmp_path) as dhcp:
        bmc.ipmitool("chassis", "bootdev", "pxe")
        bmc.ipmitool("power", "on")
        dhcp.wait_discover(port.mac_address)          # the rescue's iPXE, from the node's MAC
        wait_power(bmc, "on")
        wait_settled(bmc, server.id)                   # the strategy's Nova tasks have ended
        bmc.ipmitool("power", "off")                   # unrescue, then stop
        settle(conn, server.id, "SHUTOFF", timeout=60)
        seen = len(dhcp.discovers())
        bmc.ipmitool("power", "on")                    # the override was once: the disk boots
        wait_until(lambda: disk_booted(conn, server), 60, "the disk's marker")
        wait_settled(bmc, server.id)
        bmc.ipmitool("power", "off")
        settle(conn, server.id, "SHUTOFF", timeout=60)
        assert len(dhcp.discovers()) == seen


def test_rebuild_network_boots_a_real_node_and_rewrites_its_disk(conn, ipxe_images, real_node,
                                                                 name, bmc_server, tmp_path):
    server, port, namespace = real_node
    bmc = serve(bmc_server, name, "rebuild")
    with Dnsmasq(namespace, tmp_path) as dhcp:
        bmc.ipmitool("chassis", "bootdev", "pxe")
        bmc.ipmitool("power", "on")
        dhcp.wait_discover(port.mac_address)
        wait_power(bmc, "on")
        wait_settled(bmc, server.id)                   # the strategy's Nova tasks have ended
        bmc.ipmitool("power", "off")
        settle(conn, server.id, "SHUTOFF", timeout=60)
        # A disk boot now boots what the rebuild wrote: the iPXE image, not the tiny one.
        seen = dhcp.discovers().count(port.mac_address)
        bmc.ipmitool("chassis", "bootdev", "disk")
        bmc.ipmitool("power", "on")
        dhcp.wait_discover(port.mac_address, count=seen + 1)
        assert not disk_booted(conn, server)
        wait_settled(bmc, server.id)
        bmc.ipmitool("power", "off")
        settle(conn, server.id, "SHUTOFF", timeout=60)


CD_MARKER = "QO-NOVA-CD-BOOTED-4c2e"


def redfish_power(bmc, node_id: str) -> str:
    return requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/{node_id}",
                        auth=("admin", "password"), timeout=10,
                        verify=str(bmc.state_dir / "redfish-cert.pem")).json()["PowerState"]


def test_virtual_media_boots_a_real_node_from_the_cd(conn, ipxe_images, real_node, name,
                                                     bmc_server, tmp_path):
    """InsertMedia of an ISO the test builds (El Torito, a marker boot program) + a one-time Cd
    boot: Nova rescues the VM into the ISO and it boots the CD (marker on the BMC's console);
    eject + Hdd: the disk boots again, as it was."""
    server, _, _ = real_node
    tree, www = tmp_path / "iso-tree", tmp_path / "www"
    tree.mkdir()
    www.mkdir()
    (tree / "boot.img").write_bytes(boot_sector(CD_MARKER).ljust(2048, b"\0"))
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(www / "cd.iso"), "-b",
                    "boot.img", "-no-emul-boot", "-boot-load-size", "4", str(tree)],
                   check=True, capture_output=True)
    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(www)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    bmc = serve(bmc_server, name, "rescue")
    root = sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", username="admin", password="password",
                       verify=str(bmc.state_dir / "redfish-cert.pem"))
    sol = SolClient(bmc.port_base)
    try:
        assert sol.read_until("SOL Session operational", 20)
        cd = root.get_manager(f"/redfish/v1/Managers/{server.id}").virtual_media.get_member(
            f"/redfish/v1/Managers/{server.id}/VirtualMedia/Cd")
        cd.insert_media(f"http://127.0.0.1:{files.server_address[1]}/cd.iso", inserted=True,
                        write_protected=True)
        system = root.get_system(f"/redfish/v1/Systems/{server.id}")
        system.set_system_boot_options(sushy.BootSource.CD,
                                       enabled=sushy.BootSourceOverrideEnabled.ONCE)
        system.reset_system(sushy.ResetType.ON)
        assert sol.read_until(CD_MARKER, 90), sol.output[-1500:]
        assert IMAGE_MARKER.encode() not in sol.output
        wait_settled(bmc, server.id)
        assert conn.compute.get_server(server.id).status == "RESCUE"
        cd.eject_media()
        system.set_system_boot_options(sushy.BootSource.HDD,
                                       enabled=sushy.BootSourceOverrideEnabled.ONCE)
        system.reset_system(sushy.ResetType.FORCE_RESTART)
        assert sol.read_until(IMAGE_MARKER, 90), sol.output[-1500:]   # the disk, unchanged
        wait_settled(bmc, server.id)
        assert conn.compute.get_server(server.id).status == "ACTIVE"
        assert sol.output.count(CD_MARKER.encode()) == 1
        system.reset_system(sushy.ResetType.FORCE_OFF)
        settle(conn, server.id, "SHUTOFF", timeout=60)
    finally:
        assert sol.close() == 0
        files.shutdown()
        root.__del__()


@pytest.fixture
def marker_image(conn, tmp_path):
    """Factory: marker_image(then) -> a Glance image whose boot sector prints a marker, then
    halts, powers the guest off or reboots it (as a guest would on its own)."""
    made = []

    def _image(then: str, marker: str):
        path = tmp_path / f"{then}.raw"
        path.write_bytes(marker_disk(marker, then=then))
        image = publish(conn, path, f"qo-test-{then}-{uuid.uuid4().hex[:6]}", "raw", {})
        made.append(image)
        return image

    yield _image
    for image in made:
        conn.image.delete_image(image, ignore_missing=True)


def test_power_fidelity_of_real_nodes(conn, real_host, segment, real_server, marker_image,
                                      name, bmc_server):
    """What a real guest does behind its BMC's back, as the BMC reports it: a guest that powers
    itself off reads Off within one refresh of Nova's SHUTOFF; a guest that reboots itself (over
    and over) is never reported off; `openstack server stop` is seen."""
    network, _ = segment("power")
    quits = marker_image("power-off", "QO-GUEST-POWERS-OFF")
    restarts = marker_image("reboot", "QO-GUEST-REBOOTS")
    quitter, _ = real_server(network, quits.id, "-a", wait=False)
    rebooter, _ = real_server(network, restarts.id, "-b", wait=False)
    settle(conn, quitter.id, "SHUTOFF", timeout=120)      # it booted and powered itself off
    conn.compute.stop_server(rebooter)
    settle(conn, rebooter.id, "SHUTOFF", timeout=120)
    bmc = serve(bmc_server, name, "none")                 # refresh interval 2 s
    assert redfish_power(bmc, quitter.id) == "Off"

    bmc.ipmitool("power", "on", node=0)
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 90
    while "bmc" not in seen:
        assert time.monotonic() < deadline, seen
        now = time.monotonic()
        if "on" not in seen and redfish_power(bmc, quitter.id) == "On":
            seen["on"] = now
        status = conn.compute.get_server(quitter.id).status
        if "active" not in seen and status == "ACTIVE":
            seen["active"] = now
        if "active" in seen and "nova" not in seen and status == "SHUTOFF":
            seen["nova"] = now
        if "nova" in seen and redfish_power(bmc, quitter.id) == "Off":
            seen["bmc"] = now
        time.sleep(0.1)
    assert seen["bmc"] - seen["nova"] <= 2 + 1.5, seen    # one refresh, and the poll's slack

    sol = SolClient(bmc.port_base + 1)
    try:
        assert sol.read_until("SOL Session operational", 20)
        bmc.ipmitool("power", "on", node=1)
        wait_settled(bmc, rebooter.id)
        assert sol.read_until("QO-GUEST-REBOOTS", 60, count=3), sol.output[-500:]
        states = set()
        for _ in range(20):                               # some refreshes while it reboots
            states.add(redfish_power(bmc, rebooter.id))
            time.sleep(0.25)
        assert states == {"On"}, states
        assert conn.compute.get_server(rebooter.id).status == "ACTIVE"
    finally:
        assert sol.close() == 0
    conn.compute.stop_server(rebooter)                    # out of band, behind Ironic's back
    wait_settled(bmc, rebooter.id, "Off", timeout=60)
    assert "off" in bmc.ipmitool("power", "status", node=1).stdout
