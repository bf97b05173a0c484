"""Routed (spine-leaf) provisioning on the devcloud's real host: an environment of two leaves,
its relay host (our relay image: Debian's kernel, busybox and dnsmasq, its script from the
config drive) and a node on the second leaf. The node network-boots through the BMC and its
DHCP request reaches the server on the first leaf only through the relay, which answers it
from the second leaf's range."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import pytest
from wire import Dnsmasq, wait_until

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning:
    - {{name: leaf0, cidr: 192.168.30.0/24}}
    - {{name: leaf1, cidr: 192.168.31.0/24}}
roles:
  node: {{count: 1, flavor: qo.tiny, image: quintupleo-tiny, availability_zone: qemu,
         leaf: leaf1}}
relay: {{flavor: qo.tiny, availability_zone: qemu}}
bmc: {{boot_strategy: rescue}}
"""


def test_a_node_on_leaf_1_gets_its_dhcp_answer_from_leaf_0_through_the_relay(
        conn, real_host, qo_env, tmp_path, bmc_server):
    name = f"r{uuid.uuid4().hex[:6]}"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name))
    created = qo_env("create", str(spec))
    assert "relay image quintupleo-relay" in created.stdout
    relay = conn.compute.find_server(f"qo-{name}-relay")
    relay_ports = {p.name: p for p in conn.network.ports(device_id=relay.id)}
    assert [f["ip_address"] for p in sorted(relay_ports.values(), key=lambda p: p.name)
            for f in p.fixed_ips] == ["192.168.30.254", "192.168.31.254"]
    # The relay set itself up from its config drive (its console, through the compute API).
    wait_until(lambda: "QuintupleO relay ready" in conn.compute.get_server_console_output(
        relay)["output"], 120, "the relay's ready line")
    inventory = json.loads(qo_env("nodes", name).stdout)["nodes"][0]
    assert inventory["ports"][0]["physical_network"] == "leaf1"     # Ironic's leaf
    mac, password = inventory["ports"][0]["address"], inventory["driver_info"]["ipmi_password"]

    leaf0 = conn.network.find_network(f"qo-{name}-leaf0")
    namespace = f"qo-{name}"
    netns = [sys.executable, "-m", "quintupleo", "devcloud", "netns"]
    subprocess.run([*netns, leaf0.id, "--name", namespace, "--address", "192.168.30.1/24"],
                   check=True, capture_output=True, timeout=60)
    try:
        # the undercloud's DHCP server on leaf 0: a range for leaf 1, answered through the relay
        subprocess.run(["ip", "-n", namespace, "route", "add", "192.168.31.0/24", "via",
                        "192.168.30.254"], check=True)
        with Dnsmasq(namespace, tmp_path, "192.168.31.100,192.168.31.200,255.255.255.0,1h",
                     ("--dhcp-option=option:router,192.168.31.254",)) as dhcp:
            bmc = bmc_server("--environment", name,
                             env={"XDG_STATE_HOME": str(tmp_path / "state")})
            bmc.ipmitool("chassis", "bootdev", "pxe", password=password)
            bmc.ipmitool("power", "on", password=password)
            try:
                offered = wait_until(lambda: re.findall(
                    rf"DHCPOFFER\(eth0\) (192\.168\.31\.\d+) {mac}", dhcp.text()), 150,
                    f"an offer on leaf 1 to {mac}")
            except AssertionError as exc:
                console = conn.compute.get_server_console_output(relay)["output"]
                raise AssertionError(f"{exc}; the relay's console:\n{console[-3000:]}") from None
            bmc.stop()
        assert offered and dhcp.discovers().count(mac) >= 1
        # relayed: the request came through the relay's address on leaf 1 (giaddr)
        assert "192.168.31.254" in dhcp.text()
        relay_console = conn.compute.get_server_console_output(relay)["output"]
        assert "DHCP relay from 192.168.31.254 to 192.168.30.1" in relay_console
        # Done: both VMs go at once (the node is still rescued into iPXE: deleting it is
        # quicker than an unrescue and a stop, and frees the cores as well).
        qo_env("delete", name)
        assert "0 leaked resources" in qo_env("audit", name).stdout
    finally:
        subprocess.run([*netns, "--delete", namespace], capture_output=True, timeout=60,
                       check=False)
