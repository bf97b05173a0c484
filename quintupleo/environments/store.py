"""Where environments live on this machine: one journal per environment in the state dir."""

from __future__ import annotations

import secrets
from pathlib import Path

from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import Kind, Planned, plan
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


def bmc_settings(name: str) -> dict[str, object]:
    """What `bmc serve --environment NAME` starts from (flags and a config file still win)."""
    journal = open_journal(name)
    try:
        spec = stored_spec(journal)
        bmc = spec.bmc
        address, nodes = bmc.address, {}
        if bmc.host is not None:     # served in the cloud: the addresses its host was given
            from quintupleo.environments.bmc_host import read_served
            served = read_served(journal)
            if served is None:
                raise ConfigError(f"environment {spec.name} has no BMC host yet: run "
                                  "`quintupleo env create` again")
            address = served["address"]
            nodes = {name: {"ipmi_address": ip} for name, ip in served["nodes"].items()}
        return {"backend": "openstack", "cloud": spec.cloud,
                "servers": [node_id for node_id, _ in node_ids(journal, spec)],
                "ipmi_address": address, "ipmi_port_base": bmc.ipmi_port_base,
                "redfish_address": address, "redfish_port": bmc.redfish_port,
                "tls": bmc.tls, "username": bmc.username, "password": bmc_password(journal),
                "boot_strategy": bmc.boot_strategy,
                "state_dir": journal.path.parent / "bmc", "nodes": nodes}
    finally:
        journal.close()


def stored_spec(journal: Journal) -> EnvironmentSpec:
    """The spec the environment was created from, as recorded in its journal."""
    import json
    text = journal.meta("spec")
    if text is None:
        raise ConfigError(f"{journal.path}: no spec recorded; the journal is damaged")
    return parse(json.loads(text), f"{journal.path} (recorded spec)")
