"""A smoke run on a cloud: boot a server on a pre-created port, stop, start, delete.

It leaves nothing behind, even when a step fails, and reports how long each step took.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import openstack.compute.v2.server
import openstack.connection

from quintupleo.devcloud.bootstrap import IMAGE_NAME
from quintupleo.errors import QuintupleOError

STEP_TIMEOUT = 120.0


class SmokeError(QuintupleOError):
    pass


def settle(conn: Any, server_id: str, status: str,
           timeout: float = STEP_TIMEOUT) -> Any:
    """Wait for STATUS with no task in progress (Nova 409s actions on a busy server)."""
    deadline = time.monotonic() + timeout
    while True:
        server = conn.compute.get_server(server_id)
        if server.status == status and server.task_state is None:
            return server
        if server.status == "ERROR":
            raise SmokeError(f"server {server_id} went to ERROR: {server.fault}")
        if time.monotonic() > deadline:
            raise SmokeError(f"server {server_id} is {server.status}/{server.task_state}, "
                             f"not {status}, after {timeout:.0f} s")
        time.sleep(0.2)


@contextmanager
def scratch_servers(conn: Any, names: list[str],
                    flavor: str = "qo.tiny", image: str = IMAGE_NAME,
                    ) -> Iterator[list[openstack.compute.v2.server.Server]]:
    """ACTIVE servers with these names, each on its own port (no port security) of a network
    without DHCP; all of it is deleted on exit, whatever happened."""
    network = conn.network.create_network(name=names[0])
    servers = []
    try:
        conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="192.0.2.0/24",
                                   enable_dhcp=False, gateway_ip=None)
        found_image = conn.image.find_image(image, ignore_missing=False)
        found_flavor = conn.compute.find_flavor(flavor, ignore_missing=False)
        for name in names:
            port = conn.network.create_port(network_id=network.id, port_security_enabled=False)
            servers.append(conn.compute.create_server(
                name=name, image_id=found_image.id, flavor_id=found_flavor.id,
                networks=[{"port": port.id}]))
        yield [settle(conn, server.id, "ACTIVE") for server in servers]
    finally:
        for server in servers:
            conn.compute.delete_server(server, ignore_missing=True)
        for server in servers:
            conn.compute.wait_for_delete(server, wait=STEP_TIMEOUT)
        for leftover in conn.network.ports(network_id=network.id):
            conn.network.delete_port(leftover, ignore_missing=True)
        conn.network.delete_network(network, ignore_missing=True)


def run(conn: Any, flavor: str = "qo.tiny",
        image: str = IMAGE_NAME) -> list[tuple[str, float]]:
    """Returns (step, seconds) for each step."""
    name = f"qo-smoke-{uuid.uuid4().hex[:8]}"
    timings: list[tuple[str, float]] = []

    def timed(step: str, action: Callable[[], object]) -> object:
        started = time.monotonic()
        result = action()
        timings.append((step, time.monotonic() - started))
        return result

    network = conn.network.create_network(name=name)
    server_id: Any = None
    try:
        conn.network.create_subnet(network_id=network.id, ip_version=4, cidr="192.0.2.0/24",
                                   enable_dhcp=False, gateway_ip=None, name=name)
        port = conn.network.create_port(network_id=network.id, port_security_enabled=False)
        found_image = conn.image.find_image(image, ignore_missing=False)
        found_flavor = conn.compute.find_flavor(flavor, ignore_missing=False)

        def boot() -> None:
            nonlocal server_id
            server_id = conn.compute.create_server(
                name=name, image_id=found_image.id, flavor_id=found_flavor.id,
                networks=[{"port": port.id}]).id
            settle(conn, server_id, "ACTIVE")

        timed("boot on a pre-created port", boot)
        timed("stop", lambda: (conn.compute.stop_server(server_id),
                               settle(conn, server_id, "SHUTOFF")))
        timed("start", lambda: (conn.compute.start_server(server_id),
                                settle(conn, server_id, "ACTIVE")))
        timed("delete", lambda: (conn.compute.delete_server(server_id),
                                 conn.compute.wait_for_delete(conn.compute.get_server(server_id),
                                                              wait=STEP_TIMEOUT)))
        server_id = None
    finally:
        if server_id:
            conn.compute.delete_server(server_id, ignore_missing=True)
            conn.compute.wait_for_delete(conn.compute.get_server(server_id), wait=STEP_TIMEOUT)
        for leftover in conn.network.ports(network_id=network.id):
            conn.network.delete_port(leftover, ignore_missing=True)
        conn.network.delete_network(network, ignore_missing=True)
    return timings
