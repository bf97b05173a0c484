"""Unmodified OpenStack Ironic from PyPI, standalone: one process (API and conductor), SQLite,
no authentication, no message bus; the ipmi and redfish hardware types. Facts on running it so:
../shared/notes/ironic.md.

Its venv is built once from `ironic-requirements.lock` (a pip freeze of a known-good install)
and reused.
Ironic is driven through its REST API with short polls (its CLI's --wait backs off to 10 s);
enrollment goes through its own CLI, `baremetal create`, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

LOCK = Path(__file__).with_name("ironic-requirements.lock")
API_VERSION = "latest"


def venv_dir() -> Path:
    data = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data / "quintupleo" / "ironic" / "venv"


def install() -> Path:
    """The venv with Ironic and its client, as the lock says (a no-op when it already is)."""
    venv = venv_dir()
    marker = venv / "quintupleo-lock.sha256"
    digest = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if marker.exists() and marker.read_text() == digest and (venv / "bin" / "ironic").exists():
        return venv
    if not (venv / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                             "--disable-pip-version-check", "-r", str(LOCK)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"installing Ironic failed:\n{result.stderr[-3000:]}")
    marker.write_text(digest)
    return venv


CONFIG = """\
[DEFAULT]
auth_strategy = noauth
rpc_transport = none
host = quintupleo-test
debug = {debug}
log_file = {log}
use_stderr = false
minimum_memory_warning_only = true
enabled_hardware_types = ipmi,redfish
enabled_power_interfaces = ipmitool,redfish
enabled_management_interfaces = ipmitool,redfish
enabled_boot_interfaces = pxe,ipxe
default_boot_interface = {boot}
enabled_deploy_interfaces = ramdisk,direct
default_deploy_interface = ramdisk
enabled_network_interfaces = noop
default_network_interface = noop
enabled_inspect_interfaces = no-inspect,agent,redfish
enabled_console_interfaces = no-console
enabled_bios_interfaces = no-bios,redfish
enabled_raid_interfaces = no-raid,redfish
enabled_rescue_interfaces = no-rescue
enabled_vendor_interfaces = no-vendor
enabled_firmware_interfaces = no-firmware,redfish

[api]
host_ip = {host}
port = {port}

[database]
connection = sqlite:///{work}/ironic.sqlite

[dhcp]
dhcp_provider = none

[conductor]
force_power_state_during_sync = {force}
sync_power_state_interval = {sync}
automated_clean = false
deploy_callback_timeout = 600
# file:// image sources (a test's kernel and initramfs) must lie here
file_url_allowed_paths = {work}/sources
{conductor}
[redfish]
# how often Ironic checks that BIOS settings took effect after the reboot, and a firmware
# update's task (default 60 s); how long it waits for a BMC to restart into new firmware
# (default 300 s) and between its checks that the BMC answers again (default 30 s)
firmware_update_status_interval = 2
firmware_update_reboot_delay = 5
firmware_update_validation_interval = 1

[ipmi]
# the default 5 s makes each power action take ~15 s; 0 crashes Ironic 39 (division by zero)
min_command_interval = 1

[oslo_concurrency]
lock_path = {work}/locks

[pxe]
tftp_root = {work}/tftp
tftp_master_path = {work}/tftp/master
images_path = {work}/images
instance_master_path = {work}/images/master
{pxe}
[deploy]
http_root = {work}/http
http_url = {http_url}
{agent}"""


# The real agent (Ironic Python Agent) reaches the API at `host`, its log on the serial console;
# cleaning erases partition metadata only (the agent's fast step, as Metal3 configures it); fast
# track keeps the agent running from inspection through cleaning to deployment
AGENT = """\
fast_track = true
erase_devices_priority = 0
erase_devices_metadata_priority = 10

[service_catalog]
endpoint_override = http://{host}:{port}

