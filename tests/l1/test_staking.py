"""Staking contract: register, lock, unlock, withdraw, rewards, slashing, jail, authorisation."""

from __future__ import annotations

import dataclasses

import pytest

from l1_mock.chain import TOKEN, CallRejected
from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.l1calls import (
    ClaimRewards,
    LockStake,
    RegisterSequencer,
    ReportDowntime,
    SubmitEvidence,
    Transfer,
    Unjail,
    UnlockStake,
    WithdrawStake,
    make_call,
)
from sequencer_node.wire.messages import (
    DoubleVote,
    DowntimeCertificate,
    DowntimeReport,
    Endorsement,
    Vote,
)
from tests.l1.helpers import (
    L1_CHAIN,
    L2_CHAIN,
    OTHER,
    OWNERS,
    SEQ_KEYS,
    USER,
    batch_header,
    batch_params,
    call,
    mine,
    mine_to_epoch,
    new_chain,
    signed,
    submit,
)

GT = 10**9  # one token in gwei (call parameters)


def double_vote(key: SigningKey, rnd: int = 5) -> DoubleVote:
    a = signed(Vote(b"\x01" * 32, 3, rnd, 0, key.public_key, bytes(64)), key)
    b = signed(Vote(b"\x02" * 32, 3, rnd, 0, key.public_key, bytes(64)), key)
    return DoubleVote(a, b)


def test_register_lock_unlock_withdraw_cycle() -> None:
    chain = new_chain()
    seq = SigningKey.deterministic("new-seq")
    before = chain.balance(USER.address)
    submit(chain, USER, RegisterSequencer(seq.public_key, "p2p:1", "rpc:1", 25_000 * GT))
    submit(chain, USER, LockStake(seq.public_key, 5_000 * GT))
    mine(chain)
    assert all(r.status == 1 for r in chain.blocks[-1].receipts)
    s = chain.sequencers[seq.public_key]
    assert s.stake == 30_000 * TOKEN
    assert s.status == "active"
    assert s.owner == USER.address
    fees = sum(r.gas_used * r.effective_gas_price for r in chain.blocks[-1].receipts)
    assert chain.balance(USER.address) == before - 30_000 * TOKEN - fees
    # appears in the snapshot of the next epoch, not the current one
    assert seq.public_key not in chain.snapshots[0].stakes
    mine_to_epoch(chain, 1)
    assert chain.snapshots[1].stakes[seq.public_key] == 30_000 * TOKEN
    # a partial unlock that leaves less than the minimum is refused with a reason
    with pytest.raises(CallRejected, match="below the minimum"):
        submit(chain, USER, UnlockStake(seq.public_key, 20_000 * GT))
    submit(chain, USER, UnlockStake(seq.public_key, 0))
    mine(chain)
    assert s.status == "unbonding"
    assert s.stake == 0
    with pytest.raises(CallRejected, match="next release is at epoch 5"):
        submit(chain, USER, WithdrawStake(seq.public_key))
    mine_to_epoch(chain, 5)
    bal = chain.balance(USER.address)
    submit(chain, USER, WithdrawStake(seq.public_key))
    mine(chain)
    r = chain.blocks[-1].receipts[0]
    assert r.status == 1
    assert chain.balance(USER.address) == bal + 30_000 * TOKEN - r.gas_used * r.effective_gas_price
    assert s.status == "withdrawn"


@pytest.mark.parametrize("amount", [19_999 * GT, 100_001 * GT])
def test_register_outside_bounds_is_refused(amount: int) -> None:
    chain = new_chain()
    with pytest.raises(CallRejected, match="outside"):
        submit(chain, USER, RegisterSequencer(b"\x09" * 32, "", "", amount))


def test_nobody_can_touch_another_accounts_stake() -> None:
    chain = new_chain()
    victim = SEQ_KEYS[0].public_key
    for params in (
        UnlockStake(victim, 0),
        WithdrawStake(victim),
        Unjail(victim),
        ClaimRewards(victim),
        LockStake(victim, TOKEN),
    ):
        with pytest.raises(CallRejected, match="belongs to account"):
            submit(chain, OTHER, params)
    # the sequencer's signing key itself is not the owner account either
    submit(chain, USER, Transfer(SEQ_KEYS[0].address, 1_000 * GT))
    mine(chain)
    with pytest.raises(CallRejected, match="belongs to account"):
        submit(chain, SEQ_KEYS[0], UnlockStake(victim, 0))


def test_unsigned_badly_signed_and_replayed_calls_are_refused() -> None:
    chain = new_chain()
    c = call(chain, USER, Transfer(OTHER.address, 5))
    with pytest.raises(CallRejected, match="bad signature"):
        chain.submit(dataclasses.replace(c, signature=bytes(64)))
    with pytest.raises(CallRejected, match="bad signature"):
        chain.submit(dataclasses.replace(c, sender=OTHER.public_key))
    with pytest.raises(CallRejected, match="bad signature"):
        chain.submit(make_call(Transfer(OTHER.address, 5), USER, 0, L1_CHAIN + 1))
    chain.pool.clear()
    chain.submit(c)
    with pytest.raises(CallRejected, match="already known"):
        chain.submit(c)
    mine(chain)
    assert chain.receipts[chain.blocks[-1].receipts[0].tx_hash].status == 1
    with pytest.raises(CallRejected, match="already"):
        chain.submit(c)
    with pytest.raises(CallRejected, match="not the next"):
        chain.submit(make_call(Transfer(OTHER.address, 5), USER, 7, L1_CHAIN))


