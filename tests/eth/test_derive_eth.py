"""The derivation follower re-executes Ethereum transactions from batches on a real L1 (the
batch format carries their raw bytes; the follower recovers each sender again)."""

from __future__ import annotations

from pathlib import Path

from sequencer_node.batcher.kzg_worker import KzgWorker
from sequencer_node.core.ledger import Ledger, tx_root
from sequencer_node.derivation.deriver import Deriver, genesis_block_hash
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.eth import EthTransaction
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    Proposal,
    QuorumCertificate,
    Transaction,
    block_hash,
)
from tests.batcher.helpers import GENESIS_TS, KEYS, L2_CHAIN, USERS, l2_genesis, running_l1
from tests.batcher.test_derivation import Posting

from .helpers import ADDR_0, ADDR_1, KEY_1, legacy, type2


def eth_chain() -> list[CertifiedBlock]:
    """Block 1 pays ADDR_0 and ADDR_1 with native transfers; blocks 2 and 3 carry Ethereum
    transfers (type 2 from ADDR_0, then one of each kind)."""
    g = l2_genesis()
    ledger = Ledger.genesis(dict(g.balances))
    parent, proposer = genesis_block_hash(g), KEYS[0]
    fund = tuple(
        sign_message(
            Transaction(USERS[0].public_key, a, 10**17, n, 1, bytes(64)), USERS[0], L2_CHAIN
        )
        for n, a in enumerate((ADDR_0, ADDR_1))
    )
    bodies: list[tuple[tuple[Transaction, ...], tuple[EthTransaction, ...]]] = [
        (fund, ()),
        ((), (EthTransaction(type2(nonce=0)), EthTransaction(type2(nonce=1, value=7)))),
        ((), (EthTransaction(type2(nonce=2)), EthTransaction(legacy(KEY_1, nonce=0)))),
    ]
    out = []
    for height, (txs, eth) in enumerate(bodies, start=1):
        ledger, _ = ledger.apply_block(
            txs, (), proposer=proposer.public_key, chain_id=L2_CHAIN, eth_txs=eth
        )
        header = BlockHeader(
            height, height, 0, parent, GENESIS_TS + height * 1000, proposer.public_key,
            tx_root(txs, (), eth), ledger.state_root(), 0, 0,
        )  # fmt: skip
        proposal = sign_message(Proposal(header, bytes(64)), proposer, L2_CHAIN)
        bh = block_hash(header)
        block = Block(proposal, txs, (), None, None, eth_transactions=eth)
        out.append(CertifiedBlock(block, QuorumCertificate(bh, height, height, 0, ())))
        parent = bh
    return out


async def test_follower_derives_ethereum_transfers_to_the_sequencers_state_root(
    tmp_path: Path,
) -> None:
    chain = eth_chain()
    assert [len(cb.block.eth_transactions) for cb in chain] == [0, 2, 2]
    async with running_l1(tmp_path) as (_node, l1), KzgWorker(0) as worker:
        posting = Posting(l1, worker, chain, tmp_path)
        await posting.post(1, 3, "calldata")
        follower = Deriver(l1, l2_genesis())
        derived = await follower.derive_available()
        assert [(d.last_height, d.txs) for d in derived] == [(3, 6)]
        assert follower.state_root() == chain[-1].block.header.state_root
        posting.close()
