"""IPv6 provisioning on the devcloud's real host: an environment whose provisioning network is
IPv6 (Neutron sends no router advertisements and runs no DHCPv6 on it), the user's dnsmasq doing
both in a `devcloud netns`, and a real node that network-boots through the BMC (a rescue into our
iPXE image) gets its address and boot URL by DHCPv6 and fetches its script over HTTP on IPv6."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
import uuid

import pytest
from wire import _InNamespace, wait_until

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud
PREFIX = "fd00:24:6::"


def test_an_ipv6_environment_network_boots_a_real_node_over_dhcpv6(conn, real_host, qo_env,
                                                                    tmp_path, bmc_server):
    name = f"v6{uuid.uuid4().hex[:6]}"
    spec = tmp_path / f"{name}.yaml"
    spec.write_text(f"name: {name}\ncloud: devcloud\n"
                    f"networks: {{provisioning: {{cidr: '{PREFIX}/64'}}}}\n"
                    "roles: {node: {count: 1, flavor: qo.tiny, image: quintupleo-tiny, "
                    "availability_zone: qemu}}\n"
                    "bmc: {boot_strategy: rescue}\n")
    qo_env("create", str(spec))
    network = conn.network.find_network(f"qo-{name}-provisioning")
    subnet = conn.network.find_subnet(f"qo-{name}-provisioning-subnet")
    assert subnet.ip_version == 6 and not subnet.is_dhcp_enabled and subnet.gateway_ip is None
    assert subnet.ipv6_ra_mode is None and subnet.ipv6_address_mode is None   # ours to do
    node = json.loads(qo_env("nodes", name).stdout)["nodes"][0]
    mac, password = node["ports"][0]["address"], node["driver_info"]["ipmi_password"]
    server = conn.compute.find_server(node["name"])

    namespace = f"qo-{name}"
    netns = [sys.executable, "-m", "quintupleo", "devcloud", "netns"]
    subprocess.run([*netns, network.id, "--name", namespace, "--address",
                    f"{PREFIX}1/64"], check=True, capture_output=True, timeout=60)
    root = tmp_path / "http"
    root.mkdir()
    (root / "boot.ipxe").write_text("#!ipxe\necho QO-IPV6-BOOT ${mac}\nsleep 600\n")
    try:
        with _InNamespace(namespace, tmp_path / "dnsmasq.log", [
                "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                "--interface=eth0", "--bind-interfaces", "--enable-ra", "--log-dhcp",
                f"--dhcp-range={PREFIX}100,{PREFIX}1ff,64,1h",
                f"--dhcp-leasefile={tmp_path / 'leases'}",
                f"--dhcp-option=option6:bootfile-url,http://[{PREFIX}1]:8089/boot.ipxe"]) as dhcp, \
             _InNamespace(namespace, tmp_path / "http.log", [
                sys.executable, "-m", "http.server", "8089", "--bind", f"{PREFIX}1",
                "--directory", str(root)]) as http:
            bmc = bmc_server("--environment", name,
                             env={"XDG_STATE_HOME": str(tmp_path / "state")})
            bmc.ipmitool("chassis", "bootdev", "pxe", password=password)
            bmc.ipmitool("power", "on", password=password)
            fetched = wait_until(lambda: re.findall(r"^(\S+) .*GET /boot.ipxe", http.text(),
                                                    re.MULTILINE), 180, "the boot script fetched")
            bmc.ipmitool("power", "off", password=password)     # done: free the core
            settle(conn, server.id, "SHUTOFF", timeout=120)
            leased = re.findall(rf"DHCPREPLY\(eth0\) ({PREFIX}[0-9a-f]+) ", dhcp.text())
    finally:
        subprocess.run([*netns, "--delete", namespace], capture_output=True,
                       timeout=60, check=False)
    # The node's iPXE asked by DHCPv6 (no DHCPv4 server exists here) and fetched over IPv6
    # from the address it was given.
    assert leased and set(fetched) <= set(leased), (fetched, leased)
    assert all(ipaddress.ip_address(a) in ipaddress.ip_network(f"{PREFIX}/64") for a in fetched)
    assert mac.replace(":", "") in dhcp.text().replace(":", "")     # its DUID carries its MAC
    qo_env("delete", name)
    assert "0 leaked resources" in qo_env("audit", name).stdout
