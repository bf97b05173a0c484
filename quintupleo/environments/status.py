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
from quintupleo.model import BootOverride, Credentials

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


def serving(name: str) -> str | None:
    """The Redfish URLs where BMCs of the environment answer, or None (also for one whose
    nodes were never made: no BMC can serve it)."""
    try:
        bmcs = store.bmcs(name)
    except QuintupleOError:
        return None
    answering = [bmc.redfish_url for bmc in bmcs
                 if served_nodes(bmc.redfish_url, _credentials(bmc), bmc.verify_ca) is not None]
    return ", ".join(answering) or None


def environment_status(name: str, consoles: bool = True) -> EnvironmentStatus:
    bmcs = store.bmcs(name)
    with lifecycle.opened(name) as journal:
        spec = store.stored_spec(journal)
        nodes = store.node_ids(journal, spec)
    served: dict[str, dict[str, Any]] = {}
    kept: dict[str, BootOverride] = {}
    answering = []
    for bmc in bmcs:      # the environment's BMC, or each of its BMC hosts
        summary = served_nodes(bmc.redfish_url, _credentials(bmc), bmc.verify_ca) \
            if bmc.redfish else None
        if summary is None:
            kept |= kept_overrides(bmc.state_dir, "openstack")
        else:
            served |= summary
            answering.append(bmc.redfish_url)
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
        at_bmc = served.get(node_id)
        if at_bmc is not None:
            power, boot_shown, health = at_a_glance(at_bmc)
        else:
            power = "-" if server is None else (
                "Off" if server.status == "SHUTOFF" else "On")
            boot_shown = override_text(kept[node_id]) if node_id in kept else "no override"
            health = "Critical" if server is None or server.status == "ERROR" else "OK"
        rows.append(NodeStatus(planned.name, power, boot_shown, cloud, health,
                               lines.get(node_id, "")))
    return EnvironmentStatus(name, spec.cloud, ", ".join(answering) or None, rows)


def _credentials(settings: BmcSettings) -> Credentials:
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
