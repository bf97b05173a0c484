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


class SettingError(ConfigError):
    """A setting that cannot be: where it came from (the file, or the flag), its key, why."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        self.source, self.key, self.reason = source, key, reason
        said = key and not source.startswith("--")      # a flag names its key itself
        super().__init__(f"{source}: {key}: {reason}" if said else f"{source}: {reason}")


def default_state_dir() -> Path:
    return state_dir("bmc")


@dataclass
class BmcSettings:
    backend: str = "fake"
    fake_nodes: int = 2
    fake_delay: float = 0.0
    fake_staged: bool = False            # fake boots read "on" only when done, like a rescue
    # fake: an Ironic Python Agent for each node that network-boots into it (backends/agent):
    # where Ironic serves its iPXE configs, where the agents listen, how long a step takes,
    # seconds between heartbeats (None: as IPA, from Ironic's heartbeat timeout)
    fake_agent: str | None = None
    fake_agent_address: str = "127.0.0.1"
    fake_agent_port_base: int = 9999
    fake_agent_delay: float = 1.0
    fake_agent_heartbeat: float | None = None
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
    inventory_output: Path | None = None
    inventory_driver: str = "ipmi"
    environment: str | None = None
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, path: Path | None,
             environment_settings: Callable[[str], dict[str, Any]] | None = None,
             **overrides: Any) -> BmcSettings:
        """Read `path` (if any), then apply every override that is not None; validate. Settings
        that name an environment start from `environment_settings(name)` (its BMC's). A wrong
        key, type or value is a SettingError naming where it came from and the key."""
        values: dict[str, Any] = {}
        where: dict[str, str] = {}           # key -> where its value came from
        if path is not None:
            try:
                loaded = YAML(typ="safe").load(path.read_text())
            except (OSError, YAMLError) as exc:
                raise SettingError(str(path), "", f"cannot read it: "
                                   f"{' '.join(str(exc).split())}") from None
            if not isinstance(loaded, dict):
                raise SettingError(str(path), "", "expected a mapping of settings")
            known = {f.name for f in fields(cls)}
            for key in loaded:
                if key not in known:
                    raise SettingError(str(path), str(key), "unknown setting; known: "
                                       + ", ".join(sorted(known)))
            values.update(loaded)
            where.update(dict.fromkeys(loaded, str(path)))
        flags = {k: v for k, v in overrides.items() if v is not None and v != []}
        values.update(flags)
        where.update({k: f"--{k.replace('_', '-')}" for k in flags})
        if values.get("environment"):   # an environment's BMC: its settings are the base layer
            if environment_settings is None:
                raise ConfigError("environment: not known here (serve it with "
                                  "`quintupleo bmc serve --environment NAME`)")
            base = environment_settings(values["environment"])
            where.update({k: f"environment {values['environment']}" for k in base
                          if k not in where})
            values = {**base, **values}
        for key, value in values.items():
            values[key] = _typed(key, value, where.get(key, "settings"))
        settings = cls(**values)
        try:
            settings.validate()
        except SettingError as exc:
            key = exc.key.split(".")[0]      # not given anywhere: the flag that would give it
            raise SettingError(where.get(key, f"--{key.replace('_', '-')}"), exc.key,
                               exc.reason) from None
        return settings

    def validate(self) -> None:
        def bad(key: str, reason: str) -> SettingError:
            return SettingError("settings", key, reason)
        if self.backend not in BACKENDS:
            raise bad("backend", f"{self.backend!r}: choose one of {', '.join(BACKENDS)}")
        if self.backend == "fake" and not 1 <= self.fake_nodes <= 100_000:
            raise bad("fake_nodes", "must be between 1 and 100000")
        if self.backend == "qemu" and not self.lab:
            raise bad("lab", "the qemu backend needs a lab (made by `quintupleo lab up`)")
        if self.backend == "openstack" and not (self.prefix or self.servers):
            raise bad("prefix", "the openstack backend needs a prefix or servers (name or ID)")
        if self.boot_strategy not in BOOT_STRATEGIES:
            raise bad("boot_strategy", f"{self.boot_strategy!r}: choose one of "
                      f"{', '.join(BOOT_STRATEGIES)}")
        if set(self.pxe_images) - {"legacy", "uefi"}:
            raise bad("pxe_images", "keys are legacy and uefi (Glance image name or ID)")
        if not 1 <= self.media_max_mb <= 65536:
            raise bad("media_max_mb", "must be between 1 and 65536")
        if self.inventory_driver not in ("ipmi", "redfish"):
            raise bad("inventory_driver", "choose ipmi or redfish")
        if self.inventory_driver == "redfish" and not self.redfish:
            raise bad("inventory_driver", "a redfish inventory needs the Redfish endpoint "
                      "(not --no-redfish)")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise bad("tls_cert", "tls_cert and tls_key go together")
        if not 0 < self.ipmi_port_base < 65536 or not 0 < self.redfish_port < 65536:
            raise bad("ipmi_port_base" if not 0 < self.ipmi_port_base < 65536
                      else "redfish_port", "a port is 1 to 65535")
        for key in ("refresh_interval", "session_timeout", "redfish_idle_timeout",
                    "redfish_session_timeout", "account_lockout_duration",
                    "account_lockout_counter_reset_after"):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")
        if self.fake_agent is not None and self.backend != "fake":
            raise bad("fake_agent", "only for the fake backend (real nodes run a real agent)")
        if self.fake_agent is not None and \
                not 0 < self.fake_agent_port_base < 65536 - self.fake_nodes:
            raise bad("fake_agent_port_base", "a port, with room for a port per node after it")
        if self.fake_agent_heartbeat is not None and self.fake_agent_heartbeat <= 0:
            raise bad("fake_agent_heartbeat", "must be more than 0 seconds")
        for key in ("account_lockout_threshold", "source_lockout_threshold", "fake_delay",
                    "fake_agent_delay"):
            if getattr(self, key) < 0:
                raise bad(key, "must be 0 or more")
        for name, node in self.nodes.items():
            for key in set(node) - NODE_KEYS:
                raise bad(f"nodes.{name}.{key}", "unknown; allowed: "
                          + ", ".join(sorted(NODE_KEYS)))
        for key, credentials in [("password", self.password),
                                 *((f"nodes.{n}.password", node.get("password"))
                                   for n, node in self.nodes.items())]:
            if credentials is not None and len(str(credentials).encode()) > 20:
                raise bad(key, "IPMI 2.0 passwords are at most 20 bytes")

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


_KINDS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "int": (int, "an integer"), "float": ((int, float), "a number"),
          "bool": (bool, "true or false (a YAML boolean)"), "str": (str, "a string"),
          "Path": (str, "a path"), "list": (list, "a list"), "dict": (dict, "a mapping")}
_NODE_KINDS = {"ipmi_address": "str", "ipmi_port": "int", "username": "str", "password": "str"}


def _typed(key: str, value: Any, source: str) -> Any:
    """The value as its setting's type; a SettingError for a value of another type (a YAML
    `'no'` is a string, not false)."""
    declared = {f.name: str(f.type) for f in fields(BmcSettings)}[key]
    if value is None and "None" in declared:
        return None
    kind = declared.split("[")[0].split(" ")[0]
    if key == "nodes":
        _check("nodes", value, "dict", source)
        for name, node in value.items():
            _check(f"nodes.{name}", node, "dict", source)
            for field_, field_kind in _NODE_KINDS.items():
                if field_ in node:
                    _check(f"nodes.{name}.{field_}", node[field_], field_kind, source)
        return value
    if isinstance(value, Path) and kind == "Path":
        return value.expanduser()
    _check(key, value, kind, source)
    if kind == "list" and not all(isinstance(v, str) for v in value):
        raise SettingError(source, key, "expected a list of strings")
    if kind == "Path":
        return Path(value).expanduser()
    if kind == "float":
        return float(value)
    return value


def _check(key: str, value: Any, kind: str, source: str) -> None:
    types, said = _KINDS[kind]
    if (isinstance(value, bool) and kind != "bool") or not isinstance(value, types):
        raise SettingError(source, key, f"expected {said}, got {value!r}")
