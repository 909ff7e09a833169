"""``GET /v1/fees``: the fee model in force and what a native transfer costs now.

Read from the committed state's fee state (:mod:`sequencer_node.core.fees`): the next block's
L2 base fee, the L1 origin's base fees, the L1 pricer's price, and the model's parameters; the
L1 part is priced at the newest finalized L1 block the node has read when that is newer than
the committed origin (the next blocks will use it). The suggested fee of a native transfer is
:func:`~sequencer_node.core.fees.estimate_native` for a transfer of the largest encoding (an
upper bound of the L1 data fee). Amounts are decimal strings (docs/node-api.md).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sequencer_node.core.fees import (
    NATIVE_TX_GAS,
    OP_FJORD,
    SCALAR_DECIMALS,
    FeeContext,
    FeeState,
    L1FeeInfo,
    TxFeeView,
    estimate_native,
    suggested_priority_per_gas,
)
from sequencer_node.core.ledger import Ledger, native_fee_view
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.messages import Transaction

_U64_MAX = (1 << 64) - 1
#: The largest native transfer (every field at its widest, no zero byte): its L1 data fee
#: bounds any transfer's.
WIDEST_TRANSFER = Transaction(b"\xff" * 32, b"\xff" * 20, _U64_MAX, _U64_MAX, _U64_MAX,
                              b"\xff" * 64)  # fmt: skip


def widest_view() -> TxFeeView:
    return native_fee_view(WIDEST_TRANSFER)


def pricing_context(state: FeeState, latest: L1FeeInfo | None) -> FeeContext:
    """The committed state's fee context, its L1 part moved to ``latest`` when newer."""
    ctx = state.context()
    if latest is not None and (state.l1_origin is None or latest.number > state.l1_origin):
        ctx = dataclasses.replace(
            ctx, l1_base_fee=latest.base_fee, l1_blob_base_fee=latest.blob_base_fee
        )
    return ctx


def fees_json(ledger: Ledger, height: int, latest: L1FeeInfo | None) -> dict[str, Any]:
    """The ``/v1/fees`` document for the committed ``ledger`` at ``height``."""
    state = ledger.fee_state()
    view = widest_view()
    if state is None:
        est = estimate_native(None, view)
        return {
            "model": "flat", "fee_state": False, "at_height": height, "params": None,
            "pending_model": None, "base_fee_per_gas": "0", "l1_origin": None,
            "l1_base_fee": None, "l1_blob_base_fee": None, "l1_data_price_per_byte": "0",
            "suggested_priority_fee_per_gas": "0", "native_transfer": _estimate_json(est, view),
        }  # fmt: skip
    ctx = pricing_context(state, latest)
    p = state.params
    est = estimate_native(ctx, view)
    return {
        "model": p.model,
        "fee_state": True,
        "at_height": height,
        "params": p.to_json(),
        "pending_model": None if state.pending is None else state.pending.to_json(),
        "base_fee_per_gas": str(ctx.base_fee if p.charges_base_fee else 0),
        "gas_target": p.gas_target,
        "gas_limit": p.gas_limit,
        "l1_origin": state.l1_origin,
        "l1_priced_at": state.l1_origin if latest is None else max(latest.number,
                                                                   state.l1_origin or 0),
        "l1_base_fee": str(ctx.l1_base_fee),
        "l1_blob_base_fee": str(ctx.l1_blob_base_fee),
        "l1_data_price_per_byte": str(ctx.l1_price_per_byte_now()),
        "suggested_priority_fee_per_gas": str(suggested_priority_per_gas(ctx)),
        "native_transfer": _estimate_json(est, view, p.model == OP_FJORD),
        "vaults": _vaults_json(ledger, state),
    }  # fmt: skip


def _estimate_json(est: Any, view: TxFeeView, fjord: bool = False) -> dict[str, Any]:
    # op-fjord prices Fjord's FastLZ-based size estimate; the other models calldataGas / 16
    size = -(-view.fjord_size_scaled() // SCALAR_DECIMALS) if fjord else view.compressed_size
    return {
        "gas": NATIVE_TX_GAS,
        "compressed_size": size,
        "base_fee": str(est.base),
        "l1_data_fee": str(est.l1),
        "priority_fee": str(est.priority),
        "suggested_fee": str(est.fee),
    }


def _vaults_json(ledger: Ledger, state: FeeState) -> dict[str, Any]:
    p = state.params
    return {
        "base_fee_vault": {"address": to_hex(p.base_fee_vault),
                           "balance": str(ledger.balance(p.base_fee_vault))},
        "l1_fee_vault": {"address": to_hex(p.l1_fee_vault),
                         "balance": str(ledger.balance(p.l1_fee_vault)),
                         "owed_to_batcher": str(state.owed)},
        "batcher_account": {"address": to_hex(p.batcher_account),
                            "balance": str(ledger.balance(p.batcher_account))},
    }  # fmt: skip


__all__ = ["WIDEST_TRANSFER", "fees_json", "pricing_context", "widest_view"]
