"""The core's parts on their own: the vote pool and the block tree."""

from __future__ import annotations

import pytest

from sequencer_node.core.blocktree import BlockTree
from sequencer_node.core.ledger import Ledger
from sequencer_node.core.votepool import VotePool
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    DoubleVote,
    Endorsement,
    Proposal,
    QuorumCertificate,
    Vote,
    block_hash,
)

VOTERS = [bytes([i]) * 32 for i in range(1, 5)]
TABLE = dict.fromkeys(VOTERS, 1)
B1, B2 = b"\x0a" * 32, b"\x0b" * 32


def vote(voter: bytes, block: bytes = B1, round_: int = 3) -> Vote:
    return Vote(block, 2, round_, 0, voter, bytes(64))


def test_a_qc_forms_only_past_two_thirds_of_the_stake() -> None:
    pool = VotePool(chain_id=1)
    for v in VOTERS[:2]:
        pool.add_vote(vote(v))
    assert pool.form_qc(vote(VOTERS[1]), TABLE) is None  # 2 of 4
    pool.add_vote(vote(VOTERS[2]))
    qc = pool.form_qc(vote(VOTERS[2]), TABLE)
    assert qc is not None
    assert (qc.block_hash, qc.height, qc.round) == (B1, 2, 3)
    assert [e.signer for e in qc.signatures] == sorted(VOTERS[:3])


def test_a_second_vote_in_a_slot_is_evidence_once() -> None:
    pool = VotePool(chain_id=1)
    first, second = vote(VOTERS[0], B1), vote(VOTERS[0], B2)
    pool.add_vote(first)
    assert pool.vote_in_slot(second) == first
    ev = pool.evidence_of(first, second)
    assert isinstance(ev, DoubleVote)
    assert (ev.offender, ev.round) == (VOTERS[0], 3)
    assert pool.evidence_of(first, second) is None  # once per kind, signer and round
    assert pool.evidence == [ev]


def test_votes_inside_a_qc_reveal_a_split_double_vote() -> None:
    pool = VotePool(chain_id=1)
    pool.add_vote(vote(VOTERS[0], B1))
    other = QuorumCertificate(B2, 2, 3, 0, ())
    assert pool.votes_of_qc(other) == []  # no endorsement of VOTERS[0]
    qc = QuorumCertificate(B2, 2, 3, 0, (Endorsement(VOTERS[0], bytes(64)),))
    [ev] = pool.votes_of_qc(qc)
    assert isinstance(ev, DoubleVote)


def test_prune_forgets_old_rounds() -> None:
    pool = VotePool(chain_id=1)
    pool.add_vote(vote(VOTERS[0], round_=3))
    pool.prune(4)
    assert pool.vote_in_slot(vote(VOTERS[0], round_=3)) is None


def _tree() -> tuple[BlockTree, BlockHeader, Ledger]:
    ledger = Ledger.genesis({})
    genesis = BlockHeader(0, 0, 0, ZERO_HASH, 0, bytes(32), ZERO_HASH, ledger.state_root(), 0, 0)
    return BlockTree(genesis, ledger, max_blocks=4, recent=8), genesis, ledger


def _child(parent: BlockHeader, round_: int, stamp: int = 1, epoch: int = 0) -> Block:
    h = BlockHeader(
        parent.height + 1, round_, epoch, block_hash(parent), stamp, VOTERS[0], ZERO_HASH,
        parent.state_root, 0, 0,
    )  # fmt: skip
    return Block(Proposal(h, bytes(64)), (), (), None, None)


def test_commit_moves_along_a_path_and_prunes_the_losing_branch() -> None:
    tree, genesis, ledger = _tree()
    a, b = _child(genesis, 1, 1), _child(genesis, 2, 2)
    ha, hb = tree.insert(a, ledger), tree.insert(b, ledger)
    tree.add_qc(QuorumCertificate(ha, 1, 1, 0, ()))
    assert tree.path_to(ha) == [ha]
    cb = tree.commit(ha)
    assert cb.block == a
    assert tree.committed_height == 1
    tree.prune()
    assert hb not in tree
    assert ha in tree
    with pytest.raises(AssertionError, match="SAFETY"):
        tree.path_to(hb)


