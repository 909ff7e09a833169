"""Ethereum transactions in the ledger and the pool: nonce, balance, fee and refusal rules."""

from __future__ import annotations

import pytest

from sequencer_node.core.fees import FeeParams, L1FeeInfo
from sequencer_node.core.ledger import (
    FeeInput,
    InvalidBlock,
    Ledger,
    Receipt,
    base_fee_of,
    split_txs,
    tx_root,
)
from sequencer_node.core.mempool import Mempool, RejectReason
from sequencer_node.wire.crypto import SigningKey, address_of
from sequencer_node.wire.eth import EthTransaction, eth_tx_hash

from .helpers import ADDR_0, CHAIN_ID, GWEI, RECIPIENT, eth, legacy, type2

PROPOSER = SigningKey.deterministic("eth-test-proposer")
FEE_TO = address_of(PROPOSER.public_key)
FUNDS = 10**18


def ledger(balance: int = FUNDS) -> Ledger:
    return Ledger.genesis({ADDR_0: balance})


def run(lg: Ledger, *raws: bytes) -> tuple[Ledger, list[Receipt]]:
    return lg.apply_block(
        [], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, eth_txs=[eth(r) for r in raws]
    )


def test_type2_transfer_pays_value_and_priority_fee_to_the_proposer():
    lg, receipts = run(ledger(), type2(value=1_000, max_fee=3 * GWEI, tip=GWEI))
    fee = 21_000 * GWEI  # min(max fee, base fee 0 + tip)
    assert lg.balance(RECIPIENT) == 1_000
    assert lg.balance(ADDR_0) == FUNDS - 1_000 - fee
    assert lg.balance(FEE_TO) == fee
    assert lg.nonce(ADDR_0) == 1
    assert lg.total_supply() == FUNDS
    (r,) = receipts
    assert r.ok
    assert r.fee_paid == fee
    assert r.tx_hash == eth_tx_hash(eth(type2(value=1_000, max_fee=3 * GWEI, tip=GWEI)))


def test_legacy_transfer_pays_gas_price_times_21000_whatever_its_gas_limit():
    lg, receipts = run(ledger(), legacy(value=7, gas=50_000, gas_price=2 * GWEI))
    assert lg.balance(ADDR_0) == FUNDS - 7 - 21_000 * 2 * GWEI
    assert receipts[0].fee_paid == 21_000 * 2 * GWEI


def test_nonces_must_follow_each_other():
    lg, _ = run(ledger(), type2(nonce=0), type2(nonce=1))
    assert lg.nonce(ADDR_0) == 2
    with pytest.raises(InvalidBlock, match="nonce too low"):
        run(lg, type2(nonce=1, value=2))
    with pytest.raises(InvalidBlock, match="nonce too high"):
        run(lg, type2(nonce=3))


def test_balance_must_cover_value_plus_gas_limit_times_max_fee():
    need = 1_000 + 30_000 * 2 * GWEI
    run(ledger(need), type2(value=1_000, gas=30_000, max_fee=2 * GWEI))
    with pytest.raises(InvalidBlock, match="insufficient funds"):
        run(ledger(need - 1), type2(value=1_000, gas=30_000, max_fee=2 * GWEI))


@pytest.mark.parametrize(
    ("raw", "needle"),
    [
        (type2(chain_id=CHAIN_ID + 1), "invalid chain id"),
        (type2(data=b"\x01"), "data are not supported"),
        (type2(to=None), "contract creation"),
        (type2(gas=20_000), "intrinsic gas too low"),
        (b"\x02\x00", "expected a list of 12 fields"),
    ],
)
def test_a_block_with_a_refused_eth_transaction_is_invalid(raw, needle):
    with pytest.raises(InvalidBlock, match=needle):
        run(ledger(), raw)


