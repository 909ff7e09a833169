"""Ethereum transactions in the batch format and in re-execution from a batch."""

from __future__ import annotations

import dataclasses

import msgpack
import pytest

from sequencer_node.batching.codec import (
    FORMAT_VERSION,
    Batch,
    BatchFormatError,
    decode_body,
    decode_payload,
    encode_body,
    encode_payload,
)
from sequencer_node.core.ledger import Ledger, tx_root
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.eth import MAX_ETH_TX_BYTES, EthTransaction
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    CertifiedBlock,
    Proposal,
    QuorumCertificate,
    block_hash,
)

from .helpers import ADDR_0, CHAIN_ID, KEY_1, legacy, type2

PROPOSER = SigningKey.deterministic("eth-batch-proposer")


def eth_chain() -> tuple[Ledger, list[CertifiedBlock]]:
    """Two certified blocks of Ethereum transfers (type 2 and legacy, two senders)."""
    genesis = Ledger.genesis({ADDR_0: 10**21, bytes.fromhex(
        "70997970c51812dc3a010c7d01b50e0d17dc79c8"): 10**21})  # fmt: skip
    bodies = [
        (EthTransaction(type2(nonce=0)), EthTransaction(legacy(KEY_1, nonce=0))),
        (EthTransaction(type2(nonce=1, value=9)),),
    ]
    ledger, parent, out = genesis, ZERO_HASH, []
    for height, eth in enumerate(bodies, start=1):
        ledger, _ = ledger.apply_block(
            [], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, eth_txs=eth
        )
        header = BlockHeader(
            height, height, 0, parent, 1_700_000_000_000 + height, PROPOSER.public_key,
            tx_root((), (), eth), ledger.state_root(), 0, 0,
        )  # fmt: skip
        proposal = sign_message(Proposal(header, bytes(64)), PROPOSER, CHAIN_ID)
        bh = block_hash(header)
        block = Block(proposal, (), (), None, None, eth_transactions=eth)
        out.append(CertifiedBlock(block, QuorumCertificate(bh, height, height, 0, ())))
        parent = bh
    return genesis, out


def test_blocks_with_eth_transactions_round_trip_on_the_wire():
    _, blocks = eth_chain()
    for cb in blocks:
        assert decode(encode(cb), CertifiedBlock) == cb


def test_batch_carries_eth_transactions_and_the_follower_replays_their_state_roots():
    genesis, blocks = eth_chain()
    payload = encode_payload(Batch.from_certified(blocks))
    assert payload[0] == FORMAT_VERSION == 2
    batch = decode_payload(payload)
    assert batch.headers() == [cb.block.header for cb in blocks]
    assert batch.tx_count() == 3
    ledger = genesis
    for bb in batch.blocks:
        ledger, _ = ledger.apply_block(
            bb.transactions, bb.forced, proposer=bb.proposer, chain_id=CHAIN_ID,
            eth_txs=bb.eth_transactions,
        )  # fmt: skip
        assert ledger.state_root() == bb.state_root


def test_a_changed_eth_transaction_changes_the_last_block_hash():
    _, blocks = eth_chain()
    b = Batch.from_certified(blocks)
    first = b.blocks[0]
    swapped = dataclasses.replace(first, eth_transactions=first.eth_transactions[::-1])
    assert Batch(b.parent_hash, (swapped, b.blocks[1])).last_block_hash() != b.last_block_hash()


def test_decoding_refuses_bad_eth_rows():
    _, blocks = eth_chain()
    body = msgpack.unpackb(encode_body(Batch.from_certified(blocks)))
    body[1][0][10] = [b""]
    with pytest.raises(BatchFormatError, match="eth_transactions"):
        decode_body(msgpack.packb(body))
    body[1][0][10] = [bytes(MAX_ETH_TX_BYTES + 1)]
    with pytest.raises(BatchFormatError, match="max_bin_len"):
        decode_body(msgpack.packb(body))
    body[1][0] = body[1][0][:10]  # a version-1 block row (no Ethereum transactions)
    with pytest.raises(BatchFormatError, match="expected 11 items"):
        decode_body(msgpack.packb(body))
