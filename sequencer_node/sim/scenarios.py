"""Seeded fault schedules for the simulator: the seed sweep and the soak profile use these.

A scenario picks, from its seed, a network (4 to 7 sequencers, stakes), at most one faulty
key holding < 1/3 of the stake (equivocating leader, double voter, twin, silent, malformed
sender), network parameters, and a schedule of faults (partitions, one-way cuts, crashes and
restarts, pauses, clock skew, stake changes, transactions). Then faults stop and liveness is
asserted. Every step is checked by :class:`~sequencer_node.sim.harness.Simulation`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sequencer_node.sim.harness import NetParams, Simulation
from sequencer_node.sim.rng import Rng

BEHAVIOURS = ("equivocate", "double_vote", "twin", "silent", "malformed", "none")


@dataclass(frozen=True)
class Outcome:
    seed: int
    heights: tuple[int, ...]
    recovery_ms: int
    behaviour: str


def _stakes(rng: Rng, n: int) -> list[int]:
    while True:
        stakes = [rng.randint(1, 10) for _ in range(n)]
        total = sum(stakes)
        # The faulty key (index 0 by convention below) must hold < 1/3 of the stake.
        if 3 * stakes[0] < total:
            return stakes


def run_random(seed: int, *, fault_ms: int = 6_000, actions: int = 12) -> Outcome:
    rng = Rng(seed ^ 0x5EED)
    n = rng.randint(4, 6)
    stakes = _stakes(rng, n)
    behaviour = rng.choice(BEHAVIOURS)
    byz: dict[int, list[str]] = {}
    twins: list[int] = []
    if behaviour == "twin":
        twins = [0]
        byz = {0: ["equivocate"]}
    elif behaviour != "none":
        byz = {0: [behaviour]}
    net = NetParams(
        drop=rng.choice((0.0, 0.02, 0.1, 0.3)),
        duplicate=rng.choice((0.0, 0.05, 0.3)),
        replay=rng.choice((0.0, 0.1, 0.5)),
        delay_min_ms=1,
        delay_max_ms=rng.choice((10, 40, 150)),
    )
    sim = Simulation(seed, stakes=stakes, byzantine=byz, twins=twins, net=net,
                     epoch_length=rng.randint(4, 10))  # fmt: skip
    honest = [i.idx for i in sim.instances if i.honest]
    step_ms = max(1, fault_ms // actions)
    for _ in range(actions):
        action = rng.randint(0, 9)
        if action == 0:
            members = [i.idx for i in sim.instances]
            rng.shuffle(members)
            cut = rng.randint(1, len(members) - 1)
            sim.partition([members[:cut], members[cut:]])
        elif action == 1:
            sim.heal()
        elif action == 2:
            a, b = rng.choice(honest), rng.choice(honest)
            if a != b:
                sim.cut_one_way(a, b)
        elif action == 3:
            sim.crash(rng.choice(honest))
        elif action == 4:
            for i in honest:
                sim.restart(i)
        elif action == 5:
            sim.pause(rng.choice(honest), rng.randint(100, 2_000))
        elif action == 6:
            sim.set_skew(rng.choice(honest), rng.randint(-300, 300))
        elif action == 7:
            try:
                new = _stakes(rng, len(stakes))
                sim.change_stakes(sim._finalized_epoch + 2, new)
            except ValueError:
                pass
        else:
            for _ in range(rng.randint(1, 5)):
                sim.submit_tx(rng.randint(0, 3), rng.choice(honest))
            if rng.chance(0.5):
                sim.queue_forced(rng.randint(0, 3))
        sim.run_for(step_ms)
    recovery = sim.check_liveness()
    heights = tuple(len(i.committed) for i in sim.instances)
    return Outcome(seed, heights, recovery, behaviour)
