"""`env create` and `env delete` killed (-9) at each phase: run again, each finishes what the
killed one started; nothing is lost (every planned resource exists once, the nodes are off)
and nothing is left (the audit finds 0 leaks, the cloud holds nothing tagged)."""

from __future__ import annotations

import signal
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import openstack
import pytest

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
  bmc: {{cidr: 10.0.1.0/24}}
  external: public
roles:
  node: {{count: 2, flavor: qo.tiny, image: quintupleo-tiny}}
vips: [{{name: api, network: provisioning, ip: 192.168.24.250}}]
undercloud: {{image: quintupleo-tiny, flavor: qo.tiny, networks: [bmc, provisioning],
             floating_ip: true}}
"""
CREATE_PHASES = ["network", "subnet", "router", "vip", "port", "server", "floating-ip",
                 "hand-over"]
DELETE_PHASES = ["floating-ip", "server", "port", "vip", "router", "subnet", "network"]


def _reached(journal, phase: str, deleting: bool) -> bool:
    """Whether the journal shows the phase under way (or past)."""
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
            if phase == "hand-over":     # every server made, no node handed over yet
                made = db.execute("SELECT count(*) FROM resource WHERE kind = 'server' AND "
                                  "status = 'created'").fetchone()[0]
                return made == 3
            status = "deleting" if deleting else "%"
            return db.execute("SELECT count(*) FROM resource WHERE kind = ? AND status LIKE ?",
                              (phase, status)).fetchone()[0] > 0
    except sqlite3.Error:
        return False      # not made yet, or being written


def _kill_at(qo_env, journal, phase: str, *command: str, deleting: bool = False) -> None:
    proc = qo_env(*command, background=True)
    deadline = time.monotonic() + 180
    while not _reached(journal, phase, deleting):
        assert proc.poll() is None, f"{command[0]} ended before {phase}:\n{proc.stdout.read()}"
        assert time.monotonic() < deadline, f"{command[0]} never reached {phase}"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def test_create_and_delete_killed_at_each_phase_finish_when_run_again(qo_env, tmp_path, tagged):
    def killed_at(phases: tuple[str, str]) -> None:
        create_phase, delete_phase = phases
        conn = openstack.connect(cloud="devcloud")     # one per thread
        name = f"k{uuid.uuid4().hex[:6]}"
        path = tmp_path / f"{name}.yaml"
        path.write_text(SPEC.format(name=name))
        journal = qo_env.state / name / "journal.sqlite"

        _kill_at(qo_env, journal, create_phase, "create", str(path))
        qo_env("create", str(path))
        found = tagged(conn, name)
        assert (len(found["networks"]), len(found["subnets"]), len(found["servers"])) == \
            (2, 2, 3), create_phase
        assert len({s.name for s in found["servers"]}) == 3       # none twice
        nodes = [s for s in found["servers"] if "-node-" in s.name]
        assert [s.status for s in nodes] == ["SHUTOFF", "SHUTOFF"], create_phase
        assert "0 leaked resources" in qo_env("audit", name).stdout, create_phase

        _kill_at(qo_env, journal, delete_phase, "delete", name, deleting=True)
        qo_env("delete", name)
        assert not any(tagged(conn, name).values()), delete_phase
        assert "0 leaked resources" in qo_env("audit", name).stdout, delete_phase
        conn.close()

    # Two environments at a time (each its own names and journal): half the wall time, and
    # a kill of one next to the other's work
    pairs = list(zip(CREATE_PHASES, [*DELETE_PHASES, "network"], strict=True))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for done in pool.map(killed_at, pairs):
            assert done is None
