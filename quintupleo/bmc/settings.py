"""The BMC service's settings: one object fed by a YAML file, then flags and environment.

File keys are the field names below; `nodes` maps a node's name (or backend id) to its own
`ipmi_address`, `ipmi_port`, `username` and `password`. A node with its own address listens on
port 623 unless it names a port; the others listen on `ipmi_address`, port `ipmi_port_base + i`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from quintupleo.backends.openstack.boot import STRATEGIES as BOOT_STRATEGIES
from quintupleo.bmc.throttle import LockoutPolicy
from quintupleo.errors import ConfigError
from quintupleo.inventory import BmcAccess
from quintupleo.model import Credentials, NodeInfo
from quintupleo.paths import state_dir

BACKENDS = ("fake", "openstack", "qemu")
NODE_KEYS = {"ipmi_address", "ipmi_port", "username", "password"}


def default_state_dir() -> Path:
    return state_dir("bmc")


@dataclass
class BmcSettings:
    backend: str = "fake"
    fake_nodes: int = 2
    fake_delay: float = 0.0
    fake_staged: bool = False            # fake boots read "on" only when done, like a rescue
    cloud: str | None = None
    lab: str | None = None               # qemu: the lab (`quintupleo lab up`) whose nodes to serve
    prefix: str | None = None
    servers: list[str] = field(default_factory=list)
    boot_strategy: str = "none"          # openstack: none, rescue or rebuild (network/CD boots)
    pxe_images: dict[str, str] = field(default_factory=dict)   # legacy/uefi -> Glance image
    media_max_mb: int = 4096             # largest virtual CD the BMC fetches
    ipmi_address: str = "127.0.0.1"
    ipmi_port_base: int = 6230
    username: str = "admin"
    password: str = field(default="password", repr=False)
    refresh_interval: float = 10.0
    session_timeout: float = 60.0
    redfish: bool = True
    redfish_address: str = "127.0.0.1"
    redfish_port: int = 8000
    tls: bool = True
    tls_cert: Path | None = None
    tls_key: Path | None = None
    redfish_session_timeout: int = 1800
    redfish_idle_timeout: float = 15.0    # a connection's time to send its headers, or idle
    # failed logins (per user name, per source address) before a lockout, and its length
    account_lockout_threshold: int = 5
    account_lockout_duration: float = 60.0
    account_lockout_counter_reset_after: float = 60.0
    source_lockout_threshold: int = 20
    state_dir: Path = field(default_factory=default_state_dir)
    inventory_out: Path | None = None
    inventory_driver: str = "ipmi"
    environment: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | None,
             environment_settings: Callable[[str], dict[str, Any]] | None = None,
             **overrides: Any) -> BmcSettings:
        """Read `path` (if any), then apply every override that is not None; validate. Settings
        that name an environment start from `environment_settings(name)` (its BMC's)."""
        values: dict[str, Any] = {}
        if path is not None:
            try:
                loaded = YAML(typ="safe").load(path.read_text())
            except (OSError, YAMLError) as exc:
                raise ConfigError(f"cannot read {path}: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: expected a mapping of settings")
            known = {f.name for f in fields(cls)}
            unknown = set(loaded) - known
            if unknown:
                raise ConfigError(f"{path}: unknown settings {', '.join(sorted(unknown))}; "
                                  f"known: {', '.join(sorted(known))}")
            values.update(loaded)
        values.update({k: v for k, v in overrides.items() if v is not None and v != []})
        if values.get("environment"):   # an environment's BMC: its settings are the base layer
            if environment_settings is None:
                raise ConfigError("environment: not known here (serve it with "
                                  "`quintupleo bmc serve --environment NAME`)")
            values = {**environment_settings(values["environment"]), **values}
        for key in ("state_dir", "inventory_out", "tls_cert", "tls_key"):
            if values.get(key) is not None:
                values[key] = Path(values[key]).expanduser()
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend {self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.backend == "fake" and not 1 <= self.fake_nodes <= 100_000:
            raise ConfigError("fake_nodes must be between 1 and 100000")
        if self.backend == "qemu" and not self.lab:
            raise ConfigError("the qemu backend needs --lab (a lab made by `quintupleo lab up`)")
        if self.backend == "openstack" and not (self.prefix or self.servers):
            raise ConfigError("the openstack backend needs --prefix or --server (name or ID)")
        if self.boot_strategy not in BOOT_STRATEGIES:
            raise ConfigError(f"boot_strategy {self.boot_strategy!r}: choose one of "
                              f"{', '.join(BOOT_STRATEGIES)}")
        if set(self.pxe_images) - {"legacy", "uefi"}:
            raise ConfigError("pxe_images: keys are legacy and uefi (Glance image name or ID)")
        if not 1 <= self.media_max_mb <= 65536:
            raise ConfigError("media_max_mb must be between 1 and 65536")
        if self.inventory_driver not in ("ipmi", "redfish"):
            raise ConfigError("inventory_driver: choose ipmi or redfish")
        if self.inventory_driver == "redfish" and not self.redfish:
            raise ConfigError("a redfish inventory needs the Redfish endpoint (not --no-redfish)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("--tls-cert and --tls-key go together")
        if self.refresh_interval <= 0 or self.session_timeout <= 0:
            raise ConfigError("refresh_interval and session_timeout must be positive")
        if self.redfish_idle_timeout <= 0:
            raise ConfigError("redfish_idle_timeout must be positive")
        if self.account_lockout_threshold < 0 or self.source_lockout_threshold < 0:
            raise ConfigError("lockout thresholds are 0 (no lockout) or more")
        if self.account_lockout_duration <= 0 or self.account_lockout_counter_reset_after <= 0:
            raise ConfigError("account_lockout_duration and account_lockout_counter_reset_after"
                              " must be positive")
        for name, node in self.nodes.items():
            if not isinstance(node, dict) or set(node) - NODE_KEYS:
                raise ConfigError(f"nodes.{name}: allowed keys are {', '.join(sorted(NODE_KEYS))}")
        for credentials in [self.password, *(n.get("password") for n in self.nodes.values())]:
            if credentials is not None and len(str(credentials).encode()) > 20:
                raise ConfigError("IPMI 2.0 passwords are at most 20 bytes")

    @property
    def lockout(self) -> LockoutPolicy:
        return LockoutPolicy(self.account_lockout_threshold, self.source_lockout_threshold,
                             self.account_lockout_duration,
                             self.account_lockout_counter_reset_after)

    # ---- per-node views --------------------------------------------------------------------
    def _node(self, info: NodeInfo) -> dict[str, Any]:
        return self.nodes.get(info.name) or self.nodes.get(info.id) or {}

    def endpoint(self, info: NodeInfo, index: int) -> tuple[str, int]:
        node = self._node(info)
        if "ipmi_address" in node:
            return str(node["ipmi_address"]), int(node.get("ipmi_port", 623))
        return self.ipmi_address, int(node.get("ipmi_port", self.ipmi_port_base + index))

    @property
    def verify_ca(self) -> str | bool:
        """What a client should verify our Redfish certificate with."""
        if not self.tls:
            return False
        return str(self.tls_cert or self.state_dir / "redfish-cert.pem")

    def access(self, info: NodeInfo, index: int) -> BmcAccess:
        address, port = self.endpoint(info, index)
        return BmcAccess(address, port, self.credentials(info),
                         self.redfish_url if self.redfish else None,
                         Credentials(self.username, self.password), self.verify_ca)

    @property
    def redfish_url(self) -> str:
        host = f"[{self.redfish_address}]" if ":" in self.redfish_address else self.redfish_address
        return f"{'https' if self.tls else 'http'}://{host}:{self.redfish_port}"

    def credentials(self, info: NodeInfo) -> Credentials:
        node = self._node(info)
        return Credentials(str(node.get("username", self.username)),
                           str(node.get("password", self.password)))
