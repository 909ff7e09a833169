"""Hypothesis drives the simulator: any interleaving of faults, then liveness.

The simulator checks agreement, no rollback, signer safety, evidence and state roots after every
delivery (it raises :class:`Violation`); the teardown stops the faults and asserts a new commit
within the bound derived from the timeouts. A failing example shrinks to a short program of
rules that replays deterministically.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sequencer_node.sim.harness import NetParams, Simulation

N = 4  # instances 0..3 honest, 4 = byzantine key with < 1/3 stake (twin at 4 and 5)


class SimMachine(RuleBasedStateMachine):
    sim: Simulation

    @initialize(
        seed=st.integers(0, 2**32),
        behaviour=st.sampled_from(["equivocate", "double_vote", "malformed", "silent", "twin"]),
    )
    def start(self, seed: int, behaviour: str) -> None:
        twins = [4] if behaviour == "twin" else []
        byz = {4: ["equivocate"] if behaviour == "twin" else [behaviour]}
        self.sim = Simulation(
            seed, stakes=(3, 3, 3, 3, 2), byzantine=byz, twins=twins, epoch_length=5,
            net=NetParams(drop=0.02, duplicate=0.05, replay=0.05, delay_max_ms=40),
        )  # fmt: skip
        self.honest = [i.idx for i in self.sim.instances if i.honest]
        self.sim.run_for(1_000)

    def _then(self, ms: int) -> None:
        # Every step lets time pass, so a program of 30 steps covers ~15 s of network time.
        self.sim.run_for(ms)

    @rule(ms=st.integers(20, 800))
    def advance(self, ms: int) -> None:
        self.sim.run_for(ms)

    @rule(
        cut=st.integers(1, N),
        shuffle=st.randoms(use_true_random=False),
        step_ms=st.integers(50, 1_000),
    )
    def partition(self, cut: int, shuffle: object, step_ms: int) -> None:
        members = [i.idx for i in self.sim.instances]
        shuffle.shuffle(members)  # type: ignore[attr-defined]
        self.sim.partition([members[:cut], members[cut:]])
        self._then(step_ms)

    @rule(ms=st.integers(50, 1_000))
    def heal(self, ms: int) -> None:
        self.sim.heal()
        self._then(ms)

    @rule(a=st.integers(0, N - 1), b=st.integers(0, N - 1), step_ms=st.integers(50, 1_000))
    def one_way(self, a: int, b: int, step_ms: int) -> None:
        if a != b:
            self.sim.cut_one_way(a, b)
        self._then(step_ms)

    @precondition(lambda self: sum(1 for i in self.honest if self.sim.instances[i].up) > 1)
    @rule(i=st.integers(0, N - 1), step_ms=st.integers(50, 1_000))
    def crash(self, i: int, step_ms: int) -> None:
        self.sim.crash(i)
        self._then(step_ms)

    @rule(i=st.integers(0, N - 1), step_ms=st.integers(50, 1_000))
    def restart(self, i: int, step_ms: int) -> None:
        self.sim.restart(i)
        self._then(step_ms)

    @rule(i=st.integers(0, N - 1), ms=st.integers(50, 3_000), step_ms=st.integers(50, 1_000))
    def pause(self, i: int, ms: int, step_ms: int) -> None:
        self.sim.pause(i, ms)
        self._then(step_ms)

    @rule(i=st.integers(0, N - 1), skew=st.integers(-400, 400), step_ms=st.integers(50, 1_000))
    def skew(self, i: int, skew: int, step_ms: int) -> None:
        self.sim.set_skew(i, skew)
        self._then(step_ms)

    @rule(user=st.integers(0, 3), node=st.integers(0, N - 1), step_ms=st.integers(50, 1_000))
    def submit(self, user: int, node: int, step_ms: int) -> None:
        self.sim.submit_tx(user, node)
        self._then(step_ms)

    @rule(
        stakes=st.lists(st.integers(1, 5), min_size=4, max_size=4),
        byz=st.integers(0, 1),
        step_ms=st.integers(50, 1_000),
    )
    def stake_change(self, stakes: list[int], byz: int, step_ms: int) -> None:
        # The byzantine key keeps < 1/3 of the stake.
        self.sim.change_stakes(self.sim._finalized_epoch + 2, [*stakes, byz])
        self._then(step_ms)

    @invariant()
    def chain_is_one_chain(self) -> None:
        # The simulator raises on the spot; this re-checks the whole record at each step.
        for inst in self.sim.honest():
            for h, bh in enumerate(inst.committed, start=1):
                assert self.sim.chain[h][0] == bh

    def teardown(self) -> None:
        if hasattr(self, "sim"):
            self.sim.check_liveness()


SimMachine.TestCase.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
TestSimMachine = SimMachine.TestCase
