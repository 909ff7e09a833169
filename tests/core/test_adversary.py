"""The simulator's adversaries do what they claim: network rules and byzantine strategies.

Each attack is a few lines on top of :class:`~sequencer_node.sim.harness.Simulation`; these
tests check the tools themselves (a rule that holds messages holds them, a strategy that
equivocates is caught...), so the finding tests built on them prove something.
"""

from __future__ import annotations

from sequencer_node.sim.adversary import (
    HOLD,
    Delay,
    Equivocate,
    FreezeOrigin,
    Hold,
    OnlyTo,
    WithholdVotes,
    all_of,
    combine,
    is_a,
    negate,
    seed_with_leader,
    sent_by,
    sent_to,
    slow_node,
)
from sequencer_node.sim.harness import CHAIN_ID, Simulation
from sequencer_node.wire.certificates import verify_evidence
from sequencer_node.wire.messages import Block, Vote


def _leader_seed(sim: Simulation, who: int) -> bytes:
    table = {k.public_key: 1 for k in sim.keys}
    return seed_with_leader(table, sim.keys[who].public_key)


def test_verdicts_compose_hold_wins_and_delays_add() -> None:
    assert combine([]) is None
    assert combine([None, None]) is None
    assert combine([None, 5, 7]) == 12
    assert combine([3, HOLD, 4]) == HOLD


def test_held_messages_stay_out_until_released() -> None:
    sim = Simulation(21)
    rule = sim.add_rule(Hold(sent_to(3)))
    sim.run_for(2_000)
    assert len(sim.instances[3].committed) == 0
    assert len(sim.instances[0].committed) > 10
    assert sim.held, "the rule held nothing"
    rule.active = False
    assert sim.release_held() > 0
    assert not sim.held
    ok = sim.run_until(lambda: len(sim.instances[3].committed) > 10, 5_000)
    assert ok, [len(i.committed) for i in sim.instances]
    sim.check_liveness()


def test_only_to_and_predicates_pick_the_messages() -> None:
    sim = Simulation(22)
    # Votes of node 0 reach only node 1; every other message flows.
    sim.add_rule(OnlyTo(all_of(is_a(Vote), sent_by(0)), [1]))
    sim.add_rule(Hold(all_of(is_a(Block), sent_by(0), negate(sent_to(1, 2, 3)))))
    sim.run_for(2_000)
    held = list(sim.held)
    assert held
    assert all(isinstance(m, Vote) and s == 0 and d != 1 for s, d, m in held)
    sim.check_liveness()


def test_a_slow_node_is_slow_but_the_chain_runs() -> None:
    sim = Simulation(23)
    sim.add_rule(slow_node(2, 150))
    sim.add_rule(Delay(0, sent_by(1)))
    sim.run_for(3_000)
    assert min(len(i.committed) for i in sim.instances) > 15
    sim.check_liveness()


def test_equivocating_leader_strategy_is_caught() -> None:
    probe = Simulation(24)
    strat = Equivocate(to_a=[1], both_to=[3])
    sim = Simulation(24, strategies={0: [strat]}, leader_seed=_leader_seed(probe, 0))
    sim.run_for(3_000)
    assert strat.sent, "the leader never equivocated"
    assert ("proposal", sim.keys[0].public_key, strat.sent[0][0].header.round) in (
        sim.instances[3].evidence
    )
    found = [e for i in sim.honest() for e in i.core.evidence]  # type: ignore[union-attr]
    assert all(verify_evidence(ev, CHAIN_ID) == sim.keys[0].public_key for ev in found)
    sim.check_liveness()


def test_withheld_votes_never_reach_a_certificate() -> None:
    strat = WithholdVotes()
    sim = Simulation(25, strategies={3: [strat]})
    sim.run_for(3_000)
    assert strat.withheld > 0
    pk3 = sim.keys[3].public_key
    store = sim.instances[0].store
    assert len(store) > 15
    assert all(pk3 not in {e.signer for e in cb.qc.signatures} for cb in store)
    sim.check_liveness()


def test_frozen_origin_leader_keeps_its_parents_origin() -> None:
    probe = Simulation(26)
    strat = FreezeOrigin()
    sim = Simulation(26, strategies={0: [strat]}, leader_seed=_leader_seed(probe, 0),
                     epoch_length=1_000)  # fmt: skip
    sim.run_for(3_000)
    assert len(strat.proposed) > 15
    assert {origin for _, origin, _ in strat.proposed} == {0}
    assert max(fin for _, _, fin in strat.proposed) > 5  # L1 finality did move
