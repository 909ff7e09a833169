"""Leader schedules: deterministic, stake-proportional, never draw zero stake; leader rule."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sequencer_node.core.election import epoch_seed, leader_for, weighted_order

KEYS = [bytes([i]) * 32 for i in range(1, 6)]


@given(
    stakes=st.lists(st.integers(0, 1000), min_size=1, max_size=5),
    seed=st.binary(min_size=32, max_size=32),
)
@settings(max_examples=60)
def test_order_is_a_deterministic_permutation_of_the_staked(stakes: list[int], seed: bytes) -> None:
    table = dict(zip(KEYS, stakes, strict=False))
    order = weighted_order(table, seed)
    assert order == weighted_order(dict(reversed(list(table.items()))), seed)
    assert sorted(order) == sorted(k for k, s in table.items() if s > 0)


def test_first_leader_is_drawn_in_proportion_to_stake() -> None:
    # 40/30/20/10 as in the devnet; 4000 independent seeds. The count of each key is
    # binomial(4000, p): 4 standard deviations is at most 4*sqrt(4000*0.25) = 127 draws.
    table = {KEYS[0]: 40, KEYS[1]: 30, KEYS[2]: 20, KEYS[3]: 10}
    runs = 4000
    counts = dict.fromkeys(table, 0)
    for i in range(runs):
        counts[weighted_order(table, epoch_seed(i.to_bytes(8, "big"), 7))[0]] += 1
    for key, stake in table.items():
        expected = runs * stake / 100
        sd = (runs * stake / 100 * (1 - stake / 100)) ** 0.5
        assert abs(counts[key] - expected) <= 4 * sd, (counts, key)


def test_zero_stake_is_never_drawn() -> None:
    table = {KEYS[0]: 5, KEYS[1]: 0, KEYS[2]: 5}
    for i in range(200):
        assert KEYS[1] not in weighted_order(table, hashlib.sha256(bytes([i])).digest())


def test_leader_rule_is_stable_then_fails_over_down_the_list() -> None:
    order = (KEYS[2], KEYS[0], KEYS[1])
    # happy path: the parent's proposer keeps leading
    assert leader_for(order, 11, 10, KEYS[0]) == KEYS[0]
    # one failed round: the next back-up; two: the one after; wraps around
    assert leader_for(order, 12, 10, KEYS[0]) == KEYS[1]
    assert leader_for(order, 13, 10, KEYS[0]) == KEYS[2]
    # first block of an epoch: the schedule's position 0, then its back-ups
    assert leader_for(order, 11, 10, None) == KEYS[2]
    assert leader_for(order, 12, 10, None) == KEYS[0]
    with pytest.raises(ValueError, match="does not follow"):
        leader_for(order, 10, 10, None)
