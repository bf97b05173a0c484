"""Each kind of resource on an OpenStack cloud: find by exact name, create, tag, delete, list."""

from __future__ import annotations

import contextlib
import re
import time
from typing import Any

from openstack import exceptions as os_exc

from quintupleo.environments.plan import Kind, Planned
from quintupleo.errors import QuintupleOError

SERVER_TIMEOUT = 300.0


class CloudError(QuintupleOError):
    pass


class CloudOps:
    """Blocking openstacksdk calls; the caller runs them in a bounded thread pool."""

    def __init__(self, conn: Any, tag: str) -> None:
        self.conn = conn
        self.tag = tag
        self.calls = 0

    def _count(self, n: int = 1) -> None:
        self.calls += n

    # ---- listing -------------------------------------------------------------------------
    def listing(self, kind: Kind, **query: Any) -> list[Any]:
        self._count()
        net, compute = self.conn.network, self.conn.compute
        return list({Kind.NETWORK: net.networks, Kind.SUBNET: net.subnets, Kind.VIP: net.ports,
                     Kind.PORT: net.ports,
                     Kind.SERVER: lambda **q: compute.servers(details=True, **q)}[kind](**query))

    def find(self, kind: Kind, name: str) -> Any | None:
        query = {"name": f"^{re.escape(name)}$"} if kind is Kind.SERVER else {"name": name}
        found = [r for r in self.listing(kind, **query) if r.name == name]
        return found[0] if found else None

    def tagged(self, kind: Kind) -> list[Any]:
        return self.listing(kind, tags=self.tag)

    # ---- creation ------------------------------------------------------------------------
    def create(self, item: Planned, ids: dict[str, str], adopt: bool = False) -> str:
        """Create one resource and return its ID; with `adopt` (an earlier run started it and
        crashed) first look for it by name."""
        try:
            return self._create(item, ids, adopt)
        except os_exc.SDKException as exc:
            raise CloudError(f"{item.kind.value} {item.name}: {_reason(exc)}") from None

    def _create(self, item: Planned, ids: dict[str, str], adopt: bool) -> str:
        existing = self.find(item.kind, item.name) if adopt else None
        fresh = existing is None
        if fresh:
            existing = getattr(self, f"_create_{item.kind.value}")(item, ids)
        if item.kind is Kind.SERVER:
            if not fresh and self.tag not in (existing.tags or []):   # servers get it at boot
                self._count()
                self.conn.compute.add_tag_to_server(existing, self.tag)
        elif self.tag not in (existing.tags or []):
            # Neutron tags after creation: tags in the POST body need an extension not every
            # cloud has; the journal holds the exact name meanwhile.
            self._count()
            self.conn.network.add_tag(existing, self.tag)
        return existing.id

    def _create_network(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        return self.conn.network.create_network(name=item.name)

    def _create_subnet(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        return self.conn.network.create_subnet(
            name=item.name, network_id=ids[item.params["network"]], cidr=item.params["cidr"],
            ip_version=4 if "." in item.params["cidr"] else 6, enable_dhcp=False,
            gateway_ip=None)

    def _create_vip(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        ip = item.params["ip"]
        return self.conn.network.create_port(
            name=item.name, network_id=ids[item.params["network"]],
            port_security_enabled=item.params["security"],
            **({"fixed_ips": [{"ip_address": ip}]} if ip else {}))

    def _create_port(self, item: Planned, ids: dict[str, str]) -> Any:
        # A bare-metal node's ports stay administratively down until its first boot (which
        # Nova cannot skip) is over and the node is off: nothing on the network sees it.
        down = {"admin_state_up": False} if item.params.get("node") else {}
        if not item.params["security"]:
            self._count()
            return self.conn.network.create_port(name=item.name,
                                                 network_id=ids[item.params["network"]],
                                                 port_security_enabled=False, **down)
        # Neutron refuses address pairs on a port without security: keep it, allow the VIPs.
        pairs = []
        for vip in item.params["pairs"]:
            self._count()
            port = self.conn.network.get_port(ids[vip])
            pairs += [{"ip_address": fixed["ip_address"]} for fixed in port.fixed_ips]
        self._count()
        return self.conn.network.create_port(name=item.name,
                                             network_id=ids[item.params["network"]],
                                             port_security_enabled=True,
                                             allowed_address_pairs=pairs, **down)

    def _create_server(self, item: Planned, ids: dict[str, str]) -> Any:
        p = item.params
        self._count(3)
        image = self.conn.image.find_image(p["image"], ignore_missing=False)
        flavor = self.conn.compute.find_flavor(p["flavor"], ignore_missing=False)
        metadata = {"quintupleo_role": p["role"]}
        key = {"key_name": p["key"]} if p.get("key") else {}
        if p["profile"]:
            metadata["quintupleo_profile"] = p["profile"]
        return self.conn.compute.create_server(
            name=item.name, image_id=image.id, flavor_id=flavor.id, tags=[self.tag],
            metadata=metadata, networks=[{"port": ids[port]} for port in p["ports"]], **key)

    def bring_up(self, port_ids: set[str]) -> None:
        """Let the (powered-off) nodes' ports carry traffic."""
        for port_id in port_ids:
            self._count()
            self.conn.network.update_port(port_id, admin_state_up=True)

    def power_off(self, server_ids: set[str]) -> None:
        """Wait for the servers' first boot to end and stop them: nodes are handed over
        powered off. One server list per poll for all of them, one stop per server."""
        deadline = time.monotonic() + SERVER_TIMEOUT
        pending = set(server_ids)
        while pending:
            for server in self.tagged(Kind.SERVER):
                if server.id not in pending:
                    continue
                if server.status == "ERROR":
                    raise CloudError(f"server {server.name} went to ERROR: {server.fault}")
                if server.task_state is None and server.status == "SHUTOFF":
                    pending.discard(server.id)
                elif server.task_state is None and server.status == "ACTIVE":
                    self._count()
                    with contextlib.suppress(os_exc.ConflictException):   # a task began
                        self.conn.compute.stop_server(server.id)
            if pending and time.monotonic() > deadline:
                raise CloudError(f"{len(pending)} servers not powered off after "
                                 f"{SERVER_TIMEOUT:.0f} s")
            if pending:
                time.sleep(0.5)

    # ---- deletion ------------------------------------------------------------------------
    def wait_gone(self, server_ids: set[str]) -> None:
        """Wait until Nova no longer lists these servers (their ports are freed only then):
        one server list per poll for all of them."""
        deadline = time.monotonic() + SERVER_TIMEOUT
        pending = set(server_ids)
        while pending:
            pending &= {server.id for server in self.listing(Kind.SERVER)}
            if pending and time.monotonic() > deadline:
                raise CloudError(f"{len(pending)} servers not deleted after "
                                 f"{SERVER_TIMEOUT:.0f} s")
            if pending:
                time.sleep(0.5)

    def delete(self, kind: Kind, cloud_id: str) -> None:
        """Delete; a resource already gone is fine. Servers go asynchronously: see wait_gone."""
        try:
            self._delete(kind, cloud_id)
        except os_exc.SDKException as exc:
            raise CloudError(f"delete {kind.value} {cloud_id}: {_reason(exc)}") from None

    def _delete(self, kind: Kind, cloud_id: str) -> None:
        self._count()
        delete = {Kind.SERVER: self.conn.compute.delete_server,
                  Kind.NETWORK: self.conn.network.delete_network,
                  Kind.SUBNET: self.conn.network.delete_subnet,
                  Kind.VIP: self.conn.network.delete_port,
                  Kind.PORT: self.conn.network.delete_port}[kind]
        delete(cloud_id, ignore_missing=True)


def _reason(exc: os_exc.SDKException) -> str:
    if isinstance(exc, os_exc.HttpException):
        return f"HTTP {exc.status_code}: {exc.details or exc.message}"
    return str(exc)
