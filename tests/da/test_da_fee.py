"""What the DA layer charged an external-DA batch, counted with its L1 cost (issue 15, "where
the money goes": the node reports, per batch, what the L1 and the DA layer charged; the L1
fee vault pays both).

The DA committee attests each DA block's base fee in its data root tuple, so the L1 prices the
pointed blob exactly as the DA chain charged it (``pfb.blob_fee``) and reports L1 gas + DA fee
(at ``da_fee_wei_per_unit``) as the batch's posting cost; the node's per-batch report carries
the DA fee beside the L1 charge, and its coverage ratio divides by their sum.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from l1_mock.chain import CallRejected
from l1_mock.server.views import fee_record_json
from sequencer_node.batcher.records import BatchCost, BatchRecords
from sequencer_node.core.fees import OP_ECOTONE, FeeParams, L1FeeInfo
from sequencer_node.core.ledger import FeeInput, Ledger
from sequencer_node.shell.fee_accounting import FeeAccounting, posting_cost
from sequencer_node.wire.codec import decode, encode
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.da import attest
from sequencer_node.wire.da.attest import DataRootTuple, make_commitment
from sequencer_node.wire.da.pfb import PFB_BASE_GAS, blob_fee
from sequencer_node.wire.da.shares import SHARE_BYTES, shares_needed
from sequencer_node.wire.messages import Transaction
from tests.l1.helpers import USER, mine, submit
from tests.l1.test_da_bridge import DA, PAYLOAD, da_chain, extda_header, extda_params, relay

BASE_FEES = [900, 1_234, 1_500, 2_000]  # the DA blocks' base fees per gas
RATE = 7  # wei per DA fee unit


def _priced_da() -> DA:
    da = DA()
    da.tuples = [
        dataclasses.replace(t, base_fee=f) for t, f in zip(da.tuples, BASE_FEES, strict=True)
    ]
    da.commitment = make_commitment(0, da.tuples)
    return da


def test_the_blob_fee_is_the_da_chains_gas_times_its_blocks_base_fee() -> None:
    shares = shares_needed(len(PAYLOAD))
    assert blob_fee(shares, 1_234) == (PFB_BASE_GAS + 8 * SHARE_BYTES * shares) * 1_234
    assert blob_fee(shares, 0) == 0


def test_the_attested_tuple_binds_the_base_fee() -> None:
    t = DataRootTuple(3, 16, b"\x01" * 90, 1_234)
    assert t.encode() != dataclasses.replace(t, base_fee=1_235).encode()
    assert decode(encode(t), DataRootTuple) == t
    proof_json = attest.pointer_proof_to_json(_priced_da().pointer()[1])
    assert proof_json["tuple"]["baseFeePerGas"] == "1234"
    assert attest.pointer_proof_from_json(proof_json).root_tuple.base_fee == 1_234
    proof_json["tuple"]["baseFeePerGas"] = 1_234  # large integers are decimal strings
    with pytest.raises(ValueError, match="decimal string"):
        attest.pointer_proof_from_json(proof_json)


def test_the_l1_reports_an_extda_batchs_da_fee_in_its_posting_cost() -> None:
    chain = da_chain(da_fee_wei_per_unit=RATE)
    da = _priced_da()
    relay(chain, da)
    pointer, proof = da.pointer()
    header = extda_header(chain, pointer)
    submit(chain, USER, extda_params(header, proof))
    mine(chain)
    assert chain.batches[-1].da_tuple is not None
    assert chain.batches[-1].da_tuple.base_fee == BASE_FEES[1]
    (cost,) = chain.fee_record(chain.head.number).batches
    da_fee = blob_fee(pointer.end - pointer.start, BASE_FEES[1])
    assert cost.da_fee == da_fee > 0
    assert cost.l1_cost > 0
    assert cost.cost == cost.l1_cost + da_fee * RATE
    assert cost.data_bytes == len(PAYLOAD)
    # the L2's L1 fee vault pays the batcher account both parts
    rec = fee_record_json(chain.fee_record(chain.head.number))
    info = L1FeeInfo.of(
        int(rec["number"], 16), int(rec["baseFeePerGas"], 16), int(rec["blobBaseFee"], 16),
        [(int(b["batchNumber"], 16), int(b["cost"], 16), int(b["dataBytes"], 16))
         for b in rec["batches"]],
        rec["feeModel"],
    )  # fmt: skip
    led = Ledger.genesis({}, FeeParams(model=OP_ECOTONE))
    led, _ = led.apply_block([], [], proposer=b"\x07" * 32, fee_input=FeeInput(info.number,
                                                                            (info,)))  # fmt: skip
    state = led.fee_state()
    assert state is not None
    assert state.paid_to_batcher + state.owed == cost.l1_cost + da_fee * RATE


def test_a_base_fee_the_committee_did_not_attest_is_refused() -> None:
    chain = da_chain()
    da = _priced_da()
    relay(chain, da)
    pointer, proof = da.pointer()
    cheap = dataclasses.replace(proof, root_tuple=dataclasses.replace(proof.root_tuple, base_fee=1))
    with pytest.raises(CallRejected, match="tuple"):
        submit(chain, USER, extda_params(extda_header(chain, pointer), cheap))


def test_the_batch_report_counts_the_da_fee_in_the_cost_it_covers() -> None:
    user = SigningKey.deterministic("da-fee-user")
    proposer = SigningKey.deterministic("da-fee-proposer")
    acct = FeeAccounting()
    led = Ledger.genesis({user.address: 10**18}, FeeParams(model=OP_ECOTONE))
    for h in range(1, 4):
        tx = sign_message(Transaction(user.public_key, b"\x01" * 20, 1, h - 1, 10**13,
                                      bytes(64)), user, 901)  # fmt: skip
        led, _ = led.apply_block([tx], [], proposer=proposer.public_key,
                                 fee_input=FeeInput(h, (L1FeeInfo(h, 10**9, 1),)))  # fmt: skip
        acct.on_commit(h, led.fee_state())
    collected = acct.collected(1, 3)
    assert collected is not None
    assert collected[1] > 0
    row = {"first_height": 1, "last_height": 3, "fee_paid": "1000", "da_fee": "50",
           "da_fee_wei": "350"}  # fmt: skip
    assert posting_cost(row) == 1350
    assert acct.batch_row(row)["l1_fee_covered"] == round(collected[1] / 1350, 4)
    blob_row = {"first_height": 1, "last_height": 3, "fee_paid": "1000"}
    assert acct.batch_row(blob_row)["l1_fee_covered"] == round(collected[1] / 1000, 4)


def _cost(n: int, da_fee: int | None) -> BatchCost:
    return BatchCost(n, 1, 2, 10, b"\x02" * 32, "extda" if da_fee is not None else "blobs",
                     0, 100, 100, 4, 1_000, 0, True, da_fee,
                     0 if da_fee is None else da_fee * RATE)  # fmt: skip


def test_batch_records_keep_the_da_fee_and_open_a_previous_release_file(tmp_path: Path) -> None:
    recs = BatchRecords.open(tmp_path)
    recs.save_cost(_cost(0, None))
    recs.save_cost(_cost(1, 50))
    got = recs.costs()
    recs.close()
    assert got == [_cost(0, None), _cost(1, 50)]
    assert got[1].total_cost == 1_000 + 350
    assert got[0].total_cost == 1_000
    # a records file without the da_costs table (the previous release) opens and reads
    conn = sqlite3.connect(tmp_path / "batcher.sqlite3")
    conn.execute("DROP TABLE da_costs")
    conn.commit()
    conn.close()
    recs = BatchRecords.open(tmp_path)
    old = dataclasses.replace(_cost(1, 50), da_fee=None, da_fee_wei=0)
    assert recs.costs() == [_cost(0, None), old]
    recs.close()
