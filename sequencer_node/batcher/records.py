"""All of a batch's durable state, in one SQLite file the batcher owns (``batcher.sqlite3``).

One row per batch number (:class:`BatchRecord`): the certified header, its certificate and
compression algorithm, its :class:`BatchState` and the hash of the L1 call that carries it.
The header this node approved for each batch number not yet in the inbox (:class:`Approval`,
its lock: it approves no other header for that number while this one can still land), and
the headers abandoned because the L1 inbox refuses them for good (docs/batcher.md).
Beside it, what a restarted poster needs to resend *the same* L1 call (the nonce and fee of
the call in flight, :class:`Inflight`; the blob bytes are not stored: they are rebuilt,
byte-identical, from the certified chain), and the cost of every accepted batch
(:class:`BatchCost`; an external-DA batch's DA fee in a table of its own, ``da_costs``, so a
records file of the previous release opens unchanged).

Durability: WAL, ``synchronous=FULL``, each write committed before the method returns, so a
state recorded here survives a crash at any later point.
"""

from __future__ import annotations

import contextlib
import enum
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sequencer_node.system.sqlite import open_durable, transaction
from sequencer_node.wire.codec import decode, encode, message_id
from sequencer_node.wire.messages import BatchCertificate, BatchHeader

DB_FILENAME = "batcher.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_number INTEGER PRIMARY KEY, header BLOB NOT NULL, certificate BLOB,
    algorithm INTEGER NOT NULL, state INTEGER NOT NULL, l1_tx_hash BLOB);
