"""Pure batch building: which certified blocks go into the next batch, its payload, blobs
and header. Deterministic and I/O-free (the time is an input).

Two parties run this code on the same blocks and must agree on the bytes: the poster, which
picks the range (:func:`pick_count`, :func:`fit_draft`) and compresses it, and every
co-signer, which encodes that exact range from its own chain and accepts the poster's
compressed payload only if it decompresses to exactly those bytes
(:func:`draft_from_payload`), then compares headers (:mod:`sequencer_node.batcher.cosign`).
The KZG part (blob versioned hashes) is not here: it runs in a worker process
(:mod:`sequencer_node.batcher.kzg_worker`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE, pack_blobs
from sequencer_node.batching.codec import (
    Batch,
    BatchFormatError,
    encode_body,
    encode_payload,
    payload_algorithm,
    payload_body,
)
from sequencer_node.batching.compression import Algorithm
from sequencer_node.wire.blobs import BYTES_PER_BLOB
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_CALLDATA,
    BatchHeader,
    CertifiedBlock,
)

#: Rough msgpack size of one block row without transactions, and of one transaction row;
#: only used to guess how many blocks fill a batch before compressing for real.
_BLOCK_OVERHEAD = 120
_TX_ROW = 142
_FORCED_ROW = 160
#: Fitting a draft into its size limit never tries more than this many ranges.
_MAX_FIT_ROUNDS = 8


class BatchTooLarge(ValueError):
    """The payload of the requested range does not fit the size limit."""

    def __init__(self, payload_bytes: int, limit: int) -> None:
        super().__init__(f"batch payload of {payload_bytes} bytes exceeds the limit of {limit}")
        self.payload_bytes = payload_bytes
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Draft:
    """A batch's data before KZG: the payload and, in blob mode, its packed blobs."""

    first_height: int
    last_height: int
    last_block_hash: bytes
    state_root: bytes
    forced_index: int
    algorithm: int
    da_kind: int
    payload: bytes
    blobs: tuple[bytes, ...]
    tx_count: int

    @property
    def data_hash(self) -> bytes:
        return hashlib.sha256(self.payload).digest()

    @property
    def posted_bytes(self) -> int:
        """Bytes the L1 carries: whole blobs, or the calldata."""
        return len(self.blobs) * BYTES_PER_BLOB if self.blobs else len(self.payload)

    @property
    def blob_fill(self) -> float:
        """Share of the usable blob capacity the payload fills (1.0 for calldata)."""
        if not self.blobs:
            return 1.0
        return len(self.payload) / (len(self.blobs) * MAX_BLOB_DATA_SIZE)


def estimate_body_bytes(cb: CertifiedBlock) -> int:
    b = cb.block
    eth = sum(len(e.raw) + 3 for e in b.eth_transactions)  # msgpack bin header: 2-3 bytes
    return _BLOCK_OVERHEAD + _TX_ROW * len(b.transactions) + _FORCED_ROW * len(b.forced) + eth


def pick_count(
    pending: Sequence[CertifiedBlock],
    *,
    now_ms: int,
    max_payload: int,
    fill_target: float,
    max_age_ms: int,
    ratio: float = 0.95,
    max_age_empty_ms: int | None = None,
) -> int:
    """How many of ``pending`` (consecutive, oldest first) to batch now; 0 means wait.

    ``ratio`` is the expected payload/body size ratio (compression), learned from the
    previous batch. A batch is cut when the blocks would fill ``fill_target`` of
    ``max_payload`` (or more blocks are pending than fit), or when the oldest pending block
    is ``max_age_ms`` old (``max_age_empty_ms`` when no pending block carries a transaction:
    a quiet chain need not pay for a nearly empty blob every few seconds).
    """
    if not pending:
        return 0
    ratio = min(max(ratio, 0.05), 2.0)
    budget = max_payload / ratio
    n, total = 0, 0
    for cb in pending:
        size = estimate_body_bytes(cb)
        if n and total + size > budget:
            return n  # the next block would overflow: the batch is full
        n += 1
        total += size
    if total >= fill_target * budget:
        return n
    age_limit = max_age_ms
    if max_age_empty_ms is not None and not any(
        cb.block.transactions or cb.block.forced or cb.block.eth_transactions for cb in pending[:n]
    ):
        age_limit = max(max_age_ms, max_age_empty_ms)
    if now_ms - pending[0].block.header.timestamp_ms >= age_limit:
        return n
    return 0


def draft_batch(
    blocks: Sequence[CertifiedBlock], *, algorithm: Algorithm | int, da: str, max_payload: int
) -> Draft:
    """The payload (and blobs) of exactly ``blocks``.

    Raises:
        BatchFormatError: the blocks are not a chain.
        BatchTooLarge: the payload exceeds ``max_payload``.
    """
    batch = Batch.from_certified(blocks)
    payload = encode_payload(batch, Algorithm(algorithm))
    if len(payload) > max_payload:
        raise BatchTooLarge(len(payload), max_payload)
    return _draft(blocks, batch, payload, int(algorithm), da)


