"""Benchmark of the local cloud: install (warm pip cache), cold start, warm start, reset, down, RSS.

Runs in a home and on ports of its own (default: a temp dir, port base 19200), so the devcloud you
use is left alone; the bench home is removed at the end unless --keep is given. No alternative
runs on this machine for comparison (DevStack takes over a host), so the issue's targets are printed
beside the figures instead.

    python bench/devcloud.py [--port-base 19200] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import openstack
from rich.console import Console
from rich.table import Table

from quintupleo.devcloud import install, smoke
from quintupleo.devcloud.bootstrap import admin_connection
from quintupleo.devcloud.layout import Layout, State
from quintupleo.devcloud.manager import Devcloud


def timed(action) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port-base", type=int, default=19200)
    parser.add_argument("--keep", action="store_true", help="keep the bench home")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="qo-bench-")) / "devcloud"
    cloud = Devcloud(home)
    rows: list[tuple[str, str, str]] = []
    try:
        t_install = timed(lambda: install.install_venv(Layout(home)))
        rows.append(("install the services' venv (warm pip cache)", f"{t_install:.1f} s", ""))
        t_cold = timed(lambda: cloud.up(args.port_base))
        rows.append(("cold start (bootstrap from nothing)", f"{t_cold:.1f} s", ""))
        rows.append(("up from nothing (install + cold start)", f"{t_install + t_cold:.1f} s",
                     "< 180 s"))
        state = State.load(cloud.layout)
        conn = admin_connection(state)
        steps = dict(smoke.run(conn))
        first_boot = steps["boot on a pre-created port"]
        rows.append(("first boot after a cold start", f"{first_boot:.2f} s", ""))
        time.sleep(15)  # let the services settle before measuring memory
        statuses = cloud.status()
        rss = sum(row.rss or 0 for row in statuses)
        rows.append((f"total RSS ({len(statuses)} services)", f"{rss / 2**20:.0f} MiB", ""))
        t_down = timed(cloud.down)
        rows.append(("down", f"{t_down:.1f} s", ""))
        t_warm = timed(cloud.up)
        rows.append(("warm start", f"{t_warm:.1f} s", ""))
        t_reset = timed(cloud.reset)
        rows.append(("reset (stop, restore golden copy, start)", f"{t_reset:.1f} s", "< 45 s"))
        steps = dict(smoke.run(openstack.connect(
            auth_url=state.auth_url, username="demo", password=state.member_password,
            project_name="demo", user_domain_name="Default", project_domain_name="Default")))
        for step, seconds in steps.items():
            rows.append((f"server {step} (steady)", f"{seconds:.2f} s", ""))
    finally:
        cloud.down()
        if not args.keep:
            shutil.rmtree(home.parent, ignore_errors=True)

    table = Table("devcloud", "measured", "target", title="quintupleo devcloud benchmark")
    for row in rows:
        table.add_row(*row)
    Console().print(table)


if __name__ == "__main__":
    main()