[agent]
deploy_logs_local_path = {work}/deploy-logs
# after the agent's power-off Ironic polls the BMC each second (not each 5 s) for 45 s (not
# 30 s): a Nova guest's own power-off reaches the compute API 15 s late (libvirt's lifecycle
# delay), and the BMC within its refresh interval (10 s)
post_deploy_get_power_state_retry_interval = 1
post_deploy_get_power_state_retries = 45
"""
# (add ipa-debug=1 for the agent's debug log)
AGENT_PXE = "kernel_append_params = nofb vga=normal console=ttyS0,115200n8\n"


class Ironic:
    """One standalone Ironic, started for a test run; `work` holds its config, DB and log."""

    def __init__(self, venv: Path, work: Path, port: int, *, force_power_sync: bool = False,
                 sync_interval: int = 600, boot: str = "pxe", http_url: str = "http://127.0.0.1",
                 pxe: str = "", host: str = "127.0.0.1", agent: bool = False,
                 debug: bool = True, conductor: str = "") -> None:
        """`agent`: for the real agent (`direct` deploy, `agent` inspection), which must reach
        the API at `host` (an address on the nodes' network); `conductor`: more lines of its
        [conductor] section."""
        self.venv, self.work, self.port = venv, work, port
        self.log = work / "ironic.log"
        self.url = f"http://{host}:{port}"
        self.process: subprocess.Popen | None = None
        self.sources = work / "sources"
        for sub in ("locks", "tftp/master", "images/master", "http", "sources"):
            (work / sub).mkdir(parents=True, exist_ok=True)
        self.config = work / "ironic.conf"
        self.config.write_text(CONFIG.format(
            log=self.log, port=port, work=work, force=str(force_power_sync).lower(),
            sync=sync_interval, boot=boot, debug=str(debug).lower(), conductor=conductor,
            http_url=http_url, host=host,
            pxe=pxe + (AGENT_PXE if agent else ""),
            agent=AGENT.format(host=host, port=port, work=work) if agent else ""))

    # ---- life -------------------------------------------------------------------------------
    def start(self, timeout: float = 90) -> Ironic:
        bin_dir = self.venv / "bin"
        if not (self.work / "ironic.sqlite").exists():
            subprocess.run([str(bin_dir / "ironic-dbsync"), "--config-file", str(self.config),
                            "create_schema"], check=True, capture_output=True)
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        with (self.work / "ironic.stderr").open("ab") as stderr:   # the child keeps its copy
            self.process = subprocess.Popen(
                [str(bin_dir / "ironic"), "--config-file", str(self.config)],
                stdout=subprocess.DEVNULL, stderr=stderr, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/v1/", timeout=2).ok:
                    return self
            except requests.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Ironic did not start:\n{self.tail()}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def tail(self, chars: int = 3000) -> str:
        text = ""
        for path in (self.work / "ironic.stderr", self.log):
            if path.exists():
                text += path.read_text(errors="replace")[-chars:]
        return text

    # ---- REST ---------------------------------------------------------------------------------
    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201,
             202, 204)) -> Any:
        response = requests.request(method, f"{self.url}/v1/{path}", json=body, timeout=60,
                                    headers={"X-OpenStack-Ironic-API-Version": API_VERSION})
        if response.status_code not in ok:
            raise AssertionError(f"Ironic {method} {path}: {response.status_code} "
                                 f"{response.text[:1500]}")
        return response.json() if response.content else None

    def node(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"nodes/{name}")

    def wait(self, name: str, done: Callable[[dict[str, Any]], bool], what: str,
             timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            node = self.node(name)
            if done(node):
                return node
            if time.monotonic() > deadline:
                raise AssertionError(f"node {name}: no {what} in {timeout} s: "
                                     f"{json.dumps({k: node.get(k) for k in STATE_KEYS})}")
            time.sleep(0.2)

    def provision(self, name: str, target: str, stable: str, timeout: float = 120) -> None:
        self.call("PUT", f"nodes/{name}/states/provision", {"target": target})
        settled = {stable, "enroll", "manageable", "available"}
        node = self.wait(name, lambda n: n["provision_state"].endswith("failed")
                         or (n["target_provision_state"] is None
                             and n["provision_state"] in settled),
                         f"provision state {stable}", timeout)
        assert node["provision_state"] == stable, \
            f"node {name}: {node['provision_state']}: {node['last_error']}"

    def power(self, name: str, target: str, timeout: float = 120) -> dict[str, Any]:
        """`power on`, `power off` or `rebooting`; returns the node once Ironic is done."""
        self.call("PUT", f"nodes/{name}/states/power", {"target": target})
        node = self.wait(name, lambda n: n["target_power_state"] is None, "power change",
                         timeout)
        assert node["last_error"] is None, f"node {name}: {node['last_error']}"
        return node

    def set_boot_device(self, name: str, device: str, persistent: bool) -> None:
        self.call("PUT", f"nodes/{name}/management/boot_device",
                  {"boot_device": device, "persistent": persistent})

    def boot_device(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"nodes/{name}/management/boot_device")

    def validate(self, name: str) -> dict[str, Any]:
        return self.call("GET", f"nodes/{name}/validate")

    def enroll(self, document: Path) -> None:
        """`baremetal create FILE`: Ironic's own CLI enrolls the inventory."""
        env = {**os.environ, "OS_AUTH_TYPE": "none", "OS_ENDPOINT": self.url,
               "OS_BAREMETAL_API_VERSION": "latest"}
        env.pop("OS_CLOUD", None)
        result = subprocess.run([str(self.venv / "bin" / "baremetal"), "create", str(document)],
                                env=env, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"baremetal create: {result.stdout}{result.stderr}")


STATE_KEYS = ("provision_state", "target_provision_state", "power_state", "target_power_state",
              "last_error")

