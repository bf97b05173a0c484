"""Nova's and Keystone's kinds of resource (server groups, servers, BMC hosts, application
credentials), and the table of every kind an environment is made of (Neutron's:
network_kinds.py; what they share: resources.py)."""

from __future__ import annotations

import base64
import re
from typing import Any

from quintupleo.environments.network_kinds import (
    FloatingIps,
    Networks,
    Ports,
    Routers,
    Subnets,
    Vips,
)
from quintupleo.environments.plan import (
    BmcHostParams,
    Kind,
    Planned,
    ServerGroupParams,
    ServerParams,
)
from quintupleo.environments.resources import Cloud, ResourceKind, params


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
        conn = cloud.conn
        image = cloud.lookup("image", p.image, lambda: conn.image.find_image(
            p.image, ignore_missing=False))
        flavor = cloud.lookup("flavor", p.flavor, lambda: conn.compute.find_flavor(
            p.flavor, ignore_missing=False))
        cloud.count()
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
