"""The local cloud behaves like a real one for everything QuintupleO uses (through openstacksdk)."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor

import pytest
from openstack import exceptions

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud


def test_member_gets_a_token_scoped_to_its_project(conn):
    token = conn.session.get_token()
    assert token
    access = conn.session.auth.get_access(conn.session)
    assert access.project_name == "demo"
    assert "member" in access.role_names
    assert "admin" not in access.role_names


def test_member_cannot_do_admin_things(conn):
    with pytest.raises(exceptions.ForbiddenException):
        list(conn.compute.services())


def test_image_upload_round_trips_its_bytes(conn, name):
    payload = bytes(range(256)) * 512
    image = conn.image.create_image(name=name, data=io.BytesIO(payload), disk_format="raw",
                                    container_format="bare", wait=True)
    try:
        assert conn.image.get_image(image).status == "active"
        assert conn.image.download_image(image).content == payload
    finally:
        conn.image.delete_image(image)
    assert conn.image.find_image(name) is None


def test_bootstrapped_flavors_and_admin_can_add_one(conn, admin_conn, name):
    assert {"qo.tiny", "qo.small"} <= {f.name for f in conn.compute.flavors()}
    flavor = admin_conn.compute.create_flavor(name=name, ram=1024, vcpus=1, disk=5)
    try:
        assert conn.compute.find_flavor(name).ram == 1024
    finally:
        admin_conn.compute.delete_flavor(flavor)


def test_network_for_our_own_dhcp(conn, network):
    net, subnet = network
    subnet = conn.network.get_subnet(subnet)
    assert subnet.is_dhcp_enabled is False
    assert subnet.gateway_ip is None
    # No Neutron DHCP port appears on such a network.
    assert [p for p in conn.network.ports(network_id=net.id)
            if p.device_owner == "network:dhcp"] == []


def test_port_without_port_security(conn, network):
    net, _ = network
    port = conn.network.create_port(network_id=net.id, port_security_enabled=False)
    assert conn.network.get_port(port).is_port_security_enabled is False
    assert conn.network.get_port(port).security_group_ids == []


def test_allowed_address_pairs_need_port_security(conn, network):
    net, _ = network
    pairs = [{"ip_address": "192.0.2.250"}]
    port = conn.network.create_port(network_id=net.id, allowed_address_pairs=pairs)
    assert port.is_port_security_enabled is True
    assert [p["ip_address"] for p in port.allowed_address_pairs] == ["192.0.2.250"]
    # Real Neutron refuses pairs on a port without security: callers must cope with the 409.
    with pytest.raises(exceptions.ConflictException):
        conn.network.create_port(network_id=net.id, port_security_enabled=False,
                                 allowed_address_pairs=pairs)
    # Turning security off needs the pairs and the security groups cleared in the same update.
    with pytest.raises(exceptions.ConflictException):
        conn.network.update_port(port, port_security_enabled=False)
    port = conn.network.update_port(port, port_security_enabled=False,
                                    allowed_address_pairs=[], security_groups=[])
    assert port.is_port_security_enabled is False


def test_server_on_a_precreated_port_goes_active_and_binds_it(conn, admin_conn, boot):
    server = boot()
    assert server.status == "ACTIVE"
    (port,) = admin_conn.network.ports(device_id=server.id)
    assert port.status == "ACTIVE"
    assert port.binding_vif_type == "ovs"
    assert port.binding_host_id == "devcloud-compute"


def test_power_and_rebuild_cycle(conn, boot):
    server = boot()
    compute = conn.compute

    compute.stop_server(server)
    server = settle(conn, server.id, "SHUTOFF")
    assert server.power_state == 4  # shutdown
    compute.start_server(server)
    server = settle(conn, server.id, "ACTIVE")
    assert server.power_state == 1  # running

    for reboot_type in ("SOFT", "HARD"):
        compute.reboot_server(server, reboot_type)
        server = settle(conn, server.id, "ACTIVE")
    actions = [a.action for a in compute.server_actions(server)]
    assert actions.count("reboot") == 2, actions

    image = conn.image.find_image("quintupleo-tiny")
    compute.rebuild_server(server, image=image.id)
    server = settle(conn, server.id, "ACTIVE")
    assert server.image.id == image.id

    compute.rescue_server(server)
    assert settle(conn, server.id, "RESCUE").vm_state == "rescued"
    compute.unrescue_server(server)
    assert settle(conn, server.id, "ACTIVE").vm_state == "active"


def test_stop_twice_is_a_409(conn, boot):
    server = boot()
    conn.compute.stop_server(server)
    settle(conn, server.id, "SHUTOFF")
    with pytest.raises(exceptions.ConflictException):
        conn.compute.stop_server(server)


def test_server_metadata(conn, boot):
    server = boot()
    conn.compute.set_server_metadata(server, boot_device="network", quintupleo="yes")
    assert conn.compute.fetch_server_metadata(server).metadata == {
        "boot_device": "network", "quintupleo": "yes"}
    conn.compute.delete_server_metadata(server, ["quintupleo"])
    assert conn.compute.fetch_server_metadata(server).metadata == {"boot_device": "network"}


def test_server_tags(conn, boot):
    server = boot()
    server.add_tag(conn.compute, "quintupleo-env-a")
    server.add_tag(conn.compute, "role-node")
    tagged = list(conn.compute.servers(tags="quintupleo-env-a"))
    assert [s.id for s in tagged] == [server.id]
    assert list(conn.compute.servers(tags="quintupleo-env-b")) == []
    assert set(conn.compute.get_server(server).tags) == {"quintupleo-env-a", "role-node"}


def test_delete_removes_server_and_frees_its_port(conn, network, boot):
    server = boot()
    (port,) = conn.network.ports(device_id=server.id)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    assert conn.compute.find_server(server.id) is None
    # A pre-created port survives its server, unbound, ready for the next one.
    assert conn.network.get_port(port).device_id == ""


def test_three_concurrent_boots(conn, boot, devcloud):
    logs = list(devcloud.layout.logs.glob("*.log"))
    offsets = {log: log.stat().st_size for log in logs}
    with ThreadPoolExecutor(max_workers=3) as pool:
        servers = list(pool.map(lambda i: boot(f"-{i}", wait=False), range(3)))
    for server in servers:
        assert conn.compute.wait_for_server(server, wait=90).status == "ACTIVE"
    assert len({s.id for s in servers}) == 3
    # Several writers on one SQLite file: none of them may have been turned away.
    for log in logs:
        with log.open("rb") as fh:
            fh.seek(offsets[log])
            assert b"database is locked" not in fh.read(), log
