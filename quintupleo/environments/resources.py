"""What every kind of cloud resource an environment is made of has in common (the kinds:
network_kinds.py for Neutron's, kinds.py for Nova's and Keystone's and the table of them all):
how it is listed, found by its exact name, created, tagged and deleted (blocking openstacksdk
calls).

Creating one gets `Cloud`, the few things of the environment's cloud connection a creation
needs (the connection, its call counter, lookups and extensions asked once, the BMC host's
parts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from quintupleo.environments.plan import BmcHostParams, Kind, Params, Planned
from quintupleo.errors import QuintupleOError


class CloudError(QuintupleOError):
    pass


class Cloud(Protocol):
    conn: Any
    tag: str
    prefix: str

    def count(self, calls: int = 1) -> None: ...

    def lookup(self, what: str, name: str, find: Callable[[], Any]) -> Any: ...

    def extension(self, alias: str) -> bool: ...

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

    def in_bulk(self, item: Planned) -> bool:
        """Whether the cloud makes this one with others of its kind in one call."""
        return False

    def create_many(self, cloud: Cloud, items: list[Planned], ids: dict[str, str]) -> list[Any]:
        """Several at once, in one call (those `in_bulk`), in the order of `items`."""
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


def params(item: Planned, kind: type[P]) -> P:
    """The item's parameters, as the kind that creates it expects them."""
    found: Params = item.params
    if not isinstance(found, kind):
        raise TypeError(f"{item.name}: {type(found).__name__}, not {kind.__name__}")
    return found
