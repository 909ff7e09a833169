"""Twins-style enumeration (sequencer_node.sim.twins): safety on every small schedule.

CI runs an evenly spread sample of the 2,916 scenarios (4 keys, one twin key, 3 phases of
partitions, 4 leader positions); ``SEQ_SIM_PROFILE=soak`` runs all of them
(``SEQ_TWINS_PHASES=4`` for 26,244). Replay one: ``SEQ_TWINS_SCENARIO=<index>``.
"""

from __future__ import annotations

import os

import pytest

from sequencer_node.sim.harness import Violation
from sequencer_node.sim.twins import count_scenarios, enumerate_scenarios, run_twins, splits

SOAK = os.environ.get("SEQ_SIM_PROFILE") == "soak"
PHASES = int(os.environ.get("SEQ_TWINS_PHASES", "3"))
ONE = os.environ.get("SEQ_TWINS_SCENARIO")
#: CI runs every STRIDE-th scenario of each leader position (about 160 in all).
STRIDE = 1 if SOAK or ONE is not None else 17


def test_the_generator_enumerates_every_split_and_leader() -> None:
    assert len(splits(3)) == 9  # 2**3 sides for the three other nodes, and no partition
    all_ = list(enumerate_scenarios(phases=2))
    assert len(all_) == count_scenarios(phases=2) == 4 * 81
    assert len(set(all_)) == len(all_)
    assert {s.leader_position for s in all_} == {0, 1, 2, 3}


@pytest.mark.parametrize("position", range(4))
def test_no_twins_scenario_forks_with_one_twin_key(position: int) -> None:
    scenarios = list(enumerate_scenarios(phases=PHASES, positions=[position]))
    per_position = len(scenarios)
    for i, scenario in enumerate(scenarios):
        index = position * per_position + i
        if (ONE is not None and index != int(ONE)) or (ONE is None and i % STRIDE):
            continue
        try:
            run_twins(scenario)
        except Violation:
            print(f"\nfailing scenario {index}: {scenario.describe()} (SEQ_TWINS_SCENARIO={index})")
            raise


def test_negative_control_two_twin_keys_fork_in_some_scenario() -> None:
    # Two keys of four (1/2 of the stake) twinned: the generator must find a fork quickly,
    # or neither it nor the checker would catch one.
    failures: list[str] = []
    for i, scenario in enumerate(enumerate_scenarios(twin_keys=2, phases=3)):
        if i % 11:
            continue
        try:
            run_twins(scenario, twin_keys=2)
        except Violation as exc:
            failures.append(str(exc).splitlines()[0])
        if i > 440:
            break
    assert len(failures) >= 3, failures
    assert all(f.startswith("FORK") for f in failures), failures