def _commit(tree: BlockTree, block: Block) -> bytes:
    bh = block_hash(block.header)
    tree.add_qc(QuorumCertificate(bh, block.header.height, block.header.round,
                                  block.header.epoch, ()))  # fmt: skip
    for step in tree.path_to(bh):
        tree.commit(step)
    tree.prune()
    return bh


def test_prune_drops_a_losing_branch_above_the_committed_height_too() -> None:
    # A fork that left the chain below the head can never be committed: its blocks above the
    # head's height went only when the chain passed their height, taking room until then.
    tree, genesis, ledger = _tree()
    a, b = _child(genesis, 1, 1), _child(genesis, 2, 2)
    b2 = _child(b.header, 3)
    a2 = _child(a.header, 4)
    for blk in (a, b, b2, a2):
        tree.insert(blk, ledger)
    tree.add_orphan(_child(b2.header, 5))
    _commit(tree, a)
    assert block_hash(b2.header) not in tree
    assert block_hash(b.header) not in tree
    assert block_hash(a2.header) in tree
    assert not tree.has_orphans(block_hash(b2.header))


def test_suffix_blocks_of_a_closed_epoch_are_stale_once_the_next_epoch_commits() -> None:
    # Epoch 0 ends at r; its suffix blocks go on above r while epoch 1's first block extends r
    # at the same heights. Once that first block is committed, the suffix can never be.
    tree, genesis, ledger = _tree()
    r = _child(genesis, 1)
    suffix = _child(r.header, 2)
    suffix2 = _child(suffix.header, 3)
    first = _child(r.header, 4, epoch=1)
    for blk in (r, suffix, suffix2, first):
        tree.insert(blk, ledger)
    _commit(tree, r)
    assert block_hash(suffix2.header) in tree  # epoch 0 not closed here yet
    assert not tree.stale(suffix2.header)
    _commit(tree, first)
    assert block_hash(suffix2.header) not in tree
    late = _child(suffix2.header, 6)  # a leader that has not seen the commit yet
    assert tree.stale(late.header)
    tree.add_orphan(late)
    assert not tree.has_orphans(block_hash(suffix2.header))
    assert not tree.stale(_child(first.header, 7, epoch=1).header)


def test_orphans_are_bounded_per_parent() -> None:
    tree, genesis, _ = _tree()
    parent = _child(genesis, 1).header
    for stamp in range(20):
        tree.add_orphan(_child(parent, 2, stamp + 2))
    assert len(tree.take_orphans(block_hash(parent))) == 8
    assert tree.take_orphans(block_hash(parent)) == []


def test_an_orphan_seen_again_does_not_take_a_siblings_place() -> None:
    tree, genesis, _ = _tree()
    parent = _child(genesis, 1).header
    first, sibling = _child(parent, 2, 2), _child(parent, 2, 3)
    for _ in range(8):  # the same block from the store, gossip and a sync answer
        tree.add_orphan(first)
    tree.add_orphan(sibling)
    assert tree.take_orphans(block_hash(parent)) == [first, sibling]


def test_prune_forgets_qcs_of_blocks_the_chain_has_passed_but_not_of_blocks_to_come() -> None:
    # Late timeouts, TCs and proposals name QCs of blocks never inserted here: those at or
    # below the head piled up for good; one above it may be the high QC of a block on its way.
    tree, genesis, ledger = _tree()
    a, b = _child(genesis, 1, 1), _child(genesis, 2, 2)
    tree.insert(a, ledger)
    passed = QuorumCertificate(block_hash(b.header), 1, 2, 0, ())
    coming = QuorumCertificate(b"\x0c" * 32, 3, 5, 0, ())
    tree.add_qc(passed)
    tree.add_qc(coming)
    _commit(tree, a)
    assert tree.qc_of(block_hash(b.header)) is None
    assert tree.qc_of(b"\x0c" * 32) == coming
    assert tree.qc_of(block_hash(a.header)) is not None  # the head's own
