"""The one way QuintupleO opens its SQLite files (the BMC's boot store, environment journals)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000   # another process (a second CLI, the BMC) holds the write lock


def open_database(path: Path, schema: str, *, private: bool = False,
                  fsync: bool = True) -> sqlite3.Connection:
    """Autocommit (each write is committed at once), WAL, waits for a busy lock; `schema` is
    created if missing. `private`: only its owner may read it (it holds a secret). Without
    `fsync`, a power loss may lose the last write; a killed process never does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    if not fsync:
        db.execute("PRAGMA synchronous=NORMAL")
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.executescript(schema)
    return db
