"""Where QuintupleO keeps its state on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir(part: str) -> Path:
    """$QUINTUPLEO_HOME/PART, else $XDG_STATE_HOME/quintupleo/PART (~/.local/state by default)."""
    if os.environ.get("QUINTUPLEO_HOME"):
        return Path(os.environ["QUINTUPLEO_HOME"]) / part
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "quintupleo" / part


def cache_dir(part: str) -> Path:
    """$XDG_CACHE_HOME/quintupleo/PART (~/.cache by default): what can be made again."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "quintupleo" / part
