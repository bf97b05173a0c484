"""An environment's cloud: each kind of resource (kinds.py) found by exact name, created, tagged,
deleted, listed; and the nodes' hand-over (powered off, then their ports up).

Calls are few and parallel: ports are made in bulk, what every server shares (image, flavor,
an existing network) is looked up once, and the connection retries what the cloud refuses for
its rate limits (backends/openstack: `connect`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from openstack import exceptions as os_exc

from quintupleo.environments.kinds import kinds
from quintupleo.environments.plan import BmcHostParams, Kind, Planned
from quintupleo.environments.resources import CloudError
from quintupleo.environments.spec import EnvironmentSpec
from quintupleo.errors import QuintupleOError

if TYPE_CHECKING:
    from quintupleo.environments.bmc_host import BmcHost

SERVER_TIMEOUT = 300.0
WORKERS = 8                 # calls in flight at once
BULK = 100                  # ports per bulk creation
__all__ = ["BULK", "SERVER_TIMEOUT", "WORKERS", "CloudError", "CloudOps"]
T = TypeVar("T")


class CloudOps:
    """Blocking openstacksdk calls; the caller runs them in a bounded thread pool."""

    def __init__(self, conn: Any, spec: EnvironmentSpec, host: BmcHost | None = None) -> None:
        self.conn = conn
        self.tag = spec.tag
        self.prefix = spec.resource_name("")        # "qo-NAME-": what Keystone's names start with
        self.host = host
        self.calls = 0
        self.kinds = kinds(self.prefix)
        self._lock = threading.Lock()
        self._found: dict[tuple[str, str], Any] = {}
        self._extensions: set[str] | None = None

    def count(self, calls: int = 1) -> None:
        with self._lock:
            self.calls += calls

    def lookup(self, what: str, name: str, find: Callable[[], Any]) -> Any:
        """What many resources of the plan share (an image, a flavor, a network), asked of
        the cloud once (twice at most, when two threads ask at the same time)."""
        with self._lock:
            if (what, name) in self._found:
                return self._found[what, name]
        self.count()
        found = find()
        with self._lock:
            self._found[what, name] = found
        return found

    def extension(self, alias: str) -> bool:
        """Whether the cloud's Neutron has this API extension (asked once)."""
        if self._extensions is None:
            self.count()
            self._extensions = {e.alias for e in self.conn.network.extensions()}
        return alias in self._extensions

    def each(self, call: Callable[[T], Any], items: Iterable[T]) -> None:
        """`call` for every item, WORKERS at a time; the first failure is raised. (Called at
        each poll of power_off: most polls have nothing to stop, and start no threads.)"""
        items = list(items)
        if not items:
            return
        with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="cloud") as pool:
            for future in [pool.submit(call, item) for item in items]:
                future.result()

    # ---- listing -------------------------------------------------------------------------
    def listing(self, kind: Kind, **query: Any) -> list[Any]:
        self.count()
        return list(self.kinds[kind].listing(self.conn, **query))

    def find(self, kind: Kind, name: str) -> Any | None:
        described = self.kinds[kind]
        found = [r for r in self.listing(kind, **described.name_query(name))
                 if described.named(r) == name]
        return found[0] if found else None

    def tagged(self, kind: Kind) -> list[Any]:
        if not self.kinds[kind].has_tags:   # Keystone: the name prefix marks ours
            return self.listing(kind)
        return self.listing(kind, tags=self.tag)

    def exists(self, kind: Kind, cloud_id: str) -> bool:
        """Whether a resource is still there (for one that lost its tag out of band)."""
        self.count()
        try:
            return self.kinds[kind].get(self.conn, cloud_id) is not None
        except os_exc.SDKException as exc:
            raise CloudError(f"{kind.value} {cloud_id}: {_reason(exc)}") from None

    # ---- creation ------------------------------------------------------------------------
    def create(self, item: Planned, ids: dict[str, str], adopt: bool = False) -> str:
        """Create one resource and return its ID; with `adopt` (an earlier run started it and
        crashed) first look for it by name."""
        described = self.kinds[item.kind]
        try:
            existing = self.find(item.kind, item.name) if adopt else None
            fresh = existing is None
            if existing is None:
                existing = described.create(self, item, ids)
            described.complete(self, existing, item, ids)
            described.tag(self, existing, fresh)
            return str(existing.id)
        except os_exc.SDKException as exc:
            raise CloudError(f"{item.kind.value} {item.name}: {_reason(exc)}") from None

    def create_many(self, items: list[Planned], ids: dict[str, str],
                    adopt: bool = False) -> list[str]:
        """Create several of a kind the cloud makes in bulk, none of them started before (or
        one, as `create`): their IDs, in order."""
        if len(items) == 1:
            return [self.create(items[0], ids, adopt)]
        described = self.kinds[items[0].kind]
        try:
            made = described.create_many(self, items, ids)
            for resource, item in zip(made, items, strict=True):
                described.complete(self, resource, item, ids)
                described.tag(self, resource, True)
            return [str(resource.id) for resource in made]
        except os_exc.SDKException as exc:
            raise CloudError(f"{len(items)} {items[0].kind.value}s ({items[0].name} and "
                             f"more): {_reason(exc)}") from None

    # ---- what a BMC host's creation needs ------------------------------------------------
    def _host(self) -> BmcHost:
        if self.host is None:
            raise QuintupleOError("a plan with a BMC host needs CloudOps(host=BmcHost(...))")
        return self.host

    def credential_secret(self) -> str:
        return self._host().credential_secret()

    def user_data(self, name: str, params: BmcHostParams, port: Any, credential_id: str) -> str:
        return self._host().user_data(name, params, port, credential_id, self.cloud_info())

    def cloud_info(self) -> dict[str, Any]:
        """Where the BMC host finds the cloud: the identity URL and options this command uses."""
        config = self.conn.config
        info = {"auth_url": config.config["auth"]["auth_url"],
                "region_name": config.get_region_name(), "interface": config.get_interface()}
        cacert = config.config.get("cacert")
        if cacert:
            info["cacert_pem"] = Path(cacert).read_text()
        return info

    # ---- hand-over -----------------------------------------------------------------------
    def set_ports_up(self, port_ids: set[str], up: bool) -> None:
        """Let the (powered-off) nodes' ports carry traffic, or not (Neutron updates one port
        per call)."""
        def update(port_id: str) -> None:
            self.count()
            self.conn.network.update_port(port_id, admin_state_up=up)
        self.each(update, sorted(port_ids))

    def power_off(self, server_ids: set[str]) -> None:
        """Wait for the servers' first boot to end and stop them: nodes are handed over
        powered off. One server list per poll for all of them, one stop per server."""
        def stop(server_id: str) -> None:
            self.count()
            with contextlib.suppress(os_exc.ConflictException):   # a task began
                self.conn.compute.stop_server(server_id)

        deadline = time.monotonic() + SERVER_TIMEOUT
        pending = set(server_ids)
        while pending:
            running = []
            for server in self.tagged(Kind.SERVER):
                if server.id not in pending:
                    continue
                if server.status == "ERROR":
                    raise CloudError(f"server {server.name} went to ERROR: {server.fault}")
                if server.task_state is None and server.status == "SHUTOFF":
                    pending.discard(server.id)
                elif server.task_state is None and server.status == "ACTIVE":
                    running.append(server.id)
            self.each(stop, running)
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
            self.kinds[kind].delete(self, cloud_id)
        except os_exc.SDKException as exc:
            raise CloudError(f"delete {kind.value} {cloud_id}: {_reason(exc)}") from None


def _reason(exc: os_exc.SDKException) -> str:
    if isinstance(exc, os_exc.HttpException):
        return f"HTTP {exc.status_code}: {exc.details or exc.message}"
    return str(exc)
