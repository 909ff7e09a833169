"""Idle pace (issue 13): a leader with nothing to order proposes every ``idle_block_ms``
instead of every block time, and a transaction still commits as fast as on a busy chain."""

from __future__ import annotations

import itertools

import pytest

from sequencer_node.core import api
from sequencer_node.sim.harness import CHAIN_ID, Simulation

IDLE_MS = 200  # block time 100 ms, base round timeout 400 ms


def _heights(sim: Simulation) -> list[int]:
    return [len(i.committed) for i in sim.instances]


def test_an_idle_chain_proposes_at_the_idle_pace_without_round_timeouts() -> None:
    busy, idle = Simulation(3), Simulation(3, idle_block_ms=IDLE_MS)
    busy.run_for(6_000)
    idle.run_for(6_000)
    # Before: a block every 100 ms on a chain with nothing in it (~60 in 6 s).
    assert min(_heights(busy)) >= 45, _heights(busy)
    # After: one every 200 ms, and no round ends in a timeout (the pace is below it).
    assert 20 <= max(_heights(idle)) <= 33, _heights(idle)
    blocks = [cb.block for cb in idle.instances[0].store]
    assert all(b.timeout_cert is None for b in blocks)
    gaps = [b.header.timestamp_ms - a.header.timestamp_ms for a, b in itertools.pairwise(blocks)]
    # (an epoch's suffix and first block keep the block time: epochs of 8 blocks here)
    assert sorted(gaps)[len(gaps) // 2] >= IDLE_MS, gaps
    idle.check_liveness()


def _commit_latency(sim: Simulation) -> int:
    """Sim ms from a transfer's submission (to a node that does not lead) to its commit
    on every node."""
    sim.run_for(3_000)  # idle for a while
    start, before = sim.now, _heights(sim)
    sim.submit_tx(0, to_node=1)

    def committed_everywhere() -> bool:
        return all(
            any(cb.block.transactions for cb in inst.store[b:])
            for inst, b in zip(sim.instances, before, strict=True)
        )

    assert sim.run_until(committed_everywhere, 5_000)
    return sim.now - start


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_transaction_commits_as_fast_on_an_idle_paced_chain(seed: int) -> None:
    # The two blocks after one with content keep the block time, so the commit (two-chain)
    # is not delayed by the idle pace; the first waits at most one block time more.
    base = _commit_latency(Simulation(seed))
    idle = _commit_latency(Simulation(seed, idle_block_ms=IDLE_MS))
    assert idle <= base + 100 + 40, (base, idle)
    assert idle < 3 * IDLE_MS, idle


def test_the_idle_pace_must_stay_below_half_the_round_timeout() -> None:
    with pytest.raises(ValueError, match="idle_block_ms"):
        api.CoreConfig(CHAIN_ID, None, block_time_ms=100, idle_block_ms=300, timeout_base_ms=400)
    with pytest.raises(ValueError, match="idle_block_ms"):
        api.CoreConfig(CHAIN_ID, None, block_time_ms=100, idle_block_ms=50)
    api.CoreConfig(CHAIN_ID, None, block_time_ms=100, idle_block_ms=200, timeout_base_ms=400)
