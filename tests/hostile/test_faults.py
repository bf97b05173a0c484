"""Faults: the cloud's API slow or down in the middle of an action, the BMC killed in the middle
of a boot-device change and of a virtual-media insert, a corrupt state file. Each asserts that
the BMC answers, that nothing is lost (boot override, inserted media) and nothing is left."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import random
import signal
import threading
import time

import pytest
import requests

from harness.rmcp import Console
from quintupleo.devcloud import processes
from quintupleo.devcloud.smoke import settle

CHASSIS, SET_BOOT_OPTIONS = 0x00, 0x08
# boot flags (parameter 5) and how Redfish shows them: (target, enabled, mode)
OVERRIDES = [(bytes([0xA0, 0x04, 0, 0, 0]), ("Pxe", "Once", "UEFI")),
             (bytes([0xC0, 0x08, 0, 0, 0]), ("Hdd", "Continuous", "Legacy")),
             (bytes([0xE0, 0x14, 0, 0, 0]), ("Cd", "Continuous", "UEFI")),
             (bytes([0x80, 0x18, 0, 0, 0]), ("BiosSetup", "Once", "Legacy"))]


def redfish(bmc, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{bmc.redfish_url}{path}", auth=("admin", "password"),
                            verify=str(bmc.state_dir / "redfish-cert.pem"), timeout=10, **kwargs)


def shown_override(bmc, node: str) -> tuple[str, str, str]:
    boot = redfish(bmc, "GET", f"/redfish/v1/Systems/{node}").json()["Boot"]
    return (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"],
            boot["BootSourceOverrideMode"])


def wait_log(bmc, text: str, timeout: float, count: int = 1) -> None:
    deadline = time.monotonic() + timeout
    while bmc.log.count(text) < count:
        assert time.monotonic() < deadline, f"no {text!r} #{count}:\n{bmc.log[-2000:]}"
        time.sleep(0.2)


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_a_corrupt_state_file_is_named_and_left_as_it_is(bmc_server, tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    for name in ("boot.sqlite", "accounts.sqlite"):
        garbage = random.Random(name).randbytes(8192)
        (state / name).write_bytes(garbage)
        with pytest.raises(AssertionError, match="exited 1") as failed:
            bmc_server("--fake-nodes", "1", state_dir=state)
        output = str(failed.value)
        assert f"{state / name} is not a usable SQLite database" in output.replace("\n", "")
        assert "Traceback" not in output
        assert (state / name).read_bytes() == garbage            # left for the user
        (state / name).unlink()


def test_killed_in_the_middle_of_boot_device_changes_it_keeps_the_last_acknowledged(
        bmc_server, tmp_path):
    """Boot flags set as fast as a console can, the BMC killed (-9) at a random moment: after a
    restart the override is the last one acknowledged, or the one that was in flight."""
    state, port_base = tmp_path / "state", None
    rng = random.Random(8)
    for _ in range(3):
        bmc = bmc_server("--fake-nodes", "1", state_dir=state, port_base=port_base)
        port_base = bmc.port_base
        console = Console(bmc.port_base, timeout=0.5)
        console.login()
        acknowledged, in_flight = None, None
        killer = threading.Timer(rng.uniform(0.2, 0.8), bmc.proc.send_signal, [signal.SIGKILL])
        killer.start()
        for index in range(100_000):
            flags, shown = OVERRIDES[index % len(OVERRIDES)]
            in_flight = shown
            try:
                code, _ = console.command(CHASSIS, SET_BOOT_OPTIONS, bytes([5]) + flags)
            except TimeoutError:
                break
            assert code == 0
            acknowledged = shown
        killer.join()
        bmc.proc.wait(10)
        console.close()
        assert acknowledged is not None
        again = bmc_server("--fake-nodes", "1", state_dir=state, port_base=port_base)
        assert shown_override(again, "fake-0") in (acknowledged, in_flight)
        assert again.stop() == 0


class TrickleHandler(http.server.BaseHTTPRequestHandler):
    """A CD image: sent whole for /fast.iso, a little at a time for /slow.iso."""

    image = os.urandom(256 * 1024)
    started = threading.Event()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.image)))
        self.end_headers()
        if self.path == "/fast.iso":
            self.wfile.write(self.image)
            return
        self.started.set()
        for offset in range(0, len(self.image), 4096):
            try:
                self.wfile.write(self.image[offset:offset + 4096])
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.2)

    def log_message(self, *args: object) -> None:
        pass


def test_killed_in_the_middle_of_a_media_insert_it_keeps_the_cd_it_had(console_bmc):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), TrickleHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    media = "/redfish/v1/Managers/node-0/VirtualMedia/Cd"
    try:
        bmc = console_bmc()
        node_dir = bmc.env["QUINTUPLEO_HOME"] + "/labs"
        inserted = redfish(bmc, "POST", f"{media}/Actions/VirtualMedia.InsertMedia",
                           json={"Image": f"{base}/fast.iso"})
        assert inserted.status_code == 204
        digest = hashlib.sha256(TrickleHandler.image).hexdigest()[:16]
        kept = [p for p in _media_files(node_dir)]
        assert [p.name for p in kept] == [f"media-{digest}.iso"]
        # a second insert, killed while its image trickles in
        def insert_slowly() -> None:     # its answer never comes: the BMC is killed
            with contextlib.suppress(requests.RequestException):
                redfish(bmc, "POST", f"{media}/Actions/VirtualMedia.InsertMedia",
                        json={"Image": f"{base}/slow.iso"})
        threading.Thread(target=insert_slowly, daemon=True).start()
        assert TrickleHandler.started.wait(10)
        time.sleep(1)
        assert any(p.name.startswith("qo-media-") for p in _media_files(node_dir))   # partial
        bmc.proc.send_signal(signal.SIGKILL)
        bmc.proc.wait(10)
        bmc.start()
        cd = redfish(bmc, "GET", media).json()
        assert cd["Inserted"] is True and cd["Image"] == f"{base}/fast.iso"   # nothing lost
        assert [p.name for p in _media_files(node_dir)] == [f"media-{digest}.iso"]  # nor left
        assert redfish(bmc, "POST", f"{media}/Actions/VirtualMedia.EjectMedia",
                       json={}).status_code == 204
        assert not _media_files(node_dir)
    finally:
        server.shutdown()


def _media_files(labs: str) -> list:
    from pathlib import Path
    return sorted(Path(labs).glob("*/nodes/*/*media-*.iso"))


# ---- the cloud's API slow, then down, in the middle of actions -----------------------------
@pytest.mark.devcloud
def test_the_cloud_slow_or_down_in_the_middle_of_an_action(devcloud, conn, boot, name,
                                                           bmc_server):
    server = boot("-0")
    bmc = bmc_server("--backend", "openstack", "--cloud", "devcloud", "--server", server.id,
                     "--refresh-interval", "1")
    node = server.id
    bmc.ipmitool("chassis", "bootdev", "pxe", "options=persistent")
    bmc.ipmitool("power", "off")
    settle(conn, server.id, "SHUTOFF", timeout=60)
    nova_api = processes.running(devcloud.layout, "nova-api")
    assert nova_api is not None

    # slow: the compute API stops answering while a power-on is under way
    os.killpg(nova_api.pid, signal.SIGSTOP)
    try:
        bmc.ipmitool("power", "on")                           # accepted at once
        time.sleep(3)
        assert timed(lambda: bmc.ipmitool("power", "status")) < 3     # reads still answer
        assert timed(lambda: redfish(bmc, "GET", f"/redfish/v1/Systems/{node}")) < 3
        assert "Chassis Power is on" in bmc.ipmitool("power", "status").stdout
    finally:
        os.killpg(nova_api.pid, signal.SIGCONT)
    settle(conn, server.id, "ACTIVE", timeout=90)             # the action went through
    time.sleep(3)                                             # and the BMC saw it (1 s polls)
    recovered = bmc.log.count("node states readable again")

    # down: the compute API is gone while a power-off is asked for
    processes.stop(devcloud.layout, "nova-api")
    try:
        assert redfish(bmc, "POST", f"/redfish/v1/Systems/{node}/Actions/ComputerSystem.Reset",
                       json={"ResetType": "ForceOff"}).status_code == 204
        wait_log(bmc, "off failed", 30)
        wait_log(bmc, "cannot read node states", 30, count=recovered + 1)
        assert timed(lambda: bmc.ipmitool("power", "status")) < 3
        # the off never reached Nova: the BMC says what Nova last showed, not what was asked
        assert "Chassis Power is on" in bmc.ipmitool("power", "status").stdout
        assert redfish(bmc, "GET", f"/redfish/v1/Systems/{node}").status_code == 200
    finally:
        devcloud.up()                                         # back, as an operator would
    wait_log(bmc, "node states readable again", 60, count=recovered + 1)
    assert "Chassis Power is on" in bmc.ipmitool("power", "status").stdout   # what Nova says
    bmc.ipmitool("power", "off")                              # and actions work again
    settle(conn, server.id, "SHUTOFF", timeout=60)
    flags = bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    assert "Force PXE" in flags and "all future boots" in flags   # the override kept
    bmc.stop()
    assert "Traceback" not in bmc.log
    assert "the cloud did not answer" in bmc.log
