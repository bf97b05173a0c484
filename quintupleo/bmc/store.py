"""Boot overrides, virtual media and platform settings (BIOS, indicator) persisted in SQLite,
so they survive a restart of the BMC service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from quintupleo.model import BootDevice, BootMode, BootOverride
from quintupleo.sqlite import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS boot_override (
    node       TEXT PRIMARY KEY,
    device     TEXT NOT NULL,
    persistent INTEGER NOT NULL,
    mode       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS virtual_media (
    node  TEXT PRIMARY KEY,
    url   TEXT NOT NULL,
    media TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS platform (
    node  TEXT PRIMARY KEY,
    state TEXT NOT NULL
)"""


class BootStore:
    """One row per node key ("backend:node-id"); writes are tiny and committed at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Writes happen in the event loop: no fsync per commit (a power loss can lose the last
        # override, a process kill cannot).
        self._db = open_database(path, _SCHEMA, fsync=False)

    def load_all(self) -> dict[str, BootOverride]:
        rows = self._db.execute("SELECT node, device, persistent, mode FROM boot_override")
        overrides = {}
        for node, device, persistent, mode in rows:
            try:
                overrides[node] = BootOverride(BootDevice(device), bool(persistent), BootMode(mode))
            except ValueError:
                continue  # a row from a newer version: ignore rather than refuse to start
        return overrides

    def save(self, node: str, override: BootOverride) -> None:
        self._db.execute(
            "INSERT INTO boot_override (node, device, persistent, mode) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(node) DO UPDATE SET device=excluded.device, "
            "persistent=excluded.persistent, mode=excluded.mode",
            (node, override.device.value, int(override.persistent), override.mode.value))

    def load_media(self) -> dict[str, tuple[str, str]]:
        """node key -> (URL, backend reference) of each inserted virtual CD."""
        rows = self._db.execute("SELECT node, url, media FROM virtual_media")
        return {node: (url, media) for node, url, media in rows}

    def save_media(self, node: str, url: str | None, media: str | None) -> None:
        if url is None or media is None:
            self._db.execute("DELETE FROM virtual_media WHERE node = ?", (node,))
        else:
            self._db.execute("INSERT OR REPLACE INTO virtual_media (node, url, media) "
                             "VALUES (?, ?, ?)", (node, url, media))

    def load_platform(self, node: str) -> dict[str, Any]:
        """A node's platform state as saved (JSON), or {} (none, or unreadable)."""
        row = self._db.execute("SELECT state FROM platform WHERE node = ?", (node,)).fetchone()
        try:
            state = json.loads(row[0]) if row else {}
        except ValueError:
            return {}
        return state if isinstance(state, dict) else {}

    def save_platform(self, node: str, state: dict[str, Any]) -> None:
        self._db.execute("INSERT OR REPLACE INTO platform (node, state) VALUES (?, ?)",
                         (node, json.dumps(state)))

    def close(self) -> None:
        self._db.close()
