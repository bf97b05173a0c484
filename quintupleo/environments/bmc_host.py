"""The BMC host in the cloud: what cloud-init needs to run `quintupleo bmc serve` there.

The host gets, in its user data: an application credential made for this environment (never the
user's own password), the BMC settings (its nodes by name, their addresses, the environment's BMC
password), the Redfish certificate made here (so inventories written here can verify it), and a
systemd unit. Everything it holds is the environment's and dies with it.
"""

from __future__ import annotations

import base64
import gzip
import io
import ipaddress
import json
import secrets
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.scalarstring import LiteralScalarString

from quintupleo import __version__
from quintupleo.environments.hosts import BMC_NETWORK
from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import BmcHostParams
from quintupleo.environments.spec import EnvironmentSpec
from quintupleo.errors import ConfigError
from quintupleo.tls import self_signed

ETC = "/etc/quintupleo"
VENV = "/opt/quintupleo"
UNIT = "quintupleo-bmc.service"
STATE_DIR = "/var/lib/quintupleo/bmc"
# Nova refuses user data above 64 KiB (base64): the settings file is compressed.
USER_DATA_LIMIT = 65535


class BmcHost:
    """Builds, for one environment, the BMC host's credential secret and user data; records
    the addresses the host serves in the journal (inventories read them from there)."""

    def __init__(self, spec: EnvironmentSpec, journal: Journal, password: str) -> None:
        self.spec = spec
        self.journal = journal
        self.password = password

    def credential_secret(self) -> str:
        """Chosen here and journalled before Keystone sees it: a crash after the credential is
        created never loses the secret (Keystone shows it only once)."""
        secret = self.journal.meta("bmc_credential_secret")
        if secret is None:
            secret = secrets.token_urlsafe(32)
            self.journal.set_meta("bmc_credential_secret", secret)
        return secret

    def addresses(self, name: str, port: Any, nodes: tuple[str, ...]) -> dict[str, Any]:
        """Host `name`'s own address and, with per-node addressing, each node's (from the
        fixed IPs Neutron gave the host's port, in order)."""
        ips = [fixed["ip_address"] for fixed in port.fixed_ips]
        served = {"address": ips[0], "mac": port.mac_address, "nodes": {}}
        if self.spec.bmc.addressing == "addresses":
            if len(ips) < 1 + len(nodes):
                raise ConfigError(f"port {port.name} has {len(ips)} addresses, needs "
                                 f"{1 + len(nodes)}")
            served["nodes"] = dict(zip(nodes, ips[1:], strict=False))
        self.journal.set_meta(f"bmc_host:{name}", json.dumps(served))
        return served

    def user_data(self, name: str, host: BmcHostParams, port: Any, credential_id: str,
                  cloud: dict[str, Any]) -> str:
        served = self.addresses(name, port, host.nodes)
        cert, key = self_signed(certificate_dir(self.journal.path.parent, self.spec, name),
                                served["address"])
        network = self.spec.network(BMC_NETWORK)
        # a spec with a BMC host has its network, one of ours (spec.py)
        assert network is not None and network.cidr is not None
        prefix = ipaddress.ip_network(network.cidr).prefixlen
        return render(self.spec, host, served, credential_id, self.credential_secret(), cloud,
                      self.password, cert.read_text(), key.read_text(), prefix)


def settings(spec: EnvironmentSpec, host: BmcHostParams, served: dict[str, Any],
             password: str) -> dict[str, Any]:
    """`bmc serve` settings for the host: its nodes by name (stable if one is re-created)."""
    bmc = spec.bmc
    return {
        "backend": "openstack", "cloud": "quintupleo", "servers": list(host.nodes),
        "ipmi_address": served["address"], "ipmi_port_base": bmc.ipmi_port_base,
        "redfish_address": served["address"], "redfish_port": bmc.redfish_port,
        "tls": bmc.tls, "tls_cert": f"{ETC}/redfish-cert.pem", "tls_key": f"{ETC}/redfish-key.pem",
        "username": bmc.username, "password": password, "state_dir": STATE_DIR,
        "boot_strategy": bmc.boot_strategy,
        "nodes": {name: {"ipmi_address": ip} for name, ip in served["nodes"].items()},
    }


def clouds_yaml(credential_id: str, secret: str, cloud: dict[str, Any]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "auth_type": "v3applicationcredential",
        "auth": {"auth_url": cloud["auth_url"], "application_credential_id": credential_id,
                 "application_credential_secret": secret},
        "interface": cloud.get("interface") or "public",
    }
    if cloud.get("region_name"):
        entry["region_name"] = cloud["region_name"]
    if cloud.get("cacert_pem"):
        entry["cacert"] = f"{ETC}/cloud-ca.pem"
    return {"clouds": {"quintupleo": entry}}


