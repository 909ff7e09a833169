"""Whole-network restarts around an epoch change, from persisted state only (issue 11, finding 6
and "Durability before votes, and recovery"; docs/protocol.md, section 7 "Restart").

Every node is killed at once at a point around an epoch boundary whose stake table differs from
the one before (a node dropped or added), and comes back as the node process does
(:class:`~sequencer_node.sim.harness.NodeRestart`): from its record, its newest chain snapshot,
the stored blocks, the stake snapshots it stored (or none), its journal of acknowledged
transactions; its L1 view only after the watcher's first poll; and peers that drop a repeat of
a gossip message they saw (the p2p seen-cache). The chain must resume and every acknowledged
transaction must be committed.

The fault soak's stall (height 2,406, all four nodes timed out in one round and no TC ever
formed) is the ``boundary`` cases without stored stake snapshots: the timeouts of the round
reached the restarted cores before the L1 snapshot of their epoch, were dropped as not
judgeable, and their retransmissions were dropped as repeats by the p2p layer. The core now
parks such messages and judges them again when L1 data or blocks arrive.
``SEQ_SIM_PROFILE=soak`` sweeps ``SEQ_RESTART_SEEDS`` seeds (default 40) per case.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

import pytest

from sequencer_node.core import api
from sequencer_node.core.api import SyncResponse
from sequencer_node.core.election import epoch_seed, weighted_order
from sequencer_node.sim.adversary import HOLD, NetRule, Verdict
from sequencer_node.sim.harness import NetParams, NodeRestart, Simulation, block_tx_hashes
from sequencer_node.sim.instance import Instance
from sequencer_node.sim.scenarios import run_random
from sequencer_node.wire.messages import Block, TimeoutMessage, Vote

EPOCH = 8
#: The L1 epoch from which the new stake table holds.
CHANGE_AT = 3
SOAK = os.environ.get("SEQ_SIM_PROFILE") == "soak"
SEEDS = int(os.environ.get("SEQ_RESTART_SEEDS", "40" if SOAK else "1"))

#: (stakes before, stakes from L1 epoch CHANGE_AT on)
CHANGES = {
    "drop": ((1, 1, 1, 1), (1, 1, 1, 0)),
    "add": ((1, 1, 1, 0), (1, 1, 1, 1)),
}
#: Where the crash falls, relative to L = the last height of the epoch before the change:
#: committed heights L-2 .. L+2 (L: the epoch's last block committed, not yet the first of
#: the next one), or "anchored": the block that names the new table is committed and its L1
#: snapshot is not finalized yet.
MOMENTS = ("anchored", -2, -1, 0, 1, 2)


def _changed_epoch(sim: Simulation) -> int | None:
    """The first L2 epoch judged by the new table, once its anchor is committed."""
    inst = sim.instances[0]
    core = inst.core
    if core is None:
        return None
    distance = int(sim.config_kw["seed_anchor_epochs"])
    for cb in inst.store:
        h = cb.block.header
        if h.height == h.epoch * EPOCH + 1 and core.epochs.snapshot_epoch(h.l1_origin) >= CHANGE_AT:
            return h.epoch + distance
    return None


def _top(sim: Simulation) -> int:
    return max(len(i.committed) for i in sim.instances)


def _traffic(sim: Simulation) -> Callable[[], None]:
    """A client per user sending a transfer to a random live node every 300 ms or so."""
    due = [0] * len(sim.users)

    def step() -> None:
        for u in range(len(sim.users)):
            if sim.now >= due[u]:
                live = [i.idx for i in sim.instances if i.core is not None]
                if live:
                    sim.submit_tx(u, sim.rng.choice(live))
                due[u] = sim.now + sim.rng.randint(150, 450)

    return step


def _run_until(
    sim: Simulation, load: Callable[[], None], cond: Callable[[], bool], ms: int
) -> bool:
    end = sim.now + ms
    while sim.now < end:
        if cond():
            return True
        load()
        sim.step()
    return cond()


def _restart_all(seed: int, change: str, moment: int | str, stored: bool) -> None:
    before, after = CHANGES[change]
    rng_probe = Simulation(seed, stakes=before, epoch_length=EPOCH)  # for the random knobs
    l1_delay = rng_probe.rng.randint(200, 1_500)
    sim = Simulation(
        seed,
        stakes=before,
        epoch_length=EPOCH,
        net=NetParams(dedup_ms=300_000),
        node_restart=NodeRestart(l1_delay_ms=l1_delay, snapshot_every=5, stored_snapshots=stored),
    )
    sim.change_stakes(CHANGE_AT, after)
    load = _traffic(sim)
    assert _run_until(sim, load, lambda: _changed_epoch(sim) is not None, 30_000)
    changed = _changed_epoch(sim)
    assert changed is not None
    if moment != "anchored":
        assert isinstance(moment, int)
        target = changed * EPOCH + moment  # changed * EPOCH: the last height before it
        assert _run_until(sim, load, lambda: _top(sim) >= target, 30_000), "no progress"
    crash_at = [len(i.committed) for i in sim.instances]
    for inst in sim.instances:
        sim.crash(inst.idx)
    # Down for a while, then back one after the other (a whole-network restart).
    sim.run_for(sim.rng.randint(100, 2_000))
    order = list(range(len(sim.instances)))
    sim.rng.shuffle(order)
    for idx in order:
        sim.restart(idx)
        sim.run_for(sim.rng.randint(0, 300))
    members = [i for i in sim.instances if i.core is not None]
    base = max(len(i.committed) for i in members)
    bound = sim.liveness_bound_ms()

    def resumed(insts: list[Instance]) -> bool:
        return all(len(i.committed) > max(base, changed * EPOCH) + 2 for i in insts)

    where = (f"seed {seed}, {change}, moment {moment}, stored snapshots {stored}, crash at "
             f"{crash_at}, new table from epoch {changed}")  # fmt: skip
    if not _run_until(sim, load, lambda: resumed(members), bound + 10_000):
        heights = [len(i.committed) for i in sim.instances]
        rounds = [i.core.round if i.core else None for i in sim.instances]
        pytest.fail(f"STALL after the restart ({where}): heights {heights}, rounds {rounds}")
    # Every acknowledged transaction ends in the chain (the clients stop first).
    committed: set[bytes] = set()

    def all_in() -> bool:
        committed.clear()
        for cb in sim.instances[0].store:
            committed.update(block_tx_hashes(cb.block))
        return set(sim.acked) <= committed

    assert _run_until(sim, lambda: None, all_in, 20_000), (
        f"{len(set(sim.acked) - committed)} of {len(sim.acked)} acknowledged transactions "
        f"never committed ({where})"
    )
    assert len(sim.acked) > 10


@pytest.mark.parametrize("moment", MOMENTS)
@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("stored", [False, True], ids=["no-stored-snapshots", "stored"])
def test_whole_network_restart_around_an_epoch_change_resumes(
    change: str, moment: int | str, stored: bool
) -> None:
    for seed in range(SEEDS):
        _restart_all(seed + 1, change, moment, stored)


class _OnlyAAdvances(NetRule):
    """Round ``r`` fails (its proposal reaches nobody); only node A gets the round's timeouts,
    forms TC(r) and proposes in round r + 1; its proposal (which carries the TC) and its
    catch-up answers (which would too) reach nobody."""

    def __init__(self, r: int, a: int) -> None:
        self.r, self.a = r, a

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        if isinstance(msg, Block) and msg.header.round in (self.r, self.r + 1):
            return HOLD
        if isinstance(msg, TimeoutMessage) and msg.timeout.round >= self.r and dst.idx != self.a:
            return HOLD
        if isinstance(msg, SyncResponse) and src.idx == self.a:
            return HOLD
        return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_node_a_round_ahead_shows_the_others_its_tc_after_a_whole_network_restart(
    seed: int,
) -> None:
    """Node A moved to round r + 1 by a TC of round r that only it formed, proposed there, and
    every node was killed. The others, in round r, cannot form TC(r) again (A may not sign a
    timeout of round r any more); A must show them the TC, which the record does not keep: a
    restart learns it from A's stored proposal (it stalled for good before)."""
    stakes = (2, 1, 1, 1)  # A (node 0) holds 2/5: no TC of any round without it
    keys = Simulation(seed, stakes=stakes).keys
    table = {k.public_key: s for k, s in zip(keys, stakes, strict=True)}
    # A is second in epoch 0's order: the leader after the first leader's failed round.
    leader_seed = next(
        b for i in range(10_000)
        if (b := i.to_bytes(32, "big"))
        and weighted_order(table, epoch_seed(b, 0))[1] == keys[0].public_key
    )  # fmt: skip
    sim = Simulation(seed, stakes=stakes, epoch_length=1_000, leader_seed=leader_seed,
                     net=NetParams(dedup_ms=300_000), node_restart=NodeRestart(200))  # fmt: skip
    sim.run_for(1_000)
    probe = sim.instances[0].core
    assert probe is not None
    r = probe.round + 3
    # The stable leader leads until round r fails; then the next one in the order, A.
    order = probe.epoch_info(0)
    stable = probe.status().leader
    assert order is not None
    assert stable is not None
    leader = order.order[(order.order.index(stable) + 1) % len(order.order)]
    a = next(i.idx for i in sim.instances if i.pk == leader)
    assert a == 0
    sim.add_rule(_OnlyAAdvances(r, a))

    def a_proposed() -> bool:
        rec = sim.instances[a].durable
        return rec is not None and rec.proposal_round == r + 1

    assert sim.run_until(a_proposed, 10_000), "A never proposed in round r + 1"
    assert all(i.core is not None and i.core.round == r for i in sim.instances if i.idx != a)
    for inst in sim.instances:
        sim.crash(inst.idx)
    sim.rules.clear()
    sim.held.clear()  # what was in flight died with the connections
    for inst in sim.instances:
        sim.restart(inst.idx)
    sim.check_liveness()


