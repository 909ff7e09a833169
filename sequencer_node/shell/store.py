"""SQLite persistence in the node's data directory: certified blocks, snapshots of the committed
state (so a restart replays only the blocks above the newest one), the never-sign-twice
watermark, the blocks above the committed chain that the node voted for or
saw certified (so a restart can rebuild on them), and the journal of transactions its RPC
acknowledged that are not committed yet (so a crash loses none of them). A batch's state is the
batcher's, in its own file.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so every committed
transaction has been fsynced to the WAL before ``COMMIT`` returns. :meth:`Store.write_watermark`
commits before it returns, and the node lets no signature leave the process before that.
A crash (kill -9, power cut) in the middle of a transaction leaves the previous committed state.

Blocking: every method blocks on disk, so the node calls the writes through
``trio.to_thread.run_sync`` (the watermark too: its fsync takes 2-15 ms under load, an
event-loop stall; the core-owning task waits for it before it releases a signature). The
connection is shared across threads (``check_same_thread=False``) behind a lock, so calls are
serialised.

Snapshots: :meth:`put_blocks` takes an optional snapshot (the node's encoded
:class:`~sequencer_node.core.api.ChainSnapshot` of the last block it stores) and writes it in
the same transaction as that block, keeping the newest :data:`SNAPSHOTS_KEPT`; a crash leaves
either both or neither. The store does not judge them: the node checks one on load and falls
back to an older one, or to a full replay.

Acknowledged transactions: the node journals a client's transaction (:meth:`journal_txs`)
before its RPC answers "pending", and :meth:`put_blocks` drops the ones a committed block
includes in the same transaction that stores the block. After a crash the node submits the
journal to its core again, in acknowledgement order. The journal keeps at most
:data:`MAX_JOURNALED_TXS` (the newest): a transaction the mempool dropped (pool full, replaced)
was never promised more than the mempool promises.

Ownership: the ``meta`` table records the chain id and the node's identity key. Opening a data
directory made for another chain or key raises :class:`DataDirMismatch` instead of mixing
histories (and watermarks) of two identities.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from sequencer_node.system.sqlite import SqliteOpenError, open_durable, transaction
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.messages import Block, CertifiedBlock, QuorumCertificate, block_hash

DB_FILENAME = "node.sqlite3"
#: 2: blocks, catch-up answers and the watermark record in wire version 2 (epoch proofs,
#: Ethereum transactions), and the journal, L1 fee and stake snapshot tables. A directory of
#: version 1 is refused at open with the way out, not deep in a decode.
SCHEMA_VERSION = 2
#: Snapshots kept: the newest, and one to fall back on if the newest is unreadable.
SNAPSHOTS_KEPT = 2
#: L1 stake snapshots kept for a restart (as many as the core keeps).
STAKE_SNAPSHOTS_KEPT = 256
#: Acknowledged, uncommitted transactions kept in the journal (the newest); a bound, not a
#: target: the mempool holds far fewer.
MAX_JOURNALED_TXS = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (height INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS watermark (
    id INTEGER PRIMARY KEY CHECK (id = 1), record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS uncommitted (
    hash BLOB PRIMARY KEY, height INTEGER NOT NULL, block BLOB NOT NULL, qc BLOB);
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, hash BLOB NOT NULL UNIQUE, tx BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS l1_fees (number INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS stake_snapshots (l1_epoch INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""


class StoreError(Exception):
    """The store refused an operation that would corrupt the node's history."""


class DataDirMismatch(StoreError):
    """The data directory belongs to another chain or identity."""


