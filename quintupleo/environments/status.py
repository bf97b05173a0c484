"""`env status`: each node as its BMC shows it (when one serves the environment: power, boot
override, health), beside what the cloud says of its server and the last line of its console.
When no BMC serves it, power is the cloud's and the boot override what the BMC kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from quintupleo.bmc.client import at_a_glance, kept_overrides, override_text, served_nodes
from quintupleo.bmc.settings import BmcSettings
from quintupleo.environments import lifecycle, store
from quintupleo.errors import QuintupleOError

COLUMNS = ("node", "power", "boot", "cloud", "health", "console")
CONSOLE_LINES = 5          # asked of the cloud's console log, the last non-empty one shown


@dataclass(frozen=True)
class NodeStatus:
    node: str
    power: str
    boot: str
    cloud: str
    health: str
    console: str

    def row(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class EnvironmentStatus:
    name: str
    cloud: str
    bmc: str | None          # where its BMC answered, or None
    nodes: list[NodeStatus]

    def document(self) -> dict[str, Any]:
        return {"environment": self.name, "cloud": self.cloud, "bmc": self.bmc,
                "nodes": [n.row() for n in self.nodes]}


def bmc_of(name: str) -> BmcSettings:
    return BmcSettings.load(None, store.bmc_settings, environment=name)


def serving(name: str) -> str | None:
    """The Redfish URL where a BMC of the environment answers, or None (also for one whose
    nodes were never made: no BMC can serve it)."""
    try:
        settings = bmc_of(name)
    except QuintupleOError:
        return None
    if served_nodes(settings.redfish_url, _credentials(settings), settings.verify_ca) is None:
        return None
    return settings.redfish_url


def environment_status(name: str, consoles: bool = True) -> EnvironmentStatus:
    settings = bmc_of(name)
    with lifecycle.opened(name) as journal:
        spec = store.stored_spec(journal)
        nodes = store.node_ids(journal, spec)
    served = served_nodes(settings.redfish_url, _credentials(settings), settings.verify_ca) \
        if settings.redfish else None
    kept = kept_overrides(settings.state_dir, "openstack") if served is None else {}
    import openstack
    try:
        conn = openstack.connect(cloud=spec.cloud)
        servers = {s.id: s for s in conn.compute.servers(details=True)}
    except Exception as exc:   # openstacksdk's config, auth and HTTP errors have no common base
        raise QuintupleOError(f"cloud {spec.cloud!r}: {exc}") from None
    lines: dict[str, str] = {}
    if consoles:
        with ThreadPoolExecutor(max_workers=8) as pool:
            lines = dict(zip([i for i, _ in nodes],
                             pool.map(lambda i: _last_line(conn, i), [i for i, _ in nodes]),
                             strict=True))
    rows = []
    for node_id, planned in nodes:
        server = servers.get(node_id)
        cloud = "gone" if server is None else server.status + (
            f" ({server.task_state})" if server.task_state else "")
        at_bmc = (served or {}).get(node_id)
        if at_bmc is not None:
            power, boot_shown, health = at_a_glance(at_bmc)
        else:
            power = "-" if server is None else (
                "Off" if server.status == "SHUTOFF" else "On")
            boot_shown = override_text(kept[node_id]) if node_id in kept else "no override"
            health = "Critical" if server is None or server.status == "ERROR" else "OK"
        rows.append(NodeStatus(planned.name, power, boot_shown, cloud, health,
                               lines.get(node_id, "")))
    return EnvironmentStatus(name, spec.cloud, settings.redfish_url if served else None, rows)


def _credentials(settings: BmcSettings) -> Any:
    from quintupleo.model import Credentials
    return Credentials(settings.username, settings.password)


def _last_line(conn: Any, server_id: str) -> str:
    """The last non-empty line of the server's console log ('' where the cloud keeps none)."""
    try:
        output = conn.compute.get_server_console_output(server_id, length=CONSOLE_LINES)
    except Exception:   # a host without a console log answers with an error: nothing to show
        return ""
    text = output.get("output", "") if isinstance(output, dict) else ""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
