"""Batcher-only p2p messages (wire tags 100-119).

A :class:`BatchProposal` is what the poster broadcasts: the header it built, the
compression algorithm it used, the compressed payload (at most ``MAX_CALLDATA``, 3 MiB) and
(blob mode) the KZG commitment and proof of each blob, so every validator can encode the same
range from its own certified chain, accept the payload only if it decompresses to exactly
that (a few ms, where compressing it again took ~60 % of a rebuild), check the proposer's
proofs against the payload's blobs (a few ms per blob) instead of recomputing the commitments
(~130 ms per blob), and compare headers. Approvals travel as the shared
:class:`~sequencer_node.wire.messages.BatchApproval` (tag 21). Proposals are not signed: a
validator approves only what it rebuilt itself, so a forged proposal costs a rebuild and
nothing else (and proposals are only accepted from the sender's authenticated connection).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from sequencer_node.wire.codec import U8, Bytes, MaxItems, wire_message
from sequencer_node.wire.l1calls import MAX_CALLDATA
from sequencer_node.wire.messages import MAX_BATCH_BLOBS, BatchHeader

#: A KZG commitment or proof (a compressed BLS12-381 G1 point).
G1Point = Annotated[bytes, Bytes(48, 48)]


@wire_message(100)
@dataclass(frozen=True, slots=True)
class BatchProposal:
    """``header`` as built by the poster, the payload's compression algorithm tag, the
    compressed payload itself, and one KZG commitment and proof per blob (empty for
    calldata)."""

    header: BatchHeader
    algorithm: U8
    payload: Annotated[bytes, Bytes(2, MAX_CALLDATA)]
    commitments: Annotated[tuple[G1Point, ...], MaxItems(MAX_BATCH_BLOBS)] = ()
    proofs: Annotated[tuple[G1Point, ...], MaxItems(MAX_BATCH_BLOBS)] = ()


__all__ = ["BatchProposal"]
