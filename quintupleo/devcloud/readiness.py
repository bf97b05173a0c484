"""What "ready" means for each service, checked without trusting anything older than this start.

A compute service record left "up" by the previous run would fool a naive check, so a compute
host counts as ready only with a heartbeat newer than this start, a resource provider in
Placement and a host mapping in the API database: then a server can be scheduled and boot.
libvirtd and virtlogd are ready when their sockets accept a connection.
"""

from __future__ import annotations

import socket
import sqlite3
import urllib.error
import urllib.request
from datetime import UTC, datetime

import openstack.connection

from quintupleo.devcloud.layout import HOST, Layout, State
from quintupleo.devcloud.plugins.names import FAKE_HOST, REAL_HOST
from quintupleo.devcloud.processes import log_tail
from quintupleo.devcloud.services import Service

COMPUTE_HOSTS = {"nova-compute": FAKE_HOST, "nova-compute-qemu": REAL_HOST}
# Logged by nova.service (at DEBUG, enabled for it alone) once the RPC server consumes.
RPC_READY_LINE = "Join ServiceGroup membership for this service"


def accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def answers_http(port_or_url: int | str) -> bool:
    """True once the app is loaded: any HTTP answer below 500."""
    url = port_or_url if isinstance(port_or_url, str) else f"http://{HOST}:{port_or_url}/"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status < 500)
    except urllib.error.HTTPError as exc:
        return exc.code < 500
    except (OSError, ValueError, urllib.error.URLError):
        return False


def accepts_unix(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(path)
            return True
        except OSError:
            return False


def service_answers(layout: Layout, state: State, service: Service, log_offset: int) -> bool:
    if service.socket is not None:
        return accepts_unix(str(service.socket))
    if service.port is not None:
        port = state.port(service.port)
        return answers_http(port) if service.http else accepts(port)
    if service.name in ("nova-conductor", "nova-scheduler"):
        return RPC_READY_LINE in log_tail(layout.log(service.name), lines=10**6, since=log_offset)
    return True


def compute_ready(layout: Layout, conn: openstack.connection.Connection, host: str,
                  started: datetime) -> str | None:
    """None when a server can boot on HOST, else what is still missing."""
    services = [s for s in conn.compute.services(binary="nova-compute", host=host)]
    if not services or services[0].state != "up" or not services[0].updated_at:
        return f"nova-compute on {host} has not reported"
    heartbeat = datetime.fromisoformat(services[0].updated_at).replace(tzinfo=UTC)
    if heartbeat < started:
        return f"nova-compute on {host} has not reported since this start"
    providers = list(conn.placement.resource_providers(name=host))
    if not providers:
        return f"no resource provider for {host} yet"
    with sqlite3.connect(f"file:{layout.db('nova_api')}?mode=ro", uri=True) as db:
        mapped = db.execute("SELECT 1 FROM host_mappings WHERE host = ?",
                            (host,)).fetchone()
    if not mapped:
        return f"{host} is not mapped to a cell yet"
    return None
