"""L1 blocks as the chain records them: headers, receipts of the included calls, blob sidecars.

Blob bytes travel with a freshly built block only (the shell stores them and prunes them after
the retention window); what the chain keeps in memory is the block without them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass

from sequencer_node.wire.blobs import SLOTS_PER_EPOCH
from sequencer_node.wire.codec import encode, message_id
from sequencer_node.wire.l1calls import decode_params
from sequencer_node.wire.messages import L1Call


@dataclass(frozen=True, slots=True)
class BlockHeader:
    number: int
    slot: int
    timestamp: int
    parent_hash: bytes
    base_fee_per_gas: int
    gas_used: int
    blob_gas_used: int
    excess_blob_gas: int
    tx_root: bytes
    fork: str

    @property
    def epoch(self) -> int:
        return self.slot // SLOTS_PER_EPOCH

    @property
    def hash(self) -> bytes:
        h = hashlib.sha256(b"seqnet/l1-block")
        for v in (self.number, self.slot, self.timestamp, self.base_fee_per_gas, self.gas_used):
            h.update(v.to_bytes(16, "big"))
        for v in (self.blob_gas_used, self.excess_blob_gas):
            h.update(v.to_bytes(16, "big"))
        h.update(self.parent_hash + self.tx_root + self.fork.encode())
        return h.digest()


@dataclass(frozen=True, slots=True)
class CallReceipt:
    """What executing one included :class:`L1Call` did (status 0 = failed, with ``reason``)."""

    tx_hash: bytes
    block_number: int
    index: int
    sender: bytes
    method: str
    status: int
    gas_used: int
    effective_gas_price: int
    blob_gas_used: int
    blob_gas_price: int
    reason: str


@dataclass(frozen=True, slots=True)
class Sidecar:
    index: int
    blob: bytes
    commitment: bytes
    proof: bytes
    versioned_hash: bytes
    tx_hash: bytes


@dataclass(frozen=True, slots=True)
class L1Block:
    header: BlockHeader
    hash: bytes
    calls: tuple[L1Call, ...]
    receipts: tuple[CallReceipt, ...]
    #: versioned hashes per transaction (empty tuple for non-blob transactions).
    blob_hashes: tuple[tuple[bytes, ...], ...]
    sidecars: tuple[Sidecar, ...]


def tx_hash_of(call: L1Call) -> bytes:
    return message_id(call)


def strip_blobs(call: L1Call) -> L1Call:
    """``call`` with the blob bytes of a batch removed (commitments and proofs stay)."""
    if call.method != "submitBatch":
        return call
    p = decode_params(call)
    if not p.blobs:
        return call
    return dataclasses.replace(call, params=encode(dataclasses.replace(p, blobs=())))


def without_blob_bytes(block: L1Block) -> L1Block:
    """``block`` as the chain keeps it in memory: no sidecars, calls without blob bytes."""
    if not block.sidecars:
        return block
    return dataclasses.replace(block, sidecars=(), calls=tuple(strip_blobs(c) for c in block.calls))


__all__ = [
    "BlockHeader",
    "CallReceipt",
    "L1Block",
    "Sidecar",
    "strip_blobs",
    "tx_hash_of",
    "without_blob_bytes",
]
