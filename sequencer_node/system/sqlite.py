"""One way to open, write and tag the SQLite files of every process (node store, batcher
records, L1, DA).

Durability rules in one place: WAL journal (refused if SQLite cannot enable it, since the
crash-safety argument of each store depends on it), ``synchronous=FULL`` (a committed
transaction has been fsynced before ``COMMIT`` returns), autocommit mode so the callers write
their own transactions with :func:`transaction` (``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back
on any exception), and the caller's schema applied. :func:`read_meta` / :func:`write_meta` keep
small byte values in a ``meta (key TEXT PRIMARY KEY, value BLOB)`` table.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
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


@contextlib.contextmanager
def transaction(
    conn: sqlite3.Connection, lock: threading.Lock | None = None
) -> Iterator[sqlite3.Connection]:
    """One write transaction: all of the block's statements or none (ROLLBACK on any
    exception, cancellation included); under ``lock`` when the connection is shared by
    threads."""
    with lock if lock is not None else contextlib.nullcontext():
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


def read_meta(conn: sqlite3.Connection, key: str) -> bytes | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else bytes(row[0])


def write_meta(conn: sqlite3.Connection, key: str, value: bytes) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))


__all__ = ["SqliteOpenError", "open_durable", "read_meta", "transaction", "write_meta"]
