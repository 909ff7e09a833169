"""The op-fjord fee model (issue 15): the OP Stack Fjord L1 data fee, priced from the FastLZ
length of the transaction's bytes (specs: protocol/fjord/exec-engine.md), and a network of
nodes on the simulator agreeing under it."""

from __future__ import annotations

import dataclasses

from sequencer_node.core import fees
from sequencer_node.core.fastlz import fastlz_compressed_len
from sequencer_node.core.fees import MODELS, OP_ECOTONE, OP_FJORD, FeeParams, L1FeeInfo
from sequencer_node.core.ledger import FeeInput, Ledger, native_fee_view
from sequencer_node.shell.fee_views import fees_json
from sequencer_node.sim.harness import Simulation
from tests.core.test_fastlz import CONTRACT_CALL_TX

from .helpers import KEYS, PROPOSER, transfer

GWEI = 10**9
FJORD = FeeParams(model=OP_FJORD, initial_base_fee=1_000, min_base_fee=10)
A, C = KEYS[0], KEYS[2]


def test_fjord_l1_fee_matches_the_spec_formula() -> None:
    # estimatedSizeScaled = max(minTransactionSize * 1e6, intercept + fastlzCoef * fastlzSize)
    # l1Fee = estimatedSizeScaled * (16 * l1BaseFee * baseScalar + blobBaseFee * blobScalar) / 1e12
    flz = fastlz_compressed_len(CONTRACT_CALL_TX)
    assert flz == 202
    size = fees.fjord_size_scaled(flz)
    assert size == -42_585_600 + 836_500 * 202 == 126_387_400
    l1_base, blob_base, s_base, s_blob = 30 * GWEI, 5 * GWEI, 1_368, 810_949
    fee = fees.fjord_l1_fee(size, l1_base, blob_base, s_base, s_blob)
    assert fee == 126_387_400 * (16 * l1_base * s_base + blob_base * s_blob) // 10**12
    # a small transaction is priced as the minimum size, 100 bytes
    assert fees.fjord_size_scaled(10) == 100 * 10**6
    assert fees.fjord_size_scaled(0) == 100 * 10**6


def test_op_fjord_charges_the_fjord_fee_and_differs_from_ecotone() -> None:
    tx = transfer(A, C.address, 5, 0, fee=10**13)
    view = native_fee_view(tx)
    led = Ledger.genesis({A.address: 10**18}, FJORD)
    origin = L1FeeInfo(7, base_fee=GWEI, blob_base_fee=3)
    after, (r,) = led.apply_block([tx], [], proposer=PROPOSER.public_key,
                                  fee_input=FeeInput(7, (origin,)))  # fmt: skip
    size = fees.fjord_size_scaled(fastlz_compressed_len(view.data))
    assert r.l1_fee_paid == fees.fjord_l1_fee(size, GWEI, 3, FJORD.base_fee_scalar,
                                              FJORD.blob_base_fee_scalar)  # fmt: skip
    assert r.l1_fee_paid > 0
    assert after.balance(FJORD.l1_fee_vault) == r.l1_fee_paid
    ecotone = fees.ecotone_l1_fee(view.data_gas, GWEI, 3, FJORD.base_fee_scalar,
                                  FJORD.blob_base_fee_scalar)  # fmt: skip
    assert r.l1_fee_paid != ecotone


def test_the_fees_view_gives_fjords_size_estimate() -> None:
    doc = fees_json(Ledger.genesis({}, FJORD), 0, L1FeeInfo(3, GWEI, 1))
    assert doc["model"] == OP_FJORD
    t = doc["native_transfer"]
    assert t["compressed_size"] == 100  # the widest transfer falls under Fjord's floor
    assert int(t["l1_data_fee"]) == fees.fjord_l1_fee(
        100 * 10**6, GWEI, 1, FJORD.base_fee_scalar, FJORD.blob_base_fee_scalar
    )


def test_models_keep_their_canonical_index_and_op_fjord_round_trips() -> None:
    assert MODELS.index(OP_ECOTONE) == 1  # the state roots of existing chains stay the same
    assert FeeParams.from_canonical(FJORD.canonical()) == FJORD
    assert FeeParams.from_json(FJORD.to_json()) == FJORD
    assert dataclasses.replace(FJORD, model=OP_ECOTONE).canonical()[0] == 1


def test_fjord_network_pays_the_l1_fee_vault_and_agrees() -> None:
    sim = Simulation(21, fees=FJORD)
    for r in range(20):
        sim.submit_tx(r % 4, r % 4)
        sim.run_for(100)
    sim.run_for(2_000)
    cores = [n.core for n in sim.honest() if n.core is not None]
    height = min(c.committed_height for c in cores)
    assert height > 10
    led = cores[0].committed_ledger
    assert led.balance(FJORD.l1_fee_vault) > 0
    assert sum(led.nonce(u.address) for u in sim.users) == 20
    roots = {c.committed_ledger.state_root() for c in cores if c.committed_height == height}
    assert len(roots) == 1
