"""Ironic at scale on one machine: unmodified Ironic (standalone) enrolls, manages, inspects,
cleans and deploys N fake nodes of one `bmc serve` with the fake agent, over the `ipmi` and the
`redfish` hardware types, and undeploys them after a power-sync period; beside sushy-tools'
fake driver at one N, for the phases it can do (it has no agent: enroll, manage, a power-sync
period). Its small size runs in `make test` (tests/acceptance/ironic/test_ironic_fake_agent.py).

    python bench/ironic_scale.py [--nodes 100 500 1000] [--types ipmi redfish]
                                 [--sushy-nodes 100] [--sync 60] [--delay 1]

Each phase as a provisioning tool drives a rack: every node's request at once (8 clients,
retrying what Ironic refuses as busy or locked, with back-off), then one node listing every
2 s until every node settled. Per phase: its time, nodes that failed, the BMC's and Ironic's
CPU (% of one core, Ironic's ipmitool children included), requests per second at the BMC (its
/metrics; sushy's access log), the BMC's RSS after it. The power-sync period: Ironic's
`sync_power_state_interval` seconds with every node idle. Ironic runs with its debug log off,
`max_concurrent_deploy` and `max_concurrent_clean` at N (defaults 250 and 50), SQLite. The
fake agent's slow steps (image write, cache, bootloader) take `--delay` seconds; it heartbeats
every `--heartbeat` seconds (IPA: 90-180 s) and at once when a step ends.
Everything shares two cores: ratios matter more than absolute times.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil
import requests
from bmc_redfish import sushy_emulator
from common import PY, console, print_table, stop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "acceptance" /
                       "ironic"))
from ironic_steps import http_server

from harness.ironic import Ironic, install

IRONIC_PORT, HTTP_PORT, REDFISH_PORT, SUSHY_PORT = 18800, 18810, 18820, 18830
# below Linux's ephemeral ports (32768 and up), which outgoing connections take
IPMI_BASE, AGENT_BASE = 20000, 22000
AUTH = ("admin", "password")
BUSY = (409, 503)          # NodeLocked, NoFreeConductorWorker / concurrent actions limit
IMAGE = b"QuintupleO fake whole-disk image\n" * 1000


class Meter:
    """CPU of a process (and its reaped children) and a request count, between two reads."""

    def __init__(self, process: psutil.Process, count) -> None:
        self.process, self.count = process, count
        self.mark()

    def mark(self) -> None:
        self.began, self.cpu, self.requests = time.monotonic(), self._cpu(), self.count()

    def _cpu(self) -> float:
        """Its own, its children's (Ironic's API workers) and those reaped (ipmitool)."""
        total = 0.0
        for process in [self.process, *self.process.children(recursive=True)]:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def read(self) -> tuple[float, float, Counter[str]]:
        """(seconds, % of one core, requests by outcome) since the mark."""
        seconds = time.monotonic() - self.began
        now = self.count()
        return (seconds, 100 * (self._cpu() - self.cpu) / seconds,
                Counter({k: now[k] - self.requests[k] for k in now if now[k] > self.requests[k]}))


def metrics_counter(url: str, verify: str | bool):
    """Requests answered by our BMC, from its /metrics: "ok", and what answered with an
    error (an IPMI completion code, a Redfish 5xx) by protocol, command and outcome. Not an
    error: "invalid command" to a command we do not know (ipmitool's PICMG and VSO probes,
    which a server's BMC refuses so too), a Redfish 4xx (Ironic asks for what is optional)."""
    line = re.compile(r'^quintupleo_bmc_requests_total\{(.*)\} (\S+)$', re.M)

    def count() -> Counter[str]:
        text = requests.get(f"{url}/metrics", auth=AUTH, verify=verify, timeout=30).text
        tally: Counter[str] = Counter()
        for labels, value in line.findall(text):
            label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
            outcome = label["outcome"]
            bad = outcome != "ok" and not outcome.startswith(("2", "3", "4")) and \
                (label["command"], outcome) != ("unknown", "0xc1")
            key = f"error: {label['protocol']} {label['command']} {outcome}" if bad else "ok"
            tally[key] += int(float(value))
        return tally
    return count


def log_counter(log: Path):
    """Requests answered by sushy-emulator, from its access log (werkzeug's lines)."""
    def count() -> Counter[str]:
        tally: Counter[str] = Counter()
        for status in re.findall(r'HTTP/1\.1" (\d{3})', log.read_text(errors="replace")):
            tally[f"error: HTTP {status}" if status.startswith("5") else "ok"] += 1
        return tally
    return count


class Rack:
    """Ironic's nodes, driven phase by phase as one provisioning tool drives them."""

    def __init__(self, ironic: Ironic, names: list[str]) -> None:
        self.ironic, self.names = ironic, names
        self.http = requests.Session()
        self.retries = self.timeouts = 0

    def _request(self, method: str, path: str, body: Any) -> None:
        delay = 0.5
        for _ in range(60):
            response = requests.request(method, f"{self.ironic.url}/v1/{path}", json=body,
                                        timeout=120,
                                        headers={"X-OpenStack-Ironic-API-Version": "latest"})
            if response.status_code not in BUSY:
                if response.status_code >= 400:
                    raise RuntimeError(f"{method} {path}: {response.status_code} "
                                       f"{response.text[:300]}")
                return
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 10)
        raise RuntimeError(f"{method} {path}: Ironic stayed busy")

    def each(self, method: str, path: str, body) -> dict[str, str]:
        """The request for every node (8 at a time): the nodes it failed for, and why."""
        failed: dict[str, str] = {}

        def one(name: str) -> None:
            try:
                self._request(method, path.format(name=name),
                              body(name) if callable(body) else body)
            except requests.Timeout:     # Ironic may have taken it: the node's state will tell
                self.timeouts += 1
            except (RuntimeError, requests.RequestException) as exc:
                failed[name] = str(exc)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, self.names))
        return failed

    def listing(self) -> dict[str, dict[str, Any]]:
        fields = "name,provision_state,target_provision_state,power_state," \
                 "target_power_state,last_error"
        url = f"{self.ironic.url}/v1/nodes?fields={fields}&limit=1000"
        nodes: dict[str, dict[str, Any]] = {}
        while url:
            page = self.http.get(url, timeout=120, headers={
                "X-OpenStack-Ironic-API-Version": "latest"}).json()
            if "nodes" not in page:
                raise RuntimeError(f"Ironic's node list: {page}")
            nodes.update((n["name"], n) for n in page["nodes"])
            url = page.get("next")
        return nodes

    def provision(self, target: str, stable: str, timeout: float) -> dict[str, str]:
        """Every node to `target` until `stable`: the nodes that failed, and why (they leave
        the rack)."""
        failed = self.each("PUT", "nodes/{name}/states/provision", {"target": target})
        self.settle(lambda n: n["target_provision_state"] is None
                    and not n["provision_state"].endswith("ing")
                    and not n["provision_state"].endswith("wait"), timeout)
        for name, node in self.listing().items():
            if name in self.names and name not in failed and node["provision_state"] != stable:
                failed[name] = f"{node['provision_state']}: {node['last_error']}"
        self.names = [n for n in self.names if n not in failed]
        return failed

    def settle(self, done, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            nodes = self.listing()
            if all(done(nodes[n]) for n in self.names):
                return
            time.sleep(2)


def phase_row(rows: list[dict[str, str]], name: str, nodes: int, failed: dict[str, str],
              bmc: Meter, ironic: Meter, bmc_process: psutil.Process) -> None:
    seconds, bmc_cpu, requests_done = bmc.read()
    _, ironic_cpu, _ = ironic.read()
    errors = Counter(re.sub(r"[0-9a-f-]{36}|node-\d+|\d+", "#", e)[:120] for e in failed.values())
    rows.append({"phase": name, "nodes": str(nodes), "time": f"{seconds:.1f} s",
                 "per node": f"{seconds / max(nodes, 1) * 1000:.0f} ms",
                 "failed": str(len(failed)), "BMC CPU": f"{bmc_cpu:.0f} %",
                 "Ironic CPU": f"{ironic_cpu:.0f} %",
                 "BMC req/s": f"{sum(requests_done.values()) / seconds:.1f}",
                 "BMC errors": str(sum(v for k, v in requests_done.items() if k != "ok")),
                 "BMC RSS": f"{bmc_process.memory_info().rss / 2**20:.0f} MiB"})
    for error, count in errors.most_common(3):
        console.print(f"  {name}: {count}x {error}")
    for key, count in requests_done.items():
        if key != "ok":
            console.print(f"  {name}: BMC {key}: {count}")
    bmc.mark()
    ironic.mark()


def run_ours(tmp: Path, nodes: int, driver: str, args) -> list[dict[str, str]]:
    work = tmp / f"{driver}-{nodes}"
    work.mkdir()
    url = f"http://127.0.0.1:{HTTP_PORT}"
    config = work / "bmc.yaml"
    config.write_text(f"fake_agent_port_base: {AGENT_BASE}\n"
                      f"fake_agent_heartbeat: {args.heartbeat}\n")
    ironic = Ironic(install(), work / "ironic", IRONIC_PORT, boot="ipxe", http_url=url,
                    agent=True, debug=False, sync_interval=args.sync,
                    conductor=f"max_concurrent_deploy = {nodes}\n"
                              f"max_concurrent_clean = {nodes}\n")
    inventory = work / "nodes.json"
    log = work / "bmc.log"
    rows: list[dict[str, str]] = []
    with http_server(ironic.work / "http", HTTP_PORT):
        began = time.monotonic()
        bmc = psutil.Popen(
            [PY, "-m", "quintupleo", "bmc", "serve", "--config", str(config),
             "--fake-nodes", str(nodes), "--fake-agent", url, "--fake-agent-delay",
             str(args.delay), "--ipmi-port-base", str(IPMI_BASE), "--redfish-port",
             str(REDFISH_PORT), "--state-dir", str(work / "bmc"), "--inventory-output",
             str(inventory), "--inventory-driver", driver, "--log-level", args.bmc_log_level],
            stdout=log.open("w"), stderr=-2)
        try:
            base = f"https://127.0.0.1:{REDFISH_PORT}"
            cert = str(work / "bmc" / "redfish-cert.pem")
            while not inventory.exists() or not Path(cert).exists():
                if bmc.poll() is not None or time.monotonic() - began > 300:
                    raise SystemExit(f"bmc serve did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.2)
            console.print(f"[{driver}, {nodes} nodes] BMC up in {time.monotonic() - began:.1f} s")
            ironic.start()
            bmc_meter = Meter(bmc, metrics_counter(base, cert))
            ironic_meter = Meter(psutil.Process(ironic.process.pid), Counter)
            document = json.loads(inventory.read_text())
            # One kernel and one ramdisk for every node, as a rack has, over HTTP: Ironic
            # caches those (a file:// source it copies at every boot, and its cache clean-up
            # after each copy stats the temporary files of copies in progress: "No such file")
            for part in ("kernel", "ramdisk"):
                (ironic.work / "http" / f"agent.{part}").write_bytes(b"a fake agent's\n")
            for node in document["nodes"]:
                for part in ("kernel", "ramdisk"):
                    node["driver_info"][f"deploy_{part}"] = f"{url}/agent.{part}"
                node.update(deploy_interface="direct", inspect_interface="agent",
                            automated_clean=True)
            inventory.write_text(json.dumps(document))
            ironic.enroll(inventory)
            rack = Rack(ironic, [n["name"] for n in document["nodes"]])
            phase_row(rows, "enroll (`baremetal create`)", nodes, {}, bmc_meter, ironic_meter,
                      bmc)
            for name, target, stable in (("manage (credentials checked)", "manage",
                                          "manageable"),
                                         ("inspect (agent)", "inspect", "manageable"),
                                         ("provide (agent cleaning)", "provide", "available")):
                count = len(rack.names)
                failed = rack.provision(target, stable, args.timeout)
                phase_row(rows, name, count, failed, bmc_meter, ironic_meter, bmc)
                if args.no_agent:         # the phases sushy-tools' fake driver can do too
                    time.sleep(args.sync)
                    phase_row(rows, f"power-sync period ({args.sync} s, idle)",
                              len(rack.names), {}, bmc_meter, ironic_meter, bmc)
                    return rows
            digest = hashlib.sha256(IMAGE).hexdigest()
            (ironic.work / "http" / "disk.raw").write_bytes(IMAGE)
            rack.each("PATCH", "nodes/{name}", [
                {"op": "add", "path": "/instance_info", "value": {
                    "image_source": f"{url}/disk.raw", "image_disk_format": "raw",
                    "image_os_hash_algo": "sha256", "image_os_hash_value": digest}}])
            bmc_meter.mark()
            ironic_meter.mark()
            count = len(rack.names)
            failed = rack.provision("active", "active", args.timeout)
            phase_row(rows, "deploy (`direct`)", count, failed, bmc_meter, ironic_meter, bmc)
            time.sleep(args.sync)
            phase_row(rows, f"power-sync period ({args.sync} s, idle)", len(rack.names), {},
                      bmc_meter, ironic_meter, bmc)
            count = len(rack.names)
            failed = rack.provision("deleted", "available", args.timeout)
            phase_row(rows, "undeploy (agent cleaning)", count, failed, bmc_meter, ironic_meter,
                      bmc)
            console.print(f"  requests Ironic refused as busy and retried: {rack.retries}; "
                          f"not answered in 120 s: {rack.timeouts}")
        finally:
            ironic.stop()
            stop(bmc)
    return rows


def run_sushy(tmp: Path, nodes: int, args) -> list[dict[str, str]]:
    work = tmp / f"sushy-{nodes}"
    (work / "ironic").mkdir(parents=True)
    systems = [f"00000000-0000-4000-8000-{i:012x}" for i in range(nodes)]
    config = "SUSHY_EMULATOR_FAKE_DRIVER = True\nSUSHY_EMULATOR_FAKE_SYSTEMS = [\n" + ",\n".join(
        f"  {{'uuid': '{uuid}', 'name': 'sushy-{i}', 'power_state': 'Off', 'nics': "
        f"[{{'mac': '52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}', "
        f"'ip': '10.1.{i >> 8 & 255}.{i & 255}'}}]}}" for i, uuid in enumerate(systems)) + "\n]\n"
    sushy = psutil.Process(sushy_emulator(work, SUSHY_PORT, config).pid)
    rows: list[dict[str, str]] = []
    ironic = Ironic(install(), work / "ironic", IRONIC_PORT, debug=False,
                    sync_interval=args.sync)
    try:
        ironic.start()
        meter = Meter(sushy, log_counter(work / f"sushy-{SUSHY_PORT}.log"))
        ironic_meter = Meter(psutil.Process(ironic.process.pid), Counter)
        inventory = work / "nodes.json"
        inventory.write_text(json.dumps({"nodes": [{
            "name": f"sushy-{i}", "driver": "redfish", "driver_info": {
                "redfish_address": f"http://127.0.0.1:{SUSHY_PORT}",
                "redfish_system_id": f"/redfish/v1/Systems/{uuid}",
                "redfish_username": "admin", "redfish_password": "password"},
            "ports": [{"address": f"52:54:01:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:"
                                  f"{i & 255:02x}"}]} for i, uuid in enumerate(systems)]}))
        ironic.enroll(inventory)
        rack = Rack(ironic, [f"sushy-{i}" for i in range(nodes)])
        phase_row(rows, "enroll (`baremetal create`)", nodes, {}, meter, ironic_meter, sushy)
        failed = rack.provision("manage", "manageable", args.timeout)
        phase_row(rows, "manage (credentials checked)", nodes, failed, meter, ironic_meter,
                  sushy)
        time.sleep(args.sync)
        phase_row(rows, f"power-sync period ({args.sync} s, idle)", len(rack.names), {},
                  meter, ironic_meter, sushy)
    finally:
        ironic.stop()
        sushy.terminate()
        sushy.wait(15)
    return rows


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[100, 500, 1000])
    parser.add_argument("--types", nargs="*", default=["ipmi", "redfish"],
                        choices=["ipmi", "redfish"])
    parser.add_argument("--sushy-nodes", type=int, default=None,
                        help="N for sushy-tools' fake driver [default: the largest --nodes]")
    parser.add_argument("--sync", type=int, default=60, help="Ironic's power-sync interval")
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--heartbeat", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=3600.0, help="per phase")
    parser.add_argument("--bmc-log-level", default="warning")
    parser.add_argument("--no-agent", action="store_true",
                        help="only enroll, manage and a power-sync period (as with sushy-tools)")
    return parser.parse_args(argv)


COLUMNS = ("phase", "nodes", "time", "per node", "failed", "BMC CPU", "Ironic CPU",
           "BMC req/s", "BMC errors", "BMC RSS")


def main() -> None:
    args = options()
    console.width = max(console.width, 150)
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-ironic-scale-"))
    columns = COLUMNS
    for driver in args.types:
        for nodes in args.nodes:
            rows = run_ours(tmp, nodes, driver, args)
            print_table(f"Ironic ({driver}) and one QuintupleO process (fake nodes, fake agent)",
                        "", [tuple(r[c] for c in columns) for r in rows], columns)
    sushy_nodes = max(args.nodes) if args.sushy_nodes is None else args.sushy_nodes
    if sushy_nodes:
        rows = run_sushy(tmp, sushy_nodes, args)
        print_table("Ironic (redfish) and sushy-emulator (fake driver; no agent: no inspect, "
                    "clean or deploy)", "", [tuple(r[c] for c in columns) for r in rows],
                    columns)
    console.print(f"work files (logs, Ironic's DB): {tmp}")


if __name__ == "__main__":
    main()
