"""What the Ironic tier's tests share: views of a BMC asked directly (not through Ironic), and
the enrollment every test starts with."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
import time
from pathlib import Path

import requests
from ironic_report import Report

from harness.ironic import Ironic


class IpmiView:
    """What the BMC says, asked with ipmitool (not through Ironic)."""

    def __init__(self, bmc, node: int) -> None:
        self.bmc, self.node = bmc, node

    def power(self) -> str:
        out = self.bmc.ipmitool("power", "status", node=self.node).stdout
        return "on" if "is on" in out else "off"

    def set_power(self, state: str) -> None:
        self.bmc.ipmitool("power", state, node=self.node)

    def boot(self) -> tuple[str, bool, str]:
        """(device, persistent, mode) of the boot flags."""
        out = self.bmc.ipmitool("chassis", "bootparam", "get", "5", node=self.node).stdout
        device = ("pxe" if "Force PXE" in out else "disk" if "Hard-Drive" in out
                  else "none")
        return (device, "all future boots" in out,
                "uefi" if "BIOS EFI boot" in out else "bios")


class RedfishView:
    """What the BMC says, asked over plain HTTP (not through Ironic)."""

    def __init__(self, bmc, node: str, cert: str,
                 auth: tuple[str, str] = ("admin", "password")) -> None:
        self.url = f"{bmc.redfish_url}/redfish/v1/Systems/{node}"
        self.cert, self.auth = cert, auth

    def _system(self) -> dict:
        return requests.get(self.url, auth=self.auth, verify=self.cert, timeout=10).json()

    def get(self, path: str) -> dict:
        """Any resource of the service, by its path."""
        response = requests.get(self.url.split("/redfish/")[0] + path, auth=self.auth,
                                verify=self.cert, timeout=10)
        response.raise_for_status()
        return response.json()

    def power(self) -> str:
        return self._system()["PowerState"].lower()

    def set_power(self, state: str) -> None:
        reset = {"on": "On", "off": "ForceOff"}[state]
        requests.post(f"{self.url}/Actions/ComputerSystem.Reset", json={"ResetType": reset},
                      auth=self.auth, verify=self.cert, timeout=10).raise_for_status()

    def boot(self) -> tuple[str, bool, str]:
        boot = self._system()["Boot"]
        device = {"Pxe": "pxe", "Hdd": "disk"}.get(boot["BootSourceOverrideTarget"], "none")
        if boot["BootSourceOverrideEnabled"] == "Disabled":
            device = "none"
        return (device, boot["BootSourceOverrideEnabled"] == "Continuous",
                "uefi" if boot["BootSourceOverrideMode"] == "UEFI" else "bios")


def wait_for(check, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def enroll(ir: Ironic, report: Report, section: str, inventory: Path,
           patch: dict | None = None) -> list[str]:
    """`baremetal create` on QuintupleO's inventory, then manage (Ironic checks the BMC's
    credentials) and provide; validate says power and management are usable."""
    names = [n["name"] for n in json.loads(inventory.read_text())["nodes"]]
    with report.step(section, f"enroll {len(names)} node(s) with `baremetal create`"):
        ir.enroll(inventory)
        assert [ir.node(n)["provision_state"] for n in names] == ["enroll"] * len(names)
    for name in names:
        if patch:
            ir.call("PATCH", f"nodes/{name}", [{"op": "add", "path": f"/{path}", "value": value}
                                               for path, value in patch.items()])
        with report.step(section, f"{name}: manage (credentials verified) → provide"):
            ir.provision(name, "manage", "manageable")
            ir.provision(name, "provide", "available")
        with report.step(section, f"{name}: validate power and management"):
            result = ir.validate(name)
            assert result["power"]["result"] is True, result["power"]
            assert result["management"]["result"] is True, result["management"]
    return names


def set_boot_mode(ir: Ironic, name: str, mode: str, bmc) -> None:
    """The node's boot mode, as a user tells Ironic: its capabilities (the ipmi hardware type
    sends the mode with each boot device), and for Redfish the boot mode API as well."""
    ir.call("PATCH", f"nodes/{name}", [{"op": "replace", "path": "/properties/capabilities",
                                        "value": f"boot_mode:{mode}"}])
    if isinstance(bmc, RedfishView):
        ir.call("PUT", f"nodes/{name}/states/boot_mode", {"target": mode})
        ir.wait(name, lambda n: n["boot_mode"] == mode, f"boot mode {mode}")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:   # no line per request
        pass


@contextlib.contextmanager
def http_server(root: Path, port: int = 0):
    """An HTTP server of `root` on 127.0.0.1 (a web server of images, Ironic's http_root):
    its URL."""
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
