"""The rollup owner's L2 fee-model setting, and the per-block fee data the L2 reads from L1.

The L2 prices transactions from L1 data every honest node agrees on (docs/fees.md): for each
finalized L1 block, :func:`fee_record` gives its execution base fee, its blob base fee, what
each batch the inbox accepted in it cost the batcher (execution gas + blob gas, from the
call's receipt; for an external-DA batch also what the DA layer charged for its blob, read
from the attested data root tuple its pointer was proven against and converted to wei at
``ChainConfig.da_fee_wei_per_unit``), and the fee model the rollup's owner set in it, if any.

Only the owner (``ChainConfig.rollup_owner``, an address; empty: nobody) may call
``setFeeModel``. The L1 checks the shape (a JSON object naming a ``model``), not the
parameters: the L2 judges those, the same way at every node, and ignores a setting it cannot
use (docs/fees.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from l1_mock.chain.blocks import CallReceipt, L1Block
from l1_mock.chain.config import ChainConfig
from l1_mock.chain.errors import CallFailed
from l1_mock.chain.fees import blob_base_fee
from sequencer_node.wire.blobs import BYTES_PER_BLOB
from sequencer_node.wire.codec import CodecError
from sequencer_node.wire.da.pfb import blob_fee
from sequencer_node.wire.hexstr import to_hex
from sequencer_node.wire.l1calls import SetFeeModel, SubmitBatch, decode_params


@dataclass(frozen=True, slots=True)
class BatchCostRecord:
    """One accepted batch: its number, what posting it cost in wei (the L1's charge plus the
    DA layer's in wei), the bytes it posted; the L1 charge and the DA fee (in DA fee units)
    apart."""

    batch_number: int
    cost: int
    data_bytes: int
    l1_cost: int = 0
    da_fee: int = 0


@dataclass(frozen=True, slots=True)
class FeeRecord:
    """The fee data of one L1 block (see the module docstring)."""

    number: int
    base_fee: int
    blob_base_fee: int
    batches: tuple[BatchCostRecord, ...]
    fee_config: str | None


class FeeConfig:
    """The owner's fee-model settings, by the L1 block that made them."""

    def __init__(self, owner: bytes) -> None:
        self.owner = owner
        #: L1 block number -> the setting made in it (the last call of the block wins).
        self.settings: dict[int, str] = {}

    def check_set(self, sender: bytes, p: SetFeeModel) -> None:
        """Raise CallFailed unless ``sender`` is the owner and ``p`` names a model."""
        if not self.owner:
            raise CallFailed("this L1 has no rollup owner (rollup_owner in its genesis)")
        if sender != self.owner:
            raise CallFailed(
                f"only the rollup owner {to_hex(self.owner)} may set the fee model, "
                f"not {to_hex(sender)}"
            )
        try:
            obj = json.loads(p.fee_params)
        except ValueError as e:
            raise CallFailed(f"fee_params is not JSON: {e}") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("model"), str):
            raise CallFailed('fee_params must be a JSON object with a "model" string')

    def apply_set(self, p: SetFeeModel, l1_block: int) -> None:
        self.settings[l1_block] = p.fee_params


def fee_record(block: L1Block, config: ChainConfig, setting: str | None) -> FeeRecord:
    """The fee data of ``block`` (``setting``: the owner's setting made in it)."""
    h = block.header
    batches: list[BatchCostRecord] = []
    for call, receipt in zip(block.calls, block.receipts, strict=True):
        if receipt.status != 1 or call.method != "submitBatch":
            continue
        try:
            p = decode_params(call)
        except (CodecError, KeyError):  # pragma: no cover - stored calls were decoded before
            continue
        if not isinstance(p, SubmitBatch):  # pragma: no cover
            continue
        batches.append(_batch_cost(p, receipt, config))
    bfee = blob_base_fee(h.excess_blob_gas, config.fork_at(h.number))
    return FeeRecord(h.number, h.base_fee_per_gas, bfee, tuple(batches), setting)


def _batch_cost(p: SubmitBatch, receipt: CallReceipt, config: ChainConfig) -> BatchCostRecord:
    l1 = receipt.gas_used * receipt.effective_gas_price
    l1 += receipt.blob_gas_used * receipt.blob_gas_price
    header = p.certificate.header
    da = 0
    if p.da_proof is not None and header.da_pointer is not None:
        ptr = header.da_pointer
        da = blob_fee(ptr.end - ptr.start, p.da_proof.root_tuple.base_fee)
        size = header.data_bytes
    else:
        size = len(p.commitments) * BYTES_PER_BLOB if p.commitments else len(p.calldata)
    cost = l1 + da * config.da_fee_wei_per_unit
    return BatchCostRecord(header.batch_number, cost, size, l1, da)


__all__ = ["BatchCostRecord", "FeeConfig", "FeeRecord", "fee_record"]
