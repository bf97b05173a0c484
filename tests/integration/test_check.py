"""`quintupleo check` against the devcloud: all must-haves pass; a feature a policy forbids is
reported with what it disables, and the exit code says so."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.devcloud


def check(*args: str) -> tuple[int, list[dict]]:
    result = subprocess.run([sys.executable, "-m", "quintupleo", "check", "--cloud", "devcloud",
                             "--format", "json", *args], capture_output=True, text=True,
                            timeout=300)
    return result.returncode, json.loads(result.stdout)


def test_check_passes_on_the_devcloud_and_leaves_nothing(conn, ipxe_images):
    code, findings = check()
    failed = [f for f in findings if not f["ok"]]
    assert code == 0 and not failed, failed
    features = {f["feature"] for f in findings}
    assert {"port with port security disabled", "subnet without DHCP or gateway",
            "application credentials", "image upload"} <= features
    assert not [n for n in conn.network.networks() if n.name.startswith("qo-check-")]
    assert not [i for i in conn.image.images() if i.name.startswith("qo-check-")]
    user = conn.current_user_id
    assert not [c for c in conn.identity.application_credentials(user)
                if c.name.startswith("qo-check-")]


def test_a_policy_that_forbids_disabling_port_security_is_reported(devcloud):
    # Neutron (oslo.policy) re-reads its policy file when it changes: no restart needed.
    policy = devcloud.layout.etc / "neutron" / "policy.yaml"
    policy.write_text('"create_port:port_security_enabled": "rule:admin_only"\n')
    try:
        code, findings = check()
    finally:
        policy.write_text("{}\n")
    assert code == 1
    failed = {f["feature"]: f for f in findings if not f["ok"]}
    assert list(failed) == ["port with port security disabled"]
    finding = failed["port with port security disabled"]
    assert finding["must"] and "403" in finding["detail"]
    assert "DHCP/PXE" in finding["disables"]
    assert check()[0] == 0                      # and the cloud is back as it was


def test_quotas_against_a_spec(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text("name: big\ncloud: devcloud\nnetworks: {provisioning: {cidr: 10.0.0.0/16}}\n"
                    "roles: {node: {count: 1000, flavor: qo.tiny, image: quintupleo-tiny}}\n")
    code, findings = check("--spec", str(spec))
    quotas = next(f for f in findings if f["feature"] == "quotas")
    assert code == 1 and not quotas["ok"] and quotas["must"]
    assert "instances: 1000 wanted" in quotas["detail"]


def test_a_spec_with_a_bmc_host_needs_its_external_network(tmp_path):
    spec = tmp_path / "routed.yaml"
    text = ("name: routed\ncloud: devcloud\nnetworks: {{provisioning: {{cidr: 10.0.0.0/24}}, "
            "bmc: {{cidr: 10.0.1.0/24}}, external: {external}}}\n"
            "roles: {{node: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny}}}}\n"
            "bmc: {{host: {{image: quintupleo-tiny, flavor: qo.tiny}}, addressing: addresses}}\n")
    spec.write_text(text.format(external="public"))
    code, findings = check("--spec", str(spec))
    found = {f["feature"]: f for f in findings}
    assert code == 0 and found["external network"]["must"]
    assert found["application credentials"]["must"] and found["application credentials"]["ok"]
    # nodes + the BMC host; one port each (the host's holds an address per node)
    assert "3 instances" in found["quotas"]["detail"] and "3 ports" in found["quotas"]["detail"]
    spec.write_text(text.format(external="no-such-network"))
    code, findings = check("--spec", str(spec))
    external = next(f for f in findings if f["feature"] == "external network")
    assert code == 1 and not external["ok"] and "no-such-network" in external["detail"]


RESCUE_SPEC = ("name: pxe\ncloud: devcloud\nnetworks: {provisioning: {cidr: 10.0.0.0/24}}\n"
               "roles: {node: {count: 1, flavor: qo.tiny, image: quintupleo-tiny}}\n"
               "bmc: {boot_strategy: rescue}\n")


def test_a_boot_strategy_is_probed_on_a_scratch_server(tmp_path, devcloud, ipxe_images, conn):
    spec = tmp_path / "pxe.yaml"
    spec.write_text(RESCUE_SPEC)
    code, findings = check("--spec", str(spec))
    by_feature = {f["feature"]: f for f in findings}
    probe = by_feature["boot strategy rescue on a scratch server"]
    assert code == 0 and probe["ok"] and probe["detail"] == "rescued into the iPXE image"
    assert by_feature["iPXE boot images in Glance"]["ok"]
    console = by_feature["Nova serial console"]     # the fake host (zone nova) has none
    assert not console["ok"] and not console["must"], console
    assert "HTTP 400" in console["detail"] and "serial" in console["detail"]
    assert not [s for s in conn.compute.servers() if s.name.startswith("qo-check-")]
    assert not [n for n in conn.network.networks() if n.name.startswith("qo-check-")]

    # a cloud whose policy forbids rescue: the strategy fails in check, with the reason
    policy = devcloud.layout.etc / "nova" / "policy.yaml"
    policy.write_text('"os_compute_api:os-rescue": "rule:admin_api"\n')
    try:
        code, findings = check("--spec", str(spec))
    finally:
        policy.unlink()
    failed = {f["feature"]: f for f in findings if not f["ok"]}
    assert code == 1 and sorted(failed) == ["Nova serial console",
                                            "boot strategy rescue on a scratch server"]
    assert "403" in failed["boot strategy rescue on a scratch server"]["detail"]
    assert not [s for s in conn.compute.servers() if s.name.startswith("qo-check-")]
    assert not [n for n in conn.network.networks() if n.name.startswith("qo-check-")]


def test_serial_consoles_of_the_real_host_are_reported(tmp_path, real_host, conn):
    spec = tmp_path / "vm.yaml"
    spec.write_text(RESCUE_SPEC.replace("image: quintupleo-tiny}",
                                        "image: quintupleo-tiny, availability_zone: qemu}")
                    .replace("bmc: {boot_strategy: rescue}\n", ""))
    code, findings = check("--spec", str(spec))
    by_feature = {f["feature"]: f for f in findings}
    assert code == 0 and by_feature["Nova serial console"]["ok"], by_feature
    assert not [s for s in conn.compute.servers() if s.name.startswith("qo-check-")]
    assert "Nova serial console" not in {f["feature"] for f in check()[1]}   # needs --spec
