"""The SQLite store: watermark durability, crash atomicity, ownership checks, blocks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sequencer_node.shell.store import (
    DataDirMismatch,
    Store,
    StoreError,
)
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    Proposal,
    QuorumCertificate,
    block_hash,
)

from .helpers import CHAIN, A, B

ROOT = Path(__file__).resolve().parents[2]


def certified(height: int, salt: int = 0) -> CertifiedBlock:
    header = BlockHeader(
        height, height, 0, bytes(32), 1000 * height + salt, A.public_key, bytes(32), bytes(32), 0, 0
    )
    block = Block(Proposal(header, bytes(64)), (), (), None, None)
    return CertifiedBlock(block, QuorumCertificate(block_hash(header), height, height, 0, ()))


def open_store(tmp_path: Path, chain: int = CHAIN, key: bytes = A.public_key) -> Store:
    return Store.open(tmp_path / "data", chain_id=chain, identity=key)


def test_watermark_survives_reopen(tmp_path):
    with open_store(tmp_path) as s:
        assert s.read_watermark() is None
        s.write_watermark(b"round-1")
        s.write_watermark(b"round-2")
    with open_store(tmp_path) as s:
        assert s.read_watermark() == b"round-2"


def test_synchronous_full_and_wal(tmp_path):
    with open_store(tmp_path) as s:
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def _run_child(tmp_path: Path, body: str) -> int:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from pathlib import Path
        from sequencer_node.shell.store import Store
        s = Store.open(Path({str(tmp_path / "data")!r}), chain_id={CHAIN},
                       identity=bytes.fromhex({A.public_key.hex()!r}))
        """
    ) + textwrap.dedent(body)
    proc = subprocess.run([sys.executable, "-c", script], timeout=60, check=False)
    return proc.returncode


