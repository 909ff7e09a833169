"""Hypothesis drives the simulator: any interleaving of faults and stake changes, then liveness.

The simulator checks agreement, no rollback, signer safety, evidence and state roots after every
delivery (it raises :class:`Violation`); the teardown stops the faults and asserts a new commit
within the bound derived from the timeouts. A failing example shrinks to a short program of
rules that replays deterministically.

Eight honest keys run from the start, four of them staked; the stake table changes (from an L1
epoch on, so at an L2 epoch boundary) by any amount the L1 allows in one epoch: reweighing, half
of the members unbonding while others register, a full rotation (every member unbonds, only new
sequencers are staked), new registrations. The byzantine key keeps < 1/3 of every table.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sequencer_node.sim.harness import NetParams, Simulation

N = 8  # honest keys = instances 0..7; key 8 = byzantine with < 1/3 stake (twin: 8 and 9)
FIRST = (3, 3, 3, 3, 0, 0, 0, 0)


class SimMachine(RuleBasedStateMachine):
    sim: Simulation

    @initialize(
        seed=st.integers(0, 2**32),
        behaviour=st.sampled_from(["equivocate", "double_vote", "malformed", "silent", "twin"]),
    )
    def start(self, seed: int, behaviour: str) -> None:
        twins = [N] if behaviour == "twin" else []
        byz = {N: ["equivocate"] if behaviour == "twin" else [behaviour]}
        self.table = list(FIRST)
        self.sim = Simulation(
            seed, stakes=(*FIRST, 2), byzantine=byz, twins=twins, epoch_length=5,
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
        kind=st.sampled_from(["reweigh", "half", "full", "register"]),
        stakes=st.lists(st.integers(1, 5), min_size=N, max_size=N),
        order=st.permutations(range(N)),
        byz=st.integers(0, 1),
        step_ms=st.integers(50, 1_000),
    )
    def stake_change(
        self, kind: str, stakes: list[int], order: list[int], byz: int, step_ms: int
    ) -> None:
        members = [i for i in order if self.table[i] > 0]
        outside = [i for i in order if self.table[i] == 0]
        new = list(self.table)
        if kind == "reweigh":
            new = [stakes[i] if s else 0 for i, s in enumerate(new)]
        elif kind in ("half", "full"):
            leaving = members if kind == "full" else members[: len(members) // 2]
            for i in leaving:
                new[i] = 0
            for i in outside[: max(len(leaving), 4 - len(members) + len(leaving))]:
                new[i] = stakes[i]
        else:
            for i in outside[: 1 + stakes[0] % len(outside)] if outside else []:
                new[i] = stakes[i]
        if sum(1 for s in new if s > 0) < 4:
            new = self.table  # too few left: the L1 keeps the table
        self.table = new
        # The byzantine key keeps < 1/3 of the stake (1 of at least 4).
        self.sim.change_stakes(self.sim.finalized_l1_epoch + 2, [*new, byz])
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
