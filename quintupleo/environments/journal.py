"""The journal of an environment (SQLite): every resource is written here *before* it is created,
so `delete` finds everything even after a crash in the middle of `create`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from quintupleo.environments.plan import Kind
from quintupleo.sqlite import open_database

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resource (
    name     TEXT PRIMARY KEY,
    kind     TEXT NOT NULL,
    cloud_id TEXT,                  -- NULL: creation started, ID not known yet
    status   TEXT NOT NULL          -- creating | created | deleting
);
"""


@dataclass(frozen=True)
class Entry:
    name: str
    kind: Kind
    cloud_id: str | None
    status: str


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_database(path, _SCHEMA, private=True)   # it holds the BMC's password

    def close(self) -> None:
        self._db.close()

    def set_meta(self, key: str, value: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def drop_meta(self, key: str) -> None:
        self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def creating(self, name: str, kind: Kind) -> None:
        self._db.execute("INSERT INTO resource (name, kind, cloud_id, status) "
                         "VALUES (?, ?, NULL, 'creating') ON CONFLICT(name) DO NOTHING",
                         (name, kind.value))

    def created(self, name: str, cloud_id: str) -> None:
        self._db.execute("UPDATE resource SET cloud_id = ?, status = 'created' WHERE name = ?",
                         (cloud_id, name))

    def deleting(self, name: str) -> None:
        self._db.execute("UPDATE resource SET status = 'deleting' WHERE name = ?", (name,))

    def forget(self, name: str) -> None:
        self._db.execute("DELETE FROM resource WHERE name = ?", (name,))

    def entries(self) -> list[Entry]:
        rows = self._db.execute("SELECT name, kind, cloud_id, status FROM resource")
        return [Entry(name, Kind(kind), cloud_id, status) for name, kind, cloud_id, status in rows]
