"""EIP-4844 blob fee market and calldata pricing, exactly as the EIPs' pseudo-code.

Sources: EIP-4844 (``fake_exponential``, ``calc_excess_blob_gas``), EIP-7918 (reserve price,
Osaka on), EIP-7892 (blob schedule), EIP-2028 / EIP-7623 (calldata 16/4 and the 10/40 floor).
"""

from __future__ import annotations

from sequencer_node.wire.blobs import (
    BLOB_BASE_COST,
    GAS_PER_BLOB,
    MIN_BASE_FEE_PER_BLOB_GAS,
    BlobParams,
)

TX_BASE_GAS = 21_000
STANDARD_TOKEN_COST = 4
TOTAL_COST_FLOOR_PER_TOKEN = 10


def fake_exponential(factor: int, numerator: int, denominator: int) -> int:
    """Integer approximation of ``factor * e ** (numerator / denominator)`` (EIP-4844)."""
    i = 1
    output = 0
    acc = factor * denominator
    while acc > 0:
        output += acc
        acc = (acc * numerator) // (denominator * i)
        i += 1
    return output // denominator


def blob_base_fee(excess_blob_gas: int, params: BlobParams) -> int:
    """Base fee per blob gas of a block whose own ``excess_blob_gas`` is given."""
    return fake_exponential(MIN_BASE_FEE_PER_BLOB_GAS, excess_blob_gas, params.update_fraction)


def calc_excess_blob_gas(
    parent_excess: int, parent_used: int, parent_base_fee_per_gas: int, params: BlobParams
) -> int:
    """Excess blob gas of a child block; ``params`` is the schedule entry of the child."""
    target = params.target_blob_gas
    if parent_excess + parent_used < target:
        return 0
    if params.reserve_price and BLOB_BASE_COST * parent_base_fee_per_gas > (
        GAS_PER_BLOB * fake_exponential(1, parent_excess, params.update_fraction)
    ):
        return parent_excess + parent_used * (params.max - params.target) // params.max
    return parent_excess + parent_used - target


def calldata_tokens(data: bytes) -> int:
    zeros = data.count(0)
    return zeros + 4 * (len(data) - zeros)


def calldata_gas(data: bytes, params: BlobParams, execution_gas: int = 0) -> int:
    """Gas of a transaction carrying ``data``: 21000 + 4/16 per byte + ``execution_gas``,
    raised to the EIP-7623 floor (21000 + 10/40 per byte) from Prague on."""
    tokens = calldata_tokens(data)
    standard = TX_BASE_GAS + STANDARD_TOKEN_COST * tokens + execution_gas
    if params.calldata_floor:
        return max(standard, TX_BASE_GAS + TOTAL_COST_FLOOR_PER_TOKEN * tokens)
    return standard


__all__ = [
    "blob_base_fee",
    "calc_excess_blob_gas",
    "calldata_gas",
    "calldata_tokens",
    "fake_exponential",
]
