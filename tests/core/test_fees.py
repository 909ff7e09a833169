"""Fee models (issue 15): the Ecotone formula, the L2 base fee, where each part goes, the L1
fee vault paying batches, the L1 pricer, model changes, and the flat rule left as it was."""

from __future__ import annotations

import dataclasses

import pytest

from sequencer_node.core import fees
from sequencer_node.core.fees import (
    ARBITRUM_L1_PRICER,
    FLAT,
    OP_ECOTONE,
    BatchCost,
    FeeCharge,
    FeeContext,
    FeeParams,
    FeeParamsError,
    FeeState,
    L1FeeInfo,
    TxFeeView,
)
from sequencer_node.core.ledger import FeeInput, InvalidBlock, Ledger, native_fee_view
from sequencer_node.core.mempool import Mempool, RejectReason
from sequencer_node.wire.crypto import address_of

from .helpers import CHAIN_ID, KEYS, PROPOSER, forced, transfer

A, B, C = KEYS[0], KEYS[1], KEYS[2]
P_ADDR = address_of(PROPOSER.public_key)
GWEI = 10**9
ECOTONE = FeeParams(model=OP_ECOTONE, initial_base_fee=1_000, min_base_fee=10)
ORIGIN = L1FeeInfo(7, base_fee=GWEI, blob_base_fee=1)


def ledger(params: FeeParams | None) -> Ledger:
    return Ledger.genesis({A.address: 10**18, B.address: 10**18}, params)


def first_block_input(info: L1FeeInfo = ORIGIN) -> FeeInput:
    return FeeInput(info.number, (info,))


def required(led: Ledger, tx_fee_view: TxFeeView, info: L1FeeInfo = ORIGIN) -> int:
    """base fee * gas + L1 fee of a tx in the first block on ``led`` (origin ``info``)."""
    state = led.fee_state()
    assert state is not None
    ctx = dataclasses.replace(
        state.context(), l1_base_fee=info.base_fee, l1_blob_base_fee=info.blob_base_fee
    )
    return ctx.base_fee * tx_fee_view.gas_used + ctx.l1_fee(tx_fee_view)


# --- formulas --------------------------------------------------------------------------------


def test_ecotone_l1_fee_matches_the_spec_formula():
    # OP specs, exec-engine.md (Ecotone L1-Cost): (calldataGas/16) * (16 * l1BaseFee *
    # baseFeeScalar + blobBaseFee * blobBaseFeeScalar) / 1e6, computed with one division.
    data = bytes(40) + b"\x01" * 110
    gas = 40 * 4 + 110 * 16
    assert fees.calldata_gas(data) == gas
    l1_base, blob_base, s_base, s_blob = 30 * GWEI, 5 * GWEI, 1_368, 810_949
    fee = fees.ecotone_l1_fee(gas, l1_base, blob_base, s_base, s_blob)
    assert fee == gas * (16 * l1_base * s_base + blob_base * s_blob) // 16_000_000
    assert abs(fee - (gas / 16) * (16 * l1_base * s_base + blob_base * s_blob) / 1e6) <= 1


