"""Hypothesis state machine: random staking calls never create or lose tokens.

Invariant: balances + stake + unbonding + rewards + burned == genesis supply + minted.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from l1_mock.chain import CallRejected
from sequencer_node.wire.l1calls import (
    ClaimRewards,
    LockStake,
    RegisterSequencer,
    SubmitEvidence,
    Transfer,
    Unjail,
    UnlockStake,
    WithdrawStake,
)
from tests.l1.helpers import (
    OTHER,
    OWNERS,
    SEQ_KEYS,
    USER,
    batch_header,
    batch_params,
    mine,
    new_chain,
    submit,
)
from tests.l1.test_staking import double_vote

GT = 10**9
ACCOUNTS = [*OWNERS, USER, OTHER]
extra_keys = [k for k in SEQ_KEYS]  # the seq keys, owned by OWNERS[i]


class StakeConservation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = new_chain(unbonding_epochs=1, unjail_cooldown_epochs=1)
        self.rejected = 0

    def _try(self, key, params) -> None:
        try:
            submit(self.chain, key, params)
        except CallRejected:
            self.rejected += 1

    @rule(i=st.integers(0, 3), who=st.integers(0, 5), amount=st.integers(0, 60_000))
    def unlock(self, i: int, who: int, amount: int) -> None:
        self._try(ACCOUNTS[who], UnlockStake(SEQ_KEYS[i].public_key, amount * GT))

    @rule(i=st.integers(0, 3), who=st.integers(0, 5), amount=st.integers(1, 60_000))
    def lock(self, i: int, who: int, amount: int) -> None:
        self._try(ACCOUNTS[who], LockStake(SEQ_KEYS[i].public_key, amount * GT))

    @rule(i=st.integers(0, 3), who=st.integers(0, 5))
    def withdraw(self, i: int, who: int) -> None:
        self._try(ACCOUNTS[who], WithdrawStake(SEQ_KEYS[i].public_key))

    @rule(i=st.integers(0, 3), who=st.integers(0, 5))
    def claim_and_unjail(self, i: int, who: int) -> None:
        self._try(ACCOUNTS[who], ClaimRewards(SEQ_KEYS[i].public_key))
        self._try(ACCOUNTS[who], Unjail(SEQ_KEYS[i].public_key))

    @rule(i=st.integers(0, 3), rnd=st.integers(0, 3), who=st.integers(0, 5))
    def slash(self, i: int, rnd: int, who: int) -> None:
        self._try(ACCOUNTS[who], SubmitEvidence.of(double_vote(SEQ_KEYS[i], rnd)))

    @rule(who=st.integers(0, 5), to=st.integers(0, 5), amount=st.integers(0, 10**6))
    def transfer(self, who: int, to: int, amount: int) -> None:
        self._try(ACCOUNTS[who], Transfer(ACCOUNTS[to].address, amount * GT))

    @rule(stake=st.integers(15_000, 110_000))
    def register(self, stake: int) -> None:
        from sequencer_node.wire.crypto import SigningKey

        key = SigningKey.deterministic(f"m-{len(self.chain.sequencers)}")
        self._try(USER, RegisterSequencer(key.public_key, "", "", stake * GT))

    @rule(blocks=st.integers(1, 50))
    def batch(self, blocks: int) -> None:
        self._try(USER, batch_params(batch_header(self.chain, blocks=blocks)))

    @rule(n=st.integers(1, 40))
    def mine(self, n: int) -> None:
        mine(self.chain, n)

    @invariant()
    def conserved(self) -> None:
        c = self.chain
        assert c.total_supply() + c.burned == c.genesis_supply + c.minted
        for s in c.sequencers.values():
            assert s.stake >= 0
            assert all(a >= 0 for _, a in s.unbonding)
            assert s.rewards >= 0


StakeConservation.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None
)
TestStakeConservation = StakeConservation.TestCase
