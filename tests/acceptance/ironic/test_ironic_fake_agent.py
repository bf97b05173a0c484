"""Unmodified Ironic inspects, cleans, deploys and undeploys fake nodes: the fake backend's
fake agent (`bmc serve --fake-agent URL`) stands in for Ironic Python Agent on the wire.

Ironic's iPXE boot interface writes each node's config under its HTTP root, served here; a fake
node powered on to boot from the network reads its own there and runs the agent when the
config boots one: inspection data to Ironic, lookup, heartbeats, the agent API Ironic drives
(`direct` deploy, `agent` inspection and cleaning). Every command Ironic sent is in the BMC's
log; at the end each node is `available` again (fast track: its agent still up)."""

from __future__ import annotations

import hashlib
import re

from ironic_steps import enroll, http_server

AGENT_PORTS = 19970
HTTP_PORT = 19960


def provision_all(ir, names: list[str], target: str, stable: str, timeout: float = 300) -> None:
    for name in names:
        ir.call("PUT", f"nodes/{name}/states/provision", {"target": target})
    for name in names:
        node = ir.wait(name, lambda n: n["provision_state"].endswith("failed") or (
            n["target_provision_state"] is None and n["provision_state"] == stable),
            f"provision state {stable}", timeout)
        assert node["provision_state"] == stable, f"{name}: {node['last_error']}"


def test_ironic_inspects_cleans_deploys_and_undeploys_fake_nodes(bmc_server, ironic, report,
                                                                  tmp_path, config):
    section = "fake backend · fake agent (direct deploy)"
    inventory = tmp_path / "nodes.json"
    url = f"http://127.0.0.1:{HTTP_PORT}"
    with report.step(section, "start Ironic (iPXE boot, direct deploy, agent inspection)"):
        ir = ironic(boot="ipxe", http_url=url, agent=True)
    with http_server(ir.work / "http", HTTP_PORT):
        bmc = bmc_server("--backend", "fake", "--fake-nodes", "2", "--fake-agent", url,
                         "--fake-agent-delay", "0.5", "--refresh-interval", "1",
                         "--inventory-output", str(inventory),
                         *config(fake_agent_port_base=AGENT_PORTS, fake_agent_heartbeat=1))
        image = b"QuintupleO fake whole-disk image\n" * 1000
        (ir.work / "http" / "disk.raw").write_bytes(image)
        names = enroll(ir, report, section, inventory, {
            "deploy_interface": "direct", "inspect_interface": "agent",
            "instance_info": {"image_source": f"{url}/disk.raw", "image_disk_format": "raw",
                              "image_os_hash_algo": "sha256",
                              "image_os_hash_value": hashlib.sha256(image).hexdigest()}})
        # the agent's kernel and ramdisk over HTTP, which Ironic caches: a file:// source it
        # copies at each boot, and its cache clean-up after a copy stats the temporary files
        # of another node's copy in progress ("No such file" in tftp/master)
        patch = {"automated_clean": True}
        for part in ("kernel", "ramdisk"):
            (ir.work / "http" / f"agent.{part}").write_bytes(b"a fake agent's\n")
            patch[f"driver_info/deploy_{part}"] = f"{url}/agent.{part}"
        for name in names:
            ir.call("PATCH", f"nodes/{name}", [{"op": "add", "path": f"/{path}", "value": value}
                                               for path, value in patch.items()])
        # both nodes at once, phase by phase, as a provisioning tool drives a rack
        with report.step(section, "inspect (the agent sends its inventory)"):
            provision_all(ir, names, "manage", "manageable")
            provision_all(ir, names, "inspect", "manageable")
            for name in names:
                properties = ir.node(name)["properties"]
                assert int(properties["memory_mb"]) == 2048 and properties["cpu_arch"] == \
                    "x86_64", properties
        with report.step(section, "provide (automated cleaning by the agent)"):
            provision_all(ir, names, "provide", "available")
        with report.step(section, "deploy (the agent writes the image)"):
            provision_all(ir, names, "active", "active")
            assert [ir.node(n)["power_state"] for n in names] == ["power on"] * len(names)
        with report.step(section, "undeploy (cleaning again)"):
            provision_all(ir, names, "deleted", "available")
        log = bmc.log
        for name in names:
            sent = re.findall(rf"node {name}: fake agent command (\S+) (\S*)", log)
            assert ("deploy.execute_deploy_step", "write_image") in sent, sent
            assert ("clean.execute_clean_step", "erase_devices_metadata") in sent, sent
            assert ("standby.power_off", "") in sent or ("standby.sync", "") in sent, sent
        assert "Traceback" not in log
