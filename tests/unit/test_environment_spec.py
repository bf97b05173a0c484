"""The environment spec and its plan: pure logic."""

from __future__ import annotations

import base64
import copy

import pytest

from quintupleo.environments.plan import Kind, RouterParams, plan
from quintupleo.environments.plan import changed as plan_changed
from quintupleo.environments.reader import SpecError
from quintupleo.environments.spec import parse

GOOD = {
    "name": "lab1", "cloud": "devcloud",
    "networks": {"provisioning": {"cidr": "192.168.24.0/24"},
                 "extra": {"storage": {"cidr": "172.16.1.0/24"}}},
    "roles": {"controller": {"count": 2, "flavor": "f", "image": "i", "profile": "control",
                             "networks": ["provisioning", "storage"]},
              "compute": {"count": 1, "flavor": "f", "image": "i"}},
}


def with_change(path: str, value, base: dict = GOOD):
    data = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return data


@pytest.mark.parametrize(("path", "value", "where"), [
    ("name", "Lab 1", "name"),
    ("cloud", KeyError, "cloud"),
    ("bogus", 1, "bogus"),
    ("networks.provisioning.cidr", "10.0.0.300/24", "networks.provisioning.cidr"),
    ("networks.extra.storage", {"cidr": "172.16.1.0/24", "vlan": 3}, "networks.extra.storage.vlan"),
    ("roles.compute.count", 0, "roles.compute.count"),
    ("roles.compute.count", True, "roles.compute.count"),
    ("roles.compute.flavor", KeyError, "roles.compute.flavor"),
    ("roles.controller.networks", ["provisioning", "tenant"], "roles.controller.networks[1]"),
    ("roles.controller.networks", ["storage"], "roles.controller.networks[0]"),
    ("roles", [], "roles"),
    ("vips", [{"name": "api", "network": "tenant"}], "vips[0].network"),
    ("vips", [{"name": "api", "network": "storage", "ip": "300.1.1.1"}], "vips[0].ip"),
    ("undercloud", {"image": "i"}, "undercloud.flavor"),
    ("undercloud", {"image": "i", "flavor": "f", "networks": ["nope"]}, "undercloud.networks[0]"),
    ("networks.extra.storage", {"cidr": "172.16.1.0/24", "port_security": "yes"},
     "networks.extra.storage.port_security"),
    ("networks.extra.storage", {"cidr": "172.16.1.0/24", "port_security": True,
                                "fixed_ips": False}, "networks.extra.storage.fixed_ips"),
    ("networks.provisioning", {"cidr": "10.0.0.0/24", "fixed_ips": "no"},
     "networks.provisioning.fixed_ips"),
    ("networks.external", "public", "networks.external"),              # needs networks.bmc
    ("networks.extra.bmc", {"cidr": "10.0.1.0/24"}, "networks.extra.bmc"),
    ("bmc", {"host": {"image": "i", "flavor": "f"}}, "bmc.host"),      # needs a router
    ("bmc", {"addressing": "ports"}, "bmc.addressing"),                # only with a host
    ("bmc", {"install": "quintupleo"}, "bmc.install"),
    ("bmc", {"host": {"image": "i"}}, "bmc.host.flavor"),
    ("undercloud", {"image": "i", "flavor": "f", "floating_ip": True}, "undercloud.floating_ip"),
    ("bmc", {"boot_strategy": "pxe"}, "bmc.boot_strategy"),
    ("roles.compute.availability_zone", 7, "roles.compute.availability_zone"),
    ("undercloud", {"image": "i", "flavor": "f", "availability_zone": ""},
     "undercloud.availability_zone"),
    ("roles.compute.boot", "disk", "roles.compute.boot"),
    ("roles.compute.anti_affinity", "strict", "roles.compute.anti_affinity"),
    ("networks.extra.storage", {"cidr": "172.16.1.0/24", "existing": "n"},
     "networks.extra.storage.cidr"),                                    # one of them
    ("networks.provisioning", {"fixed_ips": True}, "networks.provisioning.cidr"),
    ("networks.provisioning", {"cidr": "10.0.0.0/24", "port_security": True},
     "networks.provisioning.port_security"),                           # only for existing
])
def test_bad_specs_point_at_the_key(path, value, where):
    with pytest.raises(SpecError) as error:
        parse(with_change(path, value), "lab.yaml")
    assert f"lab.yaml: {where}:" in str(error.value)


