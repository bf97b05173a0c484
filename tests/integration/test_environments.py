"""Environments on the devcloud, through the real CLI: create, idempotence, delete, audit,
a crash in the middle of create, two environments at once."""

from __future__ import annotations

import json
import signal
import sqlite3
import stat
import time
import uuid

import jsonschema
import pytest
import requests
from ironicclient.v1 import create_resources
from ruamel.yaml import YAML

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  extra:
    internal-api: {{cidr: 172.16.2.0/24}}
    storage: {{cidr: 172.16.1.0/24, fixed_ips: false}}
roles:
  controller: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny, profile: control,
               networks: [provisioning, internal-api, storage]}}
  compute: {{count: {computes}, flavor: qo.tiny, image: quintupleo-tiny, profile: compute}}
"""


def spec_file(tmp_path, computes: int = 2) -> tuple[str, str]:
    name = f"t{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, computes=computes))
    return name, str(path)


def servers_journalled(journal) -> int:
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True) as db:
            return db.execute("SELECT count(*) FROM resource WHERE kind = 'server'").fetchone()[0]
    except sqlite3.Error:
        return 0   # the table is not there yet


def test_create_is_complete_idempotent_and_delete_leaves_nothing(conn, qo_env, tmp_path, tagged):
    name, path = spec_file(tmp_path)
    plan = qo_env("create", path, "--dry-run")
    assert f"qo-{name}-controller-1-storage" in plan.stdout
    assert not tagged(conn, name)["networks"]                     # a dry run changes nothing
    created = qo_env("create", path)
    assert "4 nodes powered off" in created.stdout
    found = tagged(conn, name)
    assert len(found["networks"]) == 3 and len(found["subnets"]) == 3
    assert len(found["ports"]) == 2 * 3 + 2 * 1 and len(found["servers"]) == 4
    assert all(s.status == "SHUTOFF" for s in found["servers"])
    assert all(not s.is_dhcp_enabled and s.gateway_ip is None for s in found["subnets"])
    assert all(p.is_port_security_enabled is False for p in found["ports"])
    for port in found["ports"]:       # storage: addresses from the user's DHCP, none from Neutron
        assert len(port.fixed_ips) == (0 if port.name.endswith("-storage") else 1), port.name
    # down during the nodes' first boot, up once they are off
    assert all(p.is_admin_state_up for p in found["ports"])
    controller = next(s for s in found["servers"] if s.name == f"qo-{name}-controller-0")
    nics = {p.name for p in conn.network.ports(device_id=controller.id)}
    assert nics == {f"qo-{name}-controller-0-{net}"
                    for net in ("provisioning", "internal-api", "storage")}
    assert controller.metadata["quintupleo_profile"] == "control"
    again = qo_env("create", path)                                 # idempotent: it only
    assert "4 API calls" in again.stdout           # lists each kind (networks ... servers) once
    assert "0 leaked resources" in qo_env("audit", name).stdout
    assert name in qo_env("list").stdout
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())
    assert "0 leaked resources" in qo_env("audit", name).stdout


def test_kill_9_during_create_then_delete_leaves_nothing(conn, qo_env, tmp_path, tagged):
    name, path = spec_file(tmp_path, computes=4)
    proc = qo_env("create", path, background=True)
    journal = qo_env.state / name / "journal.sqlite"
    deadline = time.monotonic() + 120
    while True:   # kill it once servers are being created: networks and ports exist by then
        if journal.exists() and servers_journalled(journal):
            break
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "create never reached the servers"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert any(tagged(conn, name).values())               # it left things behind
    audit = qo_env("audit", name, check=False)            # the journal knows what was started
    assert audit.returncode in (0, 1)
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())
    assert "0 leaked resources" in qo_env("audit", name).stdout


def test_two_environments_at_once_in_one_project(conn, qo_env, tmp_path, tagged):
    (first, first_path), (second, second_path) = spec_file(tmp_path, 1), spec_file(tmp_path, 1)
    procs = [qo_env("create", p, background=True) for p in (first_path, second_path)]
    for proc in procs:
        output, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, output
    for name in (first, second):
        found = tagged(conn, name)
        assert len(found["servers"]) == 3 and len(found["networks"]) == 3
        assert "0 leaked resources" in qo_env("audit", name).stdout
    qo_env("delete", first)
    assert not any(tagged(conn, first).values())
    assert len(tagged(conn, second)["servers"]) == 3      # the other one is untouched
    qo_env("delete", second)
    assert not any(tagged(conn, second).values())


def test_environment_bmc_and_inventories(conn, qo_env, tmp_path, tagged, bmc_server):
    name, path = spec_file(tmp_path, computes=1)
    qo_env("create", path)
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    nodes_file = tmp_path / "nodes.json"
    qo_env("nodes", name, "--kind", "ironic", "--interface", "boot=ipxe", "-o",
           str(nodes_file))
    assert stat.S_IMODE(nodes_file.stat().st_mode) == 0o600
    document = json.loads(nodes_file.read_text())
    jsonschema.validate(document, create_resources._CREATE_SCHEMA)
    servers = {s.name: s for s in tagged(conn, name)["servers"]}
    assert [n["name"] for n in document["nodes"]] == [
        f"qo-{name}-controller-0", f"qo-{name}-controller-1", f"qo-{name}-compute-0"]
    password = document["nodes"][0]["driver_info"]["ipmi_password"]
    assert len(password) >= 16 and password not in ("password", "admin")
    for node in document["nodes"]:
        assert node["driver"] == "ipmi" and node["boot_interface"] == "ipxe"
        assert node["driver_info"]["ipmi_password"] == password
        ports = {p.name: p.mac_address for p in
                 conn.network.ports(device_id=servers[node["name"]].id)}
        assert node["ports"][0]["address"] == ports[f"{node['name']}-provisioning"]
        assert {p["address"] for p in node["ports"]} == set(ports.values())
    assert document["nodes"][0]["properties"]["capabilities"] == "boot_mode:bios,profile:control"

    instack = json.loads(qo_env("nodes", name, "--kind", "instackenv").stdout)["nodes"]
    assert instack[2]["pm_type"] == "ipmi" and instack[2]["pm_password"] == password
    assert instack[2]["mac"][0] == document["nodes"][2]["ports"][0]["address"]
    metal3 = list(YAML(typ="safe").load_all(
        qo_env("nodes", name, "--kind", "metal3", "--driver", "redfish").stdout))
    hosts = [d for d in metal3 if d["kind"] == "BareMetalHost"]
    secrets = {d["metadata"]["name"]: d for d in metal3 if d["kind"] == "Secret"}
    assert len(hosts) == 3 and len(secrets) == 3
    for host in hosts:
        assert host["spec"]["online"] is False
        assert host["spec"]["bmc"]["address"].startswith("redfish+https://127.0.0.1:")
        assert secrets[host["spec"]["bmc"]["credentialsName"]]["stringData"]["password"] \
            == password

    # The environment's BMC, served from here with its own credentials.
    bmc = bmc_server("--environment", name, env=state)
    node = document["nodes"][0]
    port = bmc.port_base + 0
    assert bmc.ipmitool("power", "status", port=port, password=password).stdout.strip() == \
        "Chassis Power is off"
    bmc.ipmitool("power", "on", port=port, password=password)
    settle(conn, servers[node["name"]].id, "ACTIVE", timeout=60)
    assert bmc.ipmitool("power", "status", port=port, check=False).returncode != 0  # default pw
    bmc.ipmitool("power", "off", port=port, password=password)
    settle(conn, servers[node["name"]].id, "SHUTOFF", timeout=60)
    # the fake host offers no serial console (as some clouds): SOL is disabled, Redfish links none
    info = bmc.ipmitool("sol", "info", port=port, password=password).stdout
    assert "Enabled                         : false" in info, info
    sol = bmc.ipmitool("sol", "activate", port=port, password=password, check=False)
    assert sol.returncode != 0 and "disabled" in sol.stdout + sol.stderr, sol
    system = requests.get(f"{bmc.redfish_url}/redfish/v1/Systems/{servers[node['name']].id}",
                          auth=("admin", password), timeout=10,
                          verify=str(bmc.state_dir / "redfish-cert.pem")).json()
    assert "SerialConsole" not in system and system["PowerState"] == "Off"
    assert password not in bmc.log


def test_a_role_booted_from_its_image_is_a_plain_server(conn, qo_env, tmp_path, tagged):
    """`boot: image`: servers booted from the role's image and left running; not nodes (no BMC
    entry, not in the inventory), listed by `env show`, deleted with the environment."""
    name = f"t{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ncloud: devcloud\n"
                    "networks: {provisioning: {cidr: 192.168.24.0/24}}\n"
                    "roles: {node: {count: 1, flavor: qo.tiny, image: quintupleo-tiny},\n"
                    "        services: {count: 2, flavor: qo.tiny, image: quintupleo-tiny, "
                    "boot: image}}\n")
    created = qo_env("create", str(path)).stdout
    assert "1 nodes powered off, 2 servers running from their image" in created, created
    servers = {s.name: s for s in tagged(conn, name)["servers"]}
    assert servers[f"qo-{name}-node-0"].status == "SHUTOFF"
    for index in (0, 1):
        plain = servers[f"qo-{name}-services-{index}"]
        assert plain.status == "ACTIVE"
        assert all(p.is_admin_state_up for p in conn.network.ports(device_id=plain.id))
    document = json.loads(qo_env("nodes", name, "--kind", "ironic").stdout)
    assert [n["name"] for n in document["nodes"]] == [f"qo-{name}-node-0"]
    shown = qo_env("show", name).stdout
    assert shown.count("services (image)") == 2 and "node (node)" in shown, shown
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())


HA_SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  extra:
    internal-api: {{cidr: 172.16.2.0/24, port_security: true}}
    storage: {{cidr: 172.16.1.0/24}}
roles:
  controller: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny,
               networks: [provisioning, internal-api, storage]}}
vips:
  - {{name: api, network: internal-api, ip: 172.16.2.250}}
  - {{name: storage, network: storage}}
undercloud: {{image: quintupleo-tiny, flavor: qo.tiny, networks: [provisioning, internal-api]}}
"""


