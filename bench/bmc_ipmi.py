"""Benchmark of the IPMI virtual BMC, side by side with what people use instead, in one run.

    python bench/bmc_ipmi.py [--nodes 1000] [--cloud-nodes 10] [--window 60] [--no-cloud]

- power-status latency (p50/p99) and throughput: ipmitool (a new session per call, as Ironic
  runs it) and pyghmi clients holding a session, many at once; plus the time spent *inside*
  our server per request, at 1,000 nodes;
- RSS of one `bmc serve` process with 10, 100 and 1,000 fake nodes, against one pyghmi
  `fakebmc` process per BMC and one openstack-virtual-baremetal `openstackbmc` per node;
- on the devcloud: Nova API calls per minute for N nodes polled every 60 s, ours against
  `openstackbmc`, counted in nova-api's own request log; power off/on through each.

The alternatives run on the same machine: pyghmi from our test extras; openstackbmc from PyPI
in a venv of its own under ~/.cache/quintupleo/bench (created on first use).
Ratios matter, not absolute times: client, BMCs and cloud share two cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from common import FAKEBMC, PY, ms, pct, print_table, rss_mib, serve, stop, venv_with, wait_ready

from quintupleo.backends.fake import FakeBackend
from quintupleo.bmc.ipmi.server import IpmiEndpoint
from quintupleo.bmc.service import BmcService
from quintupleo.bmc.settings import BmcSettings

OVB = "openstack-virtual-baremetal==1.0.2.dev28"

# A pyghmi client holding one session, polling power for DURATION seconds; prints latencies.
# Cipher suite 3 for everyone: pyghmi's own server accepts 17 at Open Session but then answers
# RAKP 2 with SHA-1, so its client (which tries 17 first) cannot log in to it otherwise.
PYGHMI_CLIENT = """
import json, sys, time
from pyghmi.ipmi import command
from pyghmi.ipmi.private import session
_open = session.Session._open_rmcpplus_request
def _sha1_only(self):
    self.attemptedhash = 1
    _open(self)
session.Session._open_rmcpplus_request = _sha1_only
host, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = command.Command(bmc=host, port=port, userid="admin", password="password")
lat, end = [], time.monotonic() + duration
while time.monotonic() < end:
    t = time.perf_counter(); c.get_power(); lat.append(time.perf_counter() - t)