def test_plan_names_are_unique_and_ordered():
    spec = parse(GOOD)
    planned = plan(spec)
    names = [p.name for p in planned]
    assert len(names) == len(set(names))
    kinds = [p.kind for p in planned]
    assert kinds.count(Kind.SERVER) == 3 and kinds.count(Kind.PORT) == 2 * 2 + 1
    seen = set()
    for item in planned:           # every dependency is planned before what needs it
        assert set(item.needs) <= seen, item
        seen.add(item.name)
    controller = next(p for p in planned if p.name == "qo-lab1-controller-0")
    assert controller.params.ports == ("qo-lab1-controller-0-provisioning",
                                          "qo-lab1-controller-0-storage")
    assert spec.tag == "quintupleo:lab1"


def test_a_bmc_host_plan():
    data = copy.deepcopy(GOOD)
    data["networks"].update({"bmc": {"cidr": "10.0.1.0/24"}, "external": "public"})
    data["bmc"] = {"host": {"image": "i", "flavor": "f"}, "addressing": "addresses"}
    data["undercloud"] = {"image": "i", "flavor": "f", "networks": ["bmc", "provisioning"],
                          "floating_ip": True}
    planned = {p.name: p for p in plan(parse(data))}
    assert planned["qo-lab1-bmc-subnet"].params.routed is True
    assert planned["qo-lab1-provisioning-subnet"].params.routed is False
    assert planned["qo-lab1-router"].params == RouterParams("public", "qo-lab1-bmc-subnet")
    assert planned["qo-lab1-undercloud-fip"].needs == ("qo-lab1-undercloud-bmc", "qo-lab1-router")
    host = planned["qo-lab1-bmc-host"]
    assert host.kind is Kind.BMC_HOST and host.params.nodes == (
        "qo-lab1-controller-0", "qo-lab1-controller-1", "qo-lab1-compute-0")
    # one address for the host, one per node; the credential before the host
    assert planned["qo-lab1-bmc-host-bmc"].params.addresses == 4
    assert host.needs == ("qo-lab1-bmc-host-bmc", "qo-lab1-bmc-credential")
    order = list(planned)
    assert order.index("qo-lab1-bmc-credential") < order.index("qo-lab1-bmc-host")


def test_sharded_bmc_hosts_each_serve_every_nth_node_with_addresses_of_their_own():
    data = copy.deepcopy(GOOD)
    data["networks"].update({"bmc": {"cidr": "10.0.1.0/24"}, "external": "public"})
    data["roles"]["compute"]["count"] = 3
    data["bmc"] = {"host": {"image": "i", "flavor": "f"}, "addressing": "addresses", "hosts": 2}
    planned = {p.name: p for p in plan(parse(data))}
    hosts = [p for p in planned.values() if p.kind is Kind.BMC_HOST]
    assert [(h.name, h.params.nodes) for h in hosts] == [
        ("qo-lab1-bmc-host-0", ("qo-lab1-controller-0", "qo-lab1-compute-0",
                                "qo-lab1-compute-2")),
        ("qo-lab1-bmc-host-1", ("qo-lab1-controller-1", "qo-lab1-compute-1"))]
    assert [planned[f"{h.name}-bmc"].params.addresses for h in hosts] == [4, 3]
    # one application credential for the environment, each host its own port
    assert [h.needs for h in hosts] == [(f"{h.name}-bmc", "qo-lab1-bmc-credential")
                                        for h in hosts]


@pytest.mark.parametrize(("bmc", "key", "words"), [
    ({"host": {"image": "i", "flavor": "f"}, "hosts": 4}, "bmc.hosts", "4 BMC hosts for 3 nodes"),
    ({"host": {"image": "i", "flavor": "f"}, "hosts": 0}, "bmc.hosts", "from 1 to 64"),
    ({"host": {"image": "i", "flavor": "f"}, "hosts": True}, "bmc.hosts", "from 1 to 64"),
    ({"hosts": 2}, "bmc.hosts", "only for a BMC host in the cloud"),
])
def test_bmc_hosts_is_checked(bmc, key, words):
    data = copy.deepcopy(GOOD)
    data["networks"].update({"bmc": {"cidr": "10.0.1.0/24"}, "external": "public"})
    data["bmc"] = bmc
    with pytest.raises(SpecError) as error:
        parse(data)
    assert f": {key}: " in str(error.value) and words in str(error.value)


def test_bmc_host_user_data_holds_1000_nodes_within_novas_limit():
    from quintupleo.environments import bmc_host
    data = copy.deepcopy(GOOD)
    data["networks"].update({"bmc": {"cidr": "10.0.0.0/20"}, "external": "public"})
    data["roles"] = {"node": {"count": 1000, "flavor": "f", "image": "i"}}
    data["bmc"] = {"host": {"image": "i", "flavor": "f"}, "addressing": "addresses"}
    spec = parse(data)
    item = next(p for p in plan(spec) if p.kind is Kind.BMC_HOST)
    served = {"address": "10.0.0.2", "mac": "fa:16:3e:00:00:01",
              "nodes": {name: f"10.0.{3 + i // 250}.{i % 250 + 1}"
                        for i, name in enumerate(item.params.nodes)}}
    text = bmc_host.render(spec, item.params, served, "credential-id", "s3cret",
                           {"auth_url": "https://cloud:5000/v3"}, "bmc-password", "CERT", "KEY", 20)
    assert len(text) < bmc_host.USER_DATA_LIMIT * 3 // 4
    assert text.count("ip addr replace") == 1 and "10.0.6.250/20" in text


