"""When the core needs a tick (issue 13): ``SequencerCore.next_tick_ms`` lets the node and the
simulator tick an idle follower at its round deadline instead of 20 times a second, while a
leader keeps the fine tick that paces its proposal until it has proposed in its round (then
the votes it waits for are inputs), and a round timeout still fires on time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from sequencer_node.core import api
from sequencer_node.core.sequencer import SequencerCore
from sequencer_node.sim.harness import Simulation

IDLE_MS = 200  # block time 100 ms, base round timeout 400 ms, sim tick 20 ms


def _count_ticks(sim: Simulation) -> Counter[int]:
    """Tick calls per instance from now on (the cores are wrapped, not replaced)."""
    ticks: Counter[int] = Counter()
    for inst in sim.instances:
        core = inst.core
        assert core is not None
        inner = core.tick

        def tick(
            now_ms: int, _inner: Callable[[int], list[api.Effect]] = inner, _idx: int = inst.idx
        ) -> list[api.Effect]:
            ticks[_idx] += 1
            return _inner(now_ms)

        core.tick = tick  # type: ignore[method-assign]
    return ticks


def _leader_of(sim: Simulation) -> int:
    core = sim.instances[0].core
    assert core is not None
    leader = core.status().leader
    return next(i.idx for i in sim.instances if i.key.public_key == leader)


def _core(sim: Simulation, idx: int) -> SequencerCore:
    core = sim.instances[idx].core
    assert core is not None
    return core


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_idle_follower_is_due_at_its_round_deadline_and_a_leader_at_once(seed: int) -> None:
    sim = Simulation(seed, idle_block_ms=IDLE_MS, epoch_length=1_000)
    sim.run_for(3_000)
    leader = _leader_of(sim)
    now = sim.local_now(sim.instances[leader])
    lead = _core(sim, leader)
    record = lead.outbox.record
    assert record is not None
    to_propose = lead.round > max(record.proposal_round, record.timeout_round)
    # Due at once while its proposal is to come; else at its deadline, as a follower.
    assert (lead.next_tick_ms(now) == now) == to_propose, (lead.round, record)
    for inst in sim.instances:
        if inst.idx == leader:
            continue
        core = _core(sim, inst.idx)
        due = core.next_tick_ms(now)
        assert now < due <= now + core.config.timeout_max_ms, (inst.name, now, due)
        # nothing of the core's is due before then: ticking early changes nothing
        assert core.tick(now) == []


def test_a_fresh_core_is_due_at_once() -> None:
    sim = Simulation(5)
    core = _core(sim, 1)
    assert core.next_tick_ms(1_234) == 1_234  # no round deadline yet


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_idle_followers_tick_a_fraction_as_often_and_the_chain_keeps_its_pace(seed: int) -> None:
    fine = Simulation(seed, idle_block_ms=IDLE_MS, epoch_length=1_000)
    fine.idle_tick_ms = fine.tick_ms  # the fixed 20 ms tick of before
    adaptive = Simulation(seed, idle_block_ms=IDLE_MS, epoch_length=1_000)
    for sim in (fine, adaptive):
        sim.run_for(1_000)
    fine_ticks, adaptive_ticks = _count_ticks(fine), _count_ticks(adaptive)
    start = [len(i.committed) for i in adaptive.instances]
    for sim in (fine, adaptive):
        sim.run_for(6_000)
    leader = _leader_of(adaptive)
    followers = [i for i in range(4) if i != leader]
    # the fixed tick: one per 20 ms per node; the leader ticks finely until it has proposed
    # in its round (about half of each 200 ms block here), several times a follower's count
    assert all(fine_ticks[i] >= 290 for i in range(4)), fine_ticks
    assert 100 <= adaptive_ticks[leader] <= 230, adaptive_ticks
    assert all(adaptive_ticks[leader] >= 3 * adaptive_ticks[i] for i in followers), adaptive_ticks
    # a follower: about one per idle tick (200 ms), not 300
    assert all(adaptive_ticks[i] <= 60 for i in followers), adaptive_ticks
    # the same pace of blocks (one per idle_block_ms: ~30 in 6 s), on every node
    made = [len(i.committed) - s for i, s in zip(adaptive.instances, start, strict=True)]
    assert all(25 <= m <= 33 for m in made), made
    adaptive.check_liveness()


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_round_timeout_fires_as_soon_as_with_the_fixed_tick(seed: int) -> None:
    """The leader crashes; the followers, ticking only at their deadlines, time out and
    certify the next block no later than they did with a tick every 20 ms (plus one tick)."""

    def recovery_ms(fixed: bool) -> int:
        sim = Simulation(seed, idle_block_ms=IDLE_MS, epoch_length=1_000)
        if fixed:
            sim.idle_tick_ms = sim.tick_ms
        sim.run_for(2_000)
        leader = _leader_of(sim)
        sim.crash(leader)
        survivors = [i for i in sim.instances if i.idx != leader]
        before = [len(i.committed) for i in survivors]
        start = sim.now
        assert sim.run_until(
            lambda: all(len(i.committed) > b for i, b in zip(survivors, before, strict=True)),
            10_000,
        )
        return sim.now - start

    fixed, adaptive = recovery_ms(True), recovery_ms(False)
    assert adaptive <= fixed + 20, (fixed, adaptive)


def test_a_member_of_a_table_derived_by_the_spam_check_itself_is_known() -> None:
    """The spam filter before a signature check derives this node's epoch table when none
    holds the signer; a member of the table it just derived is known, not dropped once.
    (The 20 Hz gauges used to derive every table first, which hid this; a node without a
    key now derives it only when a message asks.)"""
    sim = Simulation(1, epoch_length=1_000)
    sim.run_for(1_000)
    core = _core(sim, 0)
    member = sim.instances[1].key.public_key
    core.epochs._infos.clear()  # as on a node that has not derived its table yet
    assert not core.epochs.known_signer(member)
    assert core._known_signer(member)
    assert not core._known_signer(bytes(32))  # not a member of any table