CREATE TABLE IF NOT EXISTS inflight (
    batch_number INTEGER PRIMARY KEY, nonce INTEGER NOT NULL, max_fee TEXT NOT NULL,
    tx_hash BLOB NOT NULL, attempts INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS approvals (
    batch_number INTEGER PRIMARY KEY, header BLOB NOT NULL, algorithm INTEGER NOT NULL,
    approved_at REAL NOT NULL, payload BLOB);
CREATE TABLE IF NOT EXISTS abandoned (
    header_id BLOB PRIMARY KEY, batch_number INTEGER NOT NULL, reason TEXT NOT NULL,
    abandoned_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS costs (
    batch_number INTEGER PRIMARY KEY, first_height INTEGER NOT NULL, last_height INTEGER NOT NULL,
    l1_block INTEGER NOT NULL, l1_tx BLOB NOT NULL, da TEXT NOT NULL, blobs INTEGER NOT NULL,
    posted_bytes INTEGER NOT NULL, payload_bytes INTEGER NOT NULL, txs INTEGER NOT NULL,
    fee_paid TEXT NOT NULL, blob_fee TEXT NOT NULL, by_us INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS da_costs (
    batch_number INTEGER PRIMARY KEY, da_fee TEXT NOT NULL, da_fee_wei TEXT NOT NULL);
"""


class RecordsError(Exception):
    """The records refused a change that would make a restart post twice or lose a batch."""


class BatchState(enum.IntEnum):
    """Life of a batch; states only move forward, so a restart never posts twice."""

    SIGNED = 2  # certified: header and certificate recorded
    POSTED = 3  # the L1 call is built and its hash recorded, BEFORE it is sent
    ACCEPTED = 4  # the inbox holds this batch number (whoever posted it)


@dataclass(frozen=True, slots=True)
class BatchRecord:
    batch_number: int
    header: BatchHeader
    certificate: BatchCertificate | None  # None for a batch only seen in the inbox
    algorithm: int
    state: BatchState
    l1_tx_hash: bytes | None


@dataclass(frozen=True, slots=True)
class Approval:
    """The header this node signed an approval of for its batch number (its lock)."""

    header: BatchHeader
    algorithm: int
    approved_at: float
    #: The compressed payload approved (None in records written before it was kept): a
    #: restarted node proposes or posts these bytes instead of compressing again, which with
    #: another compressor build than the first proposer's could differ.
    payload: bytes | None = None


@dataclass(frozen=True, slots=True)
class Abandoned:
    batch_number: int
    header_id: bytes
    reason: str
    abandoned_at: float


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
    fee_paid: int  # wei: execution gas + blob gas (what the L1 charged)
    blob_fee: int  # wei: the blob gas part
    by_us: bool
    #: External DA: what the DA layer charged for the batch's blob (its own fee units, from
    #: the DA chain's receipt) and that in wei at the L1's rate; None / 0 for other batches.
    da_fee: int | None = None
    da_fee_wei: int = 0

    @property
    def total_cost(self) -> int:
        """Wei: what posting the batch cost, L1 and DA layer (what the L1 fee vault pays)."""
        return self.fee_paid + self.da_fee_wei

    @property
    def fee_per_tx(self) -> float:
        return self.total_cost / self.txs if self.txs else float(self.total_cost)

    @property
    def bytes_per_tx(self) -> float:
        return self.posted_bytes / self.txs if self.txs else float(self.posted_bytes)


class BatchRecords:
    """Open with :meth:`open`; every write is durable when the method returns."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, data_dir: Path) -> BatchRecords:
        conn = open_durable(data_dir / DB_FILENAME, _SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(approvals)")}
        if "payload" not in columns:  # records written before approvals kept the payload
            conn.execute("ALTER TABLE approvals ADD COLUMN payload BLOB")
        return cls(conn)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock)

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --- batches -----------------------------------------------------------------------------

    def record_certified(self, cert: BatchCertificate, algorithm: int) -> BatchRecord:
        """Record a certified batch (SIGNED) with its certificate, in one transaction.

        Returns the existing record if this header is already known, so a restarted batcher
        picks up where it was; another header for the same batch number raises.
        """
        h = cert.header
        with self._tx() as c:
            row = c.execute(
                "SELECT header FROM batches WHERE batch_number = ?", (h.batch_number,)
            ).fetchone()
            if row is None:
                c.execute(
                    "INSERT INTO batches VALUES (?, ?, ?, ?, ?, NULL)",
                    (h.batch_number, encode(h), encode(cert), algorithm, int(BatchState.SIGNED)),
                )
            elif bytes(row[0]) != encode(h):
                raise RecordsError(
                    f"batch {h.batch_number} is already recorded with another header"
                )
        return self._must_get(h.batch_number)

    def record_accepted(self, header: BatchHeader, l1_tx_hash: bytes) -> BatchRecord:
        """The inbox holds ``header`` (posted by anyone): ACCEPTED with the winning call.

        The inbox is the truth: if another header for this number was recorded here (another
        proposal won), the inbox's replaces it.
        """
        n = header.batch_number
        with self._tx() as c:
            row = c.execute(
                "SELECT header, state FROM batches WHERE batch_number = ?", (n,)
            ).fetchone()
            if row is None or bytes(row[0]) != encode(header):
                c.execute(
                    "INSERT OR REPLACE INTO batches VALUES (?, ?, NULL, 0, ?, ?)",
                    (n, encode(header), int(BatchState.ACCEPTED), l1_tx_hash),
                )
            elif row[1] != int(BatchState.ACCEPTED):
                c.execute(
                    "UPDATE batches SET state = ?, l1_tx_hash = ? WHERE batch_number = ?",
                    (int(BatchState.ACCEPTED), l1_tx_hash, n),
                )
        return self._must_get(n)

    def mark_posted(self, batch_number: int, l1_tx_hash: bytes) -> None:
        """SIGNED (or POSTED with an earlier call) -> POSTED with ``l1_tx_hash``."""
        with self._tx() as c:
            row = c.execute(
                "SELECT state FROM batches WHERE batch_number = ?", (batch_number,)
            ).fetchone()
            if row is None:
                raise RecordsError(f"batch {batch_number} was never recorded")
            if BatchState(row[0]) > BatchState.POSTED:
                raise RecordsError(f"batch {batch_number} is ACCEPTED; it cannot be posted")
            c.execute(
                "UPDATE batches SET state = ?, l1_tx_hash = ? WHERE batch_number = ?",
                (int(BatchState.POSTED), l1_tx_hash, batch_number),
            )

    def get(self, batch_number: int) -> BatchRecord | None:
        rows = self._rows("SELECT * FROM batches WHERE batch_number = ?", (batch_number,))
        return _record(rows[0]) if rows else None

    def _must_get(self, batch_number: int) -> BatchRecord:
        rec = self.get(batch_number)
        assert rec is not None
        return rec

    def batches(self, state: BatchState | None = None, limit: int = 1000) -> list[BatchRecord]:
        """The latest ``limit`` batches (or those in ``state``), by batch number."""
        where, args = ("", ()) if state is None else (" WHERE state = ?", (int(state),))
        rows = self._rows(
            f"SELECT * FROM (SELECT * FROM batches{where} ORDER BY batch_number DESC LIMIT ?)"
            " ORDER BY batch_number",
            (*args, limit),
        )
        return [_record(r) for r in rows]

    # --- approvals (one header per batch number) and abandoned headers ---------------------

    def record_approval(
        self, header: BatchHeader, algorithm: int, at: float, payload: bytes | None = None
    ) -> None:
        """Durably note that this node approves ``header`` and its ``payload`` (before the
        approval leaves)."""
        with self._tx() as c:
            c.execute(
                "INSERT OR REPLACE INTO approvals (batch_number, header, algorithm, approved_at,"
                " payload) VALUES (?, ?, ?, ?, ?)",
                (header.batch_number, encode(header), algorithm, at, payload),
            )

    def approval(self, batch_number: int) -> Approval | None:
        rows = self._rows(
            "SELECT header, algorithm, approved_at, payload FROM approvals WHERE batch_number = ?",
            (batch_number,),
        )
        if not rows:
            return None
        header, algorithm, at, payload = rows[0]
        assert isinstance(header, bytes)
        assert isinstance(algorithm, int)
        assert payload is None or isinstance(payload, bytes)
        return Approval(decode(header, BatchHeader), algorithm, float(str(at)), payload)

    def forget_below(self, batch_number: int) -> None:
        """Drop approvals of batch numbers the inbox already holds."""
        with self._tx() as c:
            c.execute("DELETE FROM approvals WHERE batch_number < ?", (batch_number,))

    def abandon(self, header: BatchHeader, reason: str, at: float) -> None:
        """Give ``header`` up for good, in one transaction: it is recorded as abandoned, and
        dropped as this node's approval and (unless the inbox accepted it) as its certified
        batch, so it is never posted again, not after a restart either."""
        enc, hid = encode(header), message_id(header)
        n = header.batch_number
        with self._tx() as c:
            c.execute("INSERT OR IGNORE INTO abandoned VALUES (?, ?, ?, ?)", (hid, n, reason, at))
            c.execute("DELETE FROM approvals WHERE batch_number = ? AND header = ?", (n, enc))
            c.execute(
                "DELETE FROM batches WHERE batch_number = ? AND header = ? AND state < ?",
                (n, enc, int(BatchState.ACCEPTED)),
            )

    def is_abandoned(self, header: BatchHeader) -> bool:
        rows = self._rows("SELECT 1 FROM abandoned WHERE header_id = ?", (message_id(header),))
        return bool(rows)

    def abandoned(self, limit: int = 100) -> list[Abandoned]:
        """The latest ``limit`` abandoned headers, oldest first."""
        rows = self._rows(
            "SELECT * FROM (SELECT batch_number, header_id, reason, abandoned_at FROM abandoned"
            " ORDER BY abandoned_at DESC LIMIT ?) ORDER BY abandoned_at",
            (limit,),
        )
        return [
            Abandoned(int(str(n)), bytes(h) if isinstance(h, bytes) else b"", str(r), float(str(t)))
            for n, h, r, t in rows
        ]

    def abandoned_count(self) -> int:
        rows = self._rows("SELECT COUNT(*) FROM abandoned")
        return int(str(rows[0][0]))

    # --- calls in flight ---------------------------------------------------------------------

    def save_inflight(self, row: Inflight) -> None:
        with self._tx() as c:
            c.execute(
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
        row = (
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
        )
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO costs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row
            )
            if c.da_fee is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO da_costs VALUES (?, ?, ?)",
                    (c.batch_number, str(c.da_fee), str(c.da_fee_wei)),
                )

    def costs(self, limit: int = 1000) -> list[BatchCost]:
        """The latest ``limit`` batch costs, oldest first."""
        rows = self._rows(
            "SELECT c.*, d.da_fee, d.da_fee_wei FROM (SELECT * FROM costs ORDER BY "
            "batch_number DESC LIMIT ?) AS c LEFT JOIN da_costs AS d USING (batch_number) "
            "ORDER BY c.batch_number",
            (limit,),
        )
        return [_cost(r) for r in rows]


def _record(row: tuple[object, ...]) -> BatchRecord:
    number, header, cert, algorithm, state, tx = row
    assert isinstance(number, int)
    assert isinstance(header, bytes)
    assert isinstance(algorithm, int)
    assert isinstance(state, int)
    return BatchRecord(
        number,
        decode(header, BatchHeader),
        decode(cert, BatchCertificate) if isinstance(cert, bytes) else None,
        algorithm,
        BatchState(state),
        tx if isinstance(tx, bytes) else None,
    )


def _cost(r: tuple[object, ...]) -> BatchCost:
    n, fh, lh, blk, tx, da, blobs, pb, plb, txs, fee, bfee, us, da_fee, da_wei = r
    return BatchCost(
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
        None if da_fee is None else int(str(da_fee)),
        0 if da_wei is None else int(str(da_wei)),
    )


__all__ = [
    "Abandoned",
    "Approval",
    "BatchCost",
    "BatchRecord",
    "BatchRecords",
    "BatchState",
    "Inflight",
    "RecordsError",
]
