"""Where environments live on this machine: one journal per environment in the state dir."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from quintupleo.bmc.settings import BmcSettings
from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import Kind, Planned, bmc_hosts, plan
from quintupleo.environments.spec import EnvironmentSpec, parse
from quintupleo.errors import ConfigError
from quintupleo.paths import state_dir


def state_root() -> Path:
    return state_dir("environments")


def names(root: Path | None = None) -> list[str]:
    root = root or state_root()
    return sorted(p.parent.name for p in root.glob("*/journal.sqlite")) if root.exists() else []


def exists(name: str, root: Path | None = None) -> bool:
    return ((root or state_root()) / name / "journal.sqlite").exists()


def open_journal(name: str, root: Path | None = None, must_exist: bool = True) -> Journal:
    path = (root or state_root()) / name / "journal.sqlite"
    if must_exist and not path.exists():
        known = ", ".join(names(root)) or "none"
        raise ConfigError(f"no environment {name!r} on this machine (known: {known})")
    return Journal(path)


def forget(name: str, root: Path | None = None) -> None:
    """Remove the environment's journal and its BMC's state from this machine (nothing in the
    cloud is touched)."""
    import shutil
    directory = (root or state_root()) / name
    if not (directory / "journal.sqlite").exists():
        raise ConfigError(f"no environment {name!r} on this machine")
    shutil.rmtree(directory)


def bmc_password(journal: Journal) -> str:
    """The environment's BMC password: made at its first create, kept in its journal (0600)."""
    password = journal.meta("bmc_password")
    if password is None:
        password = secrets.token_urlsafe(12)      # 16 characters: IPMI allows 20 bytes
        journal.set_meta("bmc_password", password)
    return password


def node_ids(journal: Journal, spec: EnvironmentSpec) -> list[tuple[str, Planned]]:
    """(server ID, planned server) of every node, in the spec's order; ConfigError if any is
    missing."""
    created = {e.name: e.cloud_id for e in journal.entries()
               if e.kind is Kind.SERVER and e.status == "created"}
    nodes = []
    for item in plan(spec):
        if item.node:
            node_id = created.get(item.name)
            if not node_id:
                raise ConfigError(f"environment {spec.name} has no node {item.name} yet: run "
                                  "`quintupleo env create` again")
            nodes.append((node_id, item))
    return nodes


def bmc_settings(name: str) -> dict[str, Any]:
    """What `bmc serve --environment NAME` starts from (flags and a config file still win):
    the environment's one BMC."""
    shards = bmc_shards(name)
    if len(shards) > 1:
        raise ConfigError(f"environment {name} is served by {len(shards)} BMC hosts in the "
                          "cloud, each its own BMC: `quintupleo env show` says where")
    return shards[0]


def bmc_shards(name: str) -> list[dict[str, Any]]:
    """The settings of every BMC that serves the environment, each with its own nodes: the one
    served from here, or one per BMC host in the cloud (at the addresses it was given)."""
    journal = open_journal(name)
    try:
        spec = stored_spec(journal)
        nodes = node_ids(journal, spec)
        bmc = spec.bmc
        common = {"backend": "openstack", "cloud": spec.cloud, "ipmi_port_base": bmc.ipmi_port_base,
                  "redfish_port": bmc.redfish_port, "tls": bmc.tls, "username": bmc.username,
                  "password": bmc_password(journal), "boot_strategy": bmc.boot_strategy}
        directory = journal.path.parent
        if bmc.host is None:
            return [{**common, "servers": [node_id for node_id, _ in nodes],
                     "ipmi_address": bmc.address, "redfish_address": bmc.address,
                     "state_dir": directory / "bmc", "nodes": {}}]
        from quintupleo.environments.bmc_host import certificate_dir, read_served
        ids = {item.name: node_id for node_id, item in nodes}
        shards: list[dict[str, Any]] = []
        for host, served_nodes in bmc_hosts(spec, tuple(ids)):
            served = read_served(journal, host)
            if served is None:
                raise ConfigError(f"environment {spec.name} has no BMC host {host} yet: run "
                                  "`quintupleo env create` again")
            shards.append({**common, "servers": [ids[node] for node in served_nodes],
                           "ipmi_address": served["address"],
                           "redfish_address": served["address"],
                           "state_dir": certificate_dir(directory, spec, host),
                           "nodes": {node: {"ipmi_address": ip}
                                     for node, ip in served["nodes"].items()}})
        return shards
    finally:
        journal.close()


def bmcs(name: str) -> list[BmcSettings]:
    """Every BMC of the environment as settings (validated), each with its own nodes."""
    def settings(shard: dict[str, Any]) -> BmcSettings:
        return BmcSettings.load(None, lambda _: shard, environment=name)
    return [settings(shard) for shard in bmc_shards(name)]


def stored_spec(journal: Journal) -> EnvironmentSpec:
    """The spec the environment was created from, as recorded in its journal."""
    import json
    text = journal.meta("spec")
    if text is None:
        raise ConfigError(f"{journal.path}: no spec recorded; the journal is damaged")
    return parse(json.loads(text), f"{journal.path} (recorded spec)")