def test_watermark_written_then_kill_9_is_kept(tmp_path):
    rc = _run_child(
        tmp_path,
        """
        s.write_watermark(b"signed-round-7")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert rc == -signal.SIGKILL
    with open_store(tmp_path) as s:
        assert s.read_watermark() == b"signed-round-7"


def test_kill_9_mid_transaction_leaves_the_previous_state(tmp_path):
    with open_store(tmp_path) as s:
        s.write_watermark(b"old")
        s.put_blocks([certified(1)])
    rc = _run_child(
        tmp_path,
        """
        c = s._conn
        c.execute("BEGIN IMMEDIATE")
        c.execute("UPDATE watermark SET record = ? WHERE id = 1", (b"new",))
        c.execute("DELETE FROM blocks")
        os.kill(os.getpid(), signal.SIGKILL)
        """,
    )
    assert rc == -signal.SIGKILL
    with open_store(tmp_path) as s:
        assert s.read_watermark() == b"old"
        assert s.get_block(1) == certified(1)


def test_failed_put_blocks_is_all_or_nothing(tmp_path):
    with open_store(tmp_path) as s:
        s.put_blocks([certified(1)])
        with pytest.raises(StoreError, match="conflicting certified block at height 1"):
            s.put_blocks([certified(2), certified(1, salt=5)])
        assert s.get_block(2) is None
        assert s.highest_height() == 1


def test_wrong_chain_or_key_is_refused(tmp_path):
    open_store(tmp_path).close()
    with pytest.raises(DataDirMismatch, match=r"chain_id 901.*chain_id 902"):
        open_store(tmp_path, chain=CHAIN + 1)
    with pytest.raises(DataDirMismatch, match="identity"):
        open_store(tmp_path, key=B.public_key)
    open_store(tmp_path).close()  # the right owner still opens it


def test_blocks_by_range_stop_at_gaps_and_byte_budget(tmp_path):
    with open_store(tmp_path) as s:
        assert s.highest_height() is None
        s.put_blocks([certified(h) for h in (1, 2, 3, 5)])
        s.put_blocks([certified(2)])  # idempotent
        assert [b.block.header.height for b in s.get_blocks(1, 10)] == [1, 2, 3]
        assert [b.block.header.height for b in s.get_blocks(5, 10)] == [5]
        assert [b.block.header.height for b in s.get_blocks(1, 10, max_bytes=1)] == [1]
        assert s.highest_height() == 5


def test_snapshots_keep_the_latest(tmp_path):
    with open_store(tmp_path) as s:
        assert s.latest_snapshot() is None
        for h in range(1, 6):
            s.put_snapshot(h * 10, b"state-%d" % h, keep=2)
        assert s.latest_snapshot() == (50, b"state-5")
        assert s._query("SELECT COUNT(*) FROM snapshots")[0][0] == 2


def test_data_dir_is_private(tmp_path):
    open_store(tmp_path).close()
    assert os.stat(tmp_path / "data").st_mode & 0o077 == 0


async def test_big_writes_from_a_worker_thread(tmp_path):
    import trio

    with open_store(tmp_path) as s:
        blocks = [certified(h) for h in range(1, 51)]
        await trio.to_thread.run_sync(s.put_blocks, blocks)
        s.write_watermark(b"w")  # the small durable write, from the Trio thread
        assert await trio.to_thread.run_sync(s.highest_height) == 50


def test_blocks_above_the_committed_chain_are_kept_until_committed(tmp_path):
    voted, certified_only = certified(3), certified(4)
    with open_store(tmp_path) as s:
        s.write_watermark(b"round-3", [voted.block])
        s.put_certified([certified_only])
    with open_store(tmp_path) as s:  # durable across a reopen
        assert s.uncommitted() == [(voted.block, None), (certified_only.block, certified_only.qc)]
        s.put_certified([voted])  # its QC arrived later
        assert s.uncommitted()[0] == (voted.block, voted.qc)
        s.put_blocks([certified(1), certified(2), voted])
        assert s.uncommitted() == [(certified_only.block, certified_only.qc)]


def test_the_journal_keeps_acknowledged_transactions_until_a_block_includes_them(tmp_path):
    with open_store(tmp_path) as s:
        s.journal_txs([(b"h1" * 16, b"tx1"), (b"h2" * 16, b"tx2")])
        s.journal_txs([(b"h1" * 16, b"tx1"), (b"h3" * 16, b"tx3")])  # h1 keeps its place
    with open_store(tmp_path) as s:  # durable across a reopen
        assert s.journaled_txs() == [(b"h1" * 16, b"tx1"), (b"h2" * 16, b"tx2"),
                                     (b"h3" * 16, b"tx3")]  # fmt: skip
        s.put_blocks([certified(1)], included=[b"h2" * 16, b"zz" * 16])
        assert [h for h, _ in s.journaled_txs()] == [b"h1" * 16, b"h3" * 16]
        s.drop_journaled([b"h1" * 16])
        assert [h for h, _ in s.journaled_txs()] == [b"h3" * 16]


def test_the_journal_is_bounded_to_its_newest_entries(tmp_path):
    with open_store(tmp_path) as s:
        for i in range(10):
            s.journal_txs([(i.to_bytes(32, "big"), b"tx")], keep=4)
        assert [int.from_bytes(h, "big") for h, _ in s.journaled_txs()] == [6, 7, 8, 9]


def test_a_failed_put_blocks_keeps_the_journal(tmp_path):
    with open_store(tmp_path) as s:
        s.journal_txs([(b"h1" * 16, b"tx1")])
        s.put_blocks([certified(1)])
        with pytest.raises(StoreError):
            s.put_blocks([certified(1, salt=1)], included=[b"h1" * 16])
        assert s.journaled_txs() == [(b"h1" * 16, b"tx1")]


def test_stake_snapshots_are_kept_newest_first_and_survive_a_reopen(tmp_path):
    with open_store(tmp_path) as s:
        for epoch in (5, 3, 9, 7):
            s.put_stake_snapshot(epoch, f"snap-{epoch}".encode(), keep=3)
        s.put_stake_snapshot(9, b"snap-9")  # the same epoch again: replaced, not added
    with open_store(tmp_path) as s:
        assert s.stake_snapshots() == [b"snap-5", b"snap-7", b"snap-9"]


def test_a_data_directory_of_the_previous_schema_is_refused_with_the_way_out(tmp_path):
    with open_store(tmp_path) as s:
        s._conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"schema version 1 is not 2.*fresh --data-dir"):
        open_store(tmp_path)


def test_a_stake_snapshot_with_wei_stakes_round_trips_through_its_stored_form():
    # Stakes are wei (10**22 here): msgpack integers stop at 64 bits, and a node that packed
    # them as integers died on the first snapshot the L1 watcher fed it.
    from sequencer_node.core.api import StakeSnapshot
    from sequencer_node.shell.node_service import stake_snapshot_bytes, stake_snapshot_from_bytes

    snap = StakeSnapshot(12, ((A.public_key, 40_000 * 10**18), (B.public_key, 1)), bytes(32))
    assert stake_snapshot_from_bytes(stake_snapshot_bytes(snap)) == snap
