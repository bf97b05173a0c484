"""The user's clouds.yaml: add or replace our two entries and leave every other one as it was."""

from __future__ import annotations

import os
from pathlib import Path

from ruamel.yaml import YAML

from quintupleo.devcloud.layout import State

MEMBER_CLOUD = "devcloud"
ADMIN_CLOUD = "devcloud-admin"


def clouds_yaml_path() -> Path:
    """Where openstacksdk looks first for the user's clouds (OS_CLIENT_CONFIG_FILE wins)."""
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        return Path(os.environ["OS_CLIENT_CONFIG_FILE"])
    return Path.home() / ".config" / "openstack" / "clouds.yaml"


def entries(state: State) -> dict[str, dict]:
    def cloud(user: str, project: str, password: str) -> dict:
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
        MEMBER_CLOUD: cloud("demo", "demo", state.member_password),
        ADMIN_CLOUD: cloud("admin", "admin", state.admin_password),
    }


def merge(state: State, path: Path | None = None) -> Path:
    """Write our entries into PATH atomically, keeping other entries and comments; mode 0600."""
    path = path or clouds_yaml_path()
    yaml = YAML()  # round-trip: comments, order and quoting of the rest survive
    document = yaml.load(path.read_text()) if path.exists() else None
    if document is None:
        document = {}
    clouds = document.setdefault("clouds", {})
    if clouds is None:
        clouds = document["clouds"] = {}
    for name, entry in entries(state).items():
        clouds[name] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".quintupleo.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        yaml.dump(document, fh)
    tmp.replace(path)
    return path
