"""Compact blocks (issue 13: proposals carry batch digests instead of transaction bodies):
the encoding, its strict structure, the batch index and block cache bounds, and the receive
side's rebuild, charge, request and answer paths with fake peers. Budget: a few seconds."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.core.api import ProposalHeard
from sequencer_node.shell.compact import (
    INLINE,
    BatchIndex,
    BlockCache,
    CompactBlocks,
    Malformed,
    Missing,
    batch_digest,
    check_structure,
    compact,
    expand,
)
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.shell.p2p_messages import BlockRequest, CompactBlock, TxBatch
from sequencer_node.shell.scoring import Offense
from sequencer_node.wire.codec import CodecError, decode, encode, message_id
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    Proposal,
    Transaction,
    block_hash,
)

CHAIN = 901
LEADER = SigningKey.deterministic("compact-leader")
RELAY = SigningKey.deterministic("compact-relay").public_key
USER = SigningKey.deterministic("compact-user")


def _tx(n: int, signed: bool = False) -> Transaction:
    tx = Transaction(USER.public_key, bytes([n % 256]) * 20, n, n, 1, bytes(64))
    return sign_message(tx, USER, CHAIN) if signed else tx


def _block(txs: tuple[Transaction, ...], height: int = 5, signed: bool = False) -> Block:
    header = BlockHeader(height, height, 0, b"\x01" * 32, 1_700_000_000_000 + height,
                         LEADER.public_key, b"\x02" * 32, b"\x03" * 32, 0, 0)  # fmt: skip
    proposal = Proposal(header, bytes(64))
    if signed:
        proposal = sign_message(proposal, LEADER, CHAIN)
    return Block(proposal, txs, (), None, None)


def _index(*batches: tuple[Transaction, ...]) -> BatchIndex:
    index = BatchIndex()
    for b in batches:
        index.add(b, 0.0)
    return index


# --- the encoding ---------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_compact_then_expand_gives_the_block_back(data: st.DataObject) -> None:
    sizes = data.draw(st.lists(st.integers(1, 12), min_size=1, max_size=5))
    batches, n = [], 0
    for size in sizes:
        batches.append(tuple(_tx(n + i) for i in range(size)))
        n += size
    loose = [_tx(1000 + i) for i in range(data.draw(st.integers(0, 4)))]
    pool = [tx for b in batches for tx in b] + loose
    chosen = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=30, unique=True))
    block = _block(tuple(chosen))
    index = _index(*batches)
    cb = compact(block, index)
    if all(tx in loose for tx in chosen):
        assert cb is None  # nothing to reference: the block travels in full
        return
    assert cb is not None
    assert check_structure(cb) is None
    assert cb.block.transactions == ()
    assert list(cb.inline) == [tx for tx in chosen if tx in loose]
    assert expand(cb, index) == block
    wire = decode(encode(cb), CompactBlock)  # strict round trip on the wire
    assert wire == cb
    assert expand(wire, index) == block
    assert block_hash(expand(wire, index).header) == block_hash(block.header)  # type: ignore[union-attr]


def test_a_transaction_in_no_known_batch_travels_inline() -> None:
    batch = tuple(_tx(i) for i in range(3))
    stray = _tx(99)
    block = _block((batch[2], stray, batch[0]))
    cb = compact(block, _index(batch))
    assert cb is not None
    assert cb.inline == (stray,)
    assert INLINE == 0xFFFF
    assert cb.batches == (batch_digest(batch),)
    assert cb.picks == bytes.fromhex("00000002ffff000000000000")
    assert expand(cb, _index(batch)) == block


def test_no_compact_form_for_a_block_without_client_transactions_or_known_batches() -> None:
    assert compact(_block(()), _index((_tx(1),))) is None
    assert compact(_block((_tx(5),)), _index((_tx(1),))) is None


def test_a_proposal_of_270_transfers_is_a_small_frame() -> None:
    """The count the docs quote (docs/benchmarks.md): bytes of one proposal frame."""
    txs = [_tx(i, signed=True) for i in range(270)]
    batches = [tuple(txs[i : i + 90]) for i in range(0, 270, 90)]
    block = _block(tuple(txs), signed=True)
    cb = compact(block, _index(*batches))
    assert cb is not None
    full, small = len(encode(block)), len(encode(cb))
    assert small * 10 < full, (full, small)
    print(f"270 transfers: full Block {full} bytes, CompactBlock {small} bytes")


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda cb: dataclasses.replace(cb, picks=cb.picks[:-1]), "whole number"),
        (lambda cb: dataclasses.replace(cb, picks=cb.picks + b"\x00\x05\x00\x00"), "batch 5"),
        (lambda cb: dataclasses.replace(cb, picks=cb.picks + b"\xff\xff\x00\x01"), "position"),
        (lambda cb: dataclasses.replace(cb, picks=cb.picks + b"\x00\x00\x10\x00"), "past any"),
        (lambda cb: dataclasses.replace(cb, inline=(*cb.inline, _tx(7))), "inline"),
        (lambda cb: dataclasses.replace(cb, batches=cb.batches * 2), "twice"),
        (lambda cb: dataclasses.replace(cb, batches=(*cb.batches, b"\x09" * 32)), "no pick"),
        (lambda cb: dataclasses.replace(cb, batches=(), picks=b""), "no batch"),
        (lambda cb: dataclasses.replace(cb, block=_block((_tx(1),))), "as picks"),
    ],
)
def test_a_malformed_structure_is_found_before_any_lookup(edit: Any, why: str) -> None:
    batch = (_tx(1), _tx(2))
    cb = compact(_block(batch), _index(batch))
    assert cb is not None
    bad = edit(cb)
    problem = check_structure(bad)
    assert problem is not None
    assert why in problem
    assert isinstance(expand(bad, _index(batch)), Malformed)


def test_the_wire_refuses_oversized_and_non_canonical_compact_blocks() -> None:
    batch = (_tx(1),)
    cb = compact(_block(batch), _index(batch))
    assert cb is not None
    raw = encode(cb)
    with pytest.raises(CodecError, match="not the canonical"):
        decode(raw.replace(b"\xc4\x04", b"\xc5\x00\x04", 1))  # picks as a bin16
    with pytest.raises(CodecError, match="picks: length"):
        decode(encode(dataclasses.replace(cb, picks=bytes(80_004))))
    assert decode(encode(BlockRequest(b"\x07" * 32))) == BlockRequest(b"\x07" * 32)
    with pytest.raises(CodecError, match="expected 32 bytes"):
        decode(encode(BlockRequest(b"\x07" * 32)).replace(b"\xc4\x20", b"\xc4\x1f", 1)[:-1])


def test_a_pick_past_the_end_of_a_held_batch_is_malformed_even_while_another_is_missing() -> None:
    batch, other = (_tx(1), _tx(2)), (_tx(3),)
    cb = compact(_block((batch[1], other[0])), _index(batch, other))
    assert cb is not None
    assert expand(cb, _index(batch)) == Missing((batch_digest(other),))
    past = dataclasses.replace(cb, picks=b"\x00\x00\x00\x02" + cb.picks[4:])
    got = expand(past, _index(batch))
    assert isinstance(got, Malformed)
    assert "position 2 of a batch of 2" in got.reason


# --- bounds ---------------------------------------------------------------------------------


def test_the_batch_index_forgets_the_oldest_batches_by_count_and_by_age() -> None:
    index = BatchIndex(max_txs=4096 + 10, max_age_s=60.0)
    first = tuple(_tx(i) for i in range(4096))
    second = tuple(_tx(5000 + i) for i in range(11))
    d1 = index.add(first, 0.0)
    assert d1 is not None
    assert index.locate(_id(first[7])) == (d1, 7)
    d2 = index.add(second, 1.0)
    assert d2 is not None
    assert index.batch(d1) is None
    assert index.locate(_id(first[7])) is None
    assert index.batch(d2) == second
    assert index.txs == 11
    assert len(index) == 1
    index.add((_tx(9000),), 30.0)
    index.expire(61.0)  # the second batch is 60 s old: forgotten; the third is not
    assert index.batch(d2) is None
    assert len(index) == 1
    assert index.txs == 1
    with pytest.raises(ValueError, match="max_txs"):
        BatchIndex(max_txs=10)


def test_a_transaction_in_two_batches_stays_located_while_either_is_held() -> None:
    index = BatchIndex(max_txs=4096)
    tx = _tx(1)
    d1 = index.add((tx, _tx(2)), 0.0)
    d2 = index.add((_tx(3), tx), 1.0)
    assert d1 is not None
    assert index.locate(_id(tx)) == (d2, 1)
    index.expire(60.5)  # the first batch goes; the second still names the transaction
    assert index.batch(d1) is None
    assert index.locate(_id(tx)) == (d2, 1)


def test_the_block_cache_is_bounded_by_blocks_and_transactions() -> None:
    cache = BlockCache(max_blocks=3, max_txs=10)
    blocks = [_block((_tx(h),), height=h) for h in range(1, 6)]
    hashes = [cache.put(b) for b in blocks]
    assert len(cache) == 3
    assert cache.get(hashes[0]) is None
    assert cache.get(hashes[4]) == blocks[4]
    big = _block(tuple(_tx(100 + i) for i in range(9)), height=9)
    cache.put(big)
    assert cache.txs <= 10
    assert cache.get(block_hash(big.header)) == big


def _id(tx: Transaction) -> bytes:
    return message_id(tx)


# --- the receive side -----------------------------------------------------------------------


class FakePeers:
    def __init__(self, connected: set[bytes] | None = None) -> None:
        self.sent: list[tuple[bytes, object]] = []
        self.charged: list[tuple[bytes, Offense]] = []
        self.connected = connected if connected is not None else {LEADER.public_key, RELAY}

    def send_to(self, peer: bytes, msg: object, *, gossip: bool = False) -> bool:
        if peer not in self.connected:
            return False
        self.sent.append((peer, msg))
        return True

    def penalize(self, peer: bytes, offense: Offense) -> None:
        self.charged.append((peer, offense))

    def is_connected(self, peer: bytes) -> bool:
        return peer in self.connected


def _counter(m: NodeMetrics, name: str) -> float:
    value = m.registry.get_sample_value(name + "_total")
    return 0.0 if value is None else value


def test_a_compact_block_is_rebuilt_and_handed_on_as_the_full_block() -> None:
    batch = tuple(_tx(i) for i in range(4))
    leader, follower = CompactBlocks(), CompactBlocks()
    leader.batch_sent(TxBatch(batch), 0.0)
    block = _block((batch[3], batch[1]))
    cb = leader.outgoing(block, 0.0)
    assert isinstance(cb, CompactBlock)
    assert _counter(leader.metrics, "seqnet_compact_blocks_sent") == 1
    peers = FakePeers()
    assert follower.receive(LEADER.public_key, TxBatch(batch), 0.0, peers) == [
        (LEADER.public_key, TxBatch(batch))
    ]
    assert follower.receive(LEADER.public_key, cb, 0.1, peers) == [(LEADER.public_key, block)]
    assert _counter(follower.metrics, "seqnet_compact_blocks_resolved") == 1
    assert peers.sent == []
    assert peers.charged == []
    assert leader.outgoing(_block(()), 0.0) == _block(())  # nothing to compact: in full


def test_an_unknown_batch_leads_to_a_block_request_and_the_answer_completes_it() -> None:
    batch = tuple(_tx(i) for i in range(3))
    leader, follower = CompactBlocks(), CompactBlocks()
    leader.batch_sent(TxBatch(batch), 0.0)
    block = _block(batch)
    cb = leader.outgoing(block, 0.0)
    h = block_hash(block.header)
    # From a relay: the request goes to the proposer, which holds the block.
    to_follower = FakePeers()
    assert isinstance(cb, CompactBlock)
    # Meanwhile the core hears the signed proposal (evidence, certificates), not the block.
    assert follower.receive(RELAY, cb, 0.0, to_follower) == [(RELAY, ProposalHeard(cb.block))]
    assert to_follower.sent == [(LEADER.public_key, BlockRequest(h))]
    assert follower.receive(RELAY, cb, 0.1, to_follower) == []  # one request per block
    assert len(to_follower.sent) == 1
    assert follower.pending == 1
    follower_id = b"\x05" * 32
    to_leader = FakePeers({follower_id})
    assert leader.receive(follower_id, BlockRequest(h), 0.2, to_leader) == []
    assert to_leader.sent == [(follower_id, block)]
    assert leader.receive(follower_id, BlockRequest(b"\x00" * 32), 0.2, to_leader) == []
    assert len(to_leader.sent) == 1
    assert to_leader.charged == []
    assert follower.receive(LEADER.public_key, block, 0.3, to_follower) == [
        (LEADER.public_key, block)
    ]
    assert follower.pending == 0
    assert _counter(follower.metrics, "seqnet_compact_blocks_requested") == 1
    assert _counter(follower.metrics, "seqnet_compact_blocks_resolved_after_request") == 1
    # The follower can answer for it now too.
    assert follower.cache.get(h) == block


def test_a_batch_that_arrives_after_its_compact_block_completes_it() -> None:
    batch = tuple(_tx(i) for i in range(3))
    leader, follower = CompactBlocks(), CompactBlocks()
    leader.batch_sent(TxBatch(batch), 0.0)
    block = _block(batch)
    cb = leader.outgoing(block, 0.0)
    peers = FakePeers()
    assert isinstance(cb, CompactBlock)
    heard = follower.receive(LEADER.public_key, cb, 0.0, peers)
    assert heard == [(LEADER.public_key, ProposalHeard(cb.block))]
    assert peers.sent == [(LEADER.public_key, BlockRequest(block_hash(block.header)))]
    out = follower.receive(RELAY, TxBatch(batch), 0.05, peers)
    assert out == [(RELAY, TxBatch(batch)), (LEADER.public_key, block)]
    assert follower.pending == 0


def test_a_pick_past_a_held_batch_is_charged_to_the_proposer_only() -> None:
    batch = (_tx(1), _tx(2))
    leader = CompactBlocks()
    leader.batch_sent(TxBatch(batch), 0.0)
    cb = leader.outgoing(_block(batch), 0.0)
    assert isinstance(cb, CompactBlock)
    bad = dataclasses.replace(cb, picks=b"\x00\x00\x00\x05" + cb.picks[4:])
    assert check_structure(bad) is None  # only a receiver holding the batch can tell
    follower = CompactBlocks()
    peers = FakePeers()
    follower.receive(RELAY, TxBatch(batch), 0.0, peers)
    assert follower.receive(LEADER.public_key, bad, 0.0, peers) == []
    assert peers.charged == [(LEADER.public_key, Offense.MALFORMED_MESSAGE)]
    assert peers.sent == []
    # From a relay nobody can tell who broke it (the signature covers the header): no charge,
    # and the full block is asked of the proposer.
    other = CompactBlocks()
    other.receive(RELAY, TxBatch(batch), 0.0, peers)
    assert other.receive(RELAY, bad, 0.0, peers) == [(RELAY, ProposalHeard(bad.block))]
    assert peers.charged == [(LEADER.public_key, Offense.MALFORMED_MESSAGE)]
    assert peers.sent == [(LEADER.public_key, BlockRequest(block_hash(bad.block.header)))]


def test_pending_compact_blocks_are_bounded_and_expire() -> None:
    peers = FakePeers()
    node = CompactBlocks(max_pending=3, pending_ttl_s=10.0)
    for h in range(1, 6):
        batch = (_tx(h),)
        other = CompactBlocks()
        other.batch_sent(TxBatch(batch), 0.0)
        cb = other.outgoing(_block(batch, height=h), 0.0)
        node.receive(LEADER.public_key, cb, float(h), peers)
    assert node.pending == 3
    node.receive(LEADER.public_key, TxBatch((_tx(999),)), 14.5, peers)
    assert node.pending == 1  # those received at 3 and 4 s are 10 s old
