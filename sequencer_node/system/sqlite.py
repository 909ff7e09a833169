"""One way to open the SQLite files of every process (node store, batcher records, L1, DA).

Durability rules in one place: WAL journal (refused if SQLite cannot enable it, since the
crash-safety argument of each store depends on it), ``synchronous=FULL`` (a committed
transaction has been fsynced before ``COMMIT`` returns), autocommit mode so the callers write
their own ``BEGIN IMMEDIATE`` ... ``COMMIT``, and the caller's schema applied.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class SqliteOpenError(Exception):
    """The database file cannot be opened with the durability the project needs."""


def open_durable(path: Path, schema: str) -> sqlite3.Connection:
    """Open (creating its folder and the file if needed) and apply ``schema``."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise SqliteOpenError(f"{path}: could not enable the WAL journal (got {mode})")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(schema)
    except BaseException:
        conn.close()
        raise
    return conn


__all__ = ["SqliteOpenError", "open_durable"]
