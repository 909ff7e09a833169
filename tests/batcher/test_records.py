"""The batcher's records: one SQLite file with all of a batch's durable state."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sequencer_node.batcher.records import BatchRecords, BatchState, Inflight, RecordsError
from sequencer_node.wire.messages import ZERO_HASH, BatchHeader
from tests.batcher.helpers import L2_CHAIN, certify


def header(number: int, first: int = 1, last: int = 4) -> BatchHeader:
    return BatchHeader(
        L2_CHAIN, number, 0, first, last, b"\x01" * 32, ZERO_HASH, b"\x02" * 32, 0, 1, (),
        b"\x03" * 32, 100,
    )  # fmt: skip


def test_batches_move_forward_only_and_survive_restart(tmp_path: Path) -> None:
    """(Moved from the node store's test when the batch table moved here.)"""
    h1 = header(1)
    with_cert = certify(h1)
    r = BatchRecords.open(tmp_path)
    rec = r.record_certified(with_cert, 3)
    assert rec.state is BatchState.SIGNED
    assert rec.certificate == with_cert
    assert r.record_certified(with_cert, 3) == rec  # restart of the batcher
    other = certify(dataclasses.replace(h1, last_height=5))
    with pytest.raises(RecordsError, match="another header"):
        r.record_certified(other, 3)
    with pytest.raises(RecordsError, match="never recorded"):
        r.mark_posted(3, b"\xaa" * 32)
    r.mark_posted(1, b"\xaa" * 32)
    r.save_inflight(Inflight(1, 0, 7, b"\xaa" * 32, 1))
    r.record_certified(certify(header(2, 5, 8)), 3)
    r.close()
    r = BatchRecords.open(tmp_path)
    posted = r.batches(BatchState.POSTED)
    assert [(b.batch_number, b.l1_tx_hash) for b in posted] == [(1, b"\xaa" * 32)]
    assert [b.batch_number for b in r.batches()] == [1, 2]
    assert r.inflight(1) == Inflight(1, 0, 7, b"\xaa" * 32, 1)
    r.record_accepted(h1, b"\xbb" * 32)
    got = r.get(1)
    assert got is not None
    assert (got.state, got.l1_tx_hash) == (BatchState.ACCEPTED, b"\xbb" * 32)
    with pytest.raises(RecordsError, match="cannot be posted"):
        r.mark_posted(1, b"\xaa" * 32)
    # the inbox is the truth: another header accepted for 2 replaces the one recorded here
    won = header(2, 5, 9)
    r.record_accepted(won, b"\xcc" * 32)
    got = r.get(2)
    assert got is not None
    assert (got.header, got.state, got.certificate) == (won, BatchState.ACCEPTED, None)
    r.close()


def test_an_approval_keeps_its_payload_and_older_records_open(tmp_path: Path) -> None:
    import sqlite3

    from sequencer_node.batcher.records import DB_FILENAME

    r = BatchRecords.open(tmp_path)
    r.record_approval(header(1), 3, 10.0, b"\x01\x03payload")
    r.close()
    r = BatchRecords.open(tmp_path)
    lock = r.approval(1)
    assert lock is not None
    assert (lock.header, lock.algorithm, lock.payload) == (header(1), 3, b"\x01\x03payload")
    r.close()
    # A file written before approvals kept the payload: opened (the column added), its
    # approval read back without one, and new approvals keep theirs.
    old = tmp_path / "old"
    old.mkdir()
    conn = sqlite3.connect(old / DB_FILENAME)
    conn.execute(
        "CREATE TABLE approvals (batch_number INTEGER PRIMARY KEY, header BLOB NOT NULL, "
        "algorithm INTEGER NOT NULL, approved_at REAL NOT NULL)"
    )
    from sequencer_node.wire.codec import encode

    conn.execute("INSERT INTO approvals VALUES (?, ?, ?, ?)", (2, encode(header(2)), 3, 5.0))
    conn.commit()
    conn.close()
    r = BatchRecords.open(old)
    lock = r.approval(2)
    assert lock is not None
    assert (lock.header, lock.payload) == (header(2), None)
    r.record_approval(header(3), 3, 6.0, b"\x01\x03more")
    lock = r.approval(3)
    assert lock is not None
    assert lock.payload == b"\x01\x03more"
    r.close()
