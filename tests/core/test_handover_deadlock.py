"""A hand-over deadlock the Hypothesis machine found (tests/core/test_stateful.py): epoch 15's
last block R was committed by some nodes through a closing suffix block at round 100, while a
later, non-closing suffix block (round 101) was certified and became every node's lock. The
first block of epoch 16 (justified by the round-100 closing QC) then fails the rank rule, and the
nodes that had committed R refused to propose or vote for suffix blocks, so no closing block
above round 101 could form: the chain stalled for good. Now such a node still works on the
suffix while its lock is not a closing block (docs/protocol.md, section 3a, rule 6)."""

from __future__ import annotations

from typing import Any

from tests.core.test_stateful import SimMachine

#: The shrunk Hypothesis run: (rule, arguments); the invariant is checked after each step.
STEPS: list[tuple[str, dict[str, Any]]] = [
    ("submit", {"node": 0, "step_ms": 670, "user": 3}),
    ("pause", {"i": 0, "ms": 2044, "step_ms": 91}),
    ("one_way", {"a": 4, "b": 6, "step_ms": 468}),
    ("restart", {"i": 2, "step_ms": 462}),
    ("restart", {"i": 2, "step_ms": 290}),
    ("pause", {"i": 0, "ms": 199, "step_ms": 245}),
    ("restart", {"i": 2, "step_ms": 449}),
    ("one_way", {"a": 5, "b": 1, "step_ms": 87}),
    ("restart", {"i": 1, "step_ms": 588}),
    ("one_way", {"a": 6, "b": 7, "step_ms": 210}),
    ("restart", {"i": 1, "step_ms": 242}),
    ("submit", {"node": 1, "step_ms": 506, "user": 2}),
    ("submit", {"node": 1, "step_ms": 525, "user": 1}),
    ("restart", {"i": 3, "step_ms": 332}),
    ("submit", {"node": 3, "step_ms": 233, "user": 0}),
    ("pause", {"i": 6, "ms": 400, "step_ms": 709}),
    ("restart", {"i": 0, "step_ms": 101}),
    ("pause", {"i": 1, "ms": 182, "step_ms": 525}),
    ("submit", {"node": 4, "step_ms": 301, "user": 0}),
    ("one_way", {"a": 1, "b": 4, "step_ms": 512}),
    ("pause", {"i": 0, "ms": 280, "step_ms": 412}),
    ("restart", {"i": 6, "step_ms": 942}),
    ("restart", {"i": 0, "step_ms": 100}),
    ("one_way", {"a": 3, "b": 5, "step_ms": 954}),
    ("one_way", {"a": 2, "b": 6, "step_ms": 183}),
    ("submit", {"node": 6, "step_ms": 999, "user": 1}),
    ("submit", {"node": 4, "step_ms": 893, "user": 3}),
    ("pause", {"i": 0, "ms": 611, "step_ms": 592}),
    ("pause", {"i": 7, "ms": 895, "step_ms": 198}),
]


def test_a_later_non_closing_suffix_lock_does_not_deadlock_the_hand_over() -> None:
    state = SimMachine()
    state.start(seed=1000, behaviour="malformed")
    state.chain_is_one_chain()
    for rule, args in STEPS:
        getattr(state, rule)(**args)
        state.chain_is_one_chain()
    state.teardown()  # faults stop; every honest node must commit again (the stall was here)
