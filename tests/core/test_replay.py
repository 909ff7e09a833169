"""Restart replay executes stored blocks exactly as they were first executed."""

from __future__ import annotations

from sequencer_node.core.api import CoreConfig, Genesis, StakeSnapshot
from sequencer_node.core.ledger import tx_root
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    ForcedTransaction,
    Proposal,
    QuorumCertificate,
    Transaction,
    block_hash,
)

CHAIN = 7


def test_replay_skips_a_forged_forced_entry_like_the_first_execution() -> None:
    validator = SigningKey.deterministic("replay-validator")
    user = SigningKey.deterministic("replay-user")
    snapshot = StakeSnapshot(0, ((validator.public_key, 100),), bytes(32))
    genesis = Genesis(balances=((user.address, 10**6),), snapshot=snapshot)
    cfg = CoreConfig(chain_id=CHAIN, key=None, epoch_length=10)
    core = SequencerCore(cfg, genesis)

    # Queued on L1 unconditionally, so its L2 signature was never checked there.
    forged = ForcedTransaction(0, 1, Transaction(user.public_key, bytes(20), 5, 0, 1, b"\x01" * 64))
    parent = core.committed_ledger
    ledger, receipts = parent.apply_block(
        [], [forged], proposer=validator.public_key, chain_id=CHAIN
    )
    assert not receipts[0].ok  # skipped: the first execution never moved the 5 tokens
    header = BlockHeader(
        1,
        1,
        0,
        core.committed_hash,
        1,
        validator.public_key,
        tx_root([], [forged]),
        ledger.state_root(),
        ledger.forced_index(),
        1,
    )
    block = Block(Proposal(header, bytes(64)), (), (forged,), None, None)
    stored = CertifiedBlock(block, QuorumCertificate(block_hash(header), 1, 1, 0, ()))

    restarted = SequencerCore(cfg, genesis, chain=[stored])
    assert restarted.committed_height == 1
    assert restarted.committed_ledger.state_root() == ledger.state_root()
    assert restarted.committed_ledger.balance(user.address) == 10**6
