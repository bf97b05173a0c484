"""Shared fixtures: the local cloud, brought up once per session (idempotent if it runs)."""

from __future__ import annotations

import pytest

from quintupleo.devcloud.layout import default_home
from quintupleo.devcloud.manager import Devcloud


@pytest.fixture(scope="session")
def devcloud_home():
    return default_home()


@pytest.fixture
def devcloud(devcloud_home) -> Devcloud:
    """The local cloud, running: `up` is a no-op beyond a readiness check when it already runs."""
    cloud = Devcloud(devcloud_home)
    cloud.up()
    return cloud
