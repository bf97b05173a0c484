"""Each kind of cloud resource an environment is made of, described once: how it is listed,
found by its exact name, checked, created, tagged and deleted (blocking openstacksdk calls).

Creating one gets `Cloud`, the few things of the environment's cloud connection a creation
needs (the connection, its call counter, the BMC host's parts, the plan's IDs so far).
"""

from __future__ import annotations

import base64
import re
from typing import Any, Protocol, TypeVar

from quintupleo.environments.plan import (
    BmcHostParams,
    FloatingIpParams,
    Kind,
    Params,
    Planned,
    PortParams,
    RouterParams,
    ServerGroupParams,
    ServerParams,
    SubnetParams,
    VipParams,
)
from quintupleo.errors import QuintupleOError


class CloudError(QuintupleOError):
    pass


class Cloud(Protocol):
    conn: Any
    tag: str
    prefix: str

    def count(self, calls: int = 1) -> None: ...

    def user_data(self, name: str, params: BmcHostParams, port: Any,
                  credential_id: str) -> str: ...

    def credential_secret(self) -> str: ...


class ResourceKind:
    """A Neutron resource by default: listed by name or tag, tagged after creation."""

    kind: Kind
    listed_as: Kind | None = None          # listed with another kind (a VIP is a port)
    deleted_later = False                  # deletion ends after the call (CloudOps.wait_gone)
    quota: str | None = None               # what it counts against (Nova's, Neutron's names)
    has_tags = True                        # else its listing is by the name prefix

    def listing(self, conn: Any, **query: Any) -> Any:
        raise NotImplementedError

    def name_query(self, name: str) -> dict[str, Any]:
        return {"name": name}

    def named(self, resource: Any) -> str:
        return str(resource.name)

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        raise NotImplementedError

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        raise NotImplementedError

    def complete(self, cloud: Cloud, resource: Any, item: Planned, ids: dict[str, str]) -> None:
        """What a resource needs after it exists, also when it was adopted half-made."""

    def tag(self, cloud: Cloud, resource: Any, fresh: bool) -> None:
        # Neutron tags after creation: tags in the POST body need an extension not every cloud
        # has; the journal holds the exact name meanwhile.
        if cloud.tag not in (resource.tags or []):
            cloud.count()
            cloud.conn.network.add_tag(resource, cloud.tag)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        raise NotImplementedError


P = TypeVar("P")


def network_id(cloud: Cloud, network: str, existing: str | None, ids: dict[str, str]) -> str:
    """The network a port goes on: ours (by its plan name), or an existing one of the cloud."""
    if existing is None:
        return ids[network]
    cloud.count()
    return str(cloud.conn.network.find_network(existing, ignore_missing=False).id)


def params(item: Planned, kind: type[P]) -> P:
    """The item's parameters, as the kind that creates it expects them."""
    found: Params = item.params
    if not isinstance(found, kind):
        raise TypeError(f"{item.name}: {type(found).__name__}, not {kind.__name__}")
    return found


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
    cloud.count()
    network = cloud.conn.network.find_network(name, ignore_missing=False)
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
        p = params(item, PortParams)
        # A bare-metal node's ports stay administratively down until its first boot (which
        # Nova cannot skip) is over and the node is off: nothing on the network sees it.
        extra: dict[str, Any] = {"admin_state_up": False} if p.node else {}
        if p.mac:
            extra["mac_address"] = p.mac
        if p.ip is not None:
            extra["fixed_ips"] = [{"subnet_id": ids[f"{p.network}-subnet"], "ip_address": p.ip}]
        elif p.addresses != 1:  # none (the user's DHCP), or a BMC host's per-node addresses
            extra["fixed_ips"] = [{"subnet_id": ids[f"{p.network}-subnet"]}] * p.addresses
        network = network_id(cloud, p.network, p.existing, ids)
        if not p.security:
            cloud.count()
            return cloud.conn.network.create_port(name=item.name, network_id=network,
                                                  port_security_enabled=False, **extra)
        # Neutron refuses address pairs on a port without security: keep it, allow the VIPs.
        pairs = []
        for vip in p.pairs:
            cloud.count()
            port = cloud.conn.network.get_port(ids[vip])
            pairs += [{"ip_address": fixed["ip_address"]} for fixed in port.fixed_ips]
        cloud.count()
        return cloud.conn.network.create_port(name=item.name, network_id=network,
                                              port_security_enabled=True,
                                              allowed_address_pairs=pairs, **extra)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.network.delete_port(cloud_id, ignore_missing=True)


class Vips(Ports):
    """A device-less port reserving a virtual IP."""

    kind = Kind.VIP
    listed_as = Kind.PORT

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, VipParams)
        cloud.count()
        return cloud.conn.network.create_port(
            name=item.name, network_id=network_id(cloud, p.network, p.existing, ids),
            port_security_enabled=p.security,
            **({"fixed_ips": [{"ip_address": p.ip}]} if p.ip else {}))


