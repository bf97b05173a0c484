"""What crosses a devcloud network, seen from a `devcloud netns`: a real dnsmasq answering DHCP
and tcpdump, each in the namespace; and libvirt's own view of a real host's domains (virsh)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

# Found once, at import: a test may narrow PATH later (the devcloud's missing-program test).
IP, NFT = shutil.which("ip") or "/usr/sbin/ip", shutil.which("nft") or "/usr/sbin/nft"


def wait_until(check, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        time.sleep(interval)
    return result


class _InNamespace:
    """A program run in a namespace, its output in a file; stopped on exit."""

    def __init__(self, namespace: str, log: Path, argv: list[str]) -> None:
        self.log = log
        self.process = subprocess.Popen([IP, "netns", "exec", namespace, *argv],
                                        stdout=log.open("w"), stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def __enter__(self):
        return self

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.process.wait(10)


class Dnsmasq(_InNamespace):
    """A DHCP server on the namespace's eth0 (no DNS), logging every DHCP exchange."""

    def __init__(self, namespace: str, workdir: Path,
                 pool: str = "198.51.100.100,198.51.100.200", extra: tuple[str, ...] = ()):
        super().__init__(namespace, workdir / f"dnsmasq-{namespace}.log", [
            "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0", "--interface=eth0",
            "--bind-interfaces", f"--dhcp-range={pool}", "--no-ping", "--log-dhcp",
            f"--dhcp-leasefile={workdir / f'{namespace}.leases'}", *extra])

    def discovers(self) -> list[str]:
        """The MACs of the DHCPDISCOVERs it saw, in order."""
        return re.findall(r"DHCPDISCOVER\(eth0\) ([0-9a-f:]{17})", self.text())

    def wait_discover(self, mac: str, timeout: float = 90, count: int = 1) -> None:
        wait_until(lambda: self.discovers().count(mac) >= count, timeout,
                   f"DHCPDISCOVER from {mac} (seen: {self.discovers()})")


class Capture(_InNamespace):
    """tcpdump on the namespace's eth0: link-level headers, no name lookups, line-buffered."""

    def __init__(self, namespace: str, workdir: Path, expression: str = ""):
        super().__init__(namespace, workdir / f"tcpdump-{namespace}.log",
                         ["tcpdump", "-l", "-n", "-e", "-i", "eth0", *expression.split()])
        wait_until(lambda: "listening on" in self.text(), 10, "tcpdump start")


def virsh(layout, *args: str) -> str:
    uri = f"qemu+unix:///system?socket={layout.libvirt_socket}"
    return subprocess.run(["virsh", "-c", uri, *args], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def links() -> dict[str, str | None]:
    """Every network device: its master (a bridge), or None."""
    import json
    return {link["ifname"]: link.get("master") for link in json.loads(subprocess.run(
        [IP, "-j", "link", "show"], capture_output=True, text=True, check=True).stdout)}