def test_the_soak_sweeps_stall_a_tc_only_two_nodes_formed_after_a_restart() -> None:
    """The soak sweep's one stall (seed 31: a node added, the crash at L + 1, no stored stake
    snapshots): nodes 2 and 3 formed TC(66) and moved to round 67, signed a timeout there and
    were killed; nodes 0 and 1 never formed TC(66). After the restart 2 and 3 had no TC (the
    record did not keep it), so their timeouts of round 67 could not move 0 and 1, and the
    retransmitted timeouts of round 66 were dropped as repeats: stalled at heights 57, rounds
    66, 66, 67, 67. Now the record keeps the TC a node entered its round by, and its timeout
    carries it (``TimeoutMessage.last_tc``)."""
    _restart_all(31, "add", 1, False)


class _TwoAdvance(NetRule):
    """Round ``r`` fails and only nodes ``ab`` get its timeouts: they alone form TC(r). Every
    other way the others could learn it is held back: round r + 1's proposal (it carries the
    TC) and the catch-up answers of ``ab`` (they would too)."""

    def __init__(self, r: int, ab: tuple[int, int]) -> None:
        self.r, self.ab = r, ab
        self.carried: list[TimeoutMessage] = []

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        if isinstance(msg, Block) and msg.header.round in (self.r, self.r + 1):
            return HOLD
        if isinstance(msg, TimeoutMessage) and msg.timeout.round == self.r:
            return None if dst.idx in self.ab else HOLD
        if isinstance(msg, SyncResponse) and src.idx in self.ab:
            return HOLD
        if isinstance(msg, TimeoutMessage) and msg.last_tc is not None:
            self.carried.append(msg)
        return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_timeout_carries_the_tc_its_sender_entered_the_round_by(seed: int) -> None:
    """Two of four nodes formed TC(r), the other two never saw it: the timeouts of round r + 1
    of the two ahead carry it, so the two behind move on, time out in r + 1 too, and the TC of
    r + 1 forms (before, 2 of 4 timeouts in r + 1 never made one: stalled for good)."""
    sim = Simulation(seed, epoch_length=1_000, net=NetParams(dedup_ms=300_000))
    sim.run_for(1_000)
    probe = sim.instances[0].core
    assert probe is not None
    r = probe.round + 3
    rule = _TwoAdvance(r, (0, 1))
    sim.add_rule(rule)
    # Past the failed rounds r and r + 1, with new blocks certified after them.
    base = max(len(i.committed) for i in sim.instances)

    def resumed() -> bool:
        return all(
            i.core is not None and i.core.round > r + 2 and len(i.committed) > base + 4
            for i in sim.instances
        )

    assert sim.run_until(resumed, 60_000), (
        f"stalled: rounds {[i.core.round if i.core else None for i in sim.instances]}"
    )
    tc_rounds = {m.last_tc.round for m in rule.carried if m.last_tc is not None}
    assert r in tc_rounds  # the two behind learned TC(r) from a timeout of round r + 1


