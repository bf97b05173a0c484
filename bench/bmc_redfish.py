"""Benchmark of the Redfish virtual BMC beside sushy-tools' `sushy-emulator`, in one run.

    python bench/bmc_redfish.py [--nodes 10] [--cloud-nodes 4] [--no-cloud]

GET of a system and a Reset action: latency p50/p99 and requests/s from 8 concurrent clients,
against sushy-emulator (PyPI sushy-tools, in a venv of its own under ~/.cache/quintupleo/bench)
with its fake driver, and with its OpenStack driver on the devcloud. Both are plain HTTP here
(sushy-emulator's default); one row shows what TLS costs us. Clients use keep-alive sessions.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from common import ms, pct, print_table, serve, stop, venv_with

SUSHY_TOOLS = "sushy-tools==2.2.0"
AUTH = ("admin", "password")


def sushy_emulator(tmp: Path, port: int, config: str) -> subprocess.Popen:
    python = venv_with("sushy-tools-venv", SUSHY_TOOLS, "openstacksdk")
    path = tmp / f"sushy-{port}.conf"
    path.write_text(f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
                    f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n{config}")
    log = tmp / f"sushy-{port}.log"
    proc = subprocess.Popen([str(python.parent / "sushy-emulator"), "--config", str(path)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"http://127.0.0.1:{port}/redfish/v1/", timeout=2).ok:
                return proc
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"sushy-emulator did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.2)


def systems(base: str, auth) -> list[str]:
    members = requests.get(f"{base}/redfish/v1/Systems", auth=auth, verify=False,
                           timeout=120).json()["Members"]
    return [m["@odata.id"] for m in members]


def get_latency(base: str, paths: list[str], auth, count: int) -> list[float]:
    session = requests.Session()
    session.auth, session.verify = auth, False
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        session.get(f"{base}{paths[i % len(paths)]}", timeout=120,
                    verify=False).raise_for_status()
        latencies.append(time.perf_counter() - started)
    return latencies


def get_throughput(base: str, paths: list[str], auth, clients: int = 8,
                   duration: float = 4.0) -> tuple[float, list[float]]:
    done: list[float] = []
    lock = threading.Lock()
    end = time.monotonic() + duration

    def worker(index: int) -> None:
        session = requests.Session()
        session.auth, session.verify = auth, False
        i = index
        while time.monotonic() < end:
            started = time.perf_counter()
            session.get(f"{base}{paths[i % len(paths)]}", timeout=120,
                    verify=False).raise_for_status()
            with lock:
                done.append(time.perf_counter() - started)
            i += 1
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(done) / (time.monotonic() - started), done


def reset(base: str, path: str, auth, reset_type: str) -> float:
    started = time.perf_counter()
    response = requests.post(f"{base}{path}/Actions/ComputerSystem.Reset",
                             json={"ResetType": reset_type}, auth=auth, verify=False,
                             timeout=120)
    assert response.status_code in (200, 202, 204), response.text
    return time.perf_counter() - started


def compare(rows: list, setup: str, ours: str, theirs: str, ours_auth, count: int) -> None:
    our_paths, their_paths = systems(ours, ours_auth), systems(theirs, None)
    ours_lat = get_latency(ours, our_paths, ours_auth, count)
    theirs_lat = get_latency(theirs, their_paths, None, max(10, count // 5))
    rows.append((setup, "GET a system, p50 / p99", f"{ms(pct(ours_lat, .5))} / "
                 f"{ms(pct(ours_lat, .99))}", f"{ms(pct(theirs_lat, .5))} / "
                 f"{ms(pct(theirs_lat, .99))}", f"{pct(theirs_lat, .5) / pct(ours_lat, .5):.0f}x"))
    ours_rps, ours_conc = get_throughput(ours, our_paths, ours_auth)
    theirs_rps, theirs_conc = get_throughput(theirs, their_paths, None)
    rows.append((setup, "8 clients: GET a system, requests/s (p50)",
                 f"{ours_rps:.0f} ({ms(pct(ours_conc, .5))})",
                 f"{theirs_rps:.1f} ({ms(pct(theirs_conc, .5))})",
                 f"{ours_rps / max(theirs_rps, 0.01):.0f}x"))


def fake_section(rows: list, tmp: Path, nodes: int) -> None:
    ours, _ = serve(tmp, "ours-fake", "--fake-nodes", str(nodes), "--no-tls",
                    "--redfish-port", "18500", "--ipmi-port-base", "18500")
    ours_tls, _ = serve(tmp, "ours-tls", "--fake-nodes", str(nodes), "--redfish-port", "18501",
                        "--ipmi-port-base", "18600", "--state-dir", str(tmp / "tls"))
    fake_systems = ",\n".join(
        f"  {{'uuid': '{uuid.uuid4()}', 'name': 'fake-{i}', 'power_state': 'Off',"
        f" 'nics': [{{'mac': '52:54:00:00:00:{i:02x}', 'ip': '192.0.2.{i + 10}'}}]}}"
        for i in range(nodes))
    theirs = sushy_emulator(tmp, 18502, "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
                            f"SUSHY_EMULATOR_FAKE_SYSTEMS = [\n{fake_systems}\n]\n")
    try:
        base, their_base = "http://127.0.0.1:18500", "http://127.0.0.1:18502"
        compare(rows, f"fake, {nodes} nodes", base, their_base, AUTH, 300)
        tls_lat = get_latency("https://127.0.0.1:18501", systems(base, AUTH), AUTH, 300)
        rows.append((f"fake, {nodes} nodes", "GET a system over HTTPS (ours), p50",
                     ms(pct(tls_lat, .5)), "", ""))
        path, their_path = systems(base, AUTH)[0], systems(their_base, None)[0]
        ours_t = [reset(base, path, AUTH, t) for t in ("On", "ForceOff", "On", "ForceOff")]
        theirs_t = [reset(their_base, their_path, None, t) for t in ("On", "ForceOff")]
        rows.append((f"fake, {nodes} nodes", "Reset On/ForceOff until HTTP returns, p50",
                     ms(pct(ours_t, .5)), ms(pct(theirs_t, .5)),
                     f"{pct(theirs_t, .5) / pct(ours_t, .5):.0f}x"))
    finally:
        stop(ours, ours_tls, theirs)


def cloud_section(rows: list, tmp: Path, count: int) -> None:
    import openstack

    from quintupleo.devcloud.layout import default_home
    from quintupleo.devcloud.manager import Devcloud
    from quintupleo.devcloud.smoke import scratch_servers, settle

    Devcloud(default_home()).up()
    conn = openstack.connect(cloud="devcloud")
    prefix = f"qorb-{uuid.uuid4().hex[:6]}-"
    with scratch_servers(conn, [f"{prefix}{i}" for i in range(count)]) as servers:
        ours, _ = serve(tmp, "ours-cloud", "--backend", "openstack", "--cloud", "devcloud",
                        "--prefix", prefix, "--no-tls", "--redfish-port", "18510",
                        "--ipmi-port-base", "18700")
        # sushy-emulator serves every server of the project; ours only the prefix.
        theirs = sushy_emulator(tmp, 18512, "SUSHY_EMULATOR_OS_CLOUD = 'devcloud'\n"
                                "SUSHY_EMULATOR_ALLOWED_INSTANCES = ["
                                + ", ".join(f"'{s.id}'" for s in servers) + "]\n")
        try:
            base, their_base = "http://127.0.0.1:18510", "http://127.0.0.1:18512"
            compare(rows, f"devcloud, {count} nodes", base, their_base, AUTH, 100)
            for label, url, auth, server in (("ours", base, AUTH, servers[0]),
                                             ("theirs", their_base, None, servers[1])):
                path = f"/redfish/v1/Systems/{server.id}"
                http, nova = [], []
                for reset_type, status in (("ForceOff", "SHUTOFF"), ("On", "ACTIVE")):
                    started = time.perf_counter()
                    http.append(reset(url, path, auth, reset_type))
                    settle(conn, server.id, status, 120)
                    nova.append(time.perf_counter() - started)
                if label == "ours":
                    ours_http, ours_nova = http, nova
                else:
                    theirs_http, theirs_nova = http, nova
            rows.append((f"devcloud, {count} nodes", "Reset ForceOff / On until HTTP returns",
                         f"{ms(ours_http[0])} / {ms(ours_http[1])}",
                         f"{theirs_http[0]:.1f} / {theirs_http[1]:.1f} s",
                         f"{sum(theirs_http) / sum(ours_http):.0f}x"))
            rows.append((f"devcloud, {count} nodes", "Reset ForceOff / On until Nova shows it",
                         f"{ours_nova[0]:.2f} / {ours_nova[1]:.2f} s",
                         f"{theirs_nova[0]:.1f} / {theirs_nova[1]:.1f} s",
                         f"{sum(theirs_nova) / sum(ours_nova):.1f}x"))
        finally:
            stop(ours, theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--cloud-nodes", type=int, default=4)
    parser.add_argument("--no-cloud", action="store_true", help="skip the devcloud part")
    args = parser.parse_args()
    requests.packages.urllib3.disable_warnings()
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-redfish-"))
    rows: list[tuple[str, str, str, str, str]] = []
    fake_section(rows, tmp, args.nodes)
    if not args.no_cloud:
        cloud_section(rows, tmp, args.cloud_nodes)
    print_table("quintupleo bmc (Redfish) benchmark", "sushy-emulator", rows)


if __name__ == "__main__":
    main()
