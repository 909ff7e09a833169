"""The DA chain: shares and layout, pay-for-blob checks, the fee market, retention."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from l1_mock.da import chain as da_chain
from l1_mock.da.chain import DAChain, DAConfig, Rejected, next_base_fee, pfb_gas
from sequencer_node.wire.da import nmt
from sequencer_node.wire.da.shares import (
    FIRST_SHARE_CAPACITY,
    MAX_BLOB_BYTES,
    ShareError,
    blob_shares,
    check_user_namespace,
    commitment_spans,
    layout,
    parse_blobs,
    shares_needed,
    subtree_width,
)
from tests.da.helpers import DA_CHAIN, FUNDS, USERS, genesis, ns, pfb


@given(st.binary(min_size=1, max_size=20_000))
def test_blob_round_trips_through_shares(data: bytes) -> None:
    shares = blob_shares(ns(1), data)
    assert len(shares) == shares_needed(len(data))
    assert parse_blobs(shares) == [(0, len(shares), data)]


def test_share_boundaries() -> None:
    assert shares_needed(FIRST_SHARE_CAPACITY) == 1
    assert shares_needed(FIRST_SHARE_CAPACITY + 1) == 2
    assert shares_needed(FIRST_SHARE_CAPACITY + 482) == 2
    assert shares_needed(FIRST_SHARE_CAPACITY + 483) == 3
    with pytest.raises(ShareError):
        blob_shares(ns(1), b"")


@pytest.mark.parametrize(
    ("namespace", "why"),
    [
        (b"\x00" * 28 + b"\x05", "reserved"),
        (b"\x01" + b"\x00" * 18 + b"\x01" * 10, "version"),
        (b"\x00" * 5 + b"\x01" + b"\x00" * 23, "zero bytes"),
        (b"\x00" * 10, "29 bytes"),
    ],
)
def test_namespace_rules(namespace: bytes, why: str) -> None:
    with pytest.raises(ShareError, match=why):
        check_user_namespace(namespace)


@given(st.lists(st.tuples(st.integers(1, 9), st.integers(1, 40_000)), max_size=6))
def test_layout_aligns_every_blob_and_sorts_by_namespace(specs: list[tuple[int, int]]) -> None:
    blobs = [(ns(i), bytes([i]) * n) for i, n in specs]
    shares, placed = layout(blobs)
    assert [s[:29] for s in shares] == sorted(s[:29] for s in shares)
    for p, (namespace, data) in zip(placed, blobs, strict=True):
        n = p.end - p.start
        assert p.start % subtree_width(n) == 0
        assert parse_blobs(shares[p.start : p.end]) == [(0, n, data)]
        # the blob's commitment subtrees are real nodes: each subtree root is the one computed
        # from the blob alone
        assert nmt.share_commitment(shares[p.start : p.end]) == nmt.share_commitment(
            blob_shares(namespace, data)
        )
        assert commitment_spans(p.start, n)[-1][1] == p.end


def _chain(**config: int) -> DAChain:
    return DAChain(genesis(**config))


def test_a_blob_is_included_paid_for_and_the_header_commits_to_it() -> None:
    c = _chain()
    p = pfb(USERS[0], 0, ns(2), b"hello DA")
    h = c.submit(p)
    assert c.pending_nonce(USERS[0].address) == 1
    block = c.produce_block()
    assert block.header.height == 1
    assert block.header.time == c.config.genesis_time + c.config.slot_time
    assert block.header.parent_hash == c.headers[0].hash
    (b,) = block.blobs
    assert b.tx_hash == h
    assert b.fee == p.gas * c.config.initial_base_fee
    assert c.balance(USERS[0].address) == FUNDS - b.fee
    assert c.nonce(USERS[0].address) == 1
    shares = da_chain.block_shares([p])
    assert nmt.root(shares) == block.header.data_root
    assert block.header.share_count == len(shares)
    assert not c.pool


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"nonce": 1}, "nonce 1 is not the next"),
        ({"max_fee": 1}, "below the base fee"),
        ({"chain_id": 1}, "bad signature"),
        ({"namespace": b"\x00" * 29}, "reserved"),
        ({"data": b""}, "1 to"),
        ({"data": bytes(MAX_BLOB_BYTES + 1)}, "1 to"),
        ({"max_fee": 10**30}, "cannot cover"),
    ],
)
def test_bad_submissions_are_refused_with_a_reason(change: dict[str, Any], why: str) -> None:
    c = _chain()
    kw = {"nonce": 0, "namespace": ns(1), "data": b"x", "max_fee": 10_000, **change}
    p = pfb(
        USERS[0],
        kw["nonce"],
        kw["namespace"],
        kw["data"],
        kw["max_fee"],
        kw.get("chain_id", DA_CHAIN),
    )
    with pytest.raises(Rejected, match=why):
        c.submit(p)
    assert not c.pool


def test_tampered_signature_and_replay() -> None:
    c = _chain()
    p = pfb(USERS[0], 0, ns(1), b"x")
    with pytest.raises(Rejected, match="bad signature"):
        c.submit(dataclasses.replace(p, data=b"y"))
    c.submit(p)
    with pytest.raises(Rejected, match="already pending"):
        c.submit(p)
    c.produce_block()
    with pytest.raises(Rejected, match="nonce 0"):
        c.submit(p)


def test_base_fee_follows_eip1559() -> None:
    cfg = DAConfig()
    t = cfg.gas_target
    assert next_base_fee(1000, t, cfg) == 1000
    assert next_base_fee(1000, 2 * t, cfg) == 1125  # +1/8 at a full block
    assert next_base_fee(1000, 0, cfg) == 875  # -1/8 at an empty one
    assert next_base_fee(1, 0, cfg) == 1  # the floor
    assert next_base_fee(7, t + 1, cfg) == 8  # rises by at least 1 above target


@pytest.mark.parametrize(
    "limits",
    [{"max_block_shares": 3_000}, {"block_gas_limit": 10_000_000}],
    ids=["share-limit", "gas-limit"],
)
def test_full_blocks_raise_the_fee_and_the_limits_hold(limits: dict[str, int]) -> None:
    c = _chain(**limits)
    big = b"\x01" * MAX_BLOB_BYTES
    for i in range(3):
        c.submit(pfb(USERS[i], 0, ns(i + 1), big, max_fee=10**6))
    b1 = c.produce_block()
    assert len(b1.blobs) == 1  # a second 1 MiB blob would break the limit
    assert b1.header.gas_used == pfb_gas(len(big)) <= c.config.block_gas_limit
    assert b1.header.share_count <= c.config.max_block_shares
    if "block_gas_limit" in limits:  # the block used 90% of its gas: above the target
        assert c.state.base_fee > c.config.initial_base_fee
    assert len(c.pool) == 2
    c.produce_block()
    c.produce_block()
    assert not c.pool
    empty = c.produce_block()
    assert empty.header.share_count == 0
    assert empty.header.data_root == nmt.EMPTY_ROOT


def test_a_blob_waits_while_the_base_fee_is_above_its_bid_and_blocks_later_nonces() -> None:
    c = _chain(initial_base_fee=100)
    c.submit(pfb(USERS[0], 0, ns(1), b"a", max_fee=100))
    c.submit(pfb(USERS[0], 1, ns(1), b"b", max_fee=10**5))
    c.state.base_fee = 101  # as if a burst of traffic had raised it
    assert c.produce_block().blobs == ()
    assert len(c.pool) == 2
    while c.state.base_fee > 100:
        c.produce_block()
    assert [b.pfb.data for b in c.produce_block().blobs] == [b"a", b"b"]


def test_retention_window() -> None:
    assert da_chain.data_available(10, 10, 1)
    assert not da_chain.data_available(9, 10, 1)
    assert da_chain.data_available(1, 10, 10)
    assert not da_chain.data_available(0, 10, 10)
    assert not da_chain.data_available(11, 10, 10)
    assert da_chain.retention_blocks_for(61, 2) == 31
    assert da_chain.retention_floor(5, 100) == 0


def test_restore_keeps_headers_state_and_pool() -> None:
    c = _chain()
    c.submit(pfb(USERS[0], 0, ns(1), b"a"))
    c.produce_block()
    c.submit(pfb(USERS[0], 1, ns(1), b"b"))
    again = DAChain.restore(c.genesis, c.headers, c.state, c.pool.values())
    assert again.head == c.head
    assert again.pool.keys() == c.pool.keys()
    assert again.produce_block() == c.produce_block()
    bad = [c.headers[0], dataclasses.replace(c.headers[1], parent_hash=bytes(32))]
    with pytest.raises(ValueError, match="extend"):
        DAChain.restore(c.genesis, bad, c.state, [])


def test_build_block_changes_nothing_until_applied() -> None:
    c = _chain()
    c.submit(pfb(USERS[0], 0, ns(1), b"a"))
    before = (c.head, dict(c.state.balances), c.state.base_fee, dict(c.pool))
    block = c.build_block()
    assert (c.head, c.state.balances, c.state.base_fee, c.pool) == before
    c.apply_block(block)
    assert c.head == block.header
    assert not c.pool
    with pytest.raises(ValueError, match="current head"):
        c.apply_block(block)  # a stale block is never applied twice