def test_virtual_ips_and_an_undercloud(conn, qo_env, tmp_path, tagged):
    name = f"t{uuid.uuid4().hex[:6]}"
    path = tmp_path / "ha.yaml"
    path.write_text(HA_SPEC.format(name=name))
    qo_env("create", str(path))
    ports = {p.name: p for p in tagged(conn, name)["ports"]}
    api = ports[f"qo-{name}-vip-api"]
    assert [f["ip_address"] for f in api.fixed_ips] == ["172.16.2.250"]
    assert not api.device_id                                       # reserved, on no server
    storage_vip_ip = ports[f"qo-{name}-vip-storage"].fixed_ips[0]["ip_address"]
    for index in (0, 1):
        secured = ports[f"qo-{name}-controller-{index}-internal-api"]
        assert secured.is_port_security_enabled is True            # kept: pairs need it
        assert {p["ip_address"] for p in secured.allowed_address_pairs} == {"172.16.2.250"}
        open_port = ports[f"qo-{name}-controller-{index}-storage"]
        assert open_port.is_port_security_enabled is False          # VIPs just work
        assert storage_vip_ip.startswith("172.16.1.")
    servers = {s.name: s for s in tagged(conn, name)["servers"]}
    assert servers[f"qo-{name}-undercloud"].status == "ACTIVE"      # it stays on
    assert servers[f"qo-{name}-controller-0"].status == "SHUTOFF"
    inventory = json.loads(qo_env("nodes", name).stdout)["nodes"]
    assert [n["name"] for n in inventory] == [f"qo-{name}-controller-0",
                                              f"qo-{name}-controller-1"]
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())
    assert "0 leaked resources" in qo_env("audit", name).stdout
