"""Twins-style scenario generator: enumerate small adversarial schedules, check safety on each.

Twins (Bano et al., "Twins: BFT Systems Made Robust", OPODIS 2021; Diem/Aptos ``twins``)
emulates byzantine behaviour without writing byzantine code: a faulty key runs on two
instances (twins), each an honest core, and the network partitions the nodes so that the twins
see different things and sign conflicting messages. Enumerating every small schedule of
partitions and leaders, instead of sampling them, finds the corner cases a random sweep misses.

Here a scenario is:

* the twin key's position in the leader schedule (it leads the first round when 0, or after
  that many failed rounds; the genesis seed is chosen to put it there, and the epoch is long
  enough that one schedule covers the run);
* for each of a few phases (about one round timeout each), a split: every other node is on the
  side of twin ``a`` or of twin ``b`` (the twins never talk to each other), or no partition.

Each run checks agreement (and the simulator's other invariants) after every delivery, then
heals and asserts liveness. With one twin key of four (1/4 of the stake) no scenario may fork;
with two (1/2) some must (the negative control).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sequencer_node.sim.adversary import seed_with_leader
from sequencer_node.sim.harness import Simulation
from sequencer_node.wire.crypto import SigningKey

#: A split of the non-twin nodes: side (0: with the ``a`` twins, 1: with the ``b`` twins) of
#: each, in key order; the empty tuple means no partition in that phase.
Split = tuple[int, ...]


@dataclass(frozen=True)
class TwinsScenario:
    leader_position: int
    phases: tuple[Split, ...]

    def describe(self) -> str:
        parts = ["-".join(map(str, s)) if s else "all" for s in self.phases]
        return f"leader@{self.leader_position}:{'/'.join(parts)}"


def splits(others: int) -> list[Split]:
    """Every way to put ``others`` nodes on the two sides, and 'no partition'."""
    return [(), *itertools.product((0, 1), repeat=others)]


def enumerate_scenarios(
    *, keys: int = 4, twin_keys: int = 1, phases: int = 3, positions: Sequence[int] | None = None
) -> Iterator[TwinsScenario]:
    """All scenarios, in a fixed order (leader position outermost)."""
    others = keys - twin_keys
    options = splits(others)
    for pos in positions if positions is not None else range(keys):
        for combo in itertools.product(options, repeat=phases):
            yield TwinsScenario(pos, combo)


def count_scenarios(*, keys: int = 4, twin_keys: int = 1, phases: int = 3) -> int:
    return int(keys * len(splits(keys - twin_keys)) ** phases)


def _groups(sim: Simulation, twin_keys: int, split: Split) -> list[list[int]]:
    sides: list[list[int]] = [[], []]
    others = iter(split)
    for inst in sim.instances:
        key_index = int(inst.name[1:].rstrip("ab"))
        if key_index < twin_keys:
            sides[0 if inst.name.endswith("a") else 1].append(inst.idx)
        else:
            sides[next(others)].append(inst.idx)
    return sides


def run_twins(
    scenario: TwinsScenario,
    *,
    seed: int = 0,
    keys: int = 4,
    twin_keys: int = 1,
    phase_ms: int = 500,
) -> Simulation:
    """Run one scenario; raises :class:`~sequencer_node.sim.harness.Violation` on a failure."""
    names = [SigningKey.deterministic(f"sim-node-{i}") for i in range(keys)]
    table = {k.public_key: 1 for k in names}
    # Twin key 0 takes the asked position in the schedule.
    leader_seed = seed_with_leader(table, names[0].public_key, scenario.leader_position)
    sim = Simulation(
        seed,
        stakes=(1,) * keys,
        twins=range(twin_keys),
        epoch_length=1_000,
        leader_seed=leader_seed,
    )
    for split in scenario.phases:
        if split:
            sim.partition(_groups(sim, twin_keys, split))
        else:
            sim.heal()
        sim.run_for(phase_ms)
    sim.check_liveness()
    return sim


__all__ = [
    "Split",
    "TwinsScenario",
    "count_scenarios",
    "enumerate_scenarios",
    "run_twins",
    "splits",
]
