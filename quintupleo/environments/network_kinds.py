"""Neutron's kinds of resource: networks, subnets, routers, ports (in bulk), virtual IPs
(device-less ports) and floating IPs."""

from __future__ import annotations

from typing import Any

from quintupleo.environments.plan import (
    FloatingIpParams,
    Kind,
    Planned,
    PortParams,
    RouterParams,
    SubnetParams,
    VipParams,
)
from quintupleo.environments.resources import Cloud, CloudError, ResourceKind, params


def network_id(cloud: Cloud, network: str, existing: str | None, ids: dict[str, str]) -> str:
    """The network a port goes on: ours (by its plan name), or an existing one of the cloud."""
    if existing is None:
        return ids[network]
    return str(cloud.lookup("network", existing, lambda: cloud.conn.network.find_network(
        existing, ignore_missing=False)).id)


class Networks(ResourceKind):
    kind = Kind.NETWORK
    quota = "networks"

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.network.networks(**query)

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.network.find_network(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        cloud.count()
        return cloud.conn.network.create_network(name=item.name)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.network.delete_network(cloud_id, ignore_missing=True)


class Subnets(ResourceKind):
    kind = Kind.SUBNET
    quota = "subnets"

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.network.subnets(**query)

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.network.find_subnet(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, SubnetParams)
        cloud.count()
        # No DHCP and no gateway: the user's own DHCP/PXE server answers on these networks.
        # The BMC network is the exception: an ordinary routed one (DHCP, a gateway).
        closed = {} if p.routed else {"enable_dhcp": False, "gateway_ip": None}
        return cloud.conn.network.create_subnet(
            name=item.name, network_id=ids[p.network], cidr=p.cidr,
            ip_version=4 if "." in p.cidr else 6, **closed)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.network.delete_subnet(cloud_id, ignore_missing=True)


def external_network(cloud: Cloud, name: str) -> Any:
    network = cloud.lookup("network", name, lambda: cloud.conn.network.find_network(
        name, ignore_missing=False))
    if not network.is_router_external:
        raise CloudError(f"network {name} is not external (router:external is false)")
    return network


class Routers(ResourceKind):
    kind = Kind.ROUTER
    quota = "routers"

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.network.routers(**query)

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.network.find_router(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        external = external_network(cloud, params(item, RouterParams).external)
        cloud.count()
        return cloud.conn.network.create_router(
            name=item.name, external_gateway_info={"network_id": external.id})

    def complete(self, cloud: Cloud, router: Any, item: Planned, ids: dict[str, str]) -> None:
        """The router's interface on the BMC subnet."""
        subnet_id = ids[params(item, RouterParams).subnet]
        cloud.count()
        for port in cloud.conn.network.ports(device_id=router.id):
            if any(fixed["subnet_id"] == subnet_id for fixed in port.fixed_ips):
                return
        cloud.count()
        cloud.conn.network.add_interface_to_router(router, subnet_id=subnet_id)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()   # its interfaces first; the gateway goes with it
        for port in cloud.conn.network.ports(device_id=cloud_id,
                                             device_owner="network:router_interface"):
            cloud.count()
            cloud.conn.network.remove_interface_from_router(cloud_id, port_id=port.id)
        cloud.count()
        cloud.conn.network.delete_router(cloud_id, ignore_missing=True)


class Ports(ResourceKind):
    kind = Kind.PORT
    quota = "ports"

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.network.ports(**query)

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.network.find_port(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        body = self.body(cloud, item, ids)
        cloud.count()
        return cloud.conn.network.create_port(**body)

    def create_many(self, cloud: Cloud, items: list[Planned], ids: dict[str, str]) -> list[Any]:
        """Neutron's bulk creation: one call for them all, all or none made; tagged in it where
        Neutron takes tags there (its tag-ports-during-bulk-creation extension; else `tag`
        tags each after, as the devcloud's Neutron needs)."""
        bodies = [self.body(cloud, item, ids) for item in items]
        if cloud.extension("tag-ports-during-bulk-creation"):
            for body in bodies:
                body["tags"] = [cloud.tag]
        cloud.count()
        made = {port.name: port for port in cloud.conn.network.create_ports(bodies)}
        return [made[item.name] for item in items]

    def in_bulk(self, item: Planned) -> bool:
        # A port without addresses comes out of Neutron's bulk path with ip_allocation
        # "immediate", not "none", and Nova then refuses it ("requires a FixedIP"): alone.
        return params(item, PortParams).addresses != 0

    def body(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> dict[str, Any]:
        """The port's attributes, as its creation sends them."""
        p = params(item, PortParams)
        # A bare-metal node's ports stay administratively down until its first boot (which
        # Nova cannot skip) is over and the node is off: nothing on the network sees it.
        body: dict[str, Any] = {"name": item.name, "port_security_enabled": p.security,
                                "network_id": network_id(cloud, p.network, p.existing, ids)}
        if p.node:
            body["admin_state_up"] = False
        if p.mac:
            body["mac_address"] = p.mac
        if p.ip is not None:
            body["fixed_ips"] = [{"subnet_id": ids[f"{p.network}-subnet"], "ip_address": p.ip}]
        elif p.addresses != 1:  # none (the user's DHCP), or a BMC host's per-node addresses
            body["fixed_ips"] = [{"subnet_id": ids[f"{p.network}-subnet"]}] * p.addresses
        if p.security:
            # Neutron refuses address pairs on a port without security: keep it, allow VIPs.
            pairs = []
            for vip in p.pairs:
                cloud.count()
                port = cloud.conn.network.get_port(ids[vip])
                pairs += [{"ip_address": fixed["ip_address"]} for fixed in port.fixed_ips]
            body["allowed_address_pairs"] = pairs
        return body

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.network.delete_port(cloud_id, ignore_missing=True)


class Vips(Ports):
    """A device-less port reserving a virtual IP."""

    kind = Kind.VIP
    listed_as = Kind.PORT

    def in_bulk(self, item: Planned) -> bool:
        return False                       # a few, each its own address

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, VipParams)
        cloud.count()
        return cloud.conn.network.create_port(
            name=item.name, network_id=network_id(cloud, p.network, p.existing, ids),
            port_security_enabled=p.security,
            **({"fixed_ips": [{"ip_address": p.ip}]} if p.ip else {}))


class FloatingIps(ResourceKind):
    kind = Kind.FLOATING_IP
    quota = "floating_ips"

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.network.ips(**query)

    def name_query(self, name: str) -> dict[str, Any]:
        return {}

    def named(self, resource: Any) -> str:
        return str(resource.description)   # no name: ours carry it as their description

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.network.find_ip(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, FloatingIpParams)
        external = external_network(cloud, p.external)
        cloud.count()
        return cloud.conn.network.create_ip(floating_network_id=external.id,
                                            port_id=ids[p.port], description=item.name)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.network.delete_ip(cloud_id, ignore_missing=True)
