"""Execution rules, receipts, state root determinism and snapshots of the L2 ledger."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.core.ledger import (
    Account,
    InvalidBlock,
    Ledger,
    _with_changes,
    split_txs,
    tx_root,
    verify_tx_signature,
)
from sequencer_node.wire.crypto import SIGNATURE_CACHE, SignatureCache, address_of
from sequencer_node.wire.messages import Transaction

from .helpers import CHAIN_ID, KEYS, PROPOSER, forced, transfer

A, B, C = KEYS[0], KEYS[1], KEYS[2]
P_ADDR = address_of(PROPOSER.public_key)


def genesis() -> Ledger:
    return Ledger.genesis({A.address: 1000, B.address: 500})


def test_transfer_moves_amount_and_fee():
    l0 = genesis()
    l1, receipts = l0.apply_block(
        [transfer(A, C.address, 100, 0, fee=3)], [], proposer=PROPOSER.public_key
    )
    assert l1.balance(A.address) == 897
    assert l1.balance(C.address) == 100
    assert l1.balance(P_ADDR) == 3
    assert l1.nonce(A.address) == 1
    assert l1.nonce(C.address) == 0
    assert receipts[0].ok
    assert receipts[0].fee_paid == 3
    assert receipts[0].reason is None
    # value semantics: the parent state is untouched
    assert l0.balance(A.address) == 1000
    assert l0.nonce(A.address) == 0
    assert l0.state_root() != l1.state_root()
    assert l1.total_supply() == l0.total_supply() == 1500


def test_sequential_nonces_in_one_block_and_self_transfer():
    l0 = genesis()
    txs = [transfer(A, B.address, 10, 0), transfer(A, A.address, 50, 1, fee=2)]
    l1, _ = l0.apply_block(txs, [], proposer=PROPOSER.public_key)
    assert l1.nonce(A.address) == 2
    assert l1.balance(A.address) == 1000 - 11 - 2
    assert l1.balance(B.address) == 510


@pytest.mark.parametrize(
    ("tx", "needle"),
    [
        (transfer(A, C.address, 1, 1), "nonce too high"),
        (transfer(A, C.address, 1000, 0, fee=1), "insufficient balance"),
        (transfer(C, A.address, 2, 0, fee=0), "insufficient balance"),
    ],
)
def test_invalid_normal_tx_invalidates_block_naming_index(tx, needle):
    ok = transfer(B, C.address, 1, 0)
    with pytest.raises(InvalidBlock) as e:
        genesis().apply_block([ok, tx], [], proposer=PROPOSER.public_key)
    assert "transaction 1" in e.value.reason
    assert needle in e.value.reason


def test_replayed_nonce_is_too_low():
    l1, _ = genesis().apply_block([transfer(A, C.address, 1, 0)], [], proposer=PROPOSER.public_key)
    with pytest.raises(InvalidBlock, match="nonce too low"):
        l1.apply_block([transfer(A, C.address, 1, 0)], [], proposer=PROPOSER.public_key)


def test_bad_signature_checked_only_with_chain_id():
    tx = transfer(A, C.address, 5, 0, chain_id=CHAIN_ID + 1)  # signed for another chain
    genesis().apply_block([tx], [], proposer=PROPOSER.public_key)  # caller vouches
    with pytest.raises(InvalidBlock, match="bad signature"):
        genesis().apply_block([tx], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID)


def test_forced_runs_first_and_failed_forced_is_skipped_but_consumed():
    good = forced(0, 7, transfer(B, C.address, 20, 0))
    broke = forced(1, 7, transfer(C, A.address, 100, 0))  # C has only 20
    forged = forced(2, 8, dataclasses.replace(transfer(A, C.address, 900, 0), amount=901))
    normal = transfer(B, C.address, 5, 1)  # nonce 1: only valid after the forced one
    l1, receipts = genesis().apply_block(
        [normal], [good, broke, forged], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert [r.ok for r in receipts] == [True, False, False, True]
    assert "insufficient balance" in (receipts[1].reason or "")
    assert receipts[2].reason == "bad signature"
    assert receipts[1].fee_paid == 0
    assert l1.forced_index() == 3
    assert l1.balance(A.address) == 1000  # the forged entry did not spend A's money
    assert l1.balance(C.address) == 25


def test_a_vouched_block_checks_its_forced_entries_but_not_its_transfers():
    # A certified block (docs/protocol.md section 7): its QC vouches for its transfers'
    # signatures, but a forced entry's outcome depends on its check, so that one still runs.
    forged = forced(0, 8, dataclasses.replace(transfer(A, C.address, 900, 0), amount=901))
    foreign = transfer(B, C.address, 5, 0, chain_id=CHAIN_ID + 1)  # signed for another chain
    with pytest.raises(InvalidBlock, match="bad signature"):
        genesis().apply_block([foreign], [forged], proposer=PROPOSER.public_key,
                              chain_id=CHAIN_ID)  # fmt: skip
    led, receipts = genesis().apply_block(
        [foreign], [forged], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, vouched=True
    )
    assert [(r.ok, r.reason) for r in receipts] == [(False, "bad signature"), (True, None)]
    assert led.balance(A.address) == 1000  # the forged forced entry was still skipped
    assert led.balance(C.address) == 5
    assert led.forced_index() == 1


def test_forced_entries_must_continue_the_queue():
    e = forced(1, 7, transfer(B, C.address, 20, 0))
    with pytest.raises(InvalidBlock, match="queue index 1, expected 0"):
        genesis().apply_block([], [e], proposer=PROPOSER.public_key)


def test_forced_index_is_part_of_state_root():
    bad = forced(0, 1, transfer(C, A.address, 1, 0))  # fails, but consumes index 0
    l0 = genesis()
    l1, _ = l0.apply_block([], [bad], proposer=PROPOSER.public_key)
    assert l1.balance(A.address) == l0.balance(A.address)
    assert l1.state_root() != l0.state_root()


@given(
    st.dictionaries(
        st.binary(min_size=20, max_size=20), st.integers(1, 10**20), min_size=0, max_size=40
    ),
    st.randoms(use_true_random=False),
)
@settings(max_examples=50)
def test_state_root_is_independent_of_insertion_order(balances, rnd):
    items = list(balances.items())
    rnd.shuffle(items)
    assert Ledger.genesis(dict(items)).state_root() == Ledger.genesis(balances).state_root()


def test_incremental_root_equals_root_from_scratch():
    balances = {bytes([i % 7, i % 3]) + i.to_bytes(18, "big"): 1000 for i in range(300)}
    balances[A.address] = 10**6
    balances[B.address] = 10**6
    l0 = Ledger.genesis(balances)
    txs = [transfer(A, addr, 3, n) for n, addr in enumerate(list(balances)[:120])]
    txs += [transfer(B, A.address, 7, 0)]
    l1, _ = l0.apply_block(txs, [], proposer=PROPOSER.public_key)
    fresh = Ledger.from_bytes(l1.to_bytes())
    rebuilt = Ledger._from_accounts(l1.accounts(), l1.forced_index())
    assert fresh.state_root() == rebuilt.state_root() == l1.state_root()


def test_genesis_rejects_bad_input():
    with pytest.raises(ValueError, match="20 bytes"):
        Ledger.genesis({b"short": 1})
    with pytest.raises(ValueError, match="total supply"):
        Ledger.genesis({A.address: 2**127, B.address: 2**127})
    with pytest.raises(ValueError, match=">= 0"):
        Ledger.genesis({A.address: -1})


def test_snapshot_round_trip_and_strictness():
    l1, _ = genesis().apply_block([transfer(A, C.address, 9, 0)], [], proposer=PROPOSER.public_key)
    data = l1.to_bytes()
    back = Ledger.from_bytes(data)
    assert back.state_root() == l1.state_root()
    assert back.nonce(A.address) == 1
    assert back.balance(C.address) == 9
    with pytest.raises(ValueError, match="magic"):
        Ledger.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="version"):
        Ledger.from_bytes(data[:4] + b"\x09" + data[5:])
    flipped = bytearray(data)
    flipped[-1] ^= 1  # the last nonce
    with pytest.raises(ValueError, match="root does not match"):
        Ledger.from_bytes(bytes(flipped))
    with pytest.raises(ValueError, match="extra data"):
        Ledger.from_bytes(data + b"\x00")


@given(st.binary(max_size=200))
@settings(max_examples=200)
def test_snapshot_decoder_raises_only_value_error(junk):
    for blob in (junk, b"SQLG\x01" + junk):
        with contextlib.suppress(ValueError):
            Ledger.from_bytes(blob)


def test_tx_root_commits_to_order_and_split():
    t1, t2 = transfer(A, C.address, 1, 0), transfer(B, C.address, 1, 0)
    f1 = forced(0, 1, t1)
    roots = {
        tx_root([t1, t2], []),
        tx_root([t2, t1], []),
        tx_root([t2], [f1]),
        tx_root([], []),
    }
    assert len(roots) == 4
    assert tx_root([t1, t2], []) == tx_root([t1, t2], [])


def test_signature_cache_is_bounded_and_caches_only_good():
    cache = SignatureCache(max_entries=4)
    for i in range(10):
        cache.add((1, bytes([i])))
    assert len(cache) <= 4
    assert (1, bytes([9])) in cache
    assert (1, bytes([0])) not in cache
    SIGNATURE_CACHE.clear()
    tx = transfer(A, C.address, 1, 0)
    assert verify_tx_signature(tx, CHAIN_ID)
    assert len(SIGNATURE_CACHE) == 1
    assert not verify_tx_signature(tx, CHAIN_ID + 1)
    assert len(SIGNATURE_CACHE) == 1
    forged = dataclasses.replace(tx, amount=2)
    assert not verify_tx_signature(forged, CHAIN_ID)


def test_a_transaction_object_remembers_only_a_good_signature_for_its_chain():
    """The per-object memo (issue 13) gives the answer ``verify`` gives: only a success is
    remembered, for one chain id; it is not on the wire, not compared, and a copy or a
    decoded object starts without it."""
    from sequencer_node.wire.codec import decode, encode

    SIGNATURE_CACHE.clear()
    tx = transfer(A, C.address, 1, 0)
    assert tx._good_for is None
    assert verify_tx_signature(tx, CHAIN_ID)
    assert tx._good_for == CHAIN_ID
    SIGNATURE_CACHE.clear()  # the object alone answers now
    assert verify_tx_signature(tx, CHAIN_ID)
    assert len(SIGNATURE_CACHE) == 0
    assert not verify_tx_signature(tx, CHAIN_ID + 1)  # another chain: checked, refused
    assert tx._good_for == CHAIN_ID
    bad = dataclasses.replace(tx, signature=bytes(64))
    assert bad._good_for is None
    assert not verify_tx_signature(bad, CHAIN_ID)
    assert bad._good_for is None
    copy = decode(encode(tx), Transaction)
    assert copy == tx
    assert copy._good_for is None
    assert encode(copy) == encode(tx)


def test_check_tx():
    l0 = genesis()
    assert l0.check_tx(transfer(A, C.address, 999, 0)) is None
    assert "insufficient" in (l0.check_tx(transfer(A, C.address, 1000, 0)) or "")
    assert "nonce too high" in (l0.check_tx(transfer(A, C.address, 1, 2)) or "")


def test_build_block_drops_what_forced_entries_made_invalid():
    l0 = genesis()
    # A's forced entry uses nonce 0 and most of the balance before A's pooled txs run
    f = forced(0, 3, transfer(A, C.address, 900, 0))
    pooled = [
        transfer(A, C.address, 1, 0),  # nonce already used by the forced entry
        transfer(A, C.address, 500, 1),  # now unaffordable
        transfer(B, C.address, 7, 0),  # unaffected
    ]
    with pytest.raises(InvalidBlock, match="transaction 0"):
        l0.apply_block(pooled, [f], proposer=PROPOSER.public_key, chain_id=CHAIN_ID)
    led, included, receipts, dropped = l0.build_block(
        pooled, [f], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert included == [pooled[2]]
    assert [reason.split(":")[0] for _, reason in dropped] == [
        "nonce too low",
        "insufficient balance",
    ]
    again, again_receipts = l0.apply_block(
        split_txs(included)[0], [f], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert again.state_root() == led.state_root()
    assert again_receipts == receipts


@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 700), st.integers(0, 9)),
            max_size=12,
        ),
        min_size=1,
        max_size=6,
    )
)
@settings(max_examples=60)
def test_random_blocks_conserve_supply_and_root_matches_rebuild(blocks):
    keys = KEYS[:6]
    led = Ledger.genesis({k.address: 1000 for k in keys[:4]})
    supply = led.total_supply()
    for block in blocks:
        nonces = {k.public_key: led.nonce(k.address) for k in keys}
        candidates = []
        for s, r, amount, fee in block:
            key = keys[s]
            tx = Transaction(
                key.public_key, keys[r].address, amount, nonces[key.public_key], fee, bytes(64)
            )
            nonces[key.public_key] += 1
            candidates.append(tx)
        led, included, receipts, dropped = led.build_block(
            candidates, [], proposer=PROPOSER.public_key
        )
        assert len(included) + len(dropped) == len(candidates)
        assert all(r.ok for r in receipts)
        assert led.total_supply() == supply
        assert all(led.balance(k.address) >= 0 for k in keys)
    rebuilt = Ledger._from_accounts(led.accounts(), led.forced_index())
    assert rebuilt.state_root() == led.state_root()
    assert rebuilt.account_count() == led.account_count()


def _root_by_definition(led: Ledger) -> bytes:
    """The state root exactly as the ledger module's docstring defines it, computed from
    scratch from the accounts (no shards, no copy-on-write): the reference for the tree."""
    by_bucket: dict[tuple[int, int], list[tuple[bytes, Account]]] = {}
    for addr, acct in led.accounts():
        by_bucket.setdefault((addr[0], addr[1]), []).append((addr, acct))
    shard_hashes = []
    for s in range(256):
        bucket_hashes = []
        for b in range(256):
            accts = sorted(by_bucket.get((s, b), []))
            if not accts:
                bucket_hashes.append(bytes(32))
                continue
            pre = b"seqnet/state/bucket" + b"".join(
                a + acct.balance.to_bytes(16, "big") + acct.nonce.to_bytes(8, "big")
                for a, acct in accts
            )
            bucket_hashes.append(hashlib.sha256(pre).digest())
        if all(h == bytes(32) for h in bucket_hashes):
            shard_hashes.append(bytes(32))
        else:
            shard_hashes.append(
                hashlib.sha256(b"seqnet/state/shard" + b"".join(bucket_hashes)).digest()
            )
    pre = b"seqnet/state/v1" + led.forced_index().to_bytes(8, "big") + b"".join(shard_hashes)
    return hashlib.sha256(pre).digest()


def test_the_incremental_root_is_the_defined_root_and_does_not_change():
    """The copy-on-write tree (issue 13 made its per-block copy cheaper) computes the root the
    docstring defines, after blocks that touch shared buckets and empty ones; and the root of a
    fixed state is the value stored chains hold (pinned before the change)."""
    balances = {hashlib.sha256(b"a%d" % i).digest()[:20]: 10**18 + i for i in range(3000)}
    led = Ledger.genesis(balances)
    assert led.state_root().hex() == (
        "ca5542b3f2bafc7a0bd2847f864b561f371c699fab6be9c56e8ff5dbb4967952"
    )
    lone = bytes([0xFF, 0xFF]) + bytes(18)  # alone in shard 0xff? not necessarily: checked
    balances[lone] = 1
    balances[A.address] = 10**6
    balances[B.address] = 10**6
    twin = bytes([A.address[0], A.address[1]]) + bytes(18)  # A's bucket holds two accounts
    balances[twin] = 5
    l0 = Ledger.genesis(balances)
    assert l0.state_root() == _root_by_definition(l0)
    l1, _ = l0.apply_block(
        [transfer(A, addr, 3, n) for n, addr in enumerate(list(balances)[:150])],
        [], proposer=PROPOSER.public_key,
    )  # fmt: skip
    l2, _ = l1.apply_block([transfer(B, A.address, 7, 0)], [], proposer=PROPOSER.public_key)
    for one in (l1, l2):
        assert one.state_root() == _root_by_definition(one)
    assert l0.state_root() == _root_by_definition(l0)  # the parent is untouched
    # Accounts back to (0, 0) leave their bucket: one shares it, one empties its bucket.
    shards, delta = _with_changes(l2._shards, {lone: Account(0, 0), twin: Account(0, 0)})
    l3 = Ledger(shards, l2.forced_index(), l2.account_count() + delta)
    assert delta == -2
    assert lone[1] not in shards[lone[0]].buckets
    assert l3.state_root() == _root_by_definition(l3)
    # A shard emptied of its only account leaves the root preimage (zeros).
    alone = Ledger.genesis({lone: 1, A.address: 1})
    shards, delta = _with_changes(alone._shards, {lone: Account(0, 0)})
    emptied = Ledger(shards, 0, 1)
    assert lone[0] not in shards
    assert delta == -1
    assert emptied.state_root() == _root_by_definition(emptied)
