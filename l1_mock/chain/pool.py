"""The pool of accepted calls waiting for a block, and the choice of what the next block takes.

Pool entries are taken by blob fee (highest first) then arrival, in nonce order per sender; a
blob transaction whose ``max_fee_per_blob_gas`` is below the block's blob base fee, or that does
not fit in the block's blob gas, waits for a later block.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sequencer_node.wire.blobs import GAS_PER_BLOB
from sequencer_node.wire.crypto import address_of
from sequencer_node.wire.messages import L1Call


@dataclass(slots=True)
class PendingCall:
    call: L1Call
    #: The decoded parameter message of ``call``.
    params: Any
    hash: bytes
    #: Arrival order.
    seq: int
    blob_count: int
    max_fee_per_blob_gas: int


@dataclass(frozen=True, slots=True)
class BlockLimits:
    blob_base_fee: int
    max_blob_gas: int
    max_txs: int


def select_for_block(
    pool: dict[bytes, PendingCall], nonce_of: Callable[[bytes], int], limits: BlockLimits
) -> list[PendingCall]:
    """The pool entries the next block includes, in execution order."""
    chosen: list[PendingCall] = []
    taken: set[bytes] = set()
    nonces: dict[bytes, int] = {}
    blob_gas = 0
    order = sorted(pool.values(), key=lambda p: (-p.max_fee_per_blob_gas, p.seq))
    progress = True
    # A sender's next call may sort before the one that frees its nonce: repeat until stable.
    while progress and len(chosen) < limits.max_txs:
        progress = False
        for p in order:
            if p.hash in taken or len(chosen) >= limits.max_txs:
                continue
            addr = address_of(p.call.sender)
            if p.call.nonce != nonces.get(addr, nonce_of(addr)):
                continue
            if p.blob_count:
                if p.max_fee_per_blob_gas < limits.blob_base_fee:
                    continue
                if blob_gas + p.blob_count * GAS_PER_BLOB > limits.max_blob_gas:
                    continue
                blob_gas += p.blob_count * GAS_PER_BLOB
            chosen.append(p)
            taken.add(p.hash)
            nonces[addr] = p.call.nonce + 1
            progress = True
    return chosen


__all__ = ["BlockLimits", "PendingCall", "select_for_block"]
