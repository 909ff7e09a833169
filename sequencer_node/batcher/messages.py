"""Batcher-only p2p messages (wire tags 100-119).

A :class:`BatchProposal` is what the poster broadcasts: the header it built and the
compression algorithm it used, so every validator can rebuild the same payload from its own
certified chain and compare. Approvals travel as the shared
:class:`~sequencer_node.wire.messages.BatchApproval` (tag 21). Proposals are not signed: a
validator approves only what it rebuilt itself, so a forged proposal costs a rebuild and
nothing else (and proposals are only accepted from the sender's authenticated connection).
"""

from __future__ import annotations

from dataclasses import dataclass

from sequencer_node.wire.codec import U8, wire_message
from sequencer_node.wire.messages import BatchHeader


@wire_message(100)
@dataclass(frozen=True, slots=True)
class BatchProposal:
    """``header`` as built by the poster, and the payload's compression algorithm tag."""

    header: BatchHeader
    algorithm: U8


__all__ = ["BatchProposal"]
