"""The batcher's Prometheus metrics, on the node's registry (:class:`BatcherMetrics`).

The node's ``NodeMetrics`` declares the counters it has always exported
(``seqnet_batches{state}``, ``seqnet_batch_cost_wei``, ``seqnet_batch_bytes``); the batcher
adds, on the same registry, what shows a stalled pipeline:

* ``seqnet_batch_last_accepted_timestamp_seconds``: when this node last saw the inbox accept
  a batch (the alert is on ``time() - this``; see docs/batcher.md);
* ``seqnet_batch_stalled``: 1 while the next batch cannot reach the L1 (refused, fee above
  the cap, no batch the inbox would accept can be cut), else 0.

``seqnet_batches{state="abandoned"}`` counts certificates given up because the L1 refuses
them for good.
"""

from __future__ import annotations

import math
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge


class NodeBatchMetrics(Protocol):
    """What the batcher uses of the node's metrics."""

    registry: CollectorRegistry
    batches: Counter
    batch_cost_wei: Counter
    batch_bytes: Counter


class BatcherMetrics:
    """Updates the node's batch metrics (or nothing, without a node's metrics)."""

    def __init__(self, node: NodeBatchMetrics | None) -> None:
        self._node = node
        self._last_accepted: Gauge | None = None
        self._stalled: Gauge | None = None
        if node is not None:
            self._last_accepted = Gauge(
                "seqnet_batch_last_accepted_timestamp_seconds",
                "When this node last saw the L1 inbox accept a batch (unix time)",
                registry=node.registry,
            )
            self._stalled = Gauge(
                "seqnet_batch_stalled",
                "1 while the next batch cannot reach the L1 (refused, fee above cap, no cut)",
                registry=node.registry,
            )

    def state(self, state: str) -> None:
        if self._node is not None:
            self._node.batches.labels(state).inc()

    def accepted(self, at: float, fee_wei: int | None, posted_bytes: int | None) -> None:
        if self._node is None:
            return
        if fee_wei is not None:  # counted once this node could read the receipt
            self._node.batches.labels("accepted").inc()
        for counter, value in ((self._node.batch_cost_wei, fee_wei),
                               (self._node.batch_bytes, posted_bytes)):  # fmt: skip
            if value is not None and value > 0 and math.isfinite(value):
                counter.inc(value)
        if self._last_accepted is not None:
            self._last_accepted.set(at)

    def stalled(self, yes: bool) -> None:
        if self._stalled is not None:
            self._stalled.set(1 if yes else 0)


__all__ = ["BatcherMetrics", "NodeBatchMetrics"]
