"""Restart meets reconfiguration: a node whose high QC certifies a suffix block that closes its
epoch, known to it only from an epoch proof, must still be able to propose the next epoch's
first block after a restart (docs/protocol.md, sections 3a and 4)."""

from __future__ import annotations

from sequencer_node.core.api import SyncResponse
from sequencer_node.core.election import epoch_seed, weighted_order
from sequencer_node.core.reconfig import BlockKind, kind_of
from sequencer_node.sim.adversary import HOLD, NetRule, Verdict
from sequencer_node.sim.harness import Simulation
from sequencer_node.sim.instance import Instance
from sequencer_node.wire.messages import Block, Vote, block_hash

EPOCH = 8
X = 3  # the node that restarts


class HideSuffixFromX(NetRule):
    """Node X never sees a suffix block (nor catch-up answers, which would bring them), and
    the votes for the first proposal of epoch 1 reach nobody, so that round fails."""

    def __init__(self) -> None:
        self.first_round: int | None = None

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        if dst.idx == X and isinstance(msg, SyncResponse):
            return HOLD
        if isinstance(msg, Block):
            kind = kind_of(msg.header, EPOCH)
            if kind is BlockKind.SUFFIX and dst.idx == X:
                return HOLD
            if kind is BlockKind.FIRST and msg.header.epoch == 1 and self.first_round is None:
                self.first_round = msg.header.round
        if isinstance(msg, Vote) and msg.height == EPOCH + 1 and msg.round == self.first_round:
            return HOLD
        return None


def _run(seed: int) -> tuple[Simulation, bytes]:
    stakes = (1, 1, 1, 1)
    probe = Simulation(seed, stakes=stakes, epoch_length=EPOCH)
    x_key = probe.keys[X].public_key
    table = {k.public_key: 1 for k in probe.keys}
    # X is second in epoch 1's order (the leader of the round after the first one fails)
    # and not epoch 0's stable leader (which proposes the suffix blocks).
    leader_seed = next(
        s for i in range(10_000)
        if (s := i.to_bytes(32, "big"))
        and weighted_order(table, epoch_seed(s, 1))[1] == x_key
        and weighted_order(table, epoch_seed(s, 0))[0] != x_key
    )  # fmt: skip
    sim = Simulation(seed, stakes=stakes, epoch_length=EPOCH, leader_seed=leader_seed)
    rule = HideSuffixFromX()
    sim.add_rule(rule)
    x = sim.instances[X]

    def x_voted_first_block() -> bool:
        rec = x.durable
        return (
            rec is not None
            and rec.high_qc_proof is not None
            and rec.vote_round == (rule.first_round)
        )

    assert sim.run_until(x_voted_first_block, 20_000), "X never voted for epoch 1's first block"
    hq = x.durable.high_qc if x.durable is not None else None
    assert hq is not None
    assert hq.epoch == 0
    assert hq.height > EPOCH  # a suffix block...
    assert all(block_hash(cb.block.header) != hq.block_hash for cb in x.certified.values())
    sim.crash(X)  # ... that X never saw: it knows it only from the proof
    sim.restart(X)
    assert sim.run_until(lambda: len(sim.instances[0].store) > EPOCH + 1, 20_000)
    return sim, x_key


def test_a_restarted_node_proposes_the_first_block_from_its_recorded_proof() -> None:
    for seed in (1, 2):
        sim, x_key = _run(seed)
        first = sim.instances[0].store[EPOCH]  # height EPOCH + 1
        assert first.block.header.height == EPOCH + 1
        assert first.block.header.proposer == x_key, (
            f"seed {seed}: the first block of epoch 1 was not proposed by the restarted node "
            "whose turn it was"
        )
