"""The twin step's reading of the byzantine records (``tests/faults/attacks.py``): which slots
must be found as evidence, and which may be (the twin's unrecorded history, the kill race)."""

from __future__ import annotations

from typing import Any

from tests.faults.attacks import (
    KILL_RACE_S,
    SLASH_BPS,
    history_slots,
    racing_slots,
    slashes,
    twin_injections,
)


def rec(kind: str, round_: int, digest: str, at: float, peers: int = 2) -> dict[str, Any]:
    return {"kind": kind, "round": round_, "digest": digest, "at": at, "peers": peers}


def test_injections_are_slots_both_twins_signed_differently_and_sent() -> None:
    original = [rec("proposal", 10, "a", 100.0), rec("vote", 10, "a", 100.1),
                rec("vote", 11, "c", 101.0), rec("timeout", 12, "t", 102.0, peers=0)]  # fmt: skip
    twin = [rec("proposal", 10, "b", 100.0), rec("vote", 10, "b", 100.1),
            rec("vote", 11, "c", 101.0), rec("timeout", 12, "u", 102.0)]  # fmt: skip
    assert twin_injections(original, twin) == {("double_proposal", 10), ("double_vote", 10)}


def test_the_fresh_twins_rounds_below_the_originals_first_are_history() -> None:
    original = [rec("vote", 20, "a", 100.0)]
    twin = [rec("timeout", 1, "x", 90.0), rec("vote", 20, "b", 100.0)]
    assert history_slots(original, twin) == {("double_timeout", 1)}


def test_slots_signed_just_before_the_kill_race_it() -> None:
    stopped_at = 200.0
    records = [rec("proposal", 30, "a", stopped_at - KILL_RACE_S - 1.0),
               rec("vote", 30, "a", stopped_at - KILL_RACE_S - 0.9),
               rec("proposal", 31, "a", stopped_at - KILL_RACE_S + 0.5),
               rec("vote", 31, "b", stopped_at - 0.1)]  # fmt: skip
    injected = {("double_proposal", 30), ("double_vote", 30), ("double_proposal", 31),
                ("double_vote", 31)}  # fmt: skip
    assert racing_slots(injected, records, stopped_at) == {
        ("double_proposal", 31),
        ("double_vote", 31),
    }
    # Only injected slots race: a late statement signed alike by both is no evidence.
    assert racing_slots(set(), records, stopped_at) == set()


def test_the_slash_count_is_read_back_from_the_stake_however_many() -> None:
    stake0 = stake = 20_000 * 10**18
    for _ in range(74):  # a soak's twin step: 74 equivocations found and slashed (seed 1414)
        stake -= stake * SLASH_BPS // 10_000
    assert slashes(stake0, stake) == 74
    assert slashes(stake0, stake0) == 0
    assert slashes(stake0, stake + 1) is None  # no whole number of slashes fits
    assert slashes(stake0, stake0 + 1) is None