class Store:
    """The node's SQLite database. Open with :meth:`open`, close with :meth:`close`."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path

    @classmethod
    def open(cls, data_dir: Path, *, chain_id: int, identity: bytes) -> Store:
        """Open (or create) the store in ``data_dir`` for ``chain_id`` and ``identity``.

        Raises:
            DataDirMismatch: the directory was created for another chain id or key.
            StoreError: the database is from a newer schema.
        """
        data_dir = Path(data_dir)
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = data_dir / DB_FILENAME
        try:
            conn = open_durable(path, _SCHEMA)
        except SqliteOpenError as exc:
            raise StoreError(str(exc)) from exc
        try:
            store = cls(conn, path)
            store._check_meta(chain_id, identity)
        except BaseException:
            conn.close()
            raise
        return store

    def _check_meta(self, chain_id: int, identity: bytes) -> None:
        want = {
            "schema_version": str(SCHEMA_VERSION),
            "chain_id": str(chain_id),
            "identity": identity.hex(),
        }
        with self._tx() as c:
            have = dict(c.execute("SELECT key, value FROM meta").fetchall())
            if not have:
                c.executemany("INSERT INTO meta VALUES (?, ?)", sorted(want.items()))
                return
        if have.get("schema_version") != want["schema_version"]:
            raise StoreError(
                f"{self.path}: schema version {have.get('schema_version')} is not "
                f"{SCHEMA_VERSION}; use a matching node version or a fresh --data-dir"
            )
        for key in ("chain_id", "identity"):
            if have.get(key) != want[key]:
                raise DataDirMismatch(
                    f"{self.path} belongs to {key} {have.get(key)}, but this node runs with "
                    f"{key} {want[key]}; point --data-dir at this node's own directory "
                    "(never share or copy a data directory between keys or chains)"
                )

    def _tx(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self._conn, self._lock)

    def _query(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- watermark -------------------------------------------------------------------------

    def write_watermark(self, record: bytes, blocks: Sequence[Block] = ()) -> None:
        """Replace the signed-watermark record and keep ``blocks`` (those the signatures it
        allows vouch for) in the same transaction; durable (committed, fsynced) on return."""
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO uncommitted (hash, height, block) VALUES (?, ?, ?)",
                [(block_hash(b.header), b.header.height, encode(b)) for b in blocks],
            )
            c.execute("INSERT OR REPLACE INTO watermark (id, record) VALUES (1, ?)", (record,))

    def read_watermark(self) -> bytes | None:
        rows = self._query("SELECT record FROM watermark WHERE id = 1")
        return _blob(rows[0][0]) if rows else None

    # --- certified blocks ------------------------------------------------------------------

    def put_blocks(
        self,
        blocks: Sequence[CertifiedBlock],
        certified: Sequence[CertifiedBlock] = (),
        snapshot: tuple[int, bytes] | None = None,
        included: Sequence[bytes] = (),
    ) -> None:
        """Store committed blocks, ``certified`` ones above them (see :meth:`put_certified`)
        and ``snapshot`` ``(height, data)`` of a stored block (see :meth:`put_snapshot`), and
        drop the hashes ``included`` (transactions of the committed blocks) from the journal,
        in one transaction (all or none).

        Storing a block again is a no-op. Raises StoreError if a *different* block is already
        stored at that height: two certified blocks at one height break BFT safety, so the node
        must stop rather than paper over it.
        """
        rows = [(cb.block.header.height, block_hash(cb.block.header), encode(cb)) for cb in blocks]
        with self._tx() as c:
            _put_certified(c, certified)
            for height, h, data in rows:
                old = c.execute("SELECT hash FROM blocks WHERE height = ?", (height,)).fetchone()
                if old is None:
                    c.execute("INSERT INTO blocks VALUES (?, ?, ?)", (height, h, data))
                elif bytes(old[0]) != h:
                    raise StoreError(
                        f"conflicting certified block at height {height}: stored "
                        f"{bytes(old[0]).hex()}, new {h.hex()}"
                    )
            if rows:  # what is committed no longer needs its uncommitted copy
                top = max(height for height, _, _ in rows)
                c.execute("DELETE FROM uncommitted WHERE height <= ?", (top,))
            if snapshot is not None:
                _put_snapshot(c, *snapshot, keep=SNAPSHOTS_KEPT)
            if included:
                c.executemany("DELETE FROM journal WHERE hash = ?", [(h,) for h in included])

    # --- L1 fee data (chains with a fee model) ----------------------------------------------

    def put_l1_fees(self, rows: Sequence[tuple[int, bytes]], *, keep_from: int = 0) -> None:
        """Store L1 blocks' fee data ``(number, encoded)`` as fed to the core, and drop what
        is below ``keep_from`` (consumed by the committed chain): a restart replays with it."""
        with self._tx() as c:
            c.executemany("INSERT OR REPLACE INTO l1_fees VALUES (?, ?)", rows)
            c.execute("DELETE FROM l1_fees WHERE number < ?", (keep_from,))

    def l1_fees(self) -> list[bytes]:
        """Every stored L1 fee record, by L1 block number."""
        return [_blob(r[0]) for r in self._query("SELECT data FROM l1_fees ORDER BY number")]

    # --- L1 stake snapshots -------------------------------------------------------------------

    def put_stake_snapshot(
        self, l1_epoch: int, data: bytes, *, keep: int = STAKE_SNAPSHOTS_KEPT
    ) -> None:
        """Keep a finalized L1 stake snapshot as fed to the core (the ``keep`` newest): after a
        restart the core needs the tables of the epochs it is in, and the L1 may have pruned
        those snapshots, or the watcher's first look back may not reach them."""
        with self._tx() as c:
            c.execute("INSERT OR REPLACE INTO stake_snapshots VALUES (?, ?)", (l1_epoch, data))
            c.execute(
                "DELETE FROM stake_snapshots WHERE l1_epoch NOT IN "
                "(SELECT l1_epoch FROM stake_snapshots ORDER BY l1_epoch DESC LIMIT ?)",
                (keep,),
            )

    def stake_snapshots(self) -> list[bytes]:
        """The stored stake snapshots, oldest first."""
        rows = self._query("SELECT data FROM stake_snapshots ORDER BY l1_epoch")
        return [_blob(r[0]) for r in rows]

    # --- acknowledged transactions -----------------------------------------------------------

    def journal_txs(
        self, txs: Sequence[tuple[bytes, bytes]], *, keep: int = MAX_JOURNALED_TXS
    ) -> None:
        """Journal ``(hash, encoded transaction)`` pairs, in order; durable on return. A hash
        already journaled keeps its place. Only the ``keep`` newest entries are kept."""
        with self._tx() as c:
            c.executemany("INSERT OR IGNORE INTO journal (hash, tx) VALUES (?, ?)", txs)
            c.execute(
                "DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?", (keep,)
            )

    def journaled_txs(self) -> list[tuple[bytes, bytes]]:
        """The journal's ``(hash, encoded transaction)`` pairs, oldest first."""
        rows = self._query("SELECT hash, tx FROM journal ORDER BY seq")
        return [(_blob(h), _blob(tx)) for h, tx in rows]

    def drop_journaled(self, hashes: Sequence[bytes]) -> None:
        """Forget journaled transactions that can never be included (e.g. a stale nonce)."""
        with self._tx() as c:
            c.executemany("DELETE FROM journal WHERE hash = ?", [(h,) for h in hashes])

    # --- blocks above the committed chain ----------------------------------------------------

    def put_certified(self, blocks: Sequence[CertifiedBlock]) -> None:
        """Keep blocks certified above the committed chain, with their QC (until committed)."""
        with self._tx() as c:
            _put_certified(c, blocks)

    def uncommitted(self) -> list[tuple[Block, QuorumCertificate | None]]:
        """Blocks this node voted for or saw certified and has not stored as committed yet,
        by height, each with its QC if known."""
        rows = self._query("SELECT block, qc FROM uncommitted ORDER BY height, hash")
        return [
            (decode(_blob(b), Block), None if qc is None else decode(_blob(qc), QuorumCertificate))
            for b, qc in rows
        ]

    def get_block(self, height: int) -> CertifiedBlock | None:
        rows = self._query("SELECT data FROM blocks WHERE height = ?", (height,))
        return decode(_blob(rows[0][0]), CertifiedBlock) if rows else None

    def block_hash(self, height: int) -> bytes | None:
        """The hash of the stored block at ``height`` (from its column: nothing is decoded)."""
        rows = self._query("SELECT hash FROM blocks WHERE height = ?", (height,))
        return _blob(rows[0][0]) if rows else None

    def get_blocks(
        self, from_height: int, to_height: int, *, max_bytes: int = 4 * 1024 * 1024
    ) -> list[CertifiedBlock]:
        """Stored blocks in ``[from_height, to_height]``, in order, stopping at a gap or when
        ``max_bytes`` of encoded blocks is reached (at least one block if any)."""
        rows = self._query(
            "SELECT height, data FROM blocks WHERE height BETWEEN ? AND ? ORDER BY height",
            (from_height, to_height),
        )
        out: list[CertifiedBlock] = []
        total, expect = 0, from_height
        for height, data in rows:
            assert isinstance(data, bytes)
            if height != expect or (out and total + len(data) > max_bytes):
                break
            out.append(decode(data, CertifiedBlock))
            total += len(data)
            expect += 1
        return out

    def highest_height(self) -> int | None:
        rows = self._query("SELECT MAX(height) FROM blocks")
        value = rows[0][0]
        return value if isinstance(value, int) else None

    # --- ledger snapshots ------------------------------------------------------------------

    def put_snapshot(self, height: int, data: bytes, *, keep: int = SNAPSHOTS_KEPT) -> None:
        """Store a snapshot of the block at ``height`` and keep only the ``keep`` newest."""
        with self._tx() as c:
            _put_snapshot(c, height, data, keep=keep)

    def snapshot_heights(self) -> list[int]:
        """Heights of the stored snapshots, newest first."""
        rows = self._query("SELECT height FROM snapshots ORDER BY height DESC")
        return [h for (h,) in rows if isinstance(h, int)]

    def get_snapshot(self, height: int) -> bytes | None:
        rows = self._query("SELECT data FROM snapshots WHERE height = ?", (height,))
        return _blob(rows[0][0]) if rows else None

    def latest_snapshot(self) -> tuple[int, bytes] | None:
        rows = self._query("SELECT height, data FROM snapshots ORDER BY height DESC LIMIT 1")
        if not rows:
            return None
        height, data = rows[0]
        assert isinstance(height, int)
        return height, _blob(data)


def _put_snapshot(c: sqlite3.Connection, height: int, data: bytes, *, keep: int) -> None:
    c.execute("INSERT OR REPLACE INTO snapshots VALUES (?, ?)", (height, data))
    c.execute(
        "DELETE FROM snapshots WHERE height NOT IN "
        "(SELECT height FROM snapshots ORDER BY height DESC LIMIT ?)",
        (keep,),
    )


def _put_certified(c: sqlite3.Connection, blocks: Sequence[CertifiedBlock]) -> None:
    c.executemany(
        "INSERT INTO uncommitted (hash, height, block, qc) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (hash) DO UPDATE SET qc = excluded.qc",
        [
            (block_hash(cb.block.header), cb.block.header.height, encode(cb.block), encode(cb.qc))
            for cb in blocks
        ],
    )


def _blob(value: object) -> bytes:
    assert isinstance(value, bytes), f"expected a BLOB, got {type(value).__name__}"
    return value
