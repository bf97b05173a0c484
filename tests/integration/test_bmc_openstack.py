"""The virtual BMC on the devcloud: ipmitool drives real Nova servers through `bmc serve`."""

from __future__ import annotations

import json
import time

import pytest

from quintupleo.devcloud.smoke import settle

pytestmark = pytest.mark.devcloud


@pytest.fixture
def nodes(conn, boot, name):
    """Two ACTIVE servers named NAME-0 and NAME-1."""
    servers = [boot(f"-{i}", wait=False) for i in range(2)]
    return [settle(conn, s.id, "ACTIVE") for s in servers]


@pytest.fixture
def bmc(bmc_server, nodes, name, tmp_path):
    return bmc_server("--backend", "openstack", "--cloud", "devcloud", "--prefix", f"{name}-",
                      "--refresh-interval", "2", "--inventory-output", str(tmp_path / "nodes.json"))


def actions(conn, server) -> list[str]:
    """Nova's own record of what was done to a server, oldest first."""
    return [a.action for a in sorted(conn.compute.server_actions(server),
                                     key=lambda a: a.start_time)]


def power(bmc, node=0) -> str:
    return bmc.ipmitool("power", "status", node=node).stdout.strip()


def wait_for(predicate, timeout=30.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_power_off_and_on_really_stop_and_start_the_server(conn, bmc, nodes):
    server = nodes[0]
    assert power(bmc) == "Chassis Power is on"
    bmc.ipmitool("power", "off")
    assert power(bmc) == "Chassis Power is off"         # at once, from the model
    settle(conn, server.id, "SHUTOFF", timeout=60)
    assert power(bmc, node=1) == "Chassis Power is on"  # the other node untouched
    bmc.ipmitool("power", "on")
    assert power(bmc) == "Chassis Power is on"
    settle(conn, server.id, "ACTIVE", timeout=60)
    assert actions(conn, server)[-2:] == ["stop", "start"]


def test_ironic_reboot_is_off_then_on_even_back_to_back(conn, bmc, nodes):
    server = nodes[1]
    bmc.ipmitool("power", "off", node=1)
    bmc.ipmitool("power", "on", node=1)     # while Nova is still powering off: queued, not lost
    wait_for(lambda: actions(conn, server)[-2:] == ["stop", "start"], 60, "stop then start")
    settle(conn, server.id, "ACTIVE", timeout=60)
    assert power(bmc, node=1) == "Chassis Power is on"


def test_reset_is_a_hard_reboot_and_soft_is_a_stop(conn, bmc, nodes):
    server = nodes[0]
    bmc.ipmitool("power", "reset")
    wait_for(lambda: actions(conn, server)[-1] == "reboot", 60, "a reboot action")
    settle(conn, server.id, "ACTIVE", timeout=60)
    bmc.ipmitool("power", "soft")
    settle(conn, server.id, "SHUTOFF", timeout=60)
    assert actions(conn, server)[-1] == "stop"
    result = bmc.ipmitool("power", "cycle", check=False)        # off: not in present state
    assert result.returncode != 0 and "not supported in present state" in result.stderr


def test_out_of_band_changes_are_seen_within_one_refresh(conn, bmc, nodes):
    server = nodes[0]
    conn.compute.stop_server(server)
    settle(conn, server.id, "SHUTOFF", timeout=60)
    wait_for(lambda: power(bmc) == "Chassis Power is off", 2 + 3, "the stop to be seen")
    assert "changed outside the BMC" in bmc.log
    conn.compute.start_server(server)
    wait_for(lambda: power(bmc) == "Chassis Power is on", 60 + 3, "the start to be seen")


def test_an_action_during_a_nova_task_is_retried_not_lost(conn, bmc, nodes, devcloud):
    server = nodes[0]
    delays = devcloud.layout.data / "nova" / "virt-delays.json"
    delays.write_text('{"reboot_hard": 3}')    # the hypervisor takes 3 s over this reboot
    try:
        conn.compute.reboot_server(server, "HARD")   # a task the BMC did not start
        bmc.ipmitool("power", "off")                 # Nova answers 409 while it reboots
        settle(conn, server.id, "SHUTOFF", timeout=90)
    finally:
        delays.unlink()
    assert actions(conn, server)[-2:] == ["reboot", "stop"]
    log = bmc.log
    assert "off waits: server" in log     # the 409 was met (a reboot takes longer than a poll)
    assert "failed" not in log


def test_boot_override_once_is_consumed_by_the_next_boot(conn, bmc, nodes):
    bmc.ipmitool("raw", "0x00", "0x08", "0x05", "0xa0", "0x04", "0", "0", "0")
    assert "Force PXE" in bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    bmc.ipmitool("power", "off")
    settle(conn, nodes[0].id, "SHUTOFF", timeout=60)
    assert "Force PXE" in bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    bmc.ipmitool("power", "on")   # consumed once Nova has been asked to boot it
    wait_for(lambda: "No override" in bmc.ipmitool("chassis", "bootparam", "get", "5").stdout,
             10, "the override to be consumed")
    settle(conn, nodes[0].id, "ACTIVE", timeout=60)


def test_a_deleted_server_answers_an_error_and_says_why(conn, bmc, nodes):
    conn.compute.delete_server(nodes[1])
    conn.compute.wait_for_delete(nodes[1], wait=60)
    wait_for(lambda: "no longer listed" in bmc.log, 10, "the BMC to notice")
    result = bmc.ipmitool("power", "status", node=1, check=False)
    assert result.returncode != 0 and "Unspecified error" in result.stderr
    assert power(bmc, node=0) == "Chassis Power is on"    # the others keep working


def test_inventory_has_the_servers_macs_and_flavor(conn, bmc, nodes, tmp_path):
    inventory = json.loads((tmp_path / "nodes.json").read_text())["nodes"]
    flavor = conn.compute.find_flavor("qo.tiny")
    for node, server in zip(inventory, nodes, strict=True):
        assert node["name"] == server.name
        ports = list(conn.network.ports(device_id=server.id))
        assert [p["address"] for p in node["ports"]] == [p.mac_address for p in ports]
        assert node["properties"]["memory_mb"] == flavor.ram
        assert node["properties"]["cpus"] == flavor.vcpus
        assert node["driver_info"]["ipmi_port"] == bmc.port_base + inventory.index(node)


def test_refresh_is_one_list_call_per_interval_for_all_nodes(bmc, devcloud):
    """Polls by clients never reach the cloud: Nova sees only the BMC's batch reads."""
    log = devcloud.layout.logs / "nova-api.log"
    before = log.read_text(errors="replace").count("GET /v2.1/servers/detail")
    started = time.monotonic()
    for _ in range(10):
        for node in (0, 1):
            power(bmc, node=node)
    time.sleep(max(0.0, 6 - (time.monotonic() - started)))
    elapsed = time.monotonic() - started
    after = log.read_text(errors="replace").count("GET /v2.1/servers/detail")
    assert after - before <= elapsed / 2 + 2   # one list per 2 s interval, not one per poll
    assert after - before >= 1


def test_servers_chosen_by_name_and_id_in_the_order_given(conn, bmc_server, nodes):
    bmc = bmc_server("--backend", "openstack", "--cloud", "devcloud",
                     "--server", nodes[1].id, "--server", nodes[0].name)
    bmc.ipmitool("power", "off", node=0)            # node 0 is the first --server: nodes[1]
    settle(conn, nodes[1].id, "SHUTOFF", timeout=60)
    assert conn.compute.get_server(nodes[0].id).status == "ACTIVE"
    assert power(bmc, node=1) == "Chassis Power is on"
