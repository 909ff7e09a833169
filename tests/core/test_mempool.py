"""Mempool admission reasons, bounds, selection order and pruning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.core.ledger import Ledger, split_txs
from sequencer_node.core.mempool import Mempool, RejectReason

from .helpers import CHAIN_ID, KEYS, PROPOSER, transfer

A, B, C, D = KEYS[0], KEYS[1], KEYS[2], KEYS[3]


def ledger() -> Ledger:
    return Ledger.genesis({A.address: 1000, B.address: 1000, C.address: 1000})


def pool(**kw) -> Mempool:
    args = {"chain_id": CHAIN_ID, "max_txs": 100, "max_per_sender": 10, "max_nonce_gap": 5}
    args.update(kw)
    return Mempool(**args)


def test_accepts_valid_and_rejects_duplicate():
    mp, lg = pool(), ledger()
    tx = transfer(A, D.address, 1, 0)
    r = mp.add(tx, lg)
    assert r.accepted
    assert r.reason is None
    assert len(mp) == 1
    assert r.tx_hash in mp
    r2 = mp.add(tx, lg)
    assert not r2.accepted
    assert r2.reason is RejectReason.DUPLICATE


@pytest.mark.parametrize(
    ("tx", "reason", "needle"),
    [
        (
            transfer(A, D.address, 1, 0, chain_id=CHAIN_ID + 1),
            RejectReason.BAD_SIGNATURE,
            "signature",
        ),
        (transfer(A, D.address, 1, 6), RejectReason.NONCE_TOO_HIGH, "too far ahead"),
        (transfer(A, D.address, 1000, 0), RejectReason.INSUFFICIENT_BALANCE, "does not cover"),
        (transfer(D, A.address, 0, 0, fee=1), RejectReason.INSUFFICIENT_BALANCE, "balance 0"),
        (transfer(A, D.address, 1, 0, fee=0), RejectReason.FEE_TOO_LOW, "minimum 1"),
    ],
)
def test_rejection_reasons(tx, reason, needle):
    mp = pool(min_fee=1)
    r = mp.add(tx, ledger())
    assert not r.accepted
    assert r.reason is reason
    assert needle in r.detail
    assert len(mp) == 0


def test_nonce_too_low_after_commit():
    lg, _ = ledger().apply_block([transfer(A, D.address, 1, 0)], [], proposer=PROPOSER.public_key)
    r = pool().add(transfer(A, D.address, 2, 0), lg)
    assert r.reason is RejectReason.NONCE_TOO_LOW


def test_gap_bound_is_inclusive():
    mp, lg = pool(max_nonce_gap=5), ledger()
    assert mp.add(transfer(A, D.address, 1, 5), lg).accepted
    assert mp.add(transfer(A, D.address, 1, 6), lg).reason is RejectReason.NONCE_TOO_HIGH


def test_pool_full_and_sender_limit():
    mp, lg = pool(max_txs=3, max_per_sender=2), ledger()
    assert mp.add(transfer(A, D.address, 1, 0), lg).accepted
    assert mp.add(transfer(A, D.address, 1, 1), lg).accepted
    assert mp.add(transfer(A, D.address, 1, 2), lg).reason is RejectReason.SENDER_LIMIT
    assert mp.add(transfer(B, D.address, 1, 0), lg).accepted
    assert mp.add(transfer(C, D.address, 1, 0), lg).reason is RejectReason.POOL_FULL
    assert len(mp) == 3


def test_cumulative_balance_counts_pending_txs():
    mp, lg = pool(), ledger()
    assert mp.add(transfer(A, D.address, 600, 0, fee=1), lg).accepted
    r = mp.add(transfer(A, D.address, 400, 1, fee=1), lg)
    assert r.reason is RejectReason.INSUFFICIENT_BALANCE


def test_replace_by_fee():
    mp, lg = pool(), ledger()
    old = transfer(A, D.address, 1, 0, fee=10)
    assert mp.add(old, lg).accepted
    cheap = transfer(A, D.address, 2, 0, fee=10)
    assert mp.add(cheap, lg).reason is RejectReason.REPLACEMENT_UNDERPRICED
    better = transfer(A, D.address, 2, 0, fee=11)
    r = mp.add(better, lg)
    assert r.accepted
    assert r.detail == "replaced"
    assert len(mp) == 1
    assert mp.select(lg, 10) == [better]


def test_select_orders_by_fee_across_senders_and_nonce_within():
    mp, lg = pool(), ledger()
    a0, a1 = transfer(A, D.address, 1, 0, fee=1), transfer(A, D.address, 1, 1, fee=50)
    b0 = transfer(B, D.address, 1, 0, fee=5)
    c1 = transfer(C, D.address, 1, 1, fee=99)  # gap: C's nonce 0 is missing
    for tx in (a1, c1, b0, a0):
        assert mp.add(tx, lg).accepted
    assert mp.select(lg, 10) == [b0, a0, a1]
    assert mp.select(lg, 2) == [b0, a0]
    assert mp.select(lg, 0) == []
    # whatever is selected is a valid block
    native = split_txs(mp.select(lg, 10))[0]
    lg.apply_block(native, [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID)


def test_remove_committed_drops_included_and_unaffordable():
    mp, lg = pool(), ledger()
    a0 = transfer(A, D.address, 500, 0)
    a1 = transfer(A, D.address, 400, 1)
    b0 = transfer(B, D.address, 1, 0)
    for tx in (a0, a1, b0):
        assert mp.add(tx, lg).accepted
    # A spends most of its money through another path (a replacement included by someone else)
    other = transfer(A, D.address, 900, 0, fee=5)
    lg2, _ = lg.apply_block([other, b0], [], proposer=PROPOSER.public_key)
    mp.remove_committed(lg2)
    assert len(mp) == 0  # a0 stale nonce, a1 unaffordable (A has 95), b0 included


def test_remove_and_pending_nonce():
    mp, lg = pool(), ledger()
    t0, t1 = transfer(A, D.address, 1, 0), transfer(A, D.address, 1, 1)
    mp.add(t0, lg)
    mp.add(t1, lg)
    assert mp.pending_nonce(A.public_key, lg) == 2
    r = mp.add(transfer(A, D.address, 1, 3), lg)
    assert r.accepted
    assert mp.pending_nonce(A.public_key, lg) == 2
    assert mp.remove(mp.add(t0, lg).tx_hash) is True
    assert mp.select(lg, 10) == []  # nonce 0 gone: nothing is executable
    assert not mp.remove(b"\x00" * 32)


def test_pending_nonce_by_address():
    # the RPC asks by address (issue 14: `seqctl tx send` twice in a row)
    mp, lg = pool(), ledger()
    assert mp.pending_nonce_of(A.address, lg) == 0
    mp.add(transfer(A, D.address, 1, 0), lg)
    mp.add(transfer(A, D.address, 1, 1), lg)
    assert mp.pending_nonce_of(A.address, lg) == 2
    assert mp.pending_nonce_of(D.address, lg) == 0


def test_bad_bounds_rejected():
    with pytest.raises(ValueError, match="bounds"):
        Mempool(chain_id=1, max_txs=0, max_per_sender=1, max_nonce_gap=0)


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 400), st.integers(0, 9)),
        max_size=25,
    )
)
@settings(max_examples=40)
def test_selected_txs_always_form_a_valid_block(ops):
    mp, lg = pool(max_txs=15, max_per_sender=4, max_nonce_gap=3), ledger()
    for who, nonce, amount, fee in ops:
        mp.add(transfer(KEYS[who], D.address, amount, nonce, fee=fee), lg)
        assert len(mp) <= 15
    chosen = mp.select(lg, 100)
    lg2, receipts = lg.apply_block(
        split_txs(chosen)[0], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert all(r.ok for r in receipts)
    mp.remove_committed(lg2)
    left = mp.select(lg2, 100) + [mp.get(h) for h in list(mp._by_hash)]
    assert not set(chosen) & set(left)
