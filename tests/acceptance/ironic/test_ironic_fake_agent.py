"""Unmodified Ironic inspects, cleans, deploys and undeploys fake nodes: the fake backend's
fake agent (`bmc serve --fake-agent URL`) stands in for Ironic Python Agent on the wire. This is
bench/ironic_scale.py at its small size (two nodes, the `ipmi` hardware type).

Ironic's iPXE boot interface writes each node's config under its HTTP root, served here; a fake
node powered on to boot from the network reads its own there and runs the agent when the
config boots one: inspection data to Ironic, lookup, heartbeats, the agent API Ironic drives
(`direct` deploy, `agent` inspection and cleaning). Every command Ironic sent is in the BMC's
log."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
import ironic_scale  # the benchmark, as a module


def test_ironic_inspects_cleans_deploys_and_undeploys_fake_nodes(ironic_venv, report, tmp_path):
    section = "fake backend · fake agent (direct deploy)"
    args = ironic_scale.options(["--sync", "3", "--delay", "0.5", "--heartbeat", "1",
                                 "--timeout", "300", "--bmc-log-level", "info"])
    with report.step(section, "enroll, manage, inspect (agent), provide (agent cleaning), "
                              "deploy (direct), undeploy: 2 nodes at once"):
        rows = ironic_scale.run_ours(tmp_path, 2, "ipmi", args)
    phases = [row["phase"].split(" ")[0] for row in rows]
    assert phases == ["enroll", "manage", "inspect", "provide", "deploy", "power-sync",
                      "undeploy"], phases
    assert all(row["failed"] == "0" and row["BMC errors"] == "0" for row in rows), rows
    # what the agents' inspection data told Ironic (its database, read after it stopped)
    with sqlite3.connect(tmp_path / "ipmi-2" / "ironic" / "ironic.sqlite") as db:
        found = [json.loads(p) for (p,) in db.execute("SELECT properties FROM nodes")]
    assert len(found) == 2 and all(int(p["memory_mb"]) == 2048 and p["cpu_arch"] == "x86_64"
                                   for p in found), found
    log = (tmp_path / "ipmi-2" / "bmc.log").read_text()
    for name in ("fake-0", "fake-1"):
        sent = re.findall(rf"node {name}: fake agent command (\S+) (\S*)", log)
        assert ("deploy.execute_deploy_step", "write_image") in sent, sent
        assert ("clean.execute_clean_step", "erase_devices_metadata") in sent, sent
        assert ("standby.power_off", "") in sent or ("standby.sync", "") in sent, sent
    assert "Traceback" not in log