def _draft(
    blocks: Sequence[CertifiedBlock], batch: Batch, payload: bytes, algorithm: int, da: str
) -> Draft:
    last = blocks[-1].block.header
    return Draft(
        first_height=batch.first_height,
        last_height=batch.last_height,
        last_block_hash=batch.last_block_hash(),
        state_root=last.state_root,
        forced_index=last.forced_index,
        algorithm=algorithm,
        da_kind=DA_BLOBS if da == "blobs" else DA_CALLDATA,
        payload=payload,
        blobs=tuple(pack_blobs(payload)) if da == "blobs" else (),
        tx_count=batch.tx_count(),
    )


class PayloadMismatch(ValueError):
    """A proposer's payload is not the compressed encoding of this node's blocks."""


def draft_from_payload(
    blocks: Sequence[CertifiedBlock], payload: bytes, *, da: str, max_payload: int
) -> Draft:
    """The draft of exactly ``blocks`` with another node's compressed ``payload``, accepted
    only if it decompresses to this node's own encoding of them, byte for byte.

    Compressing is what costs (brotli 9: ~60 % of a co-signer's rebuild, docs/benchmarks.md);
    decompressing is a few ms, and any payload that decompresses to the right body decodes to
    the right batch for every follower, so the co-signer need not compress at all.

    Raises:
        BatchFormatError: the blocks are not a chain.
        BatchTooLarge: the payload exceeds ``max_payload``.
        PayloadMismatch: the payload is corrupt or decompresses to other bytes (or more).
    """
    batch = Batch.from_certified(blocks)
    if len(payload) > max_payload:
        raise BatchTooLarge(len(payload), max_payload)
    body = encode_body(batch)
    try:
        theirs = payload_body(payload, max_body=len(body))
    except BatchFormatError as e:
        raise PayloadMismatch(f"the proposer's payload does not decompress: {e}") from None
    if theirs != body:
        raise PayloadMismatch("the proposer's payload decompresses to other bytes than our blocks")
    return _draft(blocks, batch, payload, int(payload_algorithm(payload)), da)


def fit_draft(
    blocks: Sequence[CertifiedBlock], *, algorithm: Algorithm | int, da: str, max_payload: int
) -> Draft:
    """The draft of the longest prefix of ``blocks`` (tried in shrinking steps) that fits.

    Raises:
        BatchTooLarge: even the first block alone does not fit.
    """
    n = len(blocks)
    for _ in range(_MAX_FIT_ROUNDS):
        try:
            return draft_batch(blocks[:n], algorithm=algorithm, da=da, max_payload=max_payload)
        except BatchTooLarge as e:
            if n == 1:
                raise
            n = max(1, min(n - 1, int(n * max_payload / e.payload_bytes * 0.97)))
    return draft_batch(blocks[:1], algorithm=algorithm, da=da, max_payload=max_payload)


def make_header(
    draft: Draft,
    *,
    chain_id: int,
    batch_number: int,
    parent_batch_hash: bytes,
    stake_epoch: int,
    blob_hashes: Sequence[bytes],
) -> BatchHeader:
    """The header that names ``draft`` (``blob_hashes`` from the KZG commitments)."""
    if len(blob_hashes) != len(draft.blobs):
        raise ValueError(f"{len(draft.blobs)} blobs but {len(blob_hashes)} versioned hashes")
    return BatchHeader(
        chain_id=chain_id,
        batch_number=batch_number,
        stake_epoch=stake_epoch,
        first_height=draft.first_height,
        last_height=draft.last_height,
        last_block_hash=draft.last_block_hash,
        parent_batch_hash=parent_batch_hash,
        state_root=draft.state_root,
        forced_index=draft.forced_index,
        da_kind=draft.da_kind,
        blob_hashes=tuple(blob_hashes),
        data_hash=draft.data_hash,
        data_bytes=len(draft.payload),
    )


_FIELDS = (
    "chain_id",
    "batch_number",
    "stake_epoch",
    "first_height",
    "last_height",
    "last_block_hash",
    "parent_batch_hash",
    "state_root",
    "forced_index",
    "da_kind",
    "blob_hashes",
    "data_hash",
    "data_bytes",
)


def header_mismatch(proposed: BatchHeader, rebuilt: BatchHeader) -> str | None:
    """Which fields of ``proposed`` differ from ``rebuilt`` (None if they are equal)."""
    diffs = [f for f in _FIELDS if getattr(proposed, f) != getattr(rebuilt, f)]
    if not diffs:
        return None
    parts = []
    for f in diffs:
        a, b = getattr(proposed, f), getattr(rebuilt, f)
        if isinstance(a, bytes):
            parts.append(f"{f} 0x{a.hex()[:16]}.. != 0x{b.hex()[:16]}..")
        elif isinstance(a, tuple):
            parts.append(f"{f} ({len(a)} hashes) differ from ours ({len(b)})")
        else:
            parts.append(f"{f} {a} != {b}")
    return "; ".join(parts)


__all__ = [
    "BatchTooLarge",
    "Draft",
    "PayloadMismatch",
    "draft_batch",
    "draft_from_payload",
    "estimate_body_bytes",
    "fit_draft",
    "header_mismatch",
    "make_header",
    "pick_count",
]
