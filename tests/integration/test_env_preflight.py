"""Environments for real clouds: the pre-flight makes nothing when the spec names something the
cloud lacks, and says which key; a create stopped half way runs again with a corrected spec;
roles spread by anti-affinity; a network of the cloud used, never deleted."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import uuid

import pytest

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: {cloud}
networks:
  provisioning: {{cidr: {cidr}}}
roles:
  node: {{count: 2, flavor: {flavor}, image: {image}{extra}}}
"""


def write(tmp_path, name: str, **values: str):
    fields = {"cloud": "devcloud", "cidr": "192.168.24.0/24", "flavor": "qo.tiny",
              "image": "quintupleo-tiny", "extra": "", **values}
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:4]}.yaml"
    path.write_text(SPEC.format(name=name, **fields))
    return str(path)


@pytest.mark.parametrize(("change", "key", "said"), [
    ({"flavor": "no-such-flavor"}, "roles.node.flavor", "no flavor 'no-such-flavor'"),
    ({"image": "no-such-image"}, "roles.node.image", "no image 'no-such-image'"),
    ({"extra": ", availability_zone: mars"}, "roles.node.availability_zone", "no zone 'mars'"),
    ({"cloud": "no-such-cloud"}, "cloud", "'no-such-cloud'"),
])
def test_a_spec_the_cloud_cannot_serve_makes_nothing(conn, qo_env, tmp_path, tagged, change,
                                                     key, said):
    name = f"p{uuid.uuid4().hex[:6]}"
    path = write(tmp_path, name, **change)
    for dry in ((), ("--dry-run",)):
        failed = qo_env("create", path, *dry, check=False)
        assert failed.returncode == 1, failed.stdout
        assert f"{path}: {key}: " in failed.stderr and said in failed.stderr, failed.stderr
        assert "Traceback" not in failed.stderr
    assert not any(tagged(conn, name).values())           # nothing made
    assert name not in qo_env("list", "--all").stdout      # not even a journal


def test_a_create_stopped_half_way_runs_again_with_a_corrected_spec(conn, qo_env, tmp_path,
                                                                    tagged):
    name = f"c{uuid.uuid4().hex[:6]}"
    first = write(tmp_path, name)
    proc = qo_env("create", first, background=True)
    journal = qo_env.state / name / "journal.sqlite"
    deadline = time.monotonic() + 120
    while True:       # stop it once the servers are being made: its networks and ports exist
        try:
            with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
                if db.execute("SELECT count(*) FROM resource WHERE kind = 'server'"
                              ).fetchone()[0]:
                    break
        except sqlite3.Error:
            pass
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    corrected = write(tmp_path, name, cidr="192.168.30.0/24", flavor="qo.small")
    plan = json.loads(qo_env("create", corrected, "--dry-run", "-f", "json").stdout)
    actions = {row["name"]: row["action"] for row in plan}
    assert actions[f"qo-{name}-provisioning"] == "keep"            # the network still fits
    assert actions[f"qo-{name}-provisioning-subnet"] == "replace"  # another CIDR
    assert actions[f"qo-{name}-node-0-provisioning"] == "replace"  # it was on that subnet
    created = qo_env("create", corrected)
    assert f"replaced qo-{name}-provisioning-subnet" in created.stdout + created.stderr
    found = tagged(conn, name)
    assert [s.cidr for s in found["subnets"]] == ["192.168.30.0/24"]
    assert len(found["ports"]) == 2 and len(found["servers"]) == 2
    flavors = {conn.compute.get_server(s.id).flavor.name for s in found["servers"]}
    assert flavors == {"qo.small"}
    assert "0 leaked resources" in qo_env("audit", name).stdout
    # once complete, another spec is refused with the one command that lets it through
    refused = qo_env("create", first, check=False)
    assert refused.returncode == 1 and f"quintupleo env delete {name}" in refused.stderr
    qo_env("delete", name)
    assert not any(tagged(conn, name).values())


def test_anti_affinity_and_a_network_of_the_cloud(conn, qo_env, tmp_path, tagged):
    name = f"a{uuid.uuid4().hex[:6]}"
    shared = conn.network.create_network(name=f"{name}-shared")
    conn.network.create_subnet(network_id=shared.id, ip_version=4, cidr="10.77.0.0/24",
                               enable_dhcp=False, gateway_ip=None)
    try:
        path = tmp_path / f"{name}.yaml"
        path.write_text(f"""
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  extra:
    shared: {{existing: {name}-shared}}
roles:
  node: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny, anti_affinity: soft,
         networks: [provisioning, shared]}}
""")
        qo_env("create", str(path))
        servers = tagged(conn, name)["servers"]
        groups = [g for g in conn.compute.server_groups() if g.name == f"qo-{name}-node-group"]
        assert len(groups) == 1
        group = conn.compute.get_server_group(groups[0].id)
        assert set(group.member_ids) == {s.id for s in servers}
        assert (group.policy or group.policies[0]) == "soft-anti-affinity"
        on_shared = list(conn.network.ports(network_id=shared.id))
        assert sorted(p.name for p in on_shared) == [f"qo-{name}-node-0-shared",
                                                     f"qo-{name}-node-1-shared"]
        assert all(p.is_port_security_enabled is False for p in on_shared)
        assert "0 leaked resources" in qo_env("audit", name).stdout
        qo_env("delete", name)
        assert not any(tagged(conn, name).values())
        assert not [g for g in conn.compute.server_groups() if g.name.startswith(f"qo-{name}-")]
        assert conn.network.get_network(shared.id).id == shared.id     # never touched
    finally:
        for port in conn.network.ports(network_id=shared.id):
            conn.network.delete_port(port, ignore_missing=True)
        conn.network.delete_network(shared, ignore_missing=True)
