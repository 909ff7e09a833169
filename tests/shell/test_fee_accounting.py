"""Per-batch fee reporting: what the L2 collected for a batch's blocks against the L1's charge."""

from __future__ import annotations

from sequencer_node.core.fees import OP_ECOTONE, BatchCost, FeeParams, L1FeeInfo
from sequencer_node.core.ledger import FeeInput, Ledger
from sequencer_node.shell.fee_accounting import FeeAccounting
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import Transaction

ECOTONE = FeeParams(model=OP_ECOTONE, initial_base_fee=1_000, min_base_fee=10)
USER = SigningKey.deterministic("acct-user")
PROPOSER = SigningKey.deterministic("acct-proposer")


def _transfer(nonce: int) -> Transaction:
    tx = Transaction(USER.public_key, b"\x01" * 20, 1, nonce, 10**13, bytes(64))
    return sign_message(tx, USER, 901)


def test_batch_rows_get_what_their_blocks_collected() -> None:
    acct = FeeAccounting()
    led = Ledger.genesis({USER.address: 10**18}, ECOTONE)
    per_block = []
    for h in range(1, 5):
        infos = (L1FeeInfo(h, 10**9, 1),)
        led, receipts = led.apply_block([_transfer(h - 1)], [], proposer=PROPOSER.public_key,
                                        fee_input=FeeInput(h, infos))  # fmt: skip
        per_block.append(receipts[0])
        acct.on_commit(h, led.fee_state())
    row = acct.batch_row({"first_height": 2, "last_height": 4, "fee_paid": "1000"})
    got = row["l2_collected"]
    assert got["l1_data_fee"] == str(sum(r.l1_fee_paid for r in per_block[1:]))
    assert got["base_fee"] == str(sum(r.base_fee_paid for r in per_block[1:]))
    assert row["l1_fee_covered"] == round(sum(r.l1_fee_paid for r in per_block[1:]) / 1000, 4)
    assert (
        acct.batch_row({"first_height": 1, "last_height": 9, "fee_paid": None})["l2_collected"]
        is None
    )
    # the vault paid the batcher: the running total says so
    report = L1FeeInfo(5, 10**9, 1, (BatchCost(0, 77),))
    led, _ = led.apply_block([], [], proposer=PROPOSER.public_key,
                             fee_input=FeeInput(5, (report,)))  # fmt: skip
    state = led.fee_state()
    assert state is not None
    assert state.paid_to_batcher == 77