def test_boot_strategy_reaches_the_spec():
    assert parse(with_change("bmc", {"boot_strategy": "rebuild"})).bmc.boot_strategy == "rebuild"
    assert parse(copy.deepcopy(GOOD)).bmc.boot_strategy == "none"


def test_availability_zones_reach_the_plan_only_where_asked():
    data = with_change("roles.compute.availability_zone", "qemu")
    data["undercloud"] = {"image": "i", "flavor": "f", "availability_zone": "qemu"}
    servers = {p.name: p for p in plan(parse(data)) if p.kind is Kind.SERVER}
    assert servers["qo-lab1-compute-0"].params.availability_zone == "qemu"
    assert servers["qo-lab1-undercloud"].params.availability_zone == "qemu"
    assert servers["qo-lab1-controller-0"].params.availability_zone is None   # none asked


def test_a_role_booted_from_its_image_plans_plain_servers():
    data = with_change("roles.compute.boot", "image")
    servers = {p.name: p for p in plan(parse(data, "spec")) if p.kind is Kind.SERVER}
    assert not servers["qo-lab1-compute-0"].params.baremetal
    assert servers["qo-lab1-controller-0"].params.baremetal
    ports = {p.name: p for p in plan(parse(data, "spec")) if p.kind is Kind.PORT}
    assert ports["qo-lab1-compute-0-provisioning"].params.node is False   # up from the start


def test_node_ports_get_macs_the_agent_accepts():
    """Not Neutron's fa:16:3e:… (Ironic Python Agent ignores fa: MACs): QEMU's 52:54:00, one
    per port, the same on every plan."""
    from quintupleo.environments.plan import node_mac
    macs = {node_mac(f"qo-e-node-{i}-provisioning") for i in range(50)}
    assert len(macs) == 50
    assert all(m.startswith("52:54:00:") and len(m) == 17 for m in macs)
    assert node_mac("qo-e-node-0-provisioning") == node_mac("qo-e-node-0-provisioning")


def test_anti_affinity_is_a_server_group_its_nodes_go_in():
    data = with_change("roles.controller.anti_affinity", True)
    data["roles"]["compute"]["anti_affinity"] = "soft"
    planned = plan(parse(data))
    groups = {p.name: p.params.policy for p in planned if p.kind is Kind.SERVER_GROUP}
    assert groups == {"qo-lab1-controller-group": "anti-affinity",
                      "qo-lab1-compute-group": "soft-anti-affinity"}
    for item in planned:
        if item.server is not None:
            assert item.server.group == f"qo-lab1-{item.server.role}-group"
            assert item.server.group in item.needs
    order = [p.kind for p in planned]
    assert order.index(Kind.SERVER_GROUP) < order.index(Kind.SERVER)
    assert not [p for p in plan(parse(GOOD)) if p.kind is Kind.SERVER_GROUP]


def test_an_existing_network_is_used_never_made():
    data = with_change("networks.extra.storage", {"existing": "shared", "port_security": True})
    data["vips"] = [{"name": "api", "network": "storage"}]
    planned = plan(parse(data))
    names = {p.name for p in planned}
    assert "qo-lab1-storage" not in names and "qo-lab1-storage-subnet" not in names
    port = next(p for p in planned if p.name == "qo-lab1-controller-0-storage")
    assert port.params.existing == "shared" and port.params.security is True
    assert port.needs == ("qo-lab1-vip-api",)                # nothing of ours to wait for
    vip = next(p for p in planned if p.kind is Kind.VIP)
    assert vip.params.existing == "shared" and vip.needs == ()
    provisioning = parse(with_change("networks.provisioning", {"existing": "prov"}))
    assert provisioning.networks[0].cidr is None
    assert not [p for p in plan(provisioning) if p.kind is Kind.NETWORK
                and p.name == "qo-lab1-provisioning"]


