"""Batch inbox: continuity, certificates by stake snapshot, forced inclusion, blob limits."""

from __future__ import annotations

import dataclasses

import pytest

from l1_mock.chain import CallRejected
from l1_mock.chain.config import BATCH_LATENCY_BLOCKS, FINALITY_LAG_BLOCKS
from sequencer_node.wire.blobs import GAS_PER_BLOB
from sequencer_node.wire.l1calls import QueueForced
from sequencer_node.wire.messages import BatchCertificate, Transaction
from tests.l1.helpers import (
    OWNERS,
    SEQ_KEYS,
    USER,
    batch_header,
    batch_params,
    mine,
    mine_to_epoch,
    new_chain,
    submit,
)


def accept(chain, **kw) -> None:
    submit(chain, USER, batch_params(batch_header(chain, **kw)))
    mine(chain)
    r = chain.blocks[-1].receipts[-1]
    assert r.status == 1, r.reason


def test_batches_chain_and_wrong_parent_is_refused() -> None:
    chain = new_chain()
    accept(chain)
    accept(chain)
    assert [b.header.batch_number for b in chain.batches] == [0, 1]
    with pytest.raises(CallRejected, match="wrong parent"):
        submit(chain, USER, batch_params(batch_header(chain, parent=b"\x07" * 32)))
    h = dataclasses.replace(batch_header(chain), first_height=5)
    with pytest.raises(CallRejected, match="first_height"):
        submit(chain, USER, batch_params(h))


def test_certificate_below_two_thirds_or_forged_is_refused() -> None:
    chain = new_chain()
    with pytest.raises(CallRejected, match="more than 2/3"):
        submit(chain, USER, batch_params(batch_header(chain), SEQ_KEYS[:2]))  # 70 of 110
    p = batch_params(batch_header(chain))
    sigs = list(p.certificate.signatures)
    sigs[0] = dataclasses.replace(sigs[0], signature=bytes(64))
    forged = dataclasses.replace(p, certificate=BatchCertificate(p.certificate.header, tuple(sigs)))
    with pytest.raises(CallRejected, match="bad certificate"):
        submit(chain, USER, forged)
    # a certificate over a different header does not count
    other = batch_params(batch_header(chain, blocks=3))
    swapped = dataclasses.replace(
        p, certificate=BatchCertificate(p.certificate.header, other.certificate.signatures)
    )
    with pytest.raises(CallRejected, match="bad certificate"):
        submit(chain, USER, swapped)
    accept(chain)  # with exactly 3 of 4 (90 of 110) it passes
    submit(chain, USER, batch_params(batch_header(chain), SEQ_KEYS[:3]))


def test_stake_epoch_must_be_finalized_and_not_regress() -> None:
    chain = new_chain()
    mine_to_epoch(chain, 2)
    with pytest.raises(CallRejected, match="not finalized"):
        submit(chain, USER, batch_params(batch_header(chain, stake_epoch=1)))
    mine_to_epoch(chain, 3)
    accept(chain, stake_epoch=1)
    with pytest.raises(CallRejected, match="older than the previous"):
        submit(chain, USER, batch_params(batch_header(chain, stake_epoch=0)))
    mine_to_epoch(chain, 8)  # unbonding period is 4 epochs in the tests
    with pytest.raises(CallRejected, match="older than the unbonding"):
        submit(chain, USER, batch_params(batch_header(chain, stake_epoch=1)))


def test_skipped_forced_inclusion_is_refused_after_the_window() -> None:
    window = FINALITY_LAG_BLOCKS + BATCH_LATENCY_BLOCKS  # the shortest window the L1 allows
    chain = new_chain(sequencing_window=window)
    tx = Transaction(USER.public_key, bytes(20), 1, 0, 1, bytes(64))
    submit(chain, OWNERS[3], QueueForced(tx))
    mine(chain)
    queued_at = chain.head.number
    assert chain.forced[0].l1_block == queued_at
    accept(chain, forced_index=0)  # inside the window: may leave it out
    mine(chain, window - 2)
    with pytest.raises(CallRejected, match="skips forced transaction 0"):
        submit(chain, USER, batch_params(batch_header(chain, forced_index=0)))
    with pytest.raises(CallRejected, match="forced_index 2 outside"):
        submit(chain, USER, batch_params(batch_header(chain, forced_index=2)))
    accept(chain, forced_index=1)


def test_blobs_above_the_block_max_wait_for_the_next_block() -> None:
    chain = new_chain(forks=((0, "cancun"),))  # max 6 per block and per tx
    submit(chain, OWNERS[0], batch_params(batch_header(chain, blobs=4)))
    mine(chain)
    # the next batch builds on the accepted one; two 4-blob txs cannot share a block
    b1 = batch_params(batch_header(chain, blobs=4))
    h1 = submit(chain, OWNERS[1], b1)
    from sequencer_node.wire.blobs import kzg_to_versioned_hash
    from tests.l1.helpers import call as mkcall

    b2 = batch_params(batch_header(chain, blobs=3, blocks=2))  # competing batch, other sender
    h2 = chain.submit(
        mkcall(chain, OWNERS[2], b2), tuple(kzg_to_versioned_hash(c) for c in b2.commitments)
    )
    mine(chain)
    assert chain.head.blob_gas_used == 4 * GAS_PER_BLOB
    assert h1 in chain.receipts
    assert h2 in chain.pool
    mine(chain)
    assert chain.head.blob_gas_used == 3 * GAS_PER_BLOB
    assert h2 in chain.receipts
    assert chain.receipts[h2].status == 0  # it no longer extends the inbox: failed, not lost


def test_blob_fee_below_base_fee_waits_and_too_many_blobs_are_refused() -> None:
    chain = new_chain(forks=((0, "cancun"),))
    h = submit(chain, USER, batch_params(batch_header(chain, blobs=1), max_fee=0))
    mine(chain, 2)
    assert h in chain.pool
    assert chain.head.blob_gas_used == 0
    with pytest.raises(CallRejected, match="at most 6"):
        submit(chain, OWNERS[0], batch_params(batch_header(chain, blobs=7)))


def test_header_blob_hashes_must_match_commitments() -> None:
    chain = new_chain()
    p = batch_params(batch_header(chain, blobs=1))
    with pytest.raises(CallRejected, match="not verified"):
        chain.submit(__import__("tests.l1.helpers", fromlist=["call"]).call(chain, USER, p), None)


def test_the_pool_serves_the_highest_blob_fee_first() -> None:
    chain = new_chain(forks=((0, "cancun"),))
    low = batch_params(batch_header(chain, blobs=4), max_fee=10)
    high = batch_params(batch_header(chain, blobs=4, blocks=3), max_fee=20)
    h_low = submit(chain, OWNERS[0], low)
    h_high = submit(chain, OWNERS[1], high)
    mine(chain)
    assert chain.receipts[h_high].status == 1
    assert h_low in chain.pool
    assert chain.batches[-1].header == high.certificate.header
