"""One lab node as a QEMU process: off means no process, on means a running one.

QEMU runs daemonized (a BMC restart leaves running nodes running), found again by its PID file
and its `-name`. Its serial port is a Unix socket for a live console that also logs everything
to serial.log; SeaBIOS and the NIC's iPXE print there too (sercon), so a boot can be read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from quintupleo.errors import BackendError
from quintupleo.lab.layout import Lab, LabNode
from quintupleo.lab.network import qemu_netdev, qemu_prefix
from quintupleo.model import BootDevice, BootOverride

QEMU = "qemu-system-x86_64"


def boot_args(override: BootOverride) -> list[str]:
    """-boot for this start: disk then network normally; the override first (once or always)."""
    first = {BootDevice.PXE: "n", BootDevice.DISK: "c"}.get(override.device)
    if first is None:
        return ["-boot", "order=cn"]
    if override.persistent:
        return ["-boot", f"order={first}{'c' if first == 'n' else 'n'}"]
    return ["-boot", f"once={first},order=cn"]


class Machine:
    def __init__(self, lab: Lab, node: LabNode) -> None:
        self.lab = lab
        self.node = node
        self.dir = lab.node_dir(node)
        self.qmp_socket = self.dir / "qmp.sock"
        self.console_socket = self.dir / "console.sock"
        self.serial_log = self.dir / "serial.log"
        self.pid_file = self.dir / "qemu.pid"
        self.disk = self.dir / "disk.qcow2"

    @property
    def tag(self) -> str:
        return f"{self.lab.process_tag}{self.node.name}"

    def argv(self, override: BootOverride) -> list[str]:
        node, sercon = self.node, self.dir / "sercon"
        return [
            *qemu_prefix(self.lab), QEMU, "-name", f"{self.tag},process={self.tag}",
            "-accel", self.lab.accel, "-machine", "pc", "-m", str(node.memory_mb),
            "-smp", str(node.cpus), "-uuid", node.uuid,
            "-nodefaults", "-no-user-config", "-display", "none",
            "-S",   # paused until the backend says cont: a console can attach first
            "-daemonize", "-pidfile", str(self.pid_file),
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-chardev", f"socket,id=serial0,path={self.console_socket},server=on,wait=off,"
                        f"logfile={self.serial_log},logappend=on",
            "-serial", "chardev:serial0",
            "-fw_cfg", f"name=etc/sercon-port,file={sercon}",
            "-drive", f"file={self.disk},if=none,id=disk0,format=qcow2,cache=unsafe",
            "-device", "virtio-blk-pci,drive=disk0",
            *qemu_netdev(self.lab, node), *boot_args(override),
        ]

    def create_disk(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        # SeaBIOS's serial console (sercon) port, as the little-endian integer it reads
        (self.dir / "sercon").write_bytes((0x3F8).to_bytes(8, "little"))
        if not self.disk.exists():
            _run(["qemu-img", "create", "-q", "-f", "qcow2", str(self.disk),
                  f"{self.node.disk_gb}G"])

    # ---- life -------------------------------------------------------------------------------
    def pid(self) -> int | None:
        """The node's running QEMU, if any (a stale PID file is not believed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
            process = psutil.Process(pid)
            if self.tag in " ".join(process.cmdline()) and process.status() != "zombie":
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self, override: BootOverride) -> None:
        if self.running():
            return
        self.pid_file.unlink(missing_ok=True)
        self.qmp_socket.unlink(missing_ok=True)
        self.console_socket.unlink(missing_ok=True)
        _run(self.argv(override))   # returns once QEMU has daemonized: its sockets exist

    def kill(self) -> None:
        """Hard power off: the process ends now (no guest shutdown)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.01)


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BackendError(f"{Path(argv[0]).name} failed: {result.stderr.strip()[-500:]}")


def find_processes(tag: str) -> list[psutil.Process]:
    """Every QEMU whose -name carries `tag` (a lab's processes, PID files or not)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info.get("cmdline") or []
        if cmdline and QEMU in Path(cmdline[0]).name and any(tag in a for a in cmdline):
            found.append(process)
    return found
