"""`env status`, and an environment's life on this machine: what its BMC shows beside what the
cloud says, with and without the BMC serving; `delete` while it serves; `list --all`;
`forget`; the BMC's metrics of cloud calls; Metal3's namespace."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from harness.bmc_process import ipmitool

pytestmark = pytest.mark.devcloud

IPMI_BASE, REDFISH_PORT = 15600, 15650
SPEC = f"""
name: {{name}}
cloud: devcloud
networks:
  provisioning: {{{{cidr: 192.168.24.0/24}}}}
roles:
  node: {{{{count: 2, flavor: qo.tiny, image: quintupleo-tiny}}}}
bmc: {{{{ipmi_port_base: {IPMI_BASE}, redfish_port: {REDFISH_PORT}}}}}
"""


class EnvironmentBmc:
    """`qo bmc serve --environment NAME` as a user runs it: the environment's own ports and
    state dir."""

    def __init__(self, name: str, environ: dict[str, str], log) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "quintupleo", "bmc", "serve",
                                      "--environment", name], env=environ, stdout=log.open("w"),
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while "ready:" not in log.read_text():
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(15)


def nodes_of(qo_env, name: str) -> dict[str, dict]:
    return {n["node"]: n for n in json.loads(qo_env("status", name, "-f", "json").stdout)
            ["nodes"]}


def test_status_delete_while_served_list_all_and_forget(conn, qo_env, tmp_path, tagged):
    name = f"s{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name))
    qo_env("create", str(path))
    node0, node1 = f"qo-{name}-node-0", f"qo-{name}-node-1"
    environ = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))

    document = json.loads(qo_env("status", name, "-f", "json").stdout)
    assert document["bmc"] is None and document["cloud"] == "devcloud"
    first = {n["node"]: n for n in document["nodes"]}
    assert set(first) == {node0, node1}
    assert all((n["power"], n["boot"], n["cloud"], n["health"]) ==
               ("Off", "no override", "SHUTOFF", "OK") for n in first.values())

    password = json.loads(qo_env("nodes", name).stdout)["nodes"][0]["driver_info"][
        "ipmi_password"]
    bmc = EnvironmentBmc(name, environ, tmp_path / "bmc.log")
    try:
        ipmitool("chassis", "bootdev", "pxe", "options=persistent", host="127.0.0.1",
                 port=IPMI_BASE + 1, password=password)
        ipmitool("power", "on", host="127.0.0.1", port=IPMI_BASE, password=password)
        served = json.loads(qo_env("status", name, "-f", "json").stdout)
        assert served["bmc"] == f"https://127.0.0.1:{REDFISH_PORT}"
        shown = {n["node"]: n for n in served["nodes"]}
        assert shown[node1]["boot"] == "Pxe, persistent, Legacy"
        assert shown[node0]["power"].startswith("On")
        table = qo_env("status", name).stdout             # piped: every column, nothing cut
        assert node0 in table and "Pxe, persistent, Legacy" in table
        metrics = requests.get(f"https://127.0.0.1:{REDFISH_PORT}/metrics",
                               auth=("admin", password), timeout=10,
                               verify=str(tmp_path / "state" / "quintupleo" / "environments"
                                          / name / "bmc" / "redfish-cert.pem")).text
        calls = {s.labels["kind"]: s.value for f in text_string_to_metric_families(metrics)
                 for s in f.samples if s.name == "quintupleo_bmc_backend_calls_total"}
        assert calls.get("list servers", 0) >= 1 and calls.get("get", 0) >= 1, calls
        refused = qo_env("delete", name, check=False)
        assert refused.returncode == 1 and "is serving it" in refused.stderr
        assert any(tagged(conn, name).values())           # nothing was deleted
    finally:
        bmc.stop()
    kept = nodes_of(qo_env, name)                         # the BMC stopped: what it kept
    assert kept[node1]["boot"] == "Pxe, persistent, Legacy"
    assert kept[node0]["power"] == "On" and kept[node0]["cloud"].startswith("ACTIVE")

    bmc = EnvironmentBmc(name, environ, tmp_path / "bmc-2.log")
    try:
        forced = qo_env("delete", name, "--force")
        assert "warning:" in forced.stderr and "deleting anyway" in forced.stderr
    finally:
        bmc.stop()
    assert not any(tagged(conn, name).values())
    assert name not in qo_env("list").stdout                  # deleted: hidden
    listed = json.loads(qo_env("list", "--all", "-f", "json").stdout)
    assert {"name": name, "cloud": "devcloud", "state": "deleted", "nodes": 0,
            "resources": 0} in listed
    qo_env("forget", name, "--yes")
    assert name not in qo_env("list", "--all").stdout


def test_metal3_hosts_go_in_the_namespace_asked_for(qo_env, tmp_path):
    name = f"m{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name).replace("count: 2", "count: 1"))
    qo_env("create", str(path))
    documents = list(YAML(typ="safe").load_all(qo_env("nodes", name, "--kind", "metal3",
                                                      "--namespace", "lab-x").stdout))
    assert {d["metadata"]["namespace"] for d in documents} == {"lab-x"}
    qo_env("delete", name)
