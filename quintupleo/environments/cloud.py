"""Each kind of resource on an OpenStack cloud: find by exact name, create, tag, delete, list."""

from __future__ import annotations

import base64
import contextlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openstack import exceptions as os_exc

from quintupleo.environments.plan import Kind, Planned
from quintupleo.environments.spec import EnvironmentSpec
from quintupleo.errors import QuintupleOError

if TYPE_CHECKING:
    from quintupleo.environments.bmc_host import BmcHost

SERVER_TIMEOUT = 300.0


class CloudError(QuintupleOError):
    pass


class CloudOps:
    """Blocking openstacksdk calls; the caller runs them in a bounded thread pool."""

    def __init__(self, conn: Any, spec: EnvironmentSpec, host: BmcHost | None = None) -> None:
        self.conn = conn
        self.tag = spec.tag
        self.prefix = spec.resource_name("")        # "qo-NAME-": what Keystone's names start with
        self.host = host
        self.calls = 0

    def _count(self, n: int = 1) -> None:
        self.calls += n

    # ---- listing -------------------------------------------------------------------------
    def listing(self, kind: Kind, **query: Any) -> list[Any]:
        self._count()
        net, compute = self.conn.network, self.conn.compute

        def servers(**q: Any) -> Any:
            return compute.servers(details=True, **q)

        def credentials(**q: Any) -> Any:   # Keystone has no tags: the name prefix marks them
            return (c for c in self.conn.identity.application_credentials(
                user=self.conn.current_user_id) if c.name.startswith(self.prefix))
        return list({Kind.NETWORK: net.networks, Kind.SUBNET: net.subnets,
                     Kind.ROUTER: net.routers, Kind.VIP: net.ports, Kind.PORT: net.ports,
                     Kind.SERVER: servers, Kind.FLOATING_IP: net.ips,
                     Kind.CREDENTIAL: credentials, Kind.BMC_HOST: servers}[kind](**query))

    def find(self, kind: Kind, name: str) -> Any | None:
        if kind is Kind.FLOATING_IP:    # no name: ours carry it as their description
            found = [r for r in self.listing(kind) if r.description == name]
        else:
            query = ({"name": f"^{re.escape(name)}$"} if kind in (Kind.SERVER, Kind.BMC_HOST)
                     else {} if kind is Kind.CREDENTIAL else {"name": name})
            found = [r for r in self.listing(kind, **query) if r.name == name]
        return found[0] if found else None

    def tagged(self, kind: Kind) -> list[Any]:
        if kind is Kind.CREDENTIAL:
            return self.listing(kind)
        return self.listing(kind, tags=self.tag)

    def exists(self, kind: Kind, cloud_id: str) -> bool:
        """Whether a resource is still there (for one that lost its tag out of band)."""
        self._count()
        get = {Kind.NETWORK: self.conn.network.find_network,
               Kind.SUBNET: self.conn.network.find_subnet,
               Kind.ROUTER: self.conn.network.find_router,
               Kind.VIP: self.conn.network.find_port, Kind.PORT: self.conn.network.find_port,
               Kind.SERVER: self.conn.compute.find_server,
               Kind.BMC_HOST: self.conn.compute.find_server,
               Kind.FLOATING_IP: self.conn.network.find_ip,
               Kind.CREDENTIAL: lambda i, ignore_missing: self.conn.identity.
               find_application_credential(self.conn.current_user_id, i,
                                           ignore_missing=ignore_missing)}[kind]
        try:
            return get(cloud_id, ignore_missing=True) is not None
        except os_exc.SDKException as exc:
            raise CloudError(f"{kind.value} {cloud_id}: {_reason(exc)}") from None

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
        if existing is None:
            existing = getattr(self, f"_create_{item.kind.name.lower()}")(item, ids)
        assert existing is not None
        if item.kind is Kind.ROUTER:
            self._attach(existing, ids[item.params["subnet"]])
        if item.kind is Kind.CREDENTIAL:
            pass                                                      # Keystone: no tags
        elif item.kind in (Kind.SERVER, Kind.BMC_HOST):
            if not fresh and self.tag not in (existing.tags or []):   # servers get it at boot
                self._count()
                self.conn.compute.add_tag_to_server(existing, self.tag)
        elif self.tag not in (existing.tags or []):
            # Neutron tags after creation: tags in the POST body need an extension not every
            # cloud has; the journal holds the exact name meanwhile.
            self._count()
            self.conn.network.add_tag(existing, self.tag)
        return str(existing.id)

    def _create_network(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        return self.conn.network.create_network(name=item.name)

    def _create_subnet(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        # The BMC network is the exception: an ordinary routed one (DHCP, a gateway).
        closed = {} if item.params.get("routed") else {"enable_dhcp": False, "gateway_ip": None}
        return self.conn.network.create_subnet(
            name=item.name, network_id=ids[item.params["network"]], cidr=item.params["cidr"],
            ip_version=4 if "." in item.params["cidr"] else 6, **closed)

    def _external(self, name: str) -> Any:
        self._count()
        network = self.conn.network.find_network(name, ignore_missing=False)
        if not network.is_router_external:
            raise CloudError(f"network {name} is not external (router:external is false)")
        return network

    def _create_router(self, item: Planned, ids: dict[str, str]) -> Any:
        external = self._external(item.params["external"])
        self._count()
        return self.conn.network.create_router(
            name=item.name, external_gateway_info={"network_id": external.id})

    def _attach(self, router: Any, subnet_id: str) -> None:
        """The router's interface on the BMC subnet (also when adopting a half-made router)."""
        self._count()
        for port in self.conn.network.ports(device_id=router.id):
            if any(fixed["subnet_id"] == subnet_id for fixed in port.fixed_ips):
                return
        self._count()
        self.conn.network.add_interface_to_router(router, subnet_id=subnet_id)

    def _create_floating_ip(self, item: Planned, ids: dict[str, str]) -> Any:
        external = self._external(item.params["external"])
        self._count()
        return self.conn.network.create_ip(floating_network_id=external.id,
                                           port_id=ids[item.params["port"]],
                                           description=item.name)

    def _create_credential(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        return self.conn.identity.create_application_credential(
            user=self.conn.current_user_id, name=item.name, secret=self._host().credential_secret(),
            description="QuintupleO: the BMC host of this environment calls Nova with it")

    def _create_bmc_host(self, item: Planned, ids: dict[str, str]) -> Any:
        self._count()
        port = self.conn.network.get_port(ids[item.params["ports"][0]])
        user_data = self._host().user_data(item, port, ids[item.params["credential"]],
                                        self.cloud_info())
        item = Planned(Kind.SERVER, item.name, {
            "role": "bmc", "flavor": item.params["flavor"], "image": item.params["image"],
            "profile": None, "ports": item.params["ports"], "key": item.params["key"],
            "availability_zone": item.params.get("availability_zone"),
            "user_data": base64.b64encode(user_data.encode()).decode()})
        return self._create_server(item, ids)

    def _host(self) -> BmcHost:
        if self.host is None:
            raise QuintupleOError("a plan with a BMC host needs CloudOps(host=BmcHost(...))")
        return self.host

    def cloud_info(self) -> dict[str, Any]:
        """Where the BMC host finds the cloud: the identity URL and options this command uses."""
        config = self.conn.config
        info = {"auth_url": config.config["auth"]["auth_url"],
                "region_name": config.get_region_name(), "interface": config.get_interface()}
        cacert = config.config.get("cacert")
        if cacert:
            info["cacert_pem"] = Path(cacert).read_text()
        return info

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
        down: dict[str, Any] = {"admin_state_up": False} if item.params.get("node") else {}
        addresses = item.params.get("addresses", 1)
        if addresses != 1:    # none (the user's DHCP), or a BMC host's per-node addresses
            subnet = ids[f"{item.params['network']}-subnet"]
            down["fixed_ips"] = [{"subnet_id": subnet}] * addresses
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
        if p.get("user_data"):
            key["user_data"] = p["user_data"]
        if p.get("availability_zone"):
            key["availability_zone"] = p["availability_zone"]
        if p["profile"]:
            metadata["quintupleo_profile"] = p["profile"]
        return self.conn.compute.create_server(
            name=item.name, image_id=image.id, flavor_id=flavor.id, tags=[self.tag],
            metadata=metadata, networks=[{"port": ids[port]} for port in p["ports"]], **key)

    def set_ports_up(self, port_ids: set[str], up: bool) -> None:
        """Let the (powered-off) nodes' ports carry traffic, or not."""
        for port_id in port_ids:
            self._count()
            self.conn.network.update_port(port_id, admin_state_up=up)

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
        if kind is Kind.ROUTER:     # its interfaces first; the gateway goes with it
            self._count()
            for port in self.conn.network.ports(device_id=cloud_id,
                                                device_owner="network:router_interface"):
                self._count()
                self.conn.network.remove_interface_from_router(cloud_id, port_id=port.id)
        self._count()
        if kind is Kind.CREDENTIAL:
            self.conn.identity.delete_application_credential(
                self.conn.current_user_id, cloud_id, ignore_missing=True)
            return
        delete = {Kind.SERVER: self.conn.compute.delete_server,
                  Kind.BMC_HOST: self.conn.compute.delete_server,
                  Kind.NETWORK: self.conn.network.delete_network,
                  Kind.SUBNET: self.conn.network.delete_subnet,
                  Kind.ROUTER: self.conn.network.delete_router,
                  Kind.FLOATING_IP: self.conn.network.delete_ip,
                  Kind.VIP: self.conn.network.delete_port,
                  Kind.PORT: self.conn.network.delete_port}[kind]
        delete(cloud_id, ignore_missing=True)


def _reason(exc: os_exc.SDKException) -> str:
    if isinstance(exc, os_exc.HttpException):
        return f"HTTP {exc.status_code}: {exc.details or exc.message}"
    return str(exc)
