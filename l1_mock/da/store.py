"""SQLite persistence of the DA mock: genesis, headers, included blobs, the pool, and the state
snapshot after the last block.

A block (its header, its blobs, the state after it, the removal of its blobs from the pool) is
written in one transaction with ``synchronous=FULL``; an accepted submission is committed before
its hash is returned. Blob bytes live in their own table so that pruning them past the retention
window frees the space while headers and blob metadata (ranges, commitments) stay.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import msgpack

from l1_mock.da.chain import DABlock, DAHeader, DAState, PayForBlob
from sequencer_node.system.sqlite import open_durable, read_meta, write_meta

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS headers (
    height INTEGER PRIMARY KEY, time INTEGER NOT NULL, parent_hash BLOB NOT NULL,
    data_root BLOB NOT NULL, share_count INTEGER NOT NULL, blob_count INTEGER NOT NULL,
    gas_used INTEGER NOT NULL, base_fee BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, tx_hash BLOB NOT NULL, pfb BLOB NOT NULL,
    start INTEGER NOT NULL, end_ INTEGER NOT NULL, commitment BLOB NOT NULL, fee BLOB NOT NULL,
    PRIMARY KEY (height, idx));
CREATE TABLE IF NOT EXISTS blob_data (
    height INTEGER NOT NULL, idx INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (height, idx));
CREATE TABLE IF NOT EXISTS pool (hash BLOB PRIMARY KEY, seq INTEGER NOT NULL, pfb BLOB NOT NULL);
"""


def _u128(n: int) -> bytes:
    return n.to_bytes(16, "big")


def encode_pfb(p: PayForBlob, with_data: bool = True) -> bytes:
    data = p.data if with_data else b""
    fields = [p.signer, p.nonce, p.namespace, data, _u128(p.max_fee_per_gas), p.signature]
    out: bytes = msgpack.packb(fields)
    return out


def decode_pfb(raw: bytes, data: bytes | None = None) -> PayForBlob:
    signer, nonce, ns, stored, fee, sig = msgpack.unpackb(raw)
    return PayForBlob(signer, nonce, ns, stored if data is None else data, int.from_bytes(fee), sig)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """An included blob as stored: ``pfb.data`` is empty once pruned (``data`` is None)."""

    index: int
    tx_hash: bytes
    pfb: PayForBlob
    start: int
    end: int
    commitment: bytes
    fee: int
    data: bytes | None


class Store:
    """One SQLite file. Not thread-safe: the server serialises access with a lock."""

    def __init__(self, path: Path) -> None:
        self.db = open_durable(path, _SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str) -> bytes | None:
        return read_meta(self.db, key)

    def set_meta(self, key: str, value: bytes) -> None:
        write_meta(self.db, key, value)

    def add_pool(self, tx_hash: bytes, seq: int, pfb: PayForBlob) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO pool VALUES (?, ?, ?)", (tx_hash, seq, encode_pfb(pfb))
        )

    def pool(self) -> list[PayForBlob]:
        rows = self.db.execute("SELECT pfb FROM pool ORDER BY seq").fetchall()
        return [decode_pfb(bytes(r[0])) for r in rows]

    def write_header(self, h: DAHeader) -> None:
        self.db.execute(
            "INSERT INTO headers VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (h.height, h.time, h.parent_hash, h.data_root, h.share_count, h.blob_count,
             h.gas_used, _u128(h.base_fee_per_gas)),
        )  # fmt: skip

    def initialize(self, genesis_json: bytes, genesis_header: DAHeader) -> None:
        """Record a new chain's genesis and its block 0, atomically."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.set_meta("genesis", genesis_json)
            self.write_header(genesis_header)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def write_block(self, block: DABlock, state: DAState) -> None:
        """Persist ``block`` and the state after it, atomically."""
        h = block.header
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.write_header(h)
            for i, b in enumerate(block.blobs):
                self.db.execute(
                    "INSERT INTO blobs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (h.height, i, b.tx_hash, encode_pfb(b.pfb, with_data=False), b.start, b.end,
                     b.commitment, _u128(b.fee)),
                )  # fmt: skip
                self.db.execute("INSERT INTO blob_data VALUES (?, ?, ?)", (h.height, i, b.pfb.data))
                self.db.execute("DELETE FROM pool WHERE hash = ?", (b.tx_hash,))
            self.set_meta("state", encode_state(state))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def headers(self) -> Iterator[DAHeader]:
        cur = self.db.execute("SELECT * FROM headers ORDER BY height")
        for height, t, parent, root, shares, blobs, gas, fee in cur:
            yield DAHeader(
                height, t, bytes(parent), bytes(root), shares, blobs, gas, int.from_bytes(fee)
            )

    def blobs(self, height: int) -> list[StoredBlob]:
        rows = self.db.execute(
            "SELECT b.idx, b.tx_hash, b.pfb, b.start, b.end_, b.commitment, b.fee, d.data "
            "FROM blobs b LEFT JOIN blob_data d ON b.height = d.height AND b.idx = d.idx "
            "WHERE b.height = ? ORDER BY b.idx",
            (height,),
        ).fetchall()
        out = []
        for idx, tx, raw, start, end, commitment, fee, data in rows:
            data = None if data is None else bytes(data)
            pfb = decode_pfb(bytes(raw), data)
            out.append(
                StoredBlob(
                    idx, bytes(tx), pfb, start, end, bytes(commitment), int.from_bytes(fee), data
                )
            )
        return out

    def prune(self, below_height: int) -> int:
        """Delete blob bytes of blocks below ``below_height``; return how many went."""
        return self.db.execute("DELETE FROM blob_data WHERE height < ?", (below_height,)).rowcount


def encode_state(state: DAState) -> bytes:
    out: bytes = msgpack.packb(
        [
            [[a, _u128(v)] for a, v in sorted(state.balances.items())],
            sorted(state.nonces.items()),
            _u128(state.base_fee),
            _u128(state.burnt),
        ]
    )
    return out


def decode_state(raw: bytes) -> DAState:
    balances, nonces, fee, burnt = msgpack.unpackb(raw)
    return DAState(
        {bytes(a): int.from_bytes(v) for a, v in balances},
        {bytes(a): n for a, n in nonces},
        int.from_bytes(fee),
        int.from_bytes(burnt),
    )
