"""What a running BMC says of its nodes (its status page's summary), for `env status` and
`lab status`; and what a stopped one kept (its boot store)."""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from quintupleo.bmc.redfish.resources import BOOT_MODES, BOOT_TARGETS
from quintupleo.bmc.store import BootStore
from quintupleo.model import BootOverride, Credentials

TIMEOUT = 5.0


def served_nodes(redfish_url: str, credentials: Credentials, ca: str | bool
                 ) -> dict[str, dict[str, Any]] | None:
    """Node id -> the BMC's summary of it (status page's), or None when nothing answers."""
    try:
        context = ssl.create_default_context(cafile=ca if isinstance(ca, str) else None)
    except OSError:     # no certificate yet: no BMC has served with it
        return None
    if ca is False:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    request = urllib.request.Request(f"{redfish_url}/status/nodes",
                                     headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as answer:
            body = json.loads(answer.read())
    except (OSError, ValueError, urllib.error.URLError):
        return None
    return {node["Id"]: node for node in body.get("Nodes", [])}


def kept_overrides(state_dir: Path, backend: str) -> dict[str, BootOverride]:
    """Node id -> the boot override a BMC saved in its state dir (read while it is stopped)."""
    path = state_dir / "boot.sqlite"
    if not path.exists():
        return {}
    store = BootStore(path)
    try:
        prefix = f"{backend}:"
        return {key.removeprefix(prefix): override
                for key, override in store.load_all().items() if key.startswith(prefix)}
    finally:
        store.close()


def at_a_glance(summary: dict[str, Any]) -> tuple[str, str, str]:
    """Power (with … while an action is pending), the boot override in words, and health: a
    node as a BMC's summary shows it."""
    boot = summary["Boot"]
    return (summary["PowerState"] + (" …" if summary["Pending"] else ""),
            boot_text(boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"],
                      boot["BootSourceOverrideMode"]), summary["Health"])


def boot_text(target: str, enabled: str, mode: str) -> str:
    """A boot override in a few words, from Redfish's values."""
    if enabled == "Disabled" or target == "None":
        return "no override"
    return f"{target}, {'once' if enabled == 'Once' else 'persistent'}, {mode}"


def override_text(override: BootOverride) -> str:
    """The same few words for an override the BMC kept (Redfish's names for it)."""
    target = next(name for name, device in BOOT_TARGETS.items() if device is override.device)
    mode = next(name for name, mode in BOOT_MODES.items() if mode is override.mode)
    enabled = "Disabled" if not override.active else (
        "Continuous" if override.persistent else "Once")
    return boot_text(target, enabled, mode)