def test_a_timeout_carrying_a_tc_of_another_round_is_refused() -> None:
    """A timeout of round t may carry only the TC of round t - 1 (the one its sender entered
    by); anything else is a malformed message, charged to the peer."""
    sim = Simulation(1, epoch_length=1_000, net=NetParams(dedup_ms=300_000))
    sim.run_for(1_000)
    probe = sim.instances[0].core
    assert probe is not None
    rule = _TwoAdvance(probe.round + 3, (0, 1))
    sim.add_rule(rule)
    assert sim.run_until(lambda: bool(rule.carried), 30_000)
    good = rule.carried[0]
    assert good.last_tc is not None
    bad = TimeoutMessage(
        good.timeout, good.high_qc, replace(good.last_tc, round=good.timeout.round)
    )
    target = sim.instances[3]
    assert target.core is not None
    out = target.core.handle(api.MessageReceived(good.timeout.voter, bad), sim.now)
    refused = [e for e in out if isinstance(e, api.PeerMisbehaved)]
    assert refused
    assert refused[0].peer == good.timeout.voter
    assert "TC of another round" in refused[0].offense.detail


class _LoseATimeout(NetRule):
    """Round r - 1's votes reach only node ``q``: q alone forms QC(r - 1), the others time out
    and enter round r by TC(r - 1), still at QC(r - 2). Round r fails (its proposal reaches
    nobody), node A's timeout of round r reaches nobody, and A gets no timeout that carries
    QC(r - 1) (they are kept in ``carried``) nor a catch-up answer: A times out reporting
    QC(r - 2)."""

    def __init__(self, r: int, a: int, q: int) -> None:
        self.r, self.a, self.q = r, a, q
        self.carried: list[tuple[bytes, TimeoutMessage]] = []

    def decide(self, src: Instance, dst: Instance, msg: object) -> Verdict:
        if isinstance(msg, Block) and msg.header.round == self.r:
            return HOLD
        if isinstance(msg, Vote) and msg.round == self.r - 1 and dst.idx != self.q:
            return HOLD
        if isinstance(msg, TimeoutMessage) and msg.timeout.round == self.r:
            if src.idx == self.a:
                return HOLD
            qc = msg.high_qc
            if dst.idx == self.a and qc is not None and qc.round == self.r - 1:
                self.carried.append((src.pk, msg))
                return HOLD
        if isinstance(msg, SyncResponse) and dst.idx == self.a:
            return HOLD
        return None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_node_restarted_after_timing_out_sends_that_timeout_again(seed: int) -> None:
    """Found by ``scripts/sweep random --soak --node-restart`` (seed 85222, stalled for good):
    A timed out in round r reporting QC(r - 2), the timeout was lost, A restarted and learned
    QC(r - 1) before its deadline. A timeout reporting QC(r - 1) would conflict with the one
    it signed (the watermark refuses it), so A sent none, and without A no TC of round r could
    form. A restarted node must sign the very timeout its record names again."""
    sim = Simulation(seed, epoch_length=1_000, net=NetParams(dedup_ms=300_000),
                     node_restart=NodeRestart())  # fmt: skip
    sim.run_for(1_000)
    probe = sim.instances[1].core
    assert probe is not None
    stable = probe.status().leader
    r = probe.round + 3
    q = next(i.idx for i in sim.instances if i.pk == stable)
    a = next(i for i in range(4) if i != q)
    c = next(i for i in range(4) if i not in (a, q))
    rule = _LoseATimeout(r, a, q)
    sim.add_rule(rule)

    # Node c goes down once round r starts (it helped form TC(r - 1)): TC(r) needs A.
    def a_in_round_r() -> bool:
        core = sim.instances[a].core
        return core is not None and core.round == r

    assert sim.run_until(a_in_round_r, 30_000), "A never entered round r"
    sim.crash(c)

    def a_timed_out() -> bool:
        rec = sim.instances[a].durable
        return rec is not None and rec.timeout_round == r

    assert sim.run_until(a_timed_out, 30_000), "A never timed out in round r"
    rec = sim.instances[a].durable
    assert rec is not None
    assert rec.high_qc is not None
    assert rec.high_qc.round == r - 2  # what A's lost timeout reported
    assert sim.run_until(lambda: bool(rule.carried), 10_000), "no timeout carried QC(r - 1)"
    sim.crash(a)
    sim.rules.clear()
    sim.held.clear()  # A's timeout died with its connections
    sim.restart(a)
    sender, carrying = rule.carried[0]
    sim.inject(a, sender, carrying)  # A learns QC(r - 1) before its round's deadline
    base = max(len(i.committed) for i in sim.instances)

    def resumed() -> bool:
        return all(
            i.core is not None and i.core.round > r + 1 and len(i.committed) > base + 3
            for i in sim.instances
            if i.idx != c
        )

    assert sim.run_until(resumed, 60_000), (
        f"stalled: rounds {[i.core.round if i.core else None for i in sim.instances]}"
    )


def test_the_random_sweep_seed_that_stalled_on_a_lost_timeout_recovers() -> None:
    # The schedule the test above reduces: two of five nodes restarted after timing out in
    # round 21 with QC(19), then learned QC(20); no TC of round 21 could form without them.
    out = run_random(85222, fault_ms=20_000, actions=40, node_restart=NodeRestart())
    assert min(out.heights) > 12
