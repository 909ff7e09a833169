"""The backlog the ingress bound reads (issue 13): pooled transactions that no certified block
holds yet. The pool keeps a transaction until its block is committed, so a bound on the whole
pool counted transactions already ordered and waiting only for their commit: with a fixed
bound of 1,000 and 1 s blocks, a 4-node network refused clients at about 500 tx/s whatever
its CPU (measured: 516-525 certified of 700 offered, 2,100-2,200 refused)."""

from __future__ import annotations

from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.codec import message_id


def _in_certified_blocks(core: SequencerCore) -> set[bytes]:
    """Ids of the transactions of the blocks above the committed head up to the high QC."""
    hq = core.high_qc
    assert hq is not None
    ids: set[bytes] = set()
    for bh in core.tree.path_to(hq.block_hash):
        block = core.tree.block(bh)
        assert block is not None
        ids.update(message_id(tx) for tx in block.transactions)
    return ids


def test_transactions_of_certified_uncommitted_blocks_are_not_backlog() -> None:
    sim = Simulation(7, block_time_ms=100)
    core = sim.instances[0].core
    assert core is not None
    for user in range(4):
        for _ in range(5):
            sim.submit_tx(user, to_node=0)
    # Nothing is in a block yet: the whole pool is backlog.
    assert core.mempool_size == 20
    assert core.backlog_size == 20

    def some_ordered_not_committed() -> bool:
        return core.mempool_size > core.backlog_size

    assert sim.run_until(some_ordered_not_committed, 5_000)
    in_flight = _in_certified_blocks(core)
    assert in_flight, "a certified, uncommitted block holds transactions"
    pooled_in_flight = sum(1 for h in in_flight if h in core._mempool)
    assert pooled_in_flight > 0
    assert core.backlog_size == core.mempool_size - pooled_in_flight

    # Once everything is committed the pool is empty and so is the backlog.
    assert sim.run_until(lambda: core.mempool_size == 0, 10_000)
    assert core.backlog_size == 0


def test_the_backlog_follows_new_submissions_while_blocks_are_in_flight() -> None:
    sim = Simulation(11, block_time_ms=100)
    core = sim.instances[1].core
    assert core is not None
    for _ in range(6):
        sim.submit_tx(0, to_node=1)
    assert sim.run_until(lambda: core.mempool_size > core.backlog_size, 5_000)
    before = core.backlog_size
    sim.submit_tx(2, to_node=1)  # a new transaction is backlog at once (same chain, cached count)
    assert core.backlog_size == before + 1
