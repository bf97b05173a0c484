"""The virtual BMC as a real process (`quintupleo bmc serve`), and the real ipmitool as Ironic
runs it: shared by the test tiers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class BmcProcess:
    """`quintupleo bmc serve ARGS` started for a test; its combined output is in `log`."""

    def __init__(self, args: list[str], state_dir: Path, port_base: int,
                 env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env
        self.state_dir = state_dir
        self.port_base = port_base
        self.log_path = state_dir / f"bmc-{port_base}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> BmcProcess:
        command = [sys.executable, "-m", "quintupleo", "bmc", "serve",
                   "--state-dir", str(self.state_dir), "--ipmi-port-base", str(self.port_base),
                   "--redfish-port", str(self.port_base), *self.args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        offset = log.tell()
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})})
        deadline = time.monotonic() + timeout
        while "ready:" not in self.log[offset:]:
            if self.proc.poll() is not None:
                raise AssertionError(f"bmc serve exited {self.proc.returncode}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"bmc serve not ready in {timeout} s:\n{self.log}")
            time.sleep(0.05)
        return self

    def stop(self) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("bmc serve did not stop on SIGTERM") from None

    @property
    def redfish_url(self) -> str:
        scheme = "http" if "--no-tls" in self.args else "https"
        return f"{scheme}://127.0.0.1:{self.port_base}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def ipmitool(self, *command: str, node: int = 0, password: str = "password",
                 user: str = "admin", cipher: int | None = None, host: str = "127.0.0.1",
                 port: int | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return ipmitool(*command, host=host, port=port or self.port_base + node, user=user,
                        password=password, cipher=cipher, check=check)


def ipmitool(*command: str, host: str, port: int, user: str = "admin",
             password: str = "password", cipher: int | None = None,
             check: bool = True) -> subprocess.CompletedProcess:
    """The real ipmitool binary, as Ironic runs it (-R 1 -N 1, password from a file)."""
    args = ["ipmitool", "-I", "lanplus", "-H", host, "-p", str(port), "-U", user,
            "-L", "ADMINISTRATOR", "-R", "1", "-N", "1"]
    if cipher is not None:
        args += ["-C", str(cipher)]
    env = dict(os.environ, IPMI_PASSWORD=password)
    result = subprocess.run([*args, "-E", *command], capture_output=True, text=True, env=env,
                            timeout=30)
    if check and result.returncode != 0:
        raise AssertionError(f"ipmitool {' '.join(command)} failed: {result.stderr}")
    return result


class SolClient:
    """`ipmitool sol activate` on a pseudo-terminal (it wants a terminal), read as it runs."""

    def __init__(self, port: int, password: str = "password", user: str = "admin") -> None:
        import pty
        self.master, slave = pty.openpty()
        self.process = subprocess.Popen(
            ["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", user,
             "-E", "sol", "activate"], env=dict(os.environ, IPMI_PASSWORD=password),
            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
        os.close(slave)
        self.output = b""

    def read_until(self, text: str, timeout: float, count: int = 1) -> bool:
        import select
        deadline = time.monotonic() + timeout
        while self.output.count(text.encode()) < count and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                with contextlib.suppress(OSError):
                    self.output += os.read(self.master, 4096)
        return self.output.count(text.encode()) >= count

    def text(self) -> str:
        """All the output so far, with what is waiting read first."""
        import select
        while select.select([self.master], [], [], 0)[0]:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.output += chunk
        return self.output.decode(errors="replace")

    def close(self) -> int:
        try:
            os.write(self.master, b"~.")          # ipmitool's escape: deactivate and leave
            return self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            return self.process.wait(10)
        finally:
            os.close(self.master)
