"""Issue 11, finding 6 (core side): the block a vote is for, and the block of the QC that a
proposal or timeout carries, reach the shell in the ``PersistWatermark`` that holds the signed
message back, so the shell makes them durable before the message leaves."""

from __future__ import annotations

from collections import defaultdict

from sequencer_node.core import api
from sequencer_node.sim.harness import Instance, Simulation
from sequencer_node.wire.messages import Block, TimeoutMessage, Vote, block_hash


def test_no_vote_or_qc_leaves_before_its_block_was_handed_over_for_durability() -> None:
    sim = Simulation(11)
    durable: dict[int, set[bytes]] = defaultdict(set)
    checked = {"vote": 0, "proposal": 0}
    route = sim._route

    def spy(src: Instance, effects: list[api.Effect]) -> None:
        for e in effects:
            if isinstance(e, api.PersistWatermark):
                durable[src.idx].update(block_hash(b.header) for b in e.blocks)
            elif isinstance(e, api.Broadcast) and isinstance(e.message, Vote):
                assert e.message.block_hash in durable[src.idx]
                checked["vote"] += 1
            elif isinstance(e, api.Broadcast) and isinstance(e.message, Block):
                qc = e.message.justify
                if qc is not None:
                    assert qc.block_hash in durable[src.idx]
                    checked["proposal"] += 1
            elif isinstance(e, api.Broadcast) and isinstance(e.message, TimeoutMessage):
                qc = e.message.high_qc
                assert qc is None or qc.block_hash in durable[src.idx]
        route(src, effects)

    sim._route = spy  # type: ignore[method-assign]
    assert sim.run_until(lambda: min(len(i.committed) for i in sim.instances) >= 5, 60_000)
    assert checked["vote"] > 10
    assert checked["proposal"] > 3
