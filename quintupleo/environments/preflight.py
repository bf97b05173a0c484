"""Pre-flight: everything an environment's spec names is checked against the cloud before
anything is made — the cloud entry, every flavor, image, key, zone and network it names, the
API microversions and extensions it needs, and the quotas for what is still to be made. The
first problem is an error that names the spec's key (`roles.compute.flavor: no flavor …`).

Read-only: a few list and find calls, no scratch resources (`quintupleo check` does those).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as os_exc

from quintupleo.backends.openstack.driver import microversion
from quintupleo.environments.hosts import PROVISIONING, RELAY_IMAGE, HostSpec
from quintupleo.environments.kinds import kinds
from quintupleo.environments.plan import Planned
from quintupleo.environments.reader import SpecError
from quintupleo.environments.spec import EnvironmentSpec
from quintupleo.errors import QuintupleOError

SHOWN = 8          # names listed when one is missing


def preflight(conn: Any, spec: EnvironmentSpec, source: str, to_make: list[Planned]) -> int:
    """Raise a SpecError (or, for the cloud itself, a QuintupleOError) at the first thing of
    `spec` the cloud cannot give; `to_make`: what create would still make (for the quotas).
    Returns how many API calls it made."""
    counted = _Counted(conn)
    try:
        _check(counted, spec, source, to_make)
    except (os_exc.SDKException, ks_exc.ClientException) as exc:
        raise QuintupleOError(f"cloud {spec.cloud!r} failed the pre-flight: {exc}") from None
    return counted.calls


class _Counted:
    """The connection, its API calls counted (each proxy method called is one)."""

    def __init__(self, conn: Any) -> None:
        self._conn, self.calls = conn, 0
        self.current_project_id = conn.current_project_id

    def __getattr__(self, service: str) -> Any:
        proxy, counter = getattr(self._conn, service), self

        class Proxy:
            def __getattr__(self, name: str) -> Any:
                method = getattr(proxy, name)
                if not callable(method):
                    return method

                def call(*args: Any, **kwargs: Any) -> Any:
                    counter.calls += 1
                    return method(*args, **kwargs)
                return call
        return Proxy()


def _check(conn: Any, spec: EnvironmentSpec, source: str, to_make: list[Planned]) -> None:
    def fail(key: str, message: str) -> SpecError:
        return SpecError(source, key, message)

    listed = list(conn.compute.flavors())
    flavors = {f.name: f for f in listed} | {f.id: f for f in listed}
    zones = {z.name for z in conn.compute.availability_zones()}
    for key, host in _hosts(spec):
        if host.flavor not in flavors:
            raise fail(f"{key}.flavor", f"no flavor {host.flavor!r} in cloud {spec.cloud}; "
                       f"it has {_some(f.name for f in listed)}")
        if host.image != RELAY_IMAGE and \
                conn.image.find_image(host.image, ignore_missing=True) is None:
            raise fail(f"{key}.image", f"no image {host.image!r} in cloud {spec.cloud}; it has "
                       f"{_some(i.name for i in conn.image.images())}")
        if host.key is not None and conn.compute.find_keypair(host.key) is None:
            raise fail(f"{key}.key", f"no key pair {host.key!r} (`openstack keypair list`)")
        if host.availability_zone is not None and host.availability_zone not in zones:
            raise fail(f"{key}.availability_zone", f"no zone {host.availability_zone!r}; the "
                       f"cloud has {_some(zones)}")
    for net in spec.networks:
        if net.existing is None:
            continue
        key = f"networks.{'' if net.name == PROVISIONING else 'extra.'}{net.name}.existing"
        found = conn.network.find_network(net.existing, ignore_missing=True)
        if found is None:
            raise fail(key, f"no network {net.existing!r} in cloud {spec.cloud}; it has "
                       f"{_some(n.name for n in conn.network.networks())}")
        if not net.port_security and found.is_port_security_enabled is not False and \
                "port-security" not in {e.alias for e in conn.network.extensions()}:
            raise fail(key, "its ports would need port security off, which this cloud "
                            "cannot do: add port_security: true")
    if spec.external is not None:
        external = conn.network.find_network(spec.external, ignore_missing=True)
        if external is None or not external.is_router_external:
            offered = conn.network.networks(is_router_external=True)
            raise fail("networks.external", f"no external network {spec.external!r}; the "
                       f"cloud has {_some(n.name for n in offered)}")
    compute = microversion(conn)
    if compute < (2, 52):
        raise fail("cloud", f"Nova {compute[0]}.{compute[1]} is older than 2.52 (tags at boot)")
    if spec.bmc.boot_strategy == "rescue" and compute < (2, 87):
        raise fail("bmc.boot_strategy", f"rescue needs Nova 2.87 (stable rescue); the cloud "
                   f"offers {compute[0]}.{compute[1]}: use rebuild")
    extensions = {e.alias for e in conn.network.extensions()}
    needed = {"port-security": "networks", "standard-attr-tag": "networks"}
    if spec.external is not None:
        needed["router"] = "networks.external"
    for alias, key in needed.items():
        if alias not in extensions:
            raise fail(key, f"the cloud's Neutron has no {alias} extension")
    _quotas(conn, spec, fail, to_make)


def _hosts(spec: EnvironmentSpec) -> Iterator[tuple[str, HostSpec]]:
    """Every server the spec asks for, as the key that describes it."""
    for role in spec.roles:
        yield f"roles.{role.name}", HostSpec(role.image, role.flavor,
                                             availability_zone=role.availability_zone)
    if spec.undercloud is not None:
        yield "undercloud", spec.undercloud
    if spec.bmc.host is not None:
        yield "bmc.host", spec.bmc.host
    if spec.relay is not None:       # its default image is made by `create` (images/relay.py)
        yield "relay", spec.relay


def _quotas(conn: Any, spec: EnvironmentSpec, fail: Any, to_make: list[Planned]) -> None:
    described = kinds(spec.resource_name(""))
    wanted: Counter[str] = Counter()
    for item in to_make:
        if quota := described[item.kind].quota:
            wanted[quota] += 1
    if not wanted:
        return
    limits = conn.compute.get_limits().absolute
    free = {"instances": limits.instances - limits.instances_used}
    quota = conn.network.get_quota(conn.current_project_id, details=True)
    for kind in wanted.keys() - {"instances"}:
        detail = getattr(quota, kind)
        free[kind] = 1 << 30 if detail["limit"] < 0 else \
            detail["limit"] - detail["used"] - detail["reserved"]
    for kind in sorted(wanted):
        if wanted[kind] > free[kind]:
            raise fail("roles", f"the project's {kind} quota has room for {free[kind]} more; "
                       f"the environment still needs {wanted[kind]}")


def _some(names: Any) -> str:
    listed = sorted({str(n) for n in names if n})
    if not listed:
        return "none"
    more = f" and {len(listed) - SHOWN} more" if len(listed) > SHOWN else ""
    return ", ".join(listed[:SHOWN]) + more