def unit(spec: EnvironmentSpec, per_node_addresses: bool) -> str:
    pre = "ExecStartPre=/usr/local/sbin/quintupleo-bmc-addresses\n" if per_node_addresses else ""
    return (f"[Unit]\nDescription=QuintupleO virtual BMC of environment {spec.name}\n"
            "Wants=network-online.target\nAfter=network-online.target\n\n"
            f"[Service]\nEnvironment=OS_CLIENT_CONFIG_FILE={ETC}/clouds.yaml\n{pre}"
            f"ExecStart={VENV}/bin/quintupleo bmc serve --config {ETC}/bmc.yaml\n"
            "Restart=always\nRestartSec=5\n\n[Install]\nWantedBy=multi-user.target\n")


def address_script(served: dict[str, Any], prefix: int) -> str:
    """Adds the nodes' addresses to the interface that carries the host's port (by MAC)."""
    ips = " ".join(f"{ip}/{prefix}" for ip in served["nodes"].values())
    return ("#!/bin/sh\nset -e\n"
            f"dev=$(ip -o link | awk -v mac={served['mac'].lower()} "
            "'index(tolower($0), mac) {sub(\":\", \"\", $2); print $2; exit}')\n"
            '[ -n "$dev" ] || { echo "no interface with MAC '
            f'{served["mac"]}" >&2; exit 1; }}\n'
            f'for ip in {ips}; do ip addr replace "$ip" dev "$dev"; done\n')


def render(spec: EnvironmentSpec, host: BmcHostParams, served: dict[str, Any], credential_id: str,
           secret: str, cloud: dict[str, Any], password: str, cert_pem: str, key_pem: str,
           prefix: int) -> str:
    install = spec.bmc.install or f"quintupleo=={__version__}"
    files = [
        _file(f"{ETC}/clouds.yaml", _yaml(clouds_yaml(credential_id, secret, cloud)), "0600"),
        _file(f"{ETC}/bmc.yaml", _yaml(settings(spec, host, served, password)), "0600",
              compress=True),
        _file(f"{ETC}/redfish-cert.pem", cert_pem, "0644"),
        _file(f"{ETC}/redfish-key.pem", key_pem, "0600"),
        _file(f"/etc/systemd/system/{UNIT}", unit(spec, bool(served["nodes"])), "0644"),
    ]
    if cloud.get("cacert_pem"):
        files.append(_file(f"{ETC}/cloud-ca.pem", cloud["cacert_pem"], "0644"))
    if served["nodes"]:
        files.append(_file("/usr/local/sbin/quintupleo-bmc-addresses",
                           address_script(served, prefix), "0755"))
    config = {
        "package_update": True,
        "packages": ["python3-venv", "ipmitool"],
        "write_files": files,
        "runcmd": [
            ["python3", "-m", "venv", VENV],
            [f"{VENV}/bin/pip", "install", "--quiet", install],
            ["systemctl", "daemon-reload"],
            ["systemctl", "enable", "--now", UNIT],
        ],
    }
    text = "#cloud-config\n" + _yaml(config)
    if len(base64.b64encode(text.encode())) > USER_DATA_LIMIT:
        raise ConfigError(f"the BMC host's user data is {len(text)} bytes: too many nodes for "
                         "one BMC host; split the environment")
    return text


def _file(path: str, content: str, mode: str, compress: bool = False) -> dict[str, str]:
    if compress:
        data = base64.b64encode(gzip.compress(content.encode(), mtime=0)).decode()
        return {"path": path, "content": data, "encoding": "gz+b64", "permissions": mode}
    return {"path": path, "content": LiteralScalarString(content), "permissions": mode}


def _yaml(data: Any) -> str:
    out = io.StringIO()
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    yaml.dump(data, out)
    return out.getvalue()


def read_served(journal: Journal, name: str) -> dict[str, Any] | None:
    """What BMC host `name` serves (address, per-node addresses), as recorded at its creation
    (before sharding, an environment's one host was recorded as `bmc_host`)."""
    text = journal.meta(f"bmc_host:{name}") or journal.meta("bmc_host")
    return json.loads(text) if text else None


def certificate_dir(environment_dir: Path, spec: EnvironmentSpec, name: str) -> Path:
    """Where the Redfish certificate made here for BMC host `name` is kept (inventories name
    it as the CA to verify that host with): each host of a sharded environment has its own."""
    return environment_dir / "bmc" / (name if spec.bmc.hosts > 1 else "")