def test_base_fee_follows_eip1559_with_a_max_change_of_one_eighth():
    p = FeeParams(model=OP_ECOTONE, gas_target=21_000 * 100, elasticity=2, min_base_fee=1)
    assert fees.next_base_fee(p, 8_000, p.gas_target) == 8_000
    assert fees.next_base_fee(p, 8_000, p.gas_limit) == 9_000  # full block: +1/8
    assert fees.next_base_fee(p, 8_000, 0) == 7_000  # empty block: -1/8
    assert fees.next_base_fee(p, 8_000, p.gas_target * 3 // 2) == 8_500
    assert fees.next_base_fee(p, 8, p.gas_target + 1) == 9  # a rise is at least 1 wei
    assert fees.next_base_fee(p, p.min_base_fee, 0) == p.min_base_fee  # floor


def test_eth_views_pay_min_of_cap_and_base_plus_tip_and_the_l1_fee_on_top():
    ctx = FeeContext(ECOTONE, base_fee=100, l1_base_fee=GWEI, l1_blob_base_fee=1,
                     l1_price_per_byte=0)  # fmt: skip
    data = b"\x02" * 100
    l1 = ctx.l1_fee(TxFeeView.native(0, data))
    assert fees.charge(ctx, TxFeeView.eip1559(150, 20, 21_000, data)) == FeeCharge(
        100 * 21_000, l1, 20 * 21_000
    )
    assert fees.charge(ctx, TxFeeView.eip1559(110, 20, 21_000, data)) == FeeCharge(
        100 * 21_000, l1, 10 * 21_000
    )
    assert fees.charge(ctx, TxFeeView.legacy(120, 21_000, data)) == FeeCharge(
        100 * 21_000, l1, 20 * 21_000
    )
    refused = fees.charge(ctx, TxFeeView.eip1559(99, 1, 21_000, data))
    assert isinstance(refused, str)
    assert "below the L2 base fee" in refused


def test_params_json_round_trip_and_bad_fields_are_named():
    p = FeeParams(model=ARBITRUM_L1_PRICER, inertia=7)
    assert FeeParams.from_json(p.to_json()) == p
    with pytest.raises(FeeParamsError, match=r"fees\.model"):
        FeeParams.from_json({"model": "eip-9999"})
    with pytest.raises(FeeParamsError, match=r"fees\.gas_targt"):
        FeeParams.from_json({"gas_targt": 1})
    with pytest.raises(FeeParamsError, match=r"fees\.l1_fee_vault"):
        FeeParams.from_json({"l1_fee_vault": "0x1234"})


# --- the ledger ------------------------------------------------------------------------------


def test_without_fee_params_the_flat_rule_and_root_are_unchanged():
    tx = transfer(A, C.address, 5, 0, fee=9)
    plain, receipts = ledger(None).apply_block([tx], [], proposer=PROPOSER.public_key)
    assert plain.balance(P_ADDR) == 9
    assert receipts[0].fee_paid == 9
    assert receipts[0].base_fee_paid == receipts[0].l1_fee_paid == 0
    assert plain.fee_state() is None
    assert Ledger.from_bytes(plain.to_bytes()).state_root() == (plain.state_root())
    # An explicit flat model pays the proposer the same, but has a fee state in its root.
    flat, _ = ledger(FeeParams(model=FLAT)).apply_block(
        [tx], [], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    assert flat.balance(P_ADDR) == 9
    assert flat.state_root() != plain.state_root()


def test_ecotone_splits_base_l1_and_priority_to_vaults_and_proposer():
    led = ledger(ECOTONE)
    tx = transfer(A, C.address, 5, 0, fee=10**12)
    need = required(led, native_fee_view(tx))
    after, receipts = led.apply_block(
        [tx], [], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    r = receipts[0]
    assert r.base_fee_paid == 1_000 * fees.NATIVE_TX_GAS
    assert r.l1_fee_paid == need - r.base_fee_paid > 0
    assert r.fee_paid == tx.fee
    assert after.balance(ECOTONE.base_fee_vault) == r.base_fee_paid
    assert after.balance(ECOTONE.l1_fee_vault) == r.l1_fee_paid
    assert after.balance(P_ADDR) == tx.fee - need > 0
    assert after.balance(A.address) == 10**18 - 5 - tx.fee
    assert after.total_supply() == led.total_supply()
    state = after.fee_state()
    assert state is not None
    assert state.l1_origin == 7
    assert state.l1_base_fee == GWEI
    # one transfer is far below the target: the next base fee falls by almost 1/8
    assert state.base_fee == fees.next_base_fee(ECOTONE, 1_000, fees.NATIVE_TX_GAS) < 1_000


def test_ecotone_fee_below_base_plus_l1_is_invalid_and_refused_by_the_mempool():
    led = ledger(ECOTONE)
    tx0 = transfer(A, C.address, 5, 0, fee=0)
    low = transfer(A, C.address, 5, 0, fee=required(led, native_fee_view(tx0)) - 1)
    with pytest.raises(InvalidBlock, match="below the required"):
        led.apply_block([low], [], proposer=PROPOSER.public_key, fee_input=first_block_input())
    # The mempool judges against the tip (here: its first block already ran at this origin).
    tip, _ = led.apply_block([], [], proposer=PROPOSER.public_key, fee_input=first_block_input())
    pool = Mempool(chain_id=CHAIN_ID, max_txs=10, max_per_sender=10, max_nonce_gap=4)
    res = pool.add(low, tip)
    assert not res.accepted
    assert res.reason is RejectReason.FEE_TOO_LOW
    assert "op-ecotone" in res.detail
    assert "L1 data fee" in res.detail
    ok = transfer(A, C.address, 5, 0, fee=10**12)
    assert pool.add(ok, tip).accepted
    # The same fee is fine under the flat rule.
    assert (
        Mempool(chain_id=CHAIN_ID, max_txs=10, max_per_sender=10, max_nonce_gap=4)
        .add(low, ledger(None))
        .accepted
    )


def test_forced_entry_that_cannot_pay_the_base_fee_is_skipped_not_fatal():
    led = ledger(ECOTONE)
    entry = forced(0, 3, transfer(A, C.address, 5, 0, fee=1))
    after, receipts = led.apply_block(
        [], [entry], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    assert not receipts[0].ok
    assert "below the required" in (receipts[0].reason or "")
    assert after.forced_index() == 1
    assert after.nonce(A.address) == 0


def test_gas_limit_caps_a_block_and_the_builder_leaves_the_rest_out():
    p = dataclasses.replace(ECOTONE, gas_target=fees.NATIVE_TX_GAS, elasticity=2)
    led = ledger(p)
    txs = [transfer(A, C.address, 1, n, fee=10**12) for n in range(3)]
    with pytest.raises(InvalidBlock, match="gas limit"):
        led.apply_block(txs, [], proposer=PROPOSER.public_key, fee_input=first_block_input())
    after, included, _, dropped = led.build_block(
        txs, [], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    assert included == txs[:2]
    assert [tx for tx, _ in dropped] == txs[2:]
    state = after.fee_state()
    assert state is not None
    assert state.base_fee == 1_000 + 1_000 // 8


def test_fee_input_must_cover_the_l1_blocks_the_origin_moved_over():
    led = ledger(ECOTONE)
    with pytest.raises(ValueError, match="fee_input"):
        led.apply_block([], [], proposer=PROPOSER.public_key)
    after, _ = led.apply_block([], [], proposer=PROPOSER.public_key, fee_input=first_block_input())
    assert list(after.l1_needed(7)) == []
    assert list(after.l1_needed(9)) == [8, 9]
    with pytest.raises(ValueError, match="L1 data for blocks"):
        after.apply_block([], [], proposer=PROPOSER.public_key,
                          fee_input=FeeInput(9, (ORIGIN.with_number(9),)))  # fmt: skip


def test_snapshot_keeps_the_fee_state_and_the_root():
    led = ledger(ECOTONE)
    after, _ = led.apply_block([], [], proposer=PROPOSER.public_key, fee_input=first_block_input())
    back = Ledger.from_bytes(after.to_bytes())
    assert back.state_root() == after.state_root()
    assert back.fee_state() == after.fee_state()


def _run_origins(led: Ledger, infos: list[L1FeeInfo], **kw: bool) -> Ledger:
    return led.apply_block(
        [], [], proposer=PROPOSER.public_key,
        fee_input=FeeInput(infos[-1].number, tuple(infos), **kw),
    )[0]  # fmt: skip


def test_l1_fee_vault_pays_batch_costs_and_owes_what_it_cannot_pay():
    led = ledger(ECOTONE)
    tx = transfer(A, C.address, 5, 0, fee=10**15)
    led, receipts = led.apply_block(
        [tx], [], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    collected = receipts[0].l1_fee_paid
    infos = [L1FeeInfo(8, GWEI, 1, (BatchCost(0, collected + 50, 1_000),)), ORIGIN.with_number(9)]
    led = _run_origins(led, infos)
    assert led.balance(ECOTONE.l1_fee_vault) == 0
    assert led.balance(ECOTONE.batcher_account) == collected
    state = led.fee_state()
    assert state is not None
    assert state.owed == 50
    assert state.last_surplus == -50
    assert state.l1_origin == 9


def test_arbitrum_pricer_raises_the_price_on_a_deficit_and_lowers_it_on_a_surplus():
    p = FeeParams(model=ARBITRUM_L1_PRICER, initial_price_per_byte=1_000,
                  equilibration_units=10_000, inertia=10)  # fmt: skip
    led = ledger(p)
    tx = transfer(A, C.address, 5, 0, fee=10**15)
    led, receipts = led.apply_block(
        [tx], [], proposer=PROPOSER.public_key, fee_input=first_block_input()
    )
    sold = native_fee_view(tx).compressed_size
    assert receipts[0].l1_fee_paid == sold * 1_000
    expensive = [L1FeeInfo(8, GWEI, 1, (BatchCost(0, 10**9, 0),))]
    up = _run_origins(led, expensive).fee_state()
    assert up is not None
    assert up.price_per_byte > 1_000
    assert up.bytes_since_report == 0
    cheap = [L1FeeInfo(8, GWEI, 1, (BatchCost(0, 1, 0),))]
    down = _run_origins(led, cheap).fee_state()
    assert down is not None
    assert down.price_per_byte < 1_000


def test_owner_model_change_waits_for_the_next_epoch():
    led = ledger(FeeParams(model=FLAT))
    led = _run_origins(led, [ORIGIN])
    change = L1FeeInfo(8, GWEI, 1, fee_config=ECOTONE)
    led = _run_origins(led, [change])
    state = led.fee_state()
    assert state is not None
    assert state.params.model == FLAT
    assert state.pending == ECOTONE
    led = _run_origins(led, [ORIGIN.with_number(9)], epoch_start=True)
    state = led.fee_state()
    assert state is not None
    assert state.params == ECOTONE
    assert state.pending is None
    # the new model starts from its initial base fee (then this empty block lowered it)
    assert state.base_fee == fees.next_base_fee(ECOTONE, ECOTONE.initial_base_fee, 0)


def test_fee_state_canonical_round_trip():
    s = FeeState.genesis(ECOTONE)
    s = dataclasses.replace(s, l1_origin=3, last_surplus=-12, pending=FeeParams())
    assert FeeState.from_canonical(s.canonical()) == s


def test_genesis_fees_section_round_trips_and_names_bad_fields():
    from sequencer_node.genesis import GenesisError, L2Genesis, parse_genesis

    g = L2Genesis(901, 900, ((bytes(32), 1),), fees=ECOTONE)
    back = parse_genesis(g.to_json())
    assert back.fees == ECOTONE
    assert back.core_genesis().fees == ECOTONE
    plain = L2Genesis(901, 900, ((bytes(32), 1),))
    assert "fees" not in plain.to_json()
    assert parse_genesis(plain.to_json()).fees is None
    with pytest.raises(GenesisError, match=r"fees\.model"):
        parse_genesis({**plain.to_json(), "fees": {"model": "eip-1"}})
    with pytest.raises(GenesisError, match=r"fees\.elasticty"):
        parse_genesis({**plain.to_json(), "fees": {"elasticty": 2}})
