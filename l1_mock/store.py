"""SQLite persistence of the mock L1: genesis, blocks (as the calls they included), the pool
of accepted calls, and blob sidecars until they are pruned.

State is never stored: on start the chain is rebuilt by replaying the blocks through the pure
ledger, which is deterministic. Each block is written in one SQLite transaction with
``synchronous=FULL``, and an accepted call is committed before its hash is returned, so a
kill -9 loses no accepted transaction. Blob bytes live only in the ``blobs`` table, so pruning
them frees the space while the blocks keep their versioned hashes.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgpack

from l1_mock.chain.blocks import L1Block, Sidecar, strip_blobs
from sequencer_node.system.sqlite import open_durable, read_meta, transaction, write_meta
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import L1Call

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    number INTEGER PRIMARY KEY, slot INTEGER NOT NULL, timestamp INTEGER NOT NULL,
    hash BLOB NOT NULL, calls BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS pool (hash BLOB PRIMARY KEY, seq INTEGER NOT NULL, call BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    block INTEGER NOT NULL, idx INTEGER NOT NULL, slot INTEGER NOT NULL, blob BLOB NOT NULL,
    commitment BLOB NOT NULL, proof BLOB NOT NULL, versioned_hash BLOB NOT NULL,
    tx_hash BLOB NOT NULL, PRIMARY KEY (block, idx));
CREATE INDEX IF NOT EXISTS blobs_slot ON blobs (slot);
"""


class Store:
    """One SQLite database file. Not thread-safe: the server serialises access with a lock."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str) -> bytes | None:
        return read_meta(self.db, key)

    def set_meta(self, key: str, value: bytes) -> None:
        write_meta(self.db, key, value)

    def add_pool(self, tx_hash: bytes, seq: int, call: L1Call) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pool VALUES (?, ?, ?)", (tx_hash, seq, encode(call))
        )

    def remove_pool(self, hashes: list[bytes]) -> None:
        self.db.executemany("DELETE FROM pool WHERE hash = ?", [(h,) for h in hashes])

    def pool_calls(self) -> list[L1Call]:
        rows = self.db.execute("SELECT call FROM pool ORDER BY seq").fetchall()
        return [decode(bytes(r[0]), L1Call) for r in rows]

    def write_block(self, block: L1Block) -> None:
        """Persist ``block`` (its calls without blob bytes, and its sidecars) atomically."""
        h = block.header
        calls = msgpack.packb(
            [
                [r.tx_hash, encode(strip_blobs(c))]
                for r, c in zip(block.receipts, block.calls, strict=True)
            ]
        )
        with self._tx():
            self.db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?, ?, ?)",
                (h.number, h.slot, h.timestamp, block.hash, calls),
            )
            self.db.executemany(
                "DELETE FROM pool WHERE hash = ?", [(r.tx_hash,) for r in block.receipts]
            )
            self.db.executemany(
                "INSERT INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        h.number,
                        s.index,
                        h.slot,
                        s.blob,
                        s.commitment,
                        s.proof,
                        s.versioned_hash,
                        s.tx_hash,
                    )
                    for s in block.sidecars
                ],
            )

    def blocks(self) -> Iterator[tuple[int, int, bytes, list[tuple[bytes, L1Call]]]]:
        """Stored blocks in order: (slot, timestamp, hash, [(tx hash, call)])."""
        cur = self.db.execute("SELECT slot, timestamp, hash, calls FROM blocks ORDER BY number")
        for slot, ts, h, raw in cur:
            items = [(bytes(th), decode(bytes(c), L1Call)) for th, c in msgpack.unpackb(raw)]
            yield slot, ts, bytes(h), items

    def sidecars(self, block: int) -> list[Sidecar]:
        rows = self.db.execute(
            "SELECT idx, blob, commitment, proof, versioned_hash, tx_hash FROM blobs "
            "WHERE block = ? ORDER BY idx",
            (block,),
        ).fetchall()
        return [
            Sidecar(r[0], bytes(r[1]), bytes(r[2]), bytes(r[3]), bytes(r[4]), bytes(r[5]))
            for r in rows
        ]

    def prune_blobs(self, before_slot: int) -> int:
        """Delete blob bytes of blocks before ``before_slot``; return how many rows went."""
        return self.db.execute("DELETE FROM blobs WHERE slot < ?", (before_slot,)).rowcount

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.db)