def test_eth_transactions_run_after_native_ones_and_enter_the_tx_root():
    raws = [eth(type2(nonce=0)), eth(type2(nonce=1))]
    lg = ledger()
    built, included, receipts, dropped = lg.build_block(
        [raws[1], raws[0]][::-1], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert included == raws
    assert not dropped
    native, eth_txs = split_txs(included)
    assert native == ()
    assert eth_txs == tuple(raws)
    applied, _ = lg.apply_block(
        native, [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, eth_txs=eth_txs
    )
    assert applied.state_root() == built.state_root()
    assert tx_root((), (), eth_txs) != tx_root((), ())
    assert tx_root((), (), ()) == tx_root((), ())  # blocks without them keep their root
    assert [r.tx_hash for r in receipts] == [eth_tx_hash(r) for r in raws]


def test_build_block_drops_an_eth_candidate_that_fails():
    good, stale = eth(type2(nonce=0)), eth(type2(nonce=5))
    _, included, _, dropped = ledger().build_block(
        [good, stale], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID
    )
    assert included == [good]
    assert dropped[0][0] == stale
    assert "nonce too high" in dropped[0][1]


# --- the pool -------------------------------------------------------------------------------


def pool() -> Mempool:
    return Mempool(chain_id=CHAIN_ID, max_txs=100, max_per_sender=10, max_nonce_gap=5)


def test_pool_admits_eth_transactions_by_their_ethereum_hash_and_counts_pending_nonces():
    mp, lg = pool(), ledger()
    r = mp.add(eth(type2(nonce=0)), lg)
    assert r.accepted
    assert r.tx_hash == eth_tx_hash(eth(type2(nonce=0)))
    assert mp.add(eth(type2(nonce=1)), lg).accepted
    assert mp.pending_nonce_of(ADDR_0, lg) == 2
    chosen = mp.select(lg, 10)
    assert chosen == [eth(type2(nonce=0)), eth(type2(nonce=1))]
    after, _ = run(lg, type2(nonce=0), type2(nonce=1))
    mp.remove_committed(after)
    assert len(mp) == 0


@pytest.mark.parametrize(
    ("raw", "reason", "needle"),
    [
        (type2(chain_id=CHAIN_ID + 1), RejectReason.WRONG_CHAIN, "invalid chain id"),
        (type2(data=b"\x01"), RejectReason.INVALID_TRANSACTION, "value transfers only"),
        (b"\x02\xc0", RejectReason.INVALID_TRANSACTION, "12 fields"),
        (type2(nonce=6), RejectReason.NONCE_TOO_HIGH, "too far ahead"),
        (type2(value=FUNDS), RejectReason.INSUFFICIENT_BALANCE, "value + gas limit"),
    ],
)
def test_pool_refusals(raw, reason, needle):
    r = pool().add(EthTransaction(raw), ledger())
    assert not r.accepted
    assert r.reason is reason
    assert needle in r.detail


def test_pool_refuses_a_replayed_and_an_underpriced_replacement():
    mp, lg = pool(), ledger()
    assert mp.add(eth(type2(nonce=0)), lg).accepted
    assert mp.add(eth(type2(nonce=0)), lg).reason is RejectReason.DUPLICATE
    cheaper = eth(type2(nonce=0, value=2, tip=GWEI))
    assert mp.add(cheaper, lg).reason is RejectReason.REPLACEMENT_UNDERPRICED
    bumped = eth(type2(nonce=0, value=2, tip=GWEI * 11 // 10, max_fee=3 * GWEI))
    assert mp.add(bumped, lg).detail == "replaced"
    after, _ = run(lg, type2(nonce=0))
    replayed = mp.add(eth(type2(nonce=0)), after)
    assert replayed.reason is RejectReason.NONCE_TOO_LOW


# --- under a fee model ----------------------------------------------------------------------


def test_under_op_ecotone_an_eth_transfer_pays_base_fee_tip_and_l1_fee():
    params = FeeParams(model="op-ecotone")
    lg = Ledger.genesis({ADDR_0: FUNDS}, fees=params)
    base = base_fee_of(lg)
    assert base == params.initial_base_fee > 0
    raw = type2(value=1_000, max_fee=base + 3 * GWEI, tip=GWEI)
    fin = FeeInput(l1_origin=7, l1=(L1FeeInfo(7, base_fee=GWEI, blob_base_fee=1),))
    after, (receipt,) = lg.apply_block(
        [], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, fee_input=fin,
        eth_txs=[eth(raw)],
    )  # fmt: skip
    assert receipt.base_fee_paid == 21_000 * base
    assert receipt.l1_fee_paid > 0  # its raw bytes priced at the L1 origin's fees
    assert receipt.fee_paid == 21_000 * (base + GWEI) + receipt.l1_fee_paid
    assert after.balance(params.base_fee_vault) == receipt.base_fee_paid
    assert after.balance(params.l1_fee_vault) == receipt.l1_fee_paid
    assert after.balance(FEE_TO) == 21_000 * GWEI  # min(max fee - base, tip) per gas
    assert after.balance(ADDR_0) == FUNDS - 1_000 - receipt.fee_paid
    assert after.total_supply() == FUNDS
    cheap = type2(nonce=1, max_fee=base_fee_of(after) - 1, tip=0)
    with pytest.raises(InvalidBlock, match="below the L2 base fee"):
        after.apply_block(
            [], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID,
            fee_input=FeeInput(l1_origin=7), eth_txs=[eth(cheap)],
        )  # fmt: skip


def test_under_the_flat_model_the_effective_priority_fee_goes_to_the_proposer():
    lg = Ledger.genesis({ADDR_0: FUNDS}, fees=FeeParams(model="flat"))
    fin = FeeInput(l1_origin=7, l1=(L1FeeInfo(7, base_fee=GWEI, blob_base_fee=1),))
    after, (receipt,) = lg.apply_block(
        [], [], proposer=PROPOSER.public_key, chain_id=CHAIN_ID, fee_input=fin,
        eth_txs=[eth(type2(max_fee=5 * GWEI, tip=2 * GWEI))],
    )  # fmt: skip
    assert receipt.fee_paid == 21_000 * 2 * GWEI  # min(5 gwei, 0 + 2 gwei), not the max fee
    assert after.balance(FEE_TO) == receipt.fee_paid
