"""Seeded fault schedules for the simulator: the seed sweep and the soak profile use these.

A scenario picks, from its seed, a network (4 to 7 sequencers, stakes), at most one faulty
key holding < 1/3 of the stake (equivocating leader, double voter, twin, silent, malformed
sender), network parameters, and a schedule of faults (partitions, one-way cuts, crashes and
restarts, pauses, clock skew, stake changes, transactions). Then faults stop and liveness is
asserted. Every step is checked by :class:`~sequencer_node.sim.harness.Simulation`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sequencer_node.sim.adversary import Equivocate, FreezeOrigin, WithholdVotes, slow_node
from sequencer_node.sim.harness import NetParams, NodeRestart, Simulation
from sequencer_node.sim.instance import Strategy
from sequencer_node.sim.rng import Rng

BEHAVIOURS = ("equivocate", "double_vote", "twin", "silent", "malformed", "none")


@dataclass(frozen=True)
class Outcome:
    seed: int
    heights: tuple[int, ...]
    recovery_ms: int
    behaviour: str


@dataclass(frozen=True)
class SweepProfile:
    """How long a sweep's fault schedules run: the CI profile, or the soak profile's longer ones
    (``scripts/sweep --soak``, ``SEQ_SIM_PROFILE=soak``)."""

    random_fault_ms: int
    random_actions: int
    stake_fault_ms: int


CI_PROFILE = SweepProfile(random_fault_ms=6_000, random_actions=12, stake_fault_ms=6_000)
SOAK_PROFILE = SweepProfile(random_fault_ms=20_000, random_actions=40, stake_fault_ms=15_000)


def _stakes(rng: Rng, n: int) -> list[int]:
    while True:
        stakes = [rng.randint(1, 10) for _ in range(n)]
        total = sum(stakes)
        # The faulty key (index 0 by convention below) must hold < 1/3 of the stake.
        if 3 * stakes[0] < total:
            return stakes


def run_random(
    seed: int, *, fault_ms: int = 6_000, actions: int = 12, node_restart: NodeRestart | None = None
) -> Outcome:
    """One seeded run of random faults, then liveness. ``node_restart``: crashed nodes come back
    rebuilt from what a node keeps on disk (:class:`NodeRestart`), not from memory."""
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
                     epoch_length=rng.randint(4, 10), node_restart=node_restart)  # fmt: skip
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


# --- stake changes at every epoch boundary ------------------------------------------------------

#: How the stake table may change between two L1 epochs (anything the L1 allows in one epoch).
CHANGES = ("same", "reweigh", "half", "full", "register")
STAKE_BEHAVIOURS = ("none", "equivocate", "twin", "withhold", "silent", "freeze")


@dataclass(frozen=True)
class StakeOutcome:
    seed: int
    heights: tuple[int, ...]
    behaviour: str
    changes: tuple[str, ...]
    jailed_honest: tuple[str, ...]
    #: Honest instances named by a downtime certificate for a window in which no partition
    #: cut them off from the larger side (one that was cut off was down, as far as the network
    #: could tell).
    wrongly_jailed: tuple[str, ...] = ()


def _next_table(rng: Rng, table: list[int], change: str) -> list[int]:
    """A new stake per key (0: not in the table) after ``change``. Key 0 is the faulty one."""
    n = len(table)
    members = [i for i in range(n) if table[i] > 0]
    outside = [i for i in range(n) if table[i] == 0]
    new = list(table)
    if change == "reweigh":
        new = [rng.randint(1, 5) if s else 0 for s in table]
    elif change in ("half", "full"):
        leaving = list(members)
        rng.shuffle(leaving)
        leaving = leaving[: len(members) if change == "full" else max(1, len(members) // 2)]
        joining = list(outside)
        rng.shuffle(joining)
        for i in leaving:
            new[i] = 0
        for i in joining[: max(len(leaving), 4 - (len(members) - len(leaving)))]:
            new[i] = rng.randint(1, 5)
    elif change == "register":
        for i in outside[: rng.randint(1, max(1, len(outside)))]:
            new[i] = rng.randint(1, 5)
    if sum(1 for s in new if s > 0) < 4:
        return table  # the L1 keeps enough sequencers staked (the sweep needs > 3 for f < 1/3)
    return new


def _cap_faulty(table: list[int], faulty: int, majority: bool) -> list[int]:
    """Give the faulty keys (0..faulty-1) < 1/3 of the stake, or > 1/3 when ``majority``."""
    t = list(table)
    honest = sum(s for i, s in enumerate(t) if i >= faulty)
    for i in range(faulty):
        if majority:
            t[i] = max(1, honest)  # each alone holds half of the honest stake or more
        elif t[i] > 0:
            t[i] = max(1, min(t[i], (honest - 1) // (2 * faulty)))
            if 3 * sum(t[:faulty]) >= sum(t):
                t[i] = 0
    return t


def run_stake_sweep(seed: int, *, fault_ms: int = 6_000, majority: bool = False) -> StakeOutcome:
    """One seeded run with a new stake table at every L1 epoch (so at every L2 epoch boundary).

    The table changes by any amount the L1 allows: reweighing, half of the stake moving, a
    full rotation (every member unbonds, new sequencers register), new registrations. One key
    is faulty with < 1/3 of every table (``majority``: two twin keys with > 1/3, the negative
    control that must fork). The network delays, drops and briefly partitions; one honest node
    may be slow by up to a quarter of the round timeout. Then liveness is asserted.
    """
    rng = Rng(seed ^ 0x57A4E)
    n = rng.randint(6, 8)
    behaviour = "twin" if majority else rng.choice(STAKE_BEHAVIOURS)
    faulty = 2 if majority else (0 if behaviour == "none" else 1)
    table = [rng.randint(1, 5) if i < 4 else 0 for i in range(n)]
    sim = _stake_sim(seed, rng, _cap_faulty(table, faulty, majority), behaviour, majority)
    epochs = fault_ms // (sim.l1_block_ms * sim.l1_slots) + 4
    changes: list[str] = []
    for l1_epoch in range(1, epochs):
        change = rng.choice(CHANGES)
        table = _next_table(rng, table, change)
        changes.append(change)
        sim.change_stakes(l1_epoch, _cap_faulty(table, faulty, majority))
    cut_off = _network_faults(sim, rng, fault_ms, split_twins=majority)
    sim.check_liveness()
    return StakeOutcome(seed, tuple(len(i.committed) for i in sim.instances), behaviour,
                        tuple(changes), tuple(sim.jailed_honest()),
                        _wrongly_jailed(sim, cut_off))  # fmt: skip


def _wrongly_jailed(sim: Simulation, cut_off: list[tuple[str, int, int]]) -> tuple[str, ...]:
    wrong: set[str] = set()
    for _, cert in sim.downtime_certificates:
        r = cert.report
        for inst in sim.honest():
            excused = any(
                name == inst.name and lo <= r.to_height and hi >= r.from_height
                for name, lo, hi in cut_off
            )
            if inst.pk == r.offender and not excused:
                wrong.add(inst.name)
    return tuple(sorted(wrong))


def _stake_sim(
    seed: int, rng: Rng, stakes: list[int], behaviour: str, majority: bool
) -> Simulation:
    strategies: dict[int, list[Strategy]] = {}
    byz: dict[int, list[str]] = {}
    twins: list[int] = [0, 1] if majority else []
    if behaviour == "twin" and not majority:
        twins = [0]
    elif behaviour == "equivocate":
        strategies = {0: [Equivocate()]}
    elif behaviour == "withhold":
        strategies = {0: [WithholdVotes()]}
    elif behaviour == "freeze":
        strategies = {0: [FreezeOrigin()]}
    elif behaviour == "silent":
        byz = {0: ["silent"]}
    net = NetParams(drop=rng.choice((0.0, 0.01, 0.05)), delay_min_ms=1,
                    delay_max_ms=rng.choice((10, 30, 60)))  # fmt: skip
    return Simulation(seed, stakes=stakes, byzantine=byz, twins=twins, strategies=strategies,
                      net=net, epoch_length=rng.choice((4, 8)), downtime_window=20)  # fmt: skip


def _network_faults(
    sim: Simulation, rng: Rng, fault_ms: int, *, split_twins: bool
) -> list[tuple[str, int, int]]:
    """Delays, a slow node, short partitions. Returns (name, first height, last height) of
    every time a partition cut a node off from the larger side (heights the chain had then)."""
    honest = [i.idx for i in sim.instances if i.honest]
    cut_off: list[tuple[str, int, int]] = []
    if rng.chance(0.5):
        # One honest node slower than the rest by up to a quarter of the round timeout.
        quarter = sim.config_kw["timeout_base_ms"] // 4
        sim.add_rule(slow_node(rng.choice(honest), rng.randint(1, quarter)))
    step = 500
    for _ in range(fault_ms // step):
        if split_twins and rng.chance(0.5):
            # Twins on opposite sides, every other node on a random side (Twins).
            sides: list[list[int]] = [[], []]
            for inst in sim.instances:
                twin = inst.name[-1] in "ab"
                sides[(inst.name[-1] == "b") if twin else rng.randint(0, 1)].append(inst.idx)
            sim.partition(sides)
            sim.run_for(rng.randint(200, 600))
            sim.heal()
        elif rng.chance(0.25):
            members = [i.idx for i in sim.instances]
            rng.shuffle(members)
            cut = rng.randint(1, len(members) - 1)
            sim.partition([members[:cut], members[cut:]])
            small = members[:cut] if 2 * cut <= len(members) else []
            small += members[cut:] if 2 * cut >= len(members) else []
            start = max(len(i.committed) for i in sim.instances)
            sim.run_for(rng.randint(100, 400))
            sim.heal()
            # The node catches up within a few heights; its misses there are the partition's.
            end = max(len(i.committed) for i in sim.instances) + 4
            cut_off += [(sim.instances[i].name, start, end) for i in small]
        if rng.chance(0.3):
            sim.submit_tx(rng.randint(0, 3), rng.choice(honest))
        sim.run_for(step)
    return cut_off
