"""Nova servers as bare-metal nodes.

The driver (and openstacksdk, slow to import) loads on first use: settings and specs read the
boot strategies' names from `boot` without it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["OpenStackBackend"]


def __getattr__(name: str) -> Any:
    if name == "OpenStackBackend":
        from quintupleo.backends.openstack.driver import OpenStackBackend
        return OpenStackBackend
    raise AttributeError(name)
