"""Load on one BMC process at scale, as Ironic puts it there: N fake nodes (10,000 by default),
every node's power state polled once per period over IPMI (a new RMCP+ session per call, closed
after, as Ironic's ipmitool does) and over Redfish, then a burst of boot-device changes over
both; beside sushy-tools' fake driver at the same N (Redfish only: it has no IPMI).

    python bench/bmc_scale.py [--nodes 10000] [--period 60] [--burst 200]

Figures: start-up until the first answer, RSS, the server's CPU (% of one core) while polled,
p50/p99 latencies, the poll rate reached, errors. The client runs on the same two cores: a
rate below the asked one is the client's limit as much as the server's.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests
from bmc_redfish import AUTH, sushy_emulator
from common import PY, ms, pct, print_table, stop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.rmcp import Console

APP, CHASSIS = 0x06, 0x00
CLOSE_SESSION, GET_CHASSIS_STATUS, SET_BOOT_OPTIONS = 0x3C, 0x01, 0x08
BOOT_PXE_ONCE = bytes([0x05, 0x80, 0x04, 0x00, 0x00, 0x00])
IPMI_BASE, REDFISH_PORT, SUSHY_PORT = 30000, 18700, 18701


def ipmi_power(port: int) -> None:
    """What `ipmitool power status` does: log in, ask, close the session (the harness's
    session holds the BMC's session ID as the one it seals to: `console_id`)."""
    console = Console(port, timeout=5)
    try:
        session = console.login()
        code, _ = console.command(CHASSIS, GET_CHASSIS_STATUS)
        assert code == 0, f"completion code {code:#x}"
        console.command(APP, CLOSE_SESSION, struct.pack("<I", session.console_id))
    finally:
        console.close()


def ipmi_boot(port: int) -> None:
    console = Console(port, timeout=5)
    try:
        session = console.login()
        code, _ = console.command(CHASSIS, SET_BOOT_OPTIONS, BOOT_PXE_ONCE)
        assert code == 0, f"completion code {code:#x}"
        console.command(APP, CLOSE_SESSION, struct.pack("<I", session.console_id))
    finally:
        console.close()


def paced(calls: list[Callable[[], None]], seconds: float, workers: int
          ) -> tuple[list[float], int, float]:
    """Run `calls` spread evenly over `seconds` by `workers` threads: (latencies, errors,
    calls per second reached)."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    began = time.monotonic()
    interval = seconds / max(1, len(calls))

    def worker(index: int) -> None:
        for number in range(index, len(calls), workers):
            delay = began + number * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.perf_counter()
            try:
                calls[number]()
            except Exception:   # counted, not raised: the figure is how many failed
                with lock:
                    errors[0] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, errors[0], len(calls) / (time.monotonic() - began)


class Redfish:
    def __init__(self, base: str, auth: tuple[str, str] | None) -> None:
        self.base, self.local = base, threading.local()
        self.auth = auth

    def session(self) -> requests.Session:
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.auth = self.auth
        return self.local.session

    def systems(self) -> list[str]:
        members = self.session().get(f"{self.base}/redfish/v1/Systems", timeout=600).json()
        return [m["@odata.id"] for m in members["Members"]]

    def power(self, path: str) -> None:
        self.session().get(f"{self.base}{path}", timeout=60).raise_for_status()

    def boot(self, path: str) -> None:
        self.session().patch(f"{self.base}{path}", timeout=60, json={"Boot": {
            "BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}}
            ).raise_for_status()


def started(proc: psutil.Popen | psutil.Process, ready: Callable[[], bool], began: float,
            what: str) -> float:
    while not ready():
        if time.monotonic() - began > 600 or (isinstance(proc, psutil.Popen)
                                              and proc.poll() is not None):
            raise SystemExit(f"{what} did not start")
        time.sleep(0.2)
    return time.monotonic() - began


def answers(url: str, auth: tuple[str, str] | None) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, auth=auth, timeout=5).ok
        except requests.RequestException:
            return False
    return check


def measure(figures: dict[str, str], proc: psutil.Process, redfish: Redfish, nodes: int,
            period: float, burst: int, ipmi: bool) -> None:
    paths = redfish.systems()
    figures["RSS after start"] = f"{proc.memory_info().rss / 2**20:.0f} MiB"
    cpu = proc.cpu_times()
    polls: list[Callable[[], None]] = [lambda p=p: redfish.power(p) for p in paths[:nodes]]
    threads = []
    results: dict[str, tuple[list[float], int, float]] = {}
    if ipmi:
        calls = [lambda port=IPMI_BASE + i: ipmi_power(port) for i in range(nodes)]
        threads.append(threading.Thread(target=lambda: results.__setitem__(
            "ipmi", paced(calls, period, 16))))
    threads.append(threading.Thread(target=lambda: results.__setitem__(
        "redfish", paced(polls, period, 8))))
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    spent = proc.cpu_times()
    busy = (spent.user + spent.system - cpu.user - cpu.system) / (time.monotonic() - began)
    figures[f"CPU while every node is polled once in {period:.0f} s"] = \
        f"{busy * 100:.0f} % of a core"
    for protocol, (latencies, errors, rate) in sorted(results.items()):
        what = "IPMI power status (login, ask, close)" if protocol == "ipmi" \
            else "Redfish GET system"
        figures[f"{what}: p50 / p99, rate, errors"] = (
            f"{ms(pct(latencies, .5))} / {ms(pct(latencies, .99))}, {rate:.0f}/s, {errors}"
            if latencies else f"none answered, {errors} errors")
    if ipmi:
        latencies, errors, _ = paced([lambda port=IPMI_BASE + i: ipmi_boot(port)
                                      for i in range(burst)], 0, 16)
        figures[f"burst: {burst} IPMI boot-device changes, p50 / p99, errors"] = \
            f"{ms(pct(latencies, .5))} / {ms(pct(latencies, .99))}, {errors}"
    latencies, errors, rate = paced([lambda p=p: redfish.boot(p) for p in paths[:burst]], 0, 8)
    figures[f"burst: {burst} Redfish boot-override PATCHes, p50 / p99, errors"] = \
        f"{ms(pct(latencies, .5))} / {ms(pct(latencies, .99))}, {errors}"
    figures["RSS after the poll"] = f"{proc.memory_info().rss / 2**20:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--period", type=float, default=60.0)
    parser.add_argument("--burst", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-scale-"))
    ours_figures: dict[str, str] = {}
    began = time.monotonic()
    ours = psutil.Popen([PY, "-m", "quintupleo", "bmc", "serve", "--fake-nodes",
                         str(args.nodes), "--no-tls", "--ipmi-port-base", str(IPMI_BASE),
                         "--redfish-port", str(REDFISH_PORT), "--state-dir", str(tmp / "ours"),
                         "--log-level", "warning"],
                        stdout=(tmp / "ours.log").open("w"), stderr=-2)
    base = f"http://127.0.0.1:{REDFISH_PORT}"
    try:
        seconds = started(ours, answers(f"{base}/redfish/v1/Systems", AUTH), began, "bmc serve")
        ours_figures["start-up until Redfish answers"] = f"{seconds:.1f} s"
        measure(ours_figures, ours, Redfish(base, AUTH), args.nodes, args.period, args.burst,
                ipmi=True)
    finally:
        stop(ours)
    theirs_figures: dict[str, str] = {}
    config = "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = [\n" + ",\n".join(
        f"  {{'uuid': '00000000-0000-4000-8000-{i:012x}', 'name': 'fake-{i}', "
        f"'power_state': 'Off', 'nics': [{{'mac': '52:54:00:{i >> 16 & 255:02x}:"
        f"{i >> 8 & 255:02x}:{i & 255:02x}', 'ip': '10.{i >> 16}.{i >> 8 & 255}.{i & 255}'}}]}}"
        for i in range(args.nodes)) + "\n]\n"
    began = time.monotonic()
    try:
        theirs = sushy_emulator(tmp, SUSHY_PORT, config)
    except SystemExit as exc:
        theirs_figures["start-up until Redfish answers"] = f"did not start: {str(exc)[:80]}"
    else:
        try:
            theirs_figures["start-up until Redfish answers"] = \
                f"{time.monotonic() - began:.1f} s"
            measure(theirs_figures, psutil.Process(theirs.pid),
                    Redfish(f"http://127.0.0.1:{SUSHY_PORT}", None), args.nodes, args.period,
                    args.burst, ipmi=False)
        finally:
            stop(theirs)
    rows = [(figure, value, theirs_figures.get(figure, "(no IPMI)" if "IPMI" in figure
                                                else "-"))
            for figure, value in ours_figures.items()]
    print_table(f"one BMC process, {args.nodes} fake nodes polled as Ironic polls them",
                "sushy-emulator (fake driver)", rows,
                ("figure", "QuintupleO", "sushy-emulator (fake driver)"))


if __name__ == "__main__":
    main()
