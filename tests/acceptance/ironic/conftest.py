"""Fixtures of the Ironic tier: Ironic's venv (built once), Ironic processes started for a test,
and the run's report (test-output/ironic/report.md and .html)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
from ironic_report import Report

from harness.ironic import Ironic, install

REPORT_DIR = Path(os.environ.get("QUINTUPLEO_TEST_OUTPUT",
                                 Path(__file__).parents[3] / "test-output")) / "ironic"
_PORTS = itertools.count(15385)   # below the BMC servers' ports (16000 and up)


@pytest.fixture(scope="session")
def ironic_venv() -> Path:
    return install()


@pytest.fixture(scope="session")
def report():
    run = Report()
    yield run
    if run.steps:
        path = run.write(REPORT_DIR)
        print(f"\nIronic acceptance report: {path} (and report.html)")


@pytest.fixture
def ironic(ironic_venv, tmp_path):
    """Factory: start an Ironic with these settings; all are stopped after the test."""
    started: list[Ironic] = []

    def _start(**settings) -> Ironic:
        server = Ironic(ironic_venv, tmp_path / f"ironic-{len(started)}", next(_PORTS),
                        **settings)
        started.append(server)
        return server.start()

    yield _start
    for server in started:
        server.stop()