def test_a_corrected_spec_replaces_what_changed_and_what_refers_to_it():
    before = plan(parse(GOOD))
    held = {p.name for p in before}
    assert plan_changed(before, before, held) == set()
    after = plan(parse(with_change("networks.extra.storage.cidr", "172.16.9.0/24")))
    stale = plan_changed(before, after, held)
    assert "qo-lab1-storage-subnet" in stale and "qo-lab1-storage" not in stale
    assert {"qo-lab1-controller-0-storage", "qo-lab1-controller-0"} <= stale   # on it, and up
    assert "qo-lab1-compute-0" not in stale and "qo-lab1-compute-0-provisioning" not in stale
    fewer = plan(parse(with_change("roles.compute", KeyError)))
    assert "qo-lab1-compute-0" in plan_changed(before, fewer, held)          # no longer planned


ROUTED = {
    "name": "spine", "cloud": "devcloud",
    "networks": {"provisioning": [{"name": "leaf0", "cidr": "192.168.24.0/24"},
                                  {"name": "leaf1", "cidr": "192.168.25.0/24"},
                                  {"name": "leaf2", "cidr": "192.168.26.0/24"}],
                 "extra": {"storage": {"cidr": "172.16.1.0/24"}}},
    "roles": {"controller": {"count": 1, "flavor": "f", "image": "i"},
              "compute": {"count": 2, "flavor": "f", "image": "i", "leaf": "leaf2",
                          "networks": ["provisioning", "storage"]}},
    "relay": {"flavor": "f", "availability_zone": "qemu"},
    "undercloud": {"image": "i", "flavor": "f"},
}


def test_routed_leaves_place_roles_and_a_relay_joins_them():
    from quintupleo.environments.relay import relay_script
    spec = parse(copy.deepcopy(ROUTED))
    assert spec.leaves == ("leaf0", "leaf1", "leaf2")
    assert spec.relay.server == "192.168.24.1" and spec.relay.image == "quintupleo-relay"
    planned = {p.name: p for p in plan(spec)}
    # every leaf its own network; a role's first NIC on its leaf (the first leaf by default)
    assert {"qo-spine-leaf0", "qo-spine-leaf1", "qo-spine-leaf2"} <= set(planned)
    assert planned["qo-spine-compute-1"].params.ports == ("qo-spine-compute-1-leaf2",
                                                          "qo-spine-compute-1-storage")
    assert planned["qo-spine-compute-1"].params.leaf == "leaf2"
    assert planned["qo-spine-controller-0"].params.leaf == "leaf0"
    assert planned["qo-spine-undercloud"].params.ports == ("qo-spine-undercloud-leaf0",)
    # the relay: a port at each leaf's last address, its script as user data on a config drive
    relay = planned["qo-spine-relay"].params
    assert relay.config_drive and relay.availability_zone == "qemu"
    ports = [planned[p].params for p in relay.ports]
    assert [p.ip for p in ports] == ["192.168.24.254", "192.168.25.254", "192.168.26.254"]
    assert not any(p.security for p in ports)
    script = relay_script(spec, {leaf: p.mac for leaf, p in zip(spec.leaves, ports, strict=True)})
    assert base64.b64decode(relay.user_data).decode() == script
    assert "--dhcp-relay=192.168.25.254,192.168.24.1 --dhcp-relay=192.168.26.254,192.168.24.1" \
        in script and "--dhcp-relay=192.168.24.254" not in script
    assert all(f"nic {p.mac}" in script for p in ports)


@pytest.mark.parametrize(("change", "key", "words"), [
    (("relay", KeyError), "relay", "needed with provisioning leaves"),
    (("roles.controller.leaf", "leaf9"), "roles.controller.leaf", "no leaf 'leaf9'"),
    (("networks.provisioning", [{"name": "a", "cidr": "10.0.0.0/24"}]),
     "networks.provisioning", "at least two leaves"),
    (("networks.provisioning", [{"name": "a", "cidr": "10.0.0.0/24"},
                                {"name": "b", "cidr": "10.0.0.128/25"}]),
     "networks.provisioning[1].cidr", "overlaps"),
    (("networks.provisioning", [{"name": "a", "cidr": "10.0.0.0/24"},
                                {"name": "a", "cidr": "10.0.1.0/24"}]),
     "networks.provisioning[1].name", "taken"),
    (("relay.server", "10.9.9.9"), "relay.server", "not on the first leaf"),
])
def test_routed_specs_are_checked(change, key, words):
    with pytest.raises(SpecError) as error:
        parse(with_change(*change, base=ROUTED))
    assert f": {key}: " in str(error.value) and words in str(error.value), str(error.value)


def test_a_leaf_or_a_relay_needs_leaves():
    with pytest.raises(SpecError, match=r"roles\.compute\.leaf: only with provisioning leaves"):
        parse(with_change("roles.compute.leaf", "leaf1"))
    with pytest.raises(SpecError, match="relay: needed with provisioning leaves, and only"):
        parse(with_change("relay", {"flavor": "f"}))