print(json.dumps(lat))
"""



def ipmitool(port: int, *command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port),
                           "-U", "admin", "-P", "password", *command],
                          capture_output=True, text=True, timeout=60)


def ipmitool_latency(ports: list[int], calls: int, parallel: int) -> tuple[list[float], float]:
    """`power status` from `parallel` ipmitool processes at once; per-call latency, calls/s."""
    latencies: list[float] = []
    lock = threading.Lock()

    def worker(worker_id: int) -> None:
        for i in range(calls // parallel):
            port = ports[(worker_id * 7919 + i) % len(ports)]
            started = time.perf_counter()
            result = ipmitool(port, "power", "status")
            if result.returncode == 0:
                with lock:
                    latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(parallel)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(latencies) / (time.perf_counter() - started)


def pyghmi_load(ports: list[int], clients: int, duration: float) -> tuple[list[float], float]:
    procs = [subprocess.Popen([PY, "-c", PYGHMI_CLIENT, "127.0.0.1",
                               str(ports[(i * 7919) % len(ports)]), str(duration)],
                              stdout=subprocess.PIPE, text=True) for i in range(clients)]
    latencies: list[float] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=duration + 60)
        latencies += json.loads(out or "[]")
    return latencies, len(latencies) / duration


def start_fakebmc(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([PY, "-c", FAKEBMC, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(100):
        if ipmitool(port, "power", "status").returncode == 0:
            return proc
        time.sleep(0.1)
    raise SystemExit("pyghmi fakebmc did not answer")


# ---- inside our server ---------------------------------------------------------------------
def inside_server(nodes: int, port_base: int, tmp: Path, clients: int, duration: float):
    """Run our service in this process with `nodes` fake nodes; time IpmiEndpoint.handle for
    in-session requests while pyghmi clients load it from other processes."""
    inside: list[float] = []
    original = IpmiEndpoint.handle

    def timed(self, datagram: bytes, peer: str):
        started = time.perf_counter()
        answer = original(self, datagram, peer)
        if len(datagram) > 10 and datagram[4] == 6 and datagram[6:10] != b"\0\0\0\0":
            inside.append(time.perf_counter() - started)
        return answer

    IpmiEndpoint.handle = timed
    settings = BmcSettings(backend="fake", fake_nodes=nodes, ipmi_port_base=port_base,
                           state_dir=tmp / "inside")
    ports = list(range(port_base, port_base + nodes))

    async def run():
        service = BmcService(settings, FakeBackend(nodes))
        await service.start()
        try:
            load = await asyncio.to_thread(pyghmi_load, ports, clients, duration)
        finally:
            await service.stop()
        return load

    try:
        client, throughput = asyncio.run(run())
    finally:
        IpmiEndpoint.handle = original
    return inside, client, throughput


# ---- the devcloud --------------------------------------------------------------------------
def nova_requests(log: Path, offset: int) -> list[str]:
    with log.open(errors="replace") as handle:
        handle.seek(offset)
        return [line for line in handle if "nova.api.openstack.requestlog" in line]


def cloud_section(rows: list, tmp: Path, count: int, window: float) -> None:
    import openstack

    from quintupleo.devcloud.layout import default_home
    from quintupleo.devcloud.manager import Devcloud
    from quintupleo.devcloud.smoke import scratch_servers

    cloud = Devcloud(default_home())
    cloud.up()
    conn = openstack.connect(cloud="devcloud")
    ovb_python = venv_with("ovb-venv", OVB)
    run_id = os.urandom(3).hex()
    # ours-all serves `count` nodes (qob-ID-a*, qob-ID-b*), ours-two only qob-ID-a*: the query
    # strings tell their list calls apart in Nova's log.
    names = [f"qob-{run_id}-{'a' if i < 2 else 'b'}{i}" for i in range(count)]
    procs: list[subprocess.Popen] = []
    with scratch_servers(conn, names) as servers:
        try:
            _measure_cloud(rows, tmp, conn, cloud, servers, run_id, ovb_python, procs, window)
        finally:
            stop(*procs)


def _measure_cloud(rows: list, tmp: Path, conn, cloud, servers: list, run_id: str,
                   ovb_python: Path, procs: list, window: float) -> None:
    from quintupleo.devcloud.smoke import settle

    count = len(servers)
    nova_log = cloud.layout.logs / "nova-api.log"
    ours_all, _ = serve(tmp, "ours-all", "--backend", "openstack", "--cloud", "devcloud",
                        "--prefix", f"qob-{run_id}-", "--ipmi-port-base", "18200")
    ours_two, _ = serve(tmp, "ours-two", "--backend", "openstack", "--cloud", "devcloud",
                        "--prefix", f"qob-{run_id}-a", "--ipmi-port-base", "18250")
    procs += [ours_all, ours_two]
    ovb_ports = list(range(18300, 18300 + count))
    for server, port in zip(servers, ovb_ports, strict=True):
        log = tmp / f"ovb-{port}.log"
        proc = subprocess.Popen(
            [str(ovb_python), "-m", "openstack_virtual_baremetal.openstackbmc",
             "--os-cloud", "devcloud", "--instance", server.id, "--address", "127.0.0.1",
             "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT,
            env=dict(os.environ, PYTHONWARNINGS="ignore"))
        procs.append(proc)
        wait_ready(proc, log, "Managing instance", 120)
    ovb_rss = statistics.mean(rss_mib(p) for p in procs[2:])
    ours_rss = rss_mib(ours_all)

    # Every node polled once per 60 s (Ironic's power sync), over `window` seconds.
    offset = nova_log.stat().st_size
    started = time.monotonic()
    while time.monotonic() - started < window:
        for node in range(count):
            ipmitool(18200 + node, "power", "status")
            ipmitool(18300 + node, "power", "status")
        time.sleep(max(0.0, min(60.0, window - (time.monotonic() - started))))
    elapsed = time.monotonic() - started
    lines = nova_requests(nova_log, offset)
    per_min = 60 / elapsed
    prefix_all = f"name=%5Eqob%5C-{run_id}%5C-\""
    ours_all_calls = sum(prefix_all in line for line in lines) * per_min
    ours_two_calls = sum(f"%5C-{run_id}%5C-a\"" in line for line in lines) * per_min
    ovb_calls = sum("GET /v2.1/servers/" in line and "detail" not in line
                    for line in lines) * per_min
    rows.append(("devcloud", f"Nova calls/min, {count} nodes polled every 60 s",
                 f"{ours_all_calls:.0f}", f"{ovb_calls:.0f} (openstackbmc)",
                 f"{ovb_calls / max(ours_all_calls, 1):.1f}x fewer"))
    rows.append(("devcloud", "same, 2 nodes (independent of N)", f"{ours_two_calls:.0f}",
                 "", ""))
    rows.append(("computed", "same, 1,000 nodes (1 poll = 1 GET for openstackbmc)",
                 f"{ours_all_calls:.0f}", f"{ovb_calls / count * 1000:.0f}",
                 f"{ovb_calls / count * 1000 / max(ours_all_calls, 1):.0f}x fewer"))
    rows.append(("devcloud", f"RSS for {count} nodes", f"{ours_rss:.0f} MiB",
                 f"{ovb_rss * count:.0f} MiB ({ovb_rss:.0f} per node)",
                 f"{ovb_rss * count / ours_rss:.1f}x less"))

    # power status latency through each, sequential ipmitool
    ours_lat, _ = ipmitool_latency([18200 + i for i in range(count)], 30, 1)
    ovb_lat, _ = ipmitool_latency(ovb_ports, 30, 1)
    rows.append(("devcloud", "ipmitool power status p50", ms(pct(ours_lat, .5)),
                 ms(pct(ovb_lat, .5)), f"{pct(ovb_lat, .5) / pct(ours_lat, .5):.1f}x"))
    par_ours, tput_ours = ipmitool_latency([18200 + i for i in range(count)], 40, 8)
    par_ovb, tput_ovb = ipmitool_latency(ovb_ports, 40, 8)
    rows.append(("devcloud", "8 parallel ipmitool: p50 / calls per s",
                 f"{ms(pct(par_ours, .5))} / {tput_ours:.0f}",
                 f"{ms(pct(par_ovb, .5))} / {tput_ovb:.0f}",
                 f"{tput_ours / max(tput_ovb, 0.01):.1f}x"))

    # power off then on, until Nova shows the server in the target state
    def power_cycle(port: int, server_id: str) -> tuple[float, float]:
        times = []
        for action, status in (("off", "SHUTOFF"), ("on", "ACTIVE")):
            started = time.perf_counter()
            ipmitool(port, "power", action)
            settle(conn, server_id, status, 120)
            times.append(time.perf_counter() - started)
        return times[0], times[1]
    ours_off, ours_on = power_cycle(18202, servers[2].id)
    ovb_off, ovb_on = power_cycle(18303, servers[3].id)
    rows.append(("devcloud", "power off / on until Nova shows it",
                 f"{ours_off:.2f} / {ours_on:.2f} s", f"{ovb_off:.2f} / {ovb_on:.2f} s",
                 f"{(ovb_off + ovb_on) / (ours_off + ours_on):.1f}x"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--cloud-nodes", type=int, default=10)
    parser.add_argument("--window", type=float, default=60.0,
                        help="seconds of polling for the Nova call count")
    parser.add_argument("--no-cloud", action="store_true", help="skip the devcloud part")
    args = parser.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-bmc-"))

    # 1. inside our server at N nodes, under pyghmi clients holding sessions
    inside, _, _ = inside_server(args.nodes, 17000, tmp, clients=8, duration=5)
    rows.append((f"fake, {args.nodes} nodes", "time inside the server per request p50 / p99",
                 f"{ms(pct(inside, .5))} / {ms(pct(inside, .99))}", "", "target p50 < 2 ms"))
    fake = start_fakebmc(18100)
    try:
        f_client, f_throughput = pyghmi_load([18100], clients=8, duration=8)
        f_rss = rss_mib(fake)
        f_lat, _ = ipmitool_latency([18100], 30, 1)
        f_par, f_tput = ipmitool_latency([18100], 40, 8)
    finally:
        stop(fake)

    # 2. one process serving 10 / 100 / N nodes: RSS, and the same clients as fakebmc
    for count in (10, 100, args.nodes):
        proc, _ = serve(tmp, f"fake{count}", "--fake-nodes", str(count),
                        "--ipmi-port-base", "17000")
        try:
            ports = list(range(17000, 17000 + count))
            if count == args.nodes:
                client, throughput = pyghmi_load(ports, clients=8, duration=8)
                lat, _ = ipmitool_latency(ports, 30, 1)
                par, tput = ipmitool_latency(ports, 40, 8)
            rss = rss_mib(proc)
        finally:
            stop(proc)
        rows.append((f"fake, {count} nodes", "RSS of the process", f"{rss:.0f} MiB",
                     f"{f_rss * count:.0f} MiB ({count} fakebmc x {f_rss:.0f})",
                     f"{f_rss * count / rss:.0f}x less"
                     + ("; target < 256 MiB" if count >= 1000 else "")))
    rows.append((f"fake, {args.nodes} nodes", "8 pyghmi sessions: round trip p50 / p99",
                 f"{ms(pct(client, .5))} / {ms(pct(client, .99))}",
                 f"{ms(pct(f_client, .5))} / {ms(pct(f_client, .99))} (fakebmc)",
                 f"{pct(f_client, .5) / pct(client, .5):.1f}x"))
    rows.append((f"fake, {args.nodes} nodes", "8 pyghmi sessions: requests per s",
                 f"{throughput:.0f}", f"{f_throughput:.0f} (fakebmc, 1 BMC)",
                 f"{throughput / f_throughput:.1f}x"))
    rows.append((f"fake, {args.nodes} nodes", "ipmitool power status p50 / p99",
                 f"{ms(pct(lat, .5))} / {ms(pct(lat, .99))}",
                 f"{ms(pct(f_lat, .5))} / {ms(pct(f_lat, .99))} (fakebmc)",
                 f"{pct(f_lat, .5) / pct(lat, .5):.1f}x"))
    rows.append((f"fake, {args.nodes} nodes", "8 parallel ipmitool: p50 / calls per s",
                 f"{ms(pct(par, .5))} / {tput:.0f}",
                 f"{ms(pct(f_par, .5))} / {f_tput:.0f} (fakebmc)", f"{tput / f_tput:.1f}x"))

    # 3. the devcloud: Nova calls, RSS, latency and power actions against openstackbmc
    if not args.no_cloud:
        cloud_section(rows, tmp, args.cloud_nodes, args.window)

    print_table("quintupleo bmc (IPMI) benchmark", "alternative", rows)


if __name__ == "__main__":
    main()
