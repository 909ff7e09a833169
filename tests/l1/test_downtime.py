"""Fair downtime on the L1 (issue 11, finding 2 and the L1 side of "fair downtime"): a report
names a recent, finalized stake snapshot (the inbox's rule), the offender and every signer are
in it, and the genesis snapshot is dropped like any other."""

from __future__ import annotations

import pytest

from l1_mock.chain import CallRejected, Chain
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.l1calls import (
    RegisterSequencer,
    ReportDowntime,
    UnlockStake,
    WithdrawStake,
)
from tests.l1.helpers import OTHER, OWNERS, SEQ_KEYS, USER, mine, mine_to_epoch, new_chain, submit
from tests.l1.test_staking import GT, downtime_cert

LATE = SigningKey.deterministic("late-sequencer")


def _register_late(chain: Chain) -> None:
    submit(chain, USER, RegisterSequencer(LATE.public_key, "127.0.0.1:9100", "", 20_000 * GT))
    mine(chain)
    assert chain.sequencers[LATE.public_key].status == "active"


def test_withdrawn_sequencers_cannot_jail_a_later_one_with_the_genesis_snapshot() -> None:
    """Issue 11 finding 2: three genesis sequencers unbond and withdraw, then sign a report for
    stake epoch 0 against a sequencer that registered after genesis."""
    chain = new_chain()  # unbonding_epochs = 4
    _register_late(chain)
    for owner, key in zip(OWNERS[:3], SEQ_KEYS[:3], strict=True):
        submit(chain, owner, UnlockStake(key.public_key, 0))
    mine(chain)
    mine_to_epoch(chain, 5)
    for owner, key in zip(OWNERS[:3], SEQ_KEYS[:3], strict=True):
        submit(chain, owner, WithdrawStake(key.public_key))
    mine(chain)
    assert all(chain.sequencers[k.public_key].status == "withdrawn" for k in SEQ_KEYS[:3])
    mine_to_epoch(chain, 12)
    with pytest.raises(CallRejected, match="older than the unbonding period"):
        submit(chain, OTHER, ReportDowntime(downtime_cert(LATE.public_key, SEQ_KEYS[:3])))
    assert chain.sequencers[LATE.public_key].status == "active"


def test_the_genesis_snapshot_is_dropped_like_any_other() -> None:
    chain = new_chain()
    mine_to_epoch(chain, 4 + 2)
    assert chain.snapshot(0) is not None
    mine_to_epoch(chain, 4 + 3)
    assert chain.snapshot(0) is None
    assert chain.snapshot(1) is not None


def test_the_offender_must_be_in_the_reports_snapshot() -> None:
    chain = new_chain()
    mine_to_epoch(chain, 1)
    _register_late(chain)  # in epoch 1: snapshot 1 was taken before, snapshot 2 has it
    mine_to_epoch(chain, 4)
    assert LATE.public_key not in chain.snapshots[1].stakes
    assert LATE.public_key in chain.snapshots[2].stakes
    with pytest.raises(CallRejected, match="not in the stake snapshot of epoch 1"):
        submit(chain, OTHER, ReportDowntime(downtime_cert(LATE.public_key, SEQ_KEYS[:3], 1)))
    # The same signers may report a member of that snapshot.
    submit(chain, OTHER, ReportDowntime(downtime_cert(SEQ_KEYS[3].public_key, SEQ_KEYS[:3], 1)))
    mine(chain)
    assert chain.sequencers[SEQ_KEYS[3].public_key].status == "jailed"
    assert chain.sequencers[LATE.public_key].status == "active"


def test_every_signer_must_be_in_the_reports_snapshot() -> None:
    chain = new_chain()
    mine_to_epoch(chain, 1)
    _register_late(chain)
    mine_to_epoch(chain, 4)
    signers = [*SEQ_KEYS[:2], LATE]
    with pytest.raises(CallRejected, match="no stake in this epoch"):
        submit(chain, OTHER, ReportDowntime(downtime_cert(SEQ_KEYS[3].public_key, signers, 1)))


def test_a_report_names_a_finalized_snapshot() -> None:
    chain = new_chain()
    mine_to_epoch(chain, 3)
    assert chain.snapshot(3) is not None
    with pytest.raises(CallRejected, match="not finalized"):
        submit(chain, OTHER, ReportDowntime(downtime_cert(SEQ_KEYS[3].public_key, SEQ_KEYS[:3], 3)))
    submit(chain, OTHER, ReportDowntime(downtime_cert(SEQ_KEYS[3].public_key, SEQ_KEYS[:3], 1)))