class ServerGroups(ResourceKind):
    """A role's anti-affinity (Nova: no tags; the name prefix marks it)."""

    kind = Kind.SERVER_GROUP
    has_tags = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def listing(self, conn: Any, **query: Any) -> Any:
        return (g for g in conn.compute.server_groups() if g.name.startswith(self.prefix))

    def name_query(self, name: str) -> dict[str, Any]:
        return {}

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.compute.find_server_group(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        cloud.count()
        return cloud.conn.compute.create_server_group(
            name=item.name, policies=[params(item, ServerGroupParams).policy])

    def tag(self, cloud: Cloud, resource: Any, fresh: bool) -> None:
        pass

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.compute.delete_server_group(cloud_id, ignore_missing=True)


class Servers(ResourceKind):
    kind = Kind.SERVER
    quota = "instances"
    deleted_later = True                   # and only then are its ports free

    def listing(self, conn: Any, **query: Any) -> Any:
        return conn.compute.servers(details=True, **query)

    def name_query(self, name: str) -> dict[str, Any]:
        return {"name": f"^{re.escape(name)}$"}    # Nova matches names as regular expressions

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.compute.find_server(cloud_id, ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, ServerParams)
        cloud.count(3)
        conn = cloud.conn
        image = conn.image.find_image(p.image, ignore_missing=False)
        flavor = conn.compute.find_flavor(p.flavor, ignore_missing=False)
        metadata = {"quintupleo_role": p.role}
        if p.profile:
            metadata["quintupleo_profile"] = p.profile
        options: dict[str, Any] = {}
        if p.key:
            options["key_name"] = p.key
        if p.user_data:
            options["user_data"] = p.user_data
        if p.availability_zone:
            options["availability_zone"] = p.availability_zone
        if p.group:
            options["scheduler_hints"] = {"group": ids[p.group]}
        if p.config_drive:
            options["has_config_drive"] = True
        return conn.compute.create_server(
            name=item.name, image_id=image.id, flavor_id=flavor.id, tags=[cloud.tag],
            metadata=metadata, networks=[{"port": ids[port]} for port in p.ports], **options)

    def tag(self, cloud: Cloud, resource: Any, fresh: bool) -> None:
        if not fresh and cloud.tag not in (resource.tags or []):   # adopted: tag it now
            cloud.count()
            cloud.conn.compute.add_tag_to_server(resource, cloud.tag)

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()   # asynchronous: CloudOps.wait_gone
        cloud.conn.compute.delete_server(cloud_id, ignore_missing=True)


class BmcHosts(Servers):
    """A server running `bmc serve` for the environment's nodes."""

    kind = Kind.BMC_HOST
    listed_as = Kind.SERVER

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        p = params(item, BmcHostParams)
        cloud.count()
        port = cloud.conn.network.get_port(ids[p.ports[0]])
        user_data = cloud.user_data(item.name, p, port, ids[p.credential])
        server = Planned(Kind.SERVER, item.name, ServerParams(
            "bmc", 0, p.flavor, p.image, p.ports, key=p.key,
            availability_zone=p.availability_zone,
            user_data=base64.b64encode(user_data.encode()).decode()))
        return super().create(cloud, server, ids)


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


class Credentials(ResourceKind):
    """The BMC host's application credential (Keystone: no tags; the name prefix marks it)."""

    kind = Kind.CREDENTIAL
    has_tags = False

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def listing(self, conn: Any, **query: Any) -> Any:
        return (c for c in conn.identity.application_credentials(user=conn.current_user_id)
                if c.name.startswith(self.prefix))

    def name_query(self, name: str) -> dict[str, Any]:
        return {}

    def get(self, conn: Any, cloud_id: str) -> Any | None:
        return conn.identity.find_application_credential(conn.current_user_id, cloud_id,
                                                         ignore_missing=True)

    def create(self, cloud: Cloud, item: Planned, ids: dict[str, str]) -> Any:
        cloud.count()
        return cloud.conn.identity.create_application_credential(
            user=cloud.conn.current_user_id, name=item.name, secret=cloud.credential_secret(),
            description="QuintupleO: the BMC host of this environment calls Nova with it")

    def tag(self, cloud: Cloud, resource: Any, fresh: bool) -> None:
        pass

    def delete(self, cloud: Cloud, cloud_id: str) -> None:
        cloud.count()
        cloud.conn.identity.delete_application_credential(cloud.conn.current_user_id, cloud_id,
                                                          ignore_missing=True)


def kinds(prefix: str) -> dict[Kind, ResourceKind]:
    """Every kind, for the environment whose Keystone names start with `prefix`."""
    table: list[ResourceKind] = [Networks(), Subnets(), Routers(), Vips(), Ports(),
                                 ServerGroups(prefix), Servers(), FloatingIps(),
                                 Credentials(prefix), BmcHosts()]
    assert {k.kind for k in table} == set(Kind)
    return {k.kind: k for k in table}
