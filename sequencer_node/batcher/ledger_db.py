"""The batcher's own durable records, next to the node's store (``batcher.sqlite3``).

The node's :class:`~sequencer_node.shell.store.Store` holds each batch's header and
:class:`~sequencer_node.shell.store.BatchState` (BUILT -> SIGNED -> POSTED -> ACCEPTED).
What a restarted poster also needs to resend *the same* L1 call is kept here: the batch
certificate, the compression algorithm, and the nonce and fee of the call in flight (the
blob bytes are not stored: they are rebuilt, byte-identical, from the certified chain). The
cost of every accepted batch is kept here too. Same durability as the store: WAL,
``synchronous=FULL``, each write committed before the method returns.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import BatchCertificate

DB_FILENAME = "batcher.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS certified (
    batch_number INTEGER PRIMARY KEY, certificate BLOB NOT NULL, algorithm INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS inflight (
    batch_number INTEGER PRIMARY KEY, nonce INTEGER NOT NULL, max_fee TEXT NOT NULL,
    tx_hash BLOB NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS costs (
    batch_number INTEGER PRIMARY KEY, first_height INTEGER NOT NULL, last_height INTEGER NOT NULL,
    l1_block INTEGER NOT NULL, l1_tx BLOB NOT NULL, da TEXT NOT NULL, blobs INTEGER NOT NULL,
    posted_bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, txs INTEGER NOT NULL,
    fee_paid TEXT NOT NULL, blob_fee TEXT NOT NULL, by_us INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Inflight:
    batch_number: int
    nonce: int
    max_fee: int
    tx_hash: bytes
    attempts: int


@dataclass(frozen=True, slots=True)
class BatchCost:
    """What one accepted batch cost on L1 and carried."""

    batch_number: int
    first_height: int
    last_height: int
    l1_block: int
    l1_tx: bytes
    da: str
    blobs: int
    posted_bytes: int
    payload_bytes: int
    txs: int
    fee_paid: int  # wei: execution gas + blob gas
    blob_fee: int  # wei: the blob gas part
    by_us: bool

    @property
    def fee_per_tx(self) -> float:
        return self.fee_paid / self.txs if self.txs else float(self.fee_paid)

    @property
    def bytes_per_tx(self) -> float:
        return self.posted_bytes / self.txs if self.txs else float(self.posted_bytes)


class BatcherDB:
    """Open with :meth:`open` (or ``in_memory`` for tests); every write is durable."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> BatcherDB:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        conn = sqlite3.connect(
            data_dir / DB_FILENAME, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.executescript(_SCHEMA)
        return cls(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(sql, args)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --- certificates ------------------------------------------------------------------------

    def save_certificate(self, cert: BatchCertificate, algorithm: int) -> None:
        self._write(
            "INSERT OR REPLACE INTO certified VALUES (?, ?, ?)",
            (cert.header.batch_number, encode(cert), algorithm),
        )

    def certificate(self, batch_number: int) -> tuple[BatchCertificate, int] | None:
        rows = self._rows(
            "SELECT certificate, algorithm FROM certified WHERE batch_number = ?", (batch_number,)
        )
        if not rows:
            return None
        data, algorithm = rows[0]
        assert isinstance(data, bytes)
        assert isinstance(algorithm, int)
        return decode(data, BatchCertificate), algorithm

    # --- calls in flight ---------------------------------------------------------------------

    def save_inflight(self, row: Inflight) -> None:
        self._write(
            "INSERT OR REPLACE INTO inflight VALUES (?, ?, ?, ?, ?)",
            (row.batch_number, row.nonce, str(row.max_fee), row.tx_hash, row.attempts),
        )

    def inflight(self, batch_number: int) -> Inflight | None:
        rows = self._rows("SELECT * FROM inflight WHERE batch_number = ?", (batch_number,))
        if not rows:
            return None
        n, nonce, fee, h, attempts = rows[0]
        assert isinstance(n, int)
        assert isinstance(nonce, int)
        assert isinstance(h, bytes)
        assert isinstance(attempts, int)
        return Inflight(n, nonce, int(str(fee)), h, attempts)

    # --- costs -------------------------------------------------------------------------------

    def save_cost(self, c: BatchCost) -> None:
        self._write(
            "INSERT OR REPLACE INTO costs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                c.batch_number,
                c.first_height,
                c.last_height,
                c.l1_block,
                c.l1_tx,
                c.da,
                c.blobs,
                c.posted_bytes,
                c.payload_bytes,
                c.txs,
                str(c.fee_paid),
                str(c.blob_fee),
                int(c.by_us),
            ),
        )

    def costs(self, limit: int = 1000) -> list[BatchCost]:
        """The latest ``limit`` batch costs, oldest first."""
        rows = self._rows(
            "SELECT * FROM (SELECT * FROM costs ORDER BY batch_number DESC LIMIT ?) "
            "ORDER BY batch_number",
            (limit,),
        )
        out = []
        for r in rows:
            n, fh, lh, blk, tx, da, blobs, pb, plb, txs, fee, bfee, us = r
            out.append(
                BatchCost(
                    int(str(n)),
                    int(str(fh)),
                    int(str(lh)),
                    int(str(blk)),
                    bytes(tx) if isinstance(tx, bytes) else b"",
                    str(da),
                    int(str(blobs)),
                    int(str(pb)),
                    int(str(plb)),
                    int(str(txs)),
                    int(str(fee)),
                    int(str(bfee)),
                    bool(us),
                )
            )
        return out


__all__ = ["BatchCost", "BatcherDB", "Inflight"]
