"""The one way QuintupleO opens its SQLite files (the BMC's boot store, environment journals)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from quintupleo.errors import StateError

BUSY_TIMEOUT_MS = 10_000   # another process (a second CLI, the BMC) holds the write lock


def open_database(path: Path, schema: str, *, private: bool = False,
                  fsync: bool = True) -> sqlite3.Connection:
    """Autocommit (each write is committed at once), WAL, waits for a busy lock; `schema` is
    created if missing. `private`: only its owner may read it (it holds a secret). Without
    `fsync`, a power loss may lose the last write; a killed process never does.

    A file that is not a sound SQLite database is refused with a StateError that names it; it
    is never rewritten or removed here (what it holds may still be recovered by hand)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if private:
        path.touch(mode=0o600, exist_ok=True)
        os.chmod(path, 0o600)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # quick_check reads every page: a few ms for our files, and a torn or overwritten
        # file is found here rather than as an error in the middle of a request
        problems = [row[0] for row in db.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError("; ".join(problems[:3]))
        db.execute("PRAGMA journal_mode=WAL")
        if not fsync:
            db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(schema)
    except sqlite3.OperationalError as exc:     # locked for too long, unreadable, disk full
        db.close()
        raise StateError(f"cannot open {path}: {exc}") from None
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StateError(f"{path} is not a usable SQLite database ({exc}). It was left as it "
                         "is: move it aside to start without what it held, or restore it "
                         "from a copy") from None
    return db
