"""Start and stop the processes of the local cloud, each in its own process group.

A PID file holds "pid create-time" so that a recycled PID is never mistaken for ours: we only ever
signal a process whose start time matches what we recorded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from quintupleo.devcloud.layout import HOST, Layout
from quintupleo.reaping import wait_gone


@dataclass(frozen=True)
class Running:
    pid: int
    process: psutil.Process

    @property
    def rss(self) -> int:
        """Resident memory of the whole process group (uWSGI workers, forked helpers)."""
        total = 0
        for proc in [self.process, *self.process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


def spawn(layout: Layout, name: str, argv: Sequence[str], env: Mapping[str, str],
          cwd: Path | None = None) -> int:
    """Start one service in a new session, its output appended to its log file."""
    log = layout.log(name)
    log.parent.mkdir(parents=True, exist_ok=True)
    layout.run.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {name}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=dict(env), cwd=cwd, start_new_session=True,
        )
    created = psutil.Process(proc.pid).create_time()
    layout.pid_file(name).write_text(f"{proc.pid} {created}\n")
    return proc.pid


def running(layout: Layout, name: str) -> Running | None:
    """The live process recorded in NAME's PID file, or None (a stale file is removed)."""
    pid_file = layout.pid_file(name)
    try:
        pid_text, created_text = pid_file.read_text().split()
        pid, created = int(pid_text), float(created_text)
    except (FileNotFoundError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) < 0.05 and proc.status() != psutil.STATUS_ZOMBIE:
            return Running(pid, proc)
    except psutil.Error:
        pass
    pid_file.unlink(missing_ok=True)
    return None


def stop(layout: Layout, name: str, timeout: float = 15.0) -> bool:
    """TERM the service's process group, then KILL what is left. True if it was running."""
    current = running(layout, name)
    if current is None:
        return False
    group = [current.process, *current.process.children(recursive=True)]
    _signal_group(current.pid, signal.SIGTERM)
    alive = wait_gone(group, timeout)
    if alive:
        with layout.log(name).open("a") as log:  # so a slow stop can be traced to its process
            names = ", ".join(f"{p.pid} {_name(p)}" for p in alive)
            log.write(f"\n==== still alive {timeout:.0f} s after TERM, killed: {names}\n")
        _signal_group(current.pid, signal.SIGKILL)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        wait_gone(alive, 5.0)
    layout.pid_file(name).unlink(missing_ok=True)
    return True


def _name(proc: psutil.Process) -> str:
    try:
        return str(proc.name())
    except psutil.Error:
        return "?"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return True
    return False


def port_owner(port: int) -> str:
    """A short description of who listens on PORT, for error messages."""
    try:
        for conn in psutil.net_connections(kind="inet"):
            listening = conn.laddr and conn.status == psutil.CONN_LISTEN
            if listening and conn.laddr.port == port and conn.pid:
                return f"PID {conn.pid} ({psutil.Process(conn.pid).name()})"
    except psutil.Error:
        pass
    return "another process"


def first_error(path: Path, since: int = 0) -> str | None:
    """The first CRITICAL (else ERROR) line written to PATH after byte offset SINCE: the cause,
    which a dying uWSGI's later lines (workers killed mid-import) can push out of the tail."""
    found: dict[str, str] = {}
    for line in log_tail(path, lines=10**6, since=since).splitlines():
        for level in (" CRITICAL ", " ERROR "):
            if level in line and level not in found:
                found[level] = line.strip()
    return found.get(" CRITICAL ") or found.get(" ERROR ")


def log_tail(path: Path, lines: int = 12, since: int = 0) -> str:
    """The last lines written to PATH after byte offset SINCE."""
    try:
        with path.open("rb") as fh:
            fh.seek(since)
            text = fh.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])