def test_slashing_an_unbonding_sequencer_burns_and_rewards_the_reporter() -> None:
    chain = new_chain()
    key, owner = SEQ_KEYS[1], OWNERS[1]
    submit(chain, owner, UnlockStake(key.public_key, 0))
    mine(chain)
    s = chain.sequencers[key.public_key]
    assert s.status == "unbonding"
    assert s.unbonding_total == 30_000 * TOKEN
    supply, burned = chain.total_supply(), chain.burned
    rep_before = chain.balance(USER.address)
    submit(chain, USER, SubmitEvidence.of(double_vote(key)))
    mine(chain)
    r = chain.blocks[-1].receipts[0]
    assert r.status == 1, r.reason
    cut = 3_000 * TOKEN
    share = cut // 10
    assert s.unbonding_total == 27_000 * TOKEN
    assert s.status == "slashed"
    fee = r.gas_used * r.effective_gas_price
    assert chain.balance(USER.address) == rep_before + share - fee
    assert chain.burned - burned == cut - share + fee
    assert chain.total_supply() == supply - (cut - share) - fee
    # the same offence cannot be slashed twice
    with pytest.raises(CallRejected, match="already slashed"):
        submit(chain, OTHER, SubmitEvidence.of(double_vote(key)))
    # after the unbonding period and withdrawal, there is nothing left to slash
    mine_to_epoch(chain, 5)
    submit(chain, owner, WithdrawStake(key.public_key))
    mine(chain)
    with pytest.raises(CallRejected, match="no bonded or unbonding stake"):
        submit(chain, OTHER, SubmitEvidence.of(double_vote(key, rnd=9)))


def test_slashed_sequencer_leaves_next_snapshot_and_can_unjail_after_cooldown() -> None:
    chain = new_chain()
    key, owner = SEQ_KEYS[0], OWNERS[0]
    submit(chain, USER, SubmitEvidence.of(double_vote(key)))
    mine(chain)
    assert chain.sequencers[key.public_key].stake == 36_000 * TOKEN
    mine_to_epoch(chain, 1)
    assert key.public_key not in chain.snapshots[1].stakes
    with pytest.raises(CallRejected, match="jailed until epoch 4"):
        submit(chain, owner, Unjail(key.public_key))
    mine_to_epoch(chain, 4)
    submit(chain, owner, Unjail(key.public_key))
    mine(chain)
    assert chain.sequencers[key.public_key].status == "active"
    mine_to_epoch(chain, 5)
    assert chain.snapshots[5].stakes[key.public_key] == 36_000 * TOKEN


def test_invalid_evidence_is_refused() -> None:
    chain = new_chain()
    ev = double_vote(SEQ_KEYS[0])
    bad = DoubleVote(ev.a, dataclasses.replace(ev.b, signature=bytes(64)))
    with pytest.raises(CallRejected, match="invalid evidence"):
        submit(chain, USER, SubmitEvidence.of(bad))


def downtime_cert(
    offender: bytes, signers: list[SigningKey], epoch: int = 0
) -> DowntimeCertificate:
    report = DowntimeReport(epoch, offender, 1, 100, 60, 100, bytes(32), bytes(64))
    sigs = tuple(
        Endorsement(
            k.public_key,
            k.sign(signing_bytes(dataclasses.replace(report, signer=k.public_key), L2_CHAIN)),
        )
        for k in signers
    )
    return DowntimeCertificate(report, sigs)


def test_downtime_jails_without_slashing_and_needs_quorum() -> None:
    chain = new_chain()
    offender = SEQ_KEYS[3].public_key
    # 40+30 of 110 stake is not > 2/3
    with pytest.raises(CallRejected, match="more than 2/3"):
        submit(chain, USER, ReportDowntime(downtime_cert(offender, SEQ_KEYS[:2])))
    submit(chain, USER, ReportDowntime(downtime_cert(offender, SEQ_KEYS[:3])))
    mine(chain)
    s = chain.sequencers[offender]
    assert s.status == "jailed"
    assert s.stake == 20_000 * TOKEN
    with pytest.raises(CallRejected, match="already"):
        submit(chain, USER, ReportDowntime(downtime_cert(offender, SEQ_KEYS[:3])))


def test_rewards_accrue_pro_rata_and_are_claimable() -> None:
    chain = new_chain()
    submit(chain, USER, batch_params(batch_header(chain, blocks=1000)))
    mine(chain)
    assert chain.blocks[-1].receipts[0].status == 1
    total = 1000 * 761 * 10**12
    stakes = {k.public_key: s for k, s in zip(SEQ_KEYS, [40, 30, 20, 20], strict=True)}
    for k in SEQ_KEYS:
        assert chain.sequencers[k.public_key].rewards == total * stakes[k.public_key] // 110
    owner = OWNERS[0]
    bal = chain.balance(owner.address)
    submit(chain, owner, ClaimRewards(SEQ_KEYS[0].public_key))
    mine(chain)
    r = chain.blocks[-1].receipts[0]
    assert (
        chain.balance(owner.address) == bal + total * 40 // 110 - r.gas_used * r.effective_gas_price
    )
    assert chain.sequencers[SEQ_KEYS[0].public_key].rewards == 0
