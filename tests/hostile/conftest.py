"""The fuzz and fault tier: hostile clients, floods, slow clients, and processes killed half
way. Each test bounds itself (counts and timeouts), starts what it needs and stops it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from ruamel.yaml import YAML


def write_config(path: Path, **settings: object) -> str:
    """A `bmc serve --config` file; returns its path as a flag value."""
    YAML(typ="safe").dump(settings, path)
    return str(path)


@pytest.fixture
def config(tmp_path):
    counter = iter(range(1000))

    def _config(**settings: object) -> tuple[str, str]:
        return "--config", write_config(tmp_path / f"bmc-{next(counter)}.yaml", **settings)
    return _config


@pytest.fixture
def console_bmc(tmp_path, bmc_server, config):
    """Factory: a BMC over one QEMU lab node that is off (so it has a serial console and no
    VM runs), with the settings given; the lab's own BMC is replaced by it."""
    if os.geteuid() != 0 or shutil.which("qemu-system-x86_64") is None:
        pytest.skip("a lab node needs root and QEMU")
    home = tmp_path / "home"
    env = dict(os.environ, QUINTUPLEO_HOME=str(home))
    name = f"h{uuid.uuid4().hex[:6]}"

    def lab(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "quintupleo", "lab", *args, "--name", name],
                       env=env, capture_output=True, text=True, timeout=120, check=True)

    lab("up", "--nodes", "1", "--cidr", "10.253.0.0/24", "--ipmi-port-base", "17390",
        "--redfish-port", "17391")
    pid = home / "labs" / name / "bmc.pid"
    os.kill(int(pid.read_text()), 15)

    def _start(**settings: object):
        return bmc_server("--backend", "qemu", "--lab", name, *config(**settings), env=env)

    yield _start
    lab("down")
