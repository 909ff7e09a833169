"""Reconfiguration (docs/protocol.md, section 3a): how an epoch hands over to the next.

The attacks on the old hand-over are in ``test_findings_issue11.py`` (finding 1); these tests
check the shape of the new one and the certificate rules of finding 7.
"""

from __future__ import annotations

import itertools

from sequencer_node.core import api
from sequencer_node.core.reconfig import EMPTY_TX_ROOT, BlockKind, kind_of, last_height, rank
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.crypto import sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    Proposal,
    QuorumCertificate,
    Timeout,
    TimeoutCertificate,
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


def _timeouts_of_genesis_table(sim: Simulation, round_: int) -> TimeoutCertificate:
    signed = [
        sign_message(Timeout(round_, 0, 0, ZERO_HASH, k.public_key, bytes(64)), k, CHAIN_ID)
        for k in sim.keys
    ]
    return TimeoutCertificate(round_, 0, tuple(sorted(signed, key=lambda t: t.voter)), None)


def test_a_tc_of_the_genesis_table_cannot_unlock_a_later_epoch() -> None:
    # Finding 7: a TC without a high QC is judged by the genesis table. Such a TC (here signed
    # by every genesis key, e.g. keys long unbonded) must not justify a block of a later
    # epoch: a block may carry only a TC of its own epoch.
    sim = Simulation(12, epoch_length=EPOCH)
    sim.run_for(4_000)
    for inst in sim.instances:  # a validator that does not lead the round after the TC
        core = inst.core
        assert core is not None
        hq = core.high_qc
        assert hq is not None
        assert hq.epoch >= 1
        parent = core.tree.header(hq.block_hash)
        assert parent is not None
        assert kind_of(parent, EPOCH) is BlockKind.NORMAL
        tc = _timeouts_of_genesis_table(sim, core.round)
        now = parent.timestamp_ms + 10
        core.handle(api.MessageReceived(sim.keys[1].public_key, tc), now)  # valid by itself
        leader = core.status().leader
        if leader != inst.pk:
            break
    key = next(k for k in sim.keys if k.public_key == leader)
    height = parent.height + 1
    header = BlockHeader(
        height, core.round, (height - 1) // EPOCH, hq.block_hash, parent.timestamp_ms + 1,
        key.public_key, EMPTY_TX_ROOT, parent.state_root, parent.forced_index, parent.l1_origin,
    )  # fmt: skip
    block = Block(sign_message(Proposal(header, bytes(64)), key, CHAIN_ID), (), (), hq, tc)
    out = core.handle(api.MessageReceived(key.public_key, block), now)
    refused = [e for e in out if isinstance(e, api.PeerMisbehaved)]
    assert [r.offense.fault for r in refused] == [api.Fault.INVALID_BLOCK], out
    assert "TC of another epoch" in refused[0].offense.detail
    assert block_hash(header) not in core.tree  # never a block this node may vote for
