"""Reconfiguration (docs/protocol.md, section 3a): how an epoch hands over to the next.

The attacks on the old hand-over are in ``test_findings_issue11.py`` (finding 1) and the
certificate rules of finding 7 in ``test_certificates.py``; these tests check the new shape.
"""

from __future__ import annotations

import itertools

import pytest

from sequencer_node.core.reconfig import BlockKind, kind_of, last_height, rank
from sequencer_node.sim.harness import NodeRestart, Simulation, Violation
from sequencer_node.sim.scenarios import run_random
from sequencer_node.wire.messages import (
    ZERO_HASH,
    QuorumCertificate,
    block_hash,
)

EPOCH = 8


def test_each_epoch_starts_on_the_last_block_of_the_previous_one_with_a_proof() -> None:
    sim = Simulation(11, epoch_length=EPOCH)
    sim.change_stakes(3, (1, 2, 3, 4))  # a new table on the way
    sim.run_for(8_000)
    chains = [[cb.block for cb in inst.store] for inst in sim.instances]
    shortest = min(len(c) for c in chains)
    assert shortest > 3 * EPOCH, shortest
    for chain in chains:  # every node stored the same contiguous chain, without suffix blocks
        assert [block_hash(b.header) for b in chain[:shortest]] == [
            block_hash(b.header) for b in chains[0][:shortest]
        ]
    blocks = chains[0]
    for prev, block in itertools.pairwise(blocks):
        h = block.header
        assert h.parent_hash == block_hash(prev.header)
        assert kind_of(h, EPOCH) is not BlockKind.SUFFIX
        if kind_of(h, EPOCH) is BlockKind.FIRST:
            proof, j = block.epoch_proof, block.justify
            assert proof is not None
            assert j is not None
            assert prev.header.height == last_height(h.epoch - 1, EPOCH)
            # The justify certifies the closing suffix block, one round above its parent's QC.
            assert j.block_hash == block_hash(proof.suffix[-1])
            assert j.epoch == h.epoch - 1
            assert proof.parent_qc.round + 1 == j.round
            assert proof.last_qc.block_hash == h.parent_hash
            assert all(kind_of(s, EPOCH) is BlockKind.SUFFIX for s in proof.suffix)
        else:
            assert block.epoch_proof is None


def test_qcs_rank_by_epoch_before_round() -> None:
    old = QuorumCertificate(ZERO_HASH, 9, 50, 0, ())
    new = QuorumCertificate(ZERO_HASH, 10, 48, 1, ())
    assert rank(new) > rank(old) > rank(None)


def test_a_closed_epochs_suffix_left_in_the_tree_does_not_crash_a_node() -> None:
    # Found by `scripts/sweep random --soak --node-restart` (seed 85075; epochs of 6 blocks):
    # a node committed epoch 1's first block (height 7) while epoch 0's suffix blocks at
    # heights 8-11 were still in its tree (pruning went by height only), then a late suffix
    # block on them arrived: its epoch proof walked down towards epoch 0's last block through
    # a pruned block and the core's assertion stopped the node. Now a commit drops every
    # block that does not descend from it, and a closed epoch's suffix is stale on arrival.
    try:
        out = run_random(85075, fault_ms=20_000, actions=40, node_restart=NodeRestart())
    except Violation as exc:  # pragma: no cover - the failure is the message
        pytest.fail(str(exc))
    assert min(out.heights) > 10
