"""Benchmark of environments on the devcloud: create and delete time and API calls for 5, 20, 50
and 200 nodes (one role, a provisioning and a storage network), then an audit that must say
zero; and calls per node beside the code before bulk creation (git revision BEFORE, run from a
worktree of it in the same run).

    python bench/env.py [--sizes 5 20 50 200] [--before-sizes 200]

No alternative runs here for comparison: openstack-virtual-baremetal builds environments with
Heat, which the devcloud (like many clouds) does not offer.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the last revision that made one call per port, per tag and per image and flavor lookup, and
# stopped servers and brought ports up one after the other
BEFORE = "391b02d"


def spec(nodes: int):
    from quintupleo.environments.spec import parse
    return parse({"name": f"b{uuid.uuid4().hex[:6]}", "cloud": "devcloud",
                  "networks": {"provisioning": {"cidr": "192.168.24.0/24"},
                               "extra": {"storage": {"cidr": "172.16.1.0/24"}}},
                  "roles": {"node": {"count": nodes, "flavor": "qo.tiny",
                                     "image": "quintupleo-tiny",
                                     "networks": ["provisioning", "storage"]}}})


def measure(nodes: int, tmp: Path) -> dict[str, float]:
    """Create, create again, delete, audit: seconds and calls of each (only what the code of
    every revision compared has: plan, apply, CloudOps, Journal)."""
    import openstack

    from quintupleo.environments import apply
    from quintupleo.environments.cloud import CloudOps
    from quintupleo.environments.journal import Journal
    from quintupleo.environments.plan import plan
    environment = spec(nodes)
    planned = plan(environment)
    journal = Journal(tmp / environment.name / "journal.sqlite")
    ops = CloudOps(openstack.connect(cloud="devcloud"), environment)
    figures: dict[str, float] = {"resources": len(planned)}
    started = time.monotonic()
    try:
        apply.create(ops, journal, planned)
        figures.update(create=time.monotonic() - started, create_calls=ops.calls)
        ops.calls = 0
        again = time.monotonic()
        apply.create(ops, journal, planned)
        figures.update(rerun=time.monotonic() - again, rerun_calls=ops.calls)
    finally:
        ops.calls = 0
        started = time.monotonic()
        apply.delete(ops, journal)
        figures.update(delete=time.monotonic() - started, delete_calls=ops.calls)
    figures["leaks"] = len(apply.audit(ops, journal, planned))
    return figures


def before(nodes: int, tmp: Path) -> dict[str, float] | str:
    """`measure` with the package of revision BEFORE (a git worktree of it first on the path)."""
    tree = tmp / "before"
    if not tree.exists():
        made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree),
                               BEFORE], capture_output=True, text=True)
        if made.returncode != 0:
            return f"no worktree of {BEFORE}: {made.stderr.strip()[:80]}"
    run = subprocess.run([sys.executable, __file__, "--measure", str(nodes)],
                         env=dict(os.environ, PYTHONPATH=str(tree)), capture_output=True,
                         text=True)
    if run.returncode != 0:
        return f"failed: {run.stderr.strip()[-200:]}"
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5, 20, 50, 200])
    parser.add_argument("--before-sizes", type=int, nargs="*", default=[200])
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)   # one size, as JSON
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="qo-bench-env-"))
    if args.measure:
        print(json.dumps(measure(args.measure, tmp)))
        return
    from common import print_table

    from quintupleo.devcloud.layout import default_home
    from quintupleo.devcloud.manager import Devcloud
    Devcloud(default_home()).up()
    rows, compared = [], []
    try:
        for nodes in args.sizes:
            now = measure(nodes, tmp)
            print(f"{nodes} nodes: {json.dumps(now)}", flush=True)   # as they come: runs are long
            rows.append((f"{nodes} nodes", f"{now['resources']:.0f}",
                         f"{now['create']:.1f} s / {now['create_calls']:.0f}",
                         f"{now['rerun']:.2f} s / {now['rerun_calls']:.0f}",
                         f"{now['delete']:.1f} s / {now['delete_calls']:.0f}",
                         f"{now['leaks']:.0f}"))
            if nodes in args.before_sizes:
                then = before(nodes, tmp)
                print(f"{nodes} nodes at {BEFORE}: {json.dumps(then)}", flush=True)
                if isinstance(then, str):
                    compared.append((f"{nodes} nodes", then, "", "", ""))
                    continue
                compared.append((
                    f"{nodes} nodes",
                    f"{then['create_calls'] / nodes:.1f} → {now['create_calls'] / nodes:.1f}",
                    f"{then['create']:.1f} s → {now['create']:.1f} s",
                    f"{then['delete_calls'] / nodes:.1f} → {now['delete_calls'] / nodes:.1f}",
                    f"{then['delete']:.1f} s → {now['delete']:.1f} s"))
    finally:
        if (tmp / "before").exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(tmp / "before")], capture_output=True)
    print_table("quintupleo env benchmark (devcloud, fake virt driver)", "", rows,
                ("environment", "resources", "create: time / API calls",
                 "create again: time / calls", "delete: time / calls", "leaked (audit)"))
    if compared:
        print_table(f"API calls per node: {BEFORE} (one call per port, tag, lookup; serial "
                    "stops) → now (bulk ports, lookups once, parallel)", "", compared,
                    ("environment", "create: calls per node", "create: time",
                     "delete: calls per node", "delete: time"))


if __name__ == "__main__":
    main()
