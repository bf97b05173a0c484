"""Bring a new local cloud to its clean state: databases, then identities, catalog, flavors, image.

The databases are built before any service starts (one chain of commands per service, the chains
in parallel). Identities and the rest go through the real APIs once the services answer.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import sqlite3
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openstack.connection

from quintupleo.devcloud.layout import Layout, State
from quintupleo.devcloud.plugins.names import DEFAULT_ZONE, FAKE_HOST, REAL_HOST, VM_ZONE
from quintupleo.errors import DevcloudError
from quintupleo.images.marker import marker_disk

NEUTRON_SCHEMA = """
import sys
from sqlalchemy import create_engine
from neutron.db.migration.models import head
# Neutron's alembic migrations refuse SQLite: build the schema from the models, as its tests do.
head.get_metadata().create_all(create_engine(sys.argv[1]))
"""
DATABASES = ("keystone", "placement", "glance", "neutron", "nova_api", "nova_cell0", "nova_cell1")
SERVICE_USERS = {  # user: (service name, service type, port key, path)
    "nova": ("nova", "compute", "nova", "/v2.1"),
    "placement": ("placement", "placement", "placement", ""),
    "glance": ("glance", "image", "glance", ""),
    "neutron": ("neutron", "network", "neutron", ""),
}
FLAVORS = (  # name, RAM MiB, vCPUs, disk GiB
    ("qo.tiny", 512, 1, 1),
    ("qo.small", 2048, 1, 10),
    ("qo.medium", 4096, 2, 20),
    ("qo.large", 8192, 4, 40),
)
IMAGE_NAME = "quintupleo-tiny"
PUBLIC_NETWORK = "public"       # external, with no uplink: routers and floating IPs work
PUBLIC_CIDR = "203.0.113.0/24"  # TEST-NET-3: never routed anywhere
MEMBER = "demo"


def _chains(layout: Layout, state: State) -> dict[str, list[list[str]]]:
    etc, bin_ = layout.etc, layout.bin
    keystone = [str(bin_("keystone-manage")), "--config-file", str(etc / "keystone/keystone.conf")]
    nova = [str(bin_("nova-manage")), "--config-file", str(etc / "nova/nova.conf")]
    neutron = [str(bin_("neutron-db-manage")), "--config-file", str(etc / "neutron/neutron.conf"),
               "--config-file", str(etc / "neutron/plugins/ml2/ml2_conf.ini")]
    owner = ["--keystone-user", str(os.getuid()), "--keystone-group", str(os.getgid())]
    return {
        "keystone": [
            [*keystone, "db_sync"],
            [*keystone, "fernet_setup", *owner],
            [*keystone, "credential_setup", *owner],
            [*keystone, "bootstrap", "--bootstrap-region-id", "RegionOne",
             "--bootstrap-admin-url", state.auth_url, "--bootstrap-public-url", state.auth_url,
             "--bootstrap-internal-url", state.auth_url],
        ],
        "placement": [[str(bin_("placement-manage")), "--config-file",
                       str(etc / "placement/placement.conf"), "db", "sync"]],
        "glance": [[str(bin_("glance-manage")), "--config-file",
                    str(etc / "glance/glance-api.conf"), "db_sync"]],
        "neutron": [[str(bin_("python")), "-c", NEUTRON_SCHEMA, layout.db_url("neutron")],
                    [*neutron, "stamp", "heads"]],
        "nova": [
            [*nova, "api_db", "sync"],
            [*nova, "cell_v2", "map_cell0", "--database_connection", layout.db_url("nova_cell0")],
            [*nova, "cell_v2", "create_cell", "--name", "cell1"],
            [*nova, "db", "sync"],
        ],
    }


def init_databases(layout: Layout, state: State) -> None:
    """Create every database from nothing (the data dir must be empty of them)."""
    (layout.data / "db").mkdir(parents=True, exist_ok=True)
    for name in DATABASES:
        # WAL lets readers go on while one process writes; it is a property of the file.
        with sqlite3.connect(layout.db(name)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    for sub in ("keystone", "glance/images", "nova/instances", "neutron", "rabbitmq"):
        (layout.data / sub).mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OS_BOOTSTRAP_PASSWORD": state.admin_password}
    with ThreadPoolExecutor(max_workers=len(DATABASES)) as pool:
        futures = [pool.submit(_run_chain, layout, name, chain, env)
                   for name, chain in _chains(layout, state).items()]
        for future in futures:
            future.result()


def _run_chain(layout: Layout, service: str, chain: list[list[str]], env: dict[str, str]) -> None:
    log = layout.log(f"{service}-db")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        for argv in chain:
            out.write(f"\n$ {' '.join(argv[:6])} ...\n")
            out.flush()
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    check=False)
            if result.returncode != 0:
                raise DevcloudError(f"database setup failed (exit {result.returncode})",
                                    service=service, log=log)


def admin_connection(state: State) -> Any:
    return openstack.connection.Connection(
        auth_url=state.auth_url, username="admin", password=state.admin_password,
        project_name="admin", user_domain_name="Default", project_domain_name="Default",
        region_name="RegionOne", identity_interface="public",
    )


def create_identities(conn: Any, state: State) -> None:
    """Service users and endpoints, and a member user with a project of its own."""
    identity = conn.identity
    service_project = identity.create_project(name="service", domain_id="default")
    admin_role = identity.find_role("admin")
    member_role = identity.find_role("member")
    if identity.find_role("service") is None:
        identity.create_role(name="service")
    service_role = identity.find_role("service")
    for user, (name, kind, port, path) in SERVICE_USERS.items():
        account = identity.create_user(name=user, password=state.service_password,
                                       domain_id="default", default_project_id=service_project.id)
        identity.assign_project_role_to_user(service_project, account, admin_role)
        identity.assign_project_role_to_user(service_project, account, service_role)
        service = identity.create_service(name=name, type=kind)
        for interface in ("public", "internal", "admin"):
            identity.create_endpoint(service_id=service.id, interface=interface,
                                     url=f"{state.url(port)}{path}", region_id="RegionOne")
    project = identity.create_project(name=MEMBER, domain_id="default")
    member = identity.create_user(name=MEMBER, password=state.member_password,
                                  domain_id="default", default_project_id=project.id)
    identity.assign_project_role_to_user(project, member, member_role)


def create_flavors(conn: Any) -> None:
    for name, ram, vcpus, disk in FLAVORS:
        conn.compute.create_flavor(name=name, ram=ram, vcpus=vcpus, disk=disk, is_public=True)


IMAGE_MARKER = "QUINTUPLEO-TINY-IMAGE booted from its disk"


def tiny_image() -> bytes:
    """A 64 KiB disk whose boot sector prints IMAGE_MARKER on the serial console and halts:
    the fake host boots anything, and on the real host it shows in the console log at no CPU
    cost (a halted TCG guest is idle)."""
    return marker_disk(IMAGE_MARKER)


def upload_image(conn: Any) -> None:
    """The tiny public raw image, replacing an older one of that name (clouds made before the
    image booted)."""
    data = tiny_image()
    digest = hashlib.sha512(data).hexdigest()
    old = [image for image in conn.image.images(name=IMAGE_NAME)]
    if any(image.hash_value == digest and image.status == "active" for image in old):
        return
    conn.image.create_image(name=IMAGE_NAME, data=io.BytesIO(data), disk_format="raw",
                            container_format="bare", visibility="public", wait=True)
    for image in old:
        conn.image.delete_image(image, ignore_missing=True)


def ensure_public_network(conn: Any) -> None:
    """The external network a cloud offers (clouds made before it existed get it too)."""
    if conn.network.find_network(PUBLIC_NETWORK) is not None:
        return
    network = conn.network.create_network(
        name=PUBLIC_NETWORK, is_router_external=True, provider_network_type="flat",
        provider_physical_network=PUBLIC_NETWORK)
    conn.network.create_subnet(name=f"{PUBLIC_NETWORK}-subnet", network_id=network.id,
                               cidr=PUBLIC_CIDR, ip_version=4, enable_dhcp=False)


# Each compute host in an aggregate that is its availability zone. The fake host's zone is
# Nova's default one, named by an aggregate too, so that `default_schedule_zone` keeps servers
# that ask for no zone off the real host (Placement filters by aggregate).
ZONES = {FAKE_HOST: ("devcloud-fake", DEFAULT_ZONE), REAL_HOST: ("devcloud-qemu", VM_ZONE)}


def ensure_zones(conn: Any, vms: bool) -> None:
    for host in (FAKE_HOST, REAL_HOST) if vms else (FAKE_HOST,):
        name, zone = ZONES[host]
        aggregate = next((a for a in conn.compute.aggregates() if a.name == name), None)
        if aggregate is None:
            aggregate = conn.compute.create_aggregate(name=name, availability_zone=zone)
        if host not in (aggregate.hosts or []):
            conn.compute.add_host_to_aggregate(aggregate, host)


def snapshot(layout: Layout, target: Path) -> None:
    """Copy the data dir (databases through SQLite's online backup) to TARGET."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(layout.data, tmp, ignore=shutil.ignore_patterns(
        "rabbitmq", "*.sqlite", "*.sqlite-wal", "*.sqlite-shm", "locks"))
    for name in DATABASES:
        target_db = tmp / "db" / f"{name}.sqlite"
        with sqlite3.connect(layout.db(name)) as src, sqlite3.connect(target_db) as dst:
            src.backup(dst)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
