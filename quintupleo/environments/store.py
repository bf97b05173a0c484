"""Where environments live on this machine: one journal per environment in the state dir."""

from __future__ import annotations

import os
from pathlib import Path

from quintupleo.environments.journal import Journal
from quintupleo.environments.spec import EnvironmentSpec, parse
from quintupleo.errors import ConfigError


def state_root() -> Path:
    if os.environ.get("QUINTUPLEO_HOME"):
        return Path(os.environ["QUINTUPLEO_HOME"]) / "environments"
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "quintupleo" / "environments"


def names(root: Path | None = None) -> list[str]:
    root = root or state_root()
    return sorted(p.parent.name for p in root.glob("*/journal.sqlite")) if root.exists() else []


def open_journal(name: str, root: Path | None = None, must_exist: bool = True) -> Journal:
    path = (root or state_root()) / name / "journal.sqlite"
    if must_exist and not path.exists():
        known = ", ".join(names(root)) or "none"
        raise ConfigError(f"no environment {name!r} on this machine (known: {known})")
    return Journal(path)


def stored_spec(journal: Journal) -> EnvironmentSpec:
    """The spec the environment was created from, as recorded in its journal."""
    import json
    text = journal.meta("spec")
    if text is None:
        raise ConfigError(f"{journal.path}: no spec recorded; the journal is damaged")
    return parse(json.loads(text), f"{journal.path} (recorded spec)")
