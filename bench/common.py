"""Helpers shared by the benchmarks: percentiles, our server as a process, alternatives' venvs."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.table import Table

PY = sys.executable
BENCH_CACHE = Path.home() / ".cache" / "quintupleo" / "bench"
console = Console()

# pyghmi's fakebmc bound to loopback (its own main binds every interface).
FAKEBMC = """
import sys
from pyghmi.cmd.fakebmc import FakeBmc
from pyghmi.ipmi import bmc
class LoopbackBmc(FakeBmc):
    def __init__(self, port):
        bmc.Bmc.__init__(self, {"admin": "password"}, port=port, address="::ffff:127.0.0.1")
        self.powerstate = "off"; self.bootdevice = "default"
LoopbackBmc(int(sys.argv[1])).listen()
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ms(value: float) -> str:
    return f"{value * 1000:.2f} ms" if value < 0.1 else f"{value * 1000:.0f} ms"


def wait_ready(proc: subprocess.Popen, log: Path, marker: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while marker not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"not ready ({marker!r}):\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


def serve(tmp: Path, tag: str, *args: str) -> tuple[subprocess.Popen, Path]:
    log = tmp / f"{tag}.log"
    proc = subprocess.Popen([PY, "-m", "quintupleo", "bmc", "serve", "--state-dir",
                             str(tmp / tag), *args], stdout=log.open("w"),
                            stderr=subprocess.STDOUT)
    wait_ready(proc, log, "ready:", 120)
    return proc, log


def stop(*procs: subprocess.Popen) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def rss_mib(proc: subprocess.Popen) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 2**20


def venv_with(name: str, *requirements: str) -> Path:
    """The python of a venv of its own under ~/.cache/quintupleo/bench (made on first use)."""
    python = BENCH_CACHE / name / "bin" / "python"
    if not python.exists():
        console.print(f"installing {' '.join(requirements)} into {python.parent.parent} …")
        subprocess.run([PY, "-m", "venv", str(python.parent.parent)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    return python


def print_table(title: str, alternative: str, rows: list[tuple[str, ...]],
                columns: tuple[str, ...] | None = None) -> None:
    """Rows of figures; by default: setup, figure, ours, the alternative's, ratio."""
    columns = columns or ("setup", "figure", "QuintupleO", alternative, "ratio / target")
    table = Table(*columns, title=title, expand=True)
    for row in rows:
        table.add_row(*row)
    console.print(table)
