from __future__ import annotations

import uuid

import openstack
import pytest


@pytest.fixture
def conn(devcloud):
    connection = openstack.connect(cloud="devcloud")
    yield connection
    connection.close()


@pytest.fixture
def admin_conn(conn):
    connection = openstack.connect(cloud="devcloud-admin")
    yield connection
    connection.close()


@pytest.fixture
def name():
    """A unique name for this test's resources."""
    return f"qo-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def network(conn, name):
    """A network for our own DHCP: a subnet with DHCP off and no gateway."""
    net = conn.network.create_network(name=name)
    subnet = conn.network.create_subnet(network_id=net.id, name=name, ip_version=4,
                                        cidr="192.0.2.0/24", enable_dhcp=False, gateway_ip=None)
    yield net, subnet
    for port in conn.network.ports(network_id=net.id):
        conn.network.delete_port(port, ignore_missing=True)
    conn.network.delete_network(net, ignore_missing=True)


@pytest.fixture
def boot(conn, network, name):
    """Boot servers on pre-created ports; everything is deleted afterwards."""
    net, _ = network
    servers = []
    image = conn.image.find_image("quintupleo-tiny")
    flavor = conn.compute.find_flavor("qo.tiny")

    def _boot(suffix: str = "", wait: bool = True, **port_args):
        port = conn.network.create_port(network_id=net.id, name=f"{name}{suffix}",
                                         port_security_enabled=False, **port_args)
        server = conn.compute.create_server(name=f"{name}{suffix}", image_id=image.id,
                                            flavor_id=flavor.id, networks=[{"port": port.id}])
        servers.append(server)
        return conn.compute.wait_for_server(server, wait=60) if wait else server

    yield _boot
    for server in servers:
        conn.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        conn.compute.wait_for_delete(server, wait=60)
