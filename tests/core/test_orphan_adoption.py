"""A node that was behind adopts the orphans its gap kept a few blocks per step (issue 13).

Found resuming an overloaded 4-node devnet (``scripts/resume_after_overload.py``): the node
that had been behind kept every proposal it could not connect as an orphan (up to the orphan
bound, 1,024 blocks) and, when the block that closed the gap arrived, executed all of them in
that one input; its event loop did not answer for 4-11 s at a time. Now one input or tick
adopts at most ``_ADOPT_PER_STEP`` of them, the core says the rest are due at once
(``next_tick_ms``), and the chain it ends with is the same."""

from __future__ import annotations

from sequencer_node.core import api
from sequencer_node.core.sequencer import _ADOPT_PER_STEP, SequencerCore
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.messages import Block, CertifiedBlock, block_hash

CHAIN = 40
#: The newest blocks reach the node as proposals first (their L1 origins are recent enough
#: for a proposal), the older ones only later, certified, in one sync answer.
ORPHANS = 10


def _reached(core: SequencerCore, chain: list[Block]) -> int:
    """The highest height of ``chain`` this core holds (in its tree, or committed)."""
    return max(
        (b.header.height for b in chain
         if b.header.height <= core.committed_height or block_hash(b.header) in core.tree),
        default=0,
    )  # fmt: skip


def _behind_node(seed: int) -> tuple[Simulation, SequencerCore, list[CertifiedBlock], bytes]:
    """Node 3 down while the others certify ``CHAIN`` blocks, then up again but cut off."""
    sim = Simulation(seed, block_time_ms=100)
    sim.crash(3)
    done = sim.run_until(lambda: len(sim.instances[0].committed) >= CHAIN, 30_000)
    assert done, "the three live nodes commit the chain"
    node0 = sim.instances[0]
    chain = list(node0.store[:CHAIN])
    sim.partition([[0, 1, 2], [3]])
    sim.restart(3)
    core = sim.instances[3].core
    assert core is not None
    assert core.committed_height == 0
    return sim, core, chain, node0.pk


def test_the_block_that_closes_a_gap_adopts_its_orphans_a_few_per_step() -> None:
    sim, core, certified, peer = _behind_node(5)
    chain = [cb.block for cb in certified]
    now = sim.local_now(sim.instances[3])
    for block in chain[-ORPHANS:]:  # their parents are unknown here: kept as orphans
        core.handle(api.MessageReceived(peer, block), now)
    assert _reached(core, chain) == 0
    gap = tuple(certified[:-ORPHANS])
    core.handle(api.MessageReceived(peer, api.SyncResponse(gap, None)), now)
    # The gap, and at most one step of the orphans it connects (before: all 10 at once).
    assert len(gap) < _reached(core, chain) <= len(gap) + _ADOPT_PER_STEP
    assert core.next_tick_ms(now) == now  # the rest is due at once
    steps = 0
    while _reached(core, chain) < CHAIN:
        before = _reached(core, chain)
        now += 50
        core.tick(now)
        steps += 1
        assert 0 < _reached(core, chain) - before <= _ADOPT_PER_STEP
    assert steps >= (ORPHANS - _ADOPT_PER_STEP) // _ADOPT_PER_STEP
    # The same chain, committed up to where its certificates reach.
    assert core.committed_height >= CHAIN - 2
    assert core.committed_hash == block_hash(chain[core.committed_height - 1].header)


def test_a_node_catching_up_through_orphans_ends_on_the_network_chain() -> None:
    sim, _, _, _ = _behind_node(9)
    sim.heal()
    inst = sim.instances[3]

    def caught_up() -> bool:
        return inst.core is not None and inst.core.committed_height >= CHAIN

    assert sim.run_until(caught_up, 30_000)
    assert inst.committed[:CHAIN] == sim.instances[0].committed[:CHAIN]
