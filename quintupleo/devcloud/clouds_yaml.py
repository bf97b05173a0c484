"""The user's clouds.yaml: add or replace our two entries and leave every other one as it was.

The entries are named for the cloud's home: `devcloud` and `devcloud-admin` for the default
home, `devcloud-NAME` and `devcloud-NAME-admin` for a home named NAME (a home named `devcloud`
goes by its parent's name). The name is chosen on the first `up` and kept in the state. An entry
that points at another devcloud which is running is never repointed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from quintupleo.devcloud.layout import Layout, State, default_home
from quintupleo.devcloud.readiness import answers_http
from quintupleo.errors import DevcloudError

MEMBER_CLOUD = "devcloud"


def admin_name(member: str) -> str:
    return f"{member}-admin"


def _load(path: Path) -> tuple[YAML, Any]:
    yaml = YAML()  # round-trip: comments, order and quoting of the rest survive
    document = yaml.load(path.read_text()) if path.exists() else None
    return yaml, document if document is not None else {}


def _owner(clouds: dict[str, Any], name: str, state: State) -> str | None:
    """The auth URL of another running cloud that entry NAME points at, if any."""
    entry = clouds.get(name) or {}
    url = (entry.get("auth") or {}).get("auth_url") if isinstance(entry, dict) else None
    if url and url != state.auth_url and answers_http(url):
        return str(url)
    return None


def claim_name(layout: Layout, state: State, path: Path | None = None) -> str:
    """This cloud's entry name: the one it has, else one for its home that no running cloud
    holds (its port base is added to tell two homes of the same name apart)."""
    path = path or clouds_yaml_path()
    _, document = _load(path)
    clouds = document.get("clouds") or {}
    if state.cloud_name:
        candidates = [state.cloud_name]
    elif layout.home.resolve() == default_home().resolve():
        candidates = [MEMBER_CLOUD]
    else:
        base = layout.home.name if layout.home.name != "devcloud" else layout.home.parent.name
        slug = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "home"
        candidates = [f"devcloud-{slug}", f"devcloud-{slug}-{state.port_base}"]
    for name in candidates:
        taken = _owner(clouds, name, state) or _owner(clouds, admin_name(name), state)
        if taken is None:
            return name
    raise DevcloudError(
        f"the clouds.yaml entry {candidates[-1]} in {path} belongs to another devcloud, "
        f"running at {taken}",
        hint="Stop that devcloud (`quintupleo devcloud down --home …`) or remove the entry.")


def clouds_yaml_path() -> Path:
    """Where openstacksdk looks first for the user's clouds (OS_CLIENT_CONFIG_FILE wins)."""
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        return Path(os.environ["OS_CLIENT_CONFIG_FILE"])
    return Path.home() / ".config" / "openstack" / "clouds.yaml"


def entries(state: State) -> dict[str, dict[str, Any]]:
    member = state.cloud_name or MEMBER_CLOUD

    def cloud(user: str, project: str, password: str) -> dict[str, Any]:
        return {
            "auth": {
                "auth_url": state.auth_url,
                "username": user,
                "password": password,
                "project_name": project,
                "user_domain_name": "Default",
                "project_domain_name": "Default",
            },
            "region_name": "RegionOne",
            "interface": "public",
            "identity_api_version": 3,
        }

    return {
        member: cloud("demo", "demo", state.member_password),
        admin_name(member): cloud("admin", "admin", state.admin_password),
    }


def merge(state: State, path: Path | None = None) -> Path:
    """Write our entries into PATH atomically, keeping other entries and comments; mode 0600."""
    path = path or clouds_yaml_path()
    yaml, document = _load(path)
    clouds = document.setdefault("clouds", {})
    if clouds is None:
        clouds = document["clouds"] = {}
    for name, entry in entries(state).items():
        if (url := _owner(clouds, name, state)) is not None:
            raise DevcloudError(f"the clouds.yaml entry {name} in {path} belongs to another "
                                f"devcloud, running at {url}: not repointed",
                                hint="Stop that devcloud, or remove the entry.")
        clouds[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".quintupleo.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.dump(document, fh)
    tmp.replace(path)
    return path
