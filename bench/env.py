"""Benchmark of environments on the devcloud: create and delete time and API calls for 5, 20 and
50 nodes (one role, a provisioning and a storage network), then an audit that must say zero.

    python bench/env.py [--sizes 5 20 50]

No alternative runs here for comparison: openstack-virtual-baremetal builds environments with
Heat, which the devcloud (like many clouds) does not offer.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import openstack
from common import print_table

from quintupleo.devcloud.layout import default_home
from quintupleo.devcloud.manager import Devcloud
from quintupleo.environments import apply
from quintupleo.environments.cloud import CloudOps
from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import plan
from quintupleo.environments.spec import parse


def spec(nodes: int):
    return parse({"name": f"b{uuid.uuid4().hex[:6]}", "cloud": "devcloud",
                  "networks": {"provisioning": {"cidr": "192.168.24.0/24"},
                               "extra": {"storage": {"cidr": "172.16.1.0/24"}}},
                  "roles": {"node": {"count": nodes, "flavor": "qo.tiny",
                                     "image": "quintupleo-tiny",
                                     "networks": ["provisioning", "storage"]}}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50])
    args = parser.parse_args()
    Devcloud(default_home()).up()
    conn = openstack.connect(cloud="devcloud")
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-env-"))
    rows = []
    for nodes in args.sizes:
        environment = spec(nodes)
        planned = plan(environment)
        journal = Journal(tmp / environment.name / "journal.sqlite")
        ops = CloudOps(conn, environment)
        started = time.monotonic()
        try:
            apply.create(ops, journal, planned)
            created, create_calls = time.monotonic() - started, ops.calls
            ops.calls = 0
            again = time.monotonic()
            apply.create(ops, journal, planned)
            rerun, rerun_calls = time.monotonic() - again, ops.calls
        finally:
            ops.calls = 0
            started = time.monotonic()
            apply.delete(ops, journal)
            deleted, delete_calls = time.monotonic() - started, ops.calls
        leaks = apply.audit(ops, journal, planned)
        rows.append((f"{nodes} nodes", f"{len(planned)}",
                     f"{created:.1f} s / {create_calls}", f"{rerun:.2f} s / {rerun_calls}",
                     f"{deleted:.1f} s / {delete_calls}", f"{len(leaks)}"))
    print_table("quintupleo env benchmark (devcloud, fake virt driver)", "", rows,
                ("environment", "resources", "create: time / API calls",
                 "create again: time / calls", "delete: time / calls", "leaked (audit)"))


if __name__ == "__main__":
    main()
