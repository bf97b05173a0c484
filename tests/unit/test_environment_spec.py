"""The environment spec and its plan: pure logic."""

from __future__ import annotations

import copy

import pytest

from quintupleo.environments.plan import Kind, plan
from quintupleo.environments.spec import SpecError, parse

GOOD = {
    "name": "lab1", "cloud": "devcloud",
    "networks": {"provisioning": {"cidr": "192.168.24.0/24"},
                 "extra": {"storage": {"cidr": "172.16.1.0/24"}}},
    "roles": {"controller": {"count": 2, "flavor": "f", "image": "i", "profile": "control",
                             "networks": ["provisioning", "storage"]},
              "compute": {"count": 1, "flavor": "f", "image": "i"}},
}


def with_change(path: str, value):
    data = copy.deepcopy(GOOD)
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
    assert controller.params["ports"] == ("qo-lab1-controller-0-provisioning",
                                          "qo-lab1-controller-0-storage")
    assert spec.tag == "quintupleo:lab1"
