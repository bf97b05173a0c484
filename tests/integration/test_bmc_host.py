"""The BMC host in the cloud, on the devcloud: the environment's router, floating IP and
application credential; the host's user data (valid for cloud-init, no user password); the
BMC it describes really serves the nodes with that credential; a re-run re-makes what was
deleted out of band. The devcloud's fake virt driver runs no cloud-init: the test runs what
the host would run."""

from __future__ import annotations

import base64
import gzip
import ipaddress
import os
import subprocess
import sys
import uuid
from pathlib import Path

import jsonschema
import openstack
import pytest
from cryptography import x509
from ruamel.yaml import YAML

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  bmc: {{cidr: 10.0.1.0/24}}
  external: public
roles:
  node: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny}}
undercloud: {{image: quintupleo-tiny, flavor: qo.tiny, networks: [bmc, provisioning],
             floating_ip: true}}
bmc:
  host: {{image: quintupleo-tiny, flavor: qo.tiny}}
  addressing: {addressing}
"""


def create(qo_env, tmp_path, addressing: str, count: int = 2, hosts: int = 1) -> str:
    name = f"h{uuid.uuid4().hex[:6]}"
    path = tmp_path / f"{name}.yaml"
    text = SPEC.format(name=name, addressing=addressing).replace("count: 2", f"count: {count}")
    path.write_text(text + f"  hosts: {hosts}\n")
    qo_env("create", str(path))
    return name


def user_data(admin_conn, conn, name: str, host: str = "bmc-host") -> dict:
    host = next(conn.compute.servers(name=f"^qo-{name}-{host}$"))
    # Nova shows user data to an admin from microversion 2.3.
    response = admin_conn.compute.get(f"/servers/{host.id}",
                                      microversion="2.3").json()["server"]
    text = base64.b64decode(response["OS-EXT-SRV-ATTR:user_data"]).decode()
    assert text.startswith("#cloud-config\n")
    return YAML(typ="safe").load(text), text


def files_of(config: dict) -> dict[str, str]:
    files = {}
    for item in config["write_files"]:
        content = item["content"]
        if item.get("encoding") == "gz+b64":
            content = gzip.decompress(base64.b64decode(content)).decode()
        files[item["path"]] = content
    return files


def test_bmc_host_with_per_node_addresses(conn, admin_conn, qo_env, tmp_path, tagged,
                                          cloud_config_schema):
    name = create(qo_env, tmp_path, "addresses")
    ports = {p.name: p for p in tagged(conn, name)["ports"]}
    # The BMC network is routed to the external one; the undercloud has a floating IP on it.
    subnet = next(s for s in tagged(conn, name)["subnets"] if s.name == f"qo-{name}-bmc-subnet")
    assert subnet.is_dhcp_enabled and subnet.gateway_ip == "10.0.1.1"
    router = next(conn.network.routers(tags=f"quintupleo:{name}"))
    public = conn.network.find_network("public")
    assert router.external_gateway_info["network_id"] == public.id
    interfaces = list(conn.network.ports(device_id=router.id,
                                         device_owner="network:router_interface"))
    assert [f["subnet_id"] for p in interfaces for f in p.fixed_ips] == [subnet.id]
    undercloud_port = ports[f"qo-{name}-undercloud-bmc"]
    [fip] = list(conn.network.ips(port_id=undercloud_port.id))
    assert fip.floating_network_id == public.id and f"quintupleo:{name}" in fip.tags
    # One application credential for the environment.
    credentials = [c for c in conn.identity.application_credentials(user=conn.current_user_id)
                   if c.name == f"qo-{name}-bmc-credential"]
    assert len(credentials) == 1

    config, text = user_data(admin_conn, conn, name)
    assert not list(jsonschema.Draft4Validator(cloud_config_schema).iter_errors(config))
    member_password = conn.config.config["auth"]["password"]
    assert member_password not in text and "password: " + member_password not in text
    files = files_of(config)
    clouds = YAML(typ="safe").load(files["/etc/quintupleo/clouds.yaml"])["clouds"]["quintupleo"]
    assert clouds["auth_type"] == "v3applicationcredential"
    assert clouds["auth"]["application_credential_id"] == credentials[0].id
    assert "password" not in clouds["auth"]
    settings = YAML(typ="safe").load(files["/etc/quintupleo/bmc.yaml"])
    host_port = ports[f"qo-{name}-bmc-host-bmc"]
    ips = [f["ip_address"] for f in host_port.fixed_ips]
    assert len(ips) == 3 and settings["redfish_address"] == ips[0]
    assert settings["servers"] == [f"qo-{name}-node-0", f"qo-{name}-node-1"]
    assert {n["ipmi_address"] for n in settings["nodes"].values()} == set(ips[1:])
    script = files["/usr/local/sbin/quintupleo-bmc-addresses"]
    assert host_port.mac_address in script and all(ip in script for ip in ips[1:])
    assert "ExecStartPre=/usr/local/sbin/quintupleo-bmc-addresses" in \
        files["/etc/systemd/system/quintupleo-bmc.service"]
    assert ["systemctl", "enable", "--now", "quintupleo-bmc.service"] in config["runcmd"]

    shown = qo_env("show", name).stdout
    assert "BMC host: IPMI on 2 addresses" in shown and f"https://{ips[0]}:8000" in shown
    # The inventory names the addresses the host serves, with the environment's password.
    inventory = YAML(typ="safe").load(qo_env("nodes", name, "-k", "instackenv").stdout)
    assert [(n["pm_addr"], n["pm_port"]) for n in inventory["nodes"]] == [
        (settings["nodes"][f"qo-{name}-node-{i}"]["ipmi_address"], 623) for i in (0, 1)]
    assert inventory["nodes"][0]["pm_password"] == settings["password"]

    # Some of it already gone when delete runs: the rest still goes, nothing is left.
    conn.network.delete_ip(fip)
    conn.identity.delete_application_credential(conn.current_user_id, credentials[0].id)
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())
    assert not list(conn.network.routers(tags=f"quintupleo:{name}"))
    assert not list(conn.network.ips(port_id=undercloud_port.id))
    assert not [c for c in conn.identity.application_credentials(user=conn.current_user_id)
                if c.name.startswith(f"qo-{name}-")]
    assert "0 leaked resources" in qo_env("audit", name).stdout


def test_sharded_bmc_hosts_serve_their_share_and_one_lost_is_made_again(
        conn, admin_conn, qo_env, tmp_path, tagged):
    name = create(qo_env, tmp_path, "ports", count=3, hosts=2)
    node = [f"qo-{name}-node-{i}" for i in range(3)]
    hosts = {s.name: s for s in tagged(conn, name)["servers"] if "-bmc-host-" in s.name}
    assert sorted(hosts) == [f"qo-{name}-bmc-host-0", f"qo-{name}-bmc-host-1"]
    ports = {p.name: p for p in tagged(conn, name)["ports"]}
    address = {i: ports[f"qo-{name}-bmc-host-{i}-bmc"].fixed_ips[0]["ip_address"] for i in (0, 1)}
    assert address[0] != address[1]
    settings = {}
    for i in (0, 1):      # each host serves its share, on its own address
        files = files_of(user_data(admin_conn, conn, name, f"bmc-host-{i}")[0])
        settings[i] = YAML(typ="safe").load(files["/etc/quintupleo/bmc.yaml"])
        assert settings[i]["ipmi_address"] == settings[i]["redfish_address"] == address[i]
    assert settings[0]["servers"] == [node[0], node[2]] and settings[1]["servers"] == [node[1]]
    assert settings[0]["password"] == settings[1]["password"]

    # The inventory points each node at its host: the port is its index there.
    inventory = YAML(typ="safe").load(qo_env("nodes", name, "-k", "instackenv").stdout)
    assert [(n["name"], n["pm_addr"], n["pm_port"]) for n in inventory["nodes"]] == [
        (node[0], address[0], 6230), (node[1], address[1], 6230), (node[2], address[0], 6231)]
    redfish = YAML(typ="safe").load(qo_env("nodes", name, "--driver", "redfish").stdout)
    cas = set()
    for entry in redfish["nodes"]:
        info = entry["driver_info"]
        host = 0 if entry["name"] in (node[0], node[2]) else 1
        assert info["redfish_address"] == f"https://{address[host]}:8000"
        cas.add((host, info["redfish_verify_ca"]))
    assert len(cas) == 2       # each host its own certificate, for its own address
    for host, ca in cas:
        cert = x509.load_pem_x509_certificate(Path(ca).read_bytes())
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert ipaddress.ip_address(address[host]) in sans.get_values_for_type(x509.IPAddress)
    shown = qo_env("show", name).stdout
    assert all(f"BMC host qo-{name}-bmc-host-{i}: IPMI on {address[i]}, ports from 6230; "
               f"Redfish on https://{address[i]}:8000" in shown for i in (0, 1)), shown
    one_bmc = subprocess.run([sys.executable, "-m", "quintupleo", "bmc", "serve",
                              "--environment", name], capture_output=True, text=True,
                             timeout=60, env=qo_env.environ)
    assert one_bmc.returncode == 2 and "served by 2 BMC hosts" in one_bmc.stderr
    assert "Traceback" not in one_bmc.stderr

    # One host deleted out of band: a re-run makes that one again, and nothing else.
    before = {s.name: s.id for s in tagged(conn, name)["servers"]}
    conn.compute.delete_server(hosts[f"qo-{name}-bmc-host-1"])
    conn.compute.wait_for_delete(hosts[f"qo-{name}-bmc-host-1"], wait=60)
    again = qo_env("create", str(tmp_path / f"{name}.yaml"))
    assert f"qo-{name}-bmc-host-1 is gone from the cloud" in again.stderr
    assert "bmc-host-0" not in again.stderr and "replacing" not in again.stderr
    after = {s.name: s.id for s in tagged(conn, name)["servers"]}
    assert {n for n in after if after[n] != before.get(n)} == {f"qo-{name}-bmc-host-1"}
    files = files_of(user_data(admin_conn, conn, name, "bmc-host-1")[0])
    assert YAML(typ="safe").load(files["/etc/quintupleo/bmc.yaml"])["servers"] == [node[1]]
    qo_env("delete", name)
    assert "0 leaked resources" in qo_env("audit", name).stdout


def test_bmc_host_settings_serve_the_nodes_with_the_application_credential(
        conn, admin_conn, qo_env, tmp_path, tagged, bmc_server):
    name = create(qo_env, tmp_path, "ports")
    config, _ = user_data(admin_conn, conn, name)
    files = files_of(config)
    etc = tmp_path / "etc"
    etc.mkdir()
    for path, content in files.items():
        (etc / os.path.basename(path)).write_text(content)
    settings = YAML(typ="safe").load(files["/etc/quintupleo/bmc.yaml"])
    assert settings["nodes"] == {} and settings["ipmi_port_base"] == 6230
    # What the unit runs, with its files here and the addresses on loopback; no clouds.yaml of
    # the user's: only the application credential authenticates.
    bmc = bmc_server("--config", str(etc / "bmc.yaml"), "--ipmi-address", "127.0.0.1",
                     "--redfish-address", "127.0.0.1", "--tls-cert", str(etc / "redfish-cert.pem"),
                     "--tls-key", str(etc / "redfish-key.pem"),
                     env={"OS_CLIENT_CONFIG_FILE": str(etc / "clouds.yaml"), "OS_CLOUD": ""})
    node = next(s for s in tagged(conn, name)["servers"] if s.name == f"qo-{name}-node-1")
    password = settings["password"]
    assert bmc.ipmitool("power", "status", node=1, password=password).stdout.strip() == \
        "Chassis Power is off"
    bmc.ipmitool("power", "on", node=1, password=password)
    settle(conn, node.id, "ACTIVE", timeout=60)
    bmc.ipmitool("power", "off", node=1, password=password)
    settle(conn, node.id, "SHUTOFF", timeout=60)
    assert password not in bmc.log and config["write_files"][0]["content"] not in bmc.log
    bmc.stop()

    # Deleted out of band: a node, the floating IP, the credential. A re-run makes them again
    # (the BMC host too, as it holds the credential's ID) and leaks nothing.
    conn.compute.delete_server(node)
    conn.compute.wait_for_delete(node, wait=60)
    credential = conn.identity.find_application_credential(conn.current_user_id,
                                                           f"qo-{name}-bmc-credential")
    conn.identity.delete_application_credential(conn.current_user_id, credential.id)
    undercloud_port = conn.network.find_port(f"qo-{name}-undercloud-bmc")
    [fip] = list(conn.network.ips(port_id=undercloud_port.id))
    conn.network.delete_ip(fip)
    again = qo_env("create", str(tmp_path / f"{name}.yaml"))
    assert "gone from the cloud" in again.stderr and "replacing bmc-host" in again.stderr
    servers = {s.name: s for s in tagged(conn, name)["servers"]}
    assert servers[f"qo-{name}-node-1"].id != node.id
    assert servers[f"qo-{name}-node-1"].status == "SHUTOFF"
    assert all(p.is_admin_state_up for p in conn.network.ports(
        device_id=servers[f"qo-{name}-node-1"].id))
    renewed = conn.identity.find_application_credential(conn.current_user_id,
                                                        f"qo-{name}-bmc-credential")
    assert renewed.id != credential.id
    assert [ip.id != fip.id for ip in conn.network.ips(port_id=undercloud_port.id)] == [True]
    assert user_data(admin_conn, conn, name)[1].count(renewed.id) == 1
    assert "0 leaked resources" in qo_env("audit", name).stdout
    qo_env("delete", name)
    with pytest.raises(openstack.exceptions.SDKException):   # the credential no longer works
        openstack.connect(auth_type="v3applicationcredential", auth={
            "auth_url": conn.config.config["auth"]["auth_url"],
            "application_credential_id": renewed.id,
            "application_credential_secret": YAML(typ="safe").load(
                files["/etc/quintupleo/clouds.yaml"])["clouds"]["quintupleo"]["auth"][
                "application_credential_secret"]}).authorize()
