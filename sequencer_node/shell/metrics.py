"""Prometheus metrics of one node (``GET /metrics``).

Each :class:`NodeMetrics` has its own registry, so several nodes in one test process do not
collide. Names are prefixed ``seqnet_``; the list is in ``docs/node-api.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

HEADS = ("unsafe", "certified", "safe", "finalized")


class NodeMetrics:
    """Every metric the node exports; the runner, the follower and the batcher update them."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self._l1_methods: set[str] = set()
        self.head_height = Gauge("seqnet_head_height", "L2 height per head", ["head"], registry=r)
        self.round = Gauge("seqnet_round", "Current consensus round", registry=r)
        self.epoch = Gauge("seqnet_epoch", "Current L2 epoch", registry=r)
        self.is_leader = Gauge("seqnet_is_leader", "1 if this node leads the round", registry=r)
        self.certificate_latency = Histogram(
            "seqnet_certificate_latency_seconds",
            "Time from a block's timestamp to its commit on this node",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
            registry=r,
        )
        self.blocks_committed = Counter(
            "seqnet_blocks_committed", "Blocks committed by the BFT rule", registry=r
        )
        self.txs_committed = Counter(
            "seqnet_transactions_committed", "Transactions in committed blocks", registry=r
        )
        self.peers = Gauge("seqnet_peers", "Connected peers", registry=r)
        self.mempool_size = Gauge("seqnet_mempool_size", "Transactions in the mempool", registry=r)
        self.mempool_backlog = Gauge(
            "seqnet_mempool_backlog",
            "Pooled transactions no certified block holds yet (the ingress bound counts them)",
            registry=r,
        )
        self.blocks_behind = Gauge(
            "seqnet_blocks_behind",
            "How far behind the network this node is, in certified blocks (0 when keeping up)",
            registry=r,
        )
        self.catching_up = Gauge(
            "seqnet_catching_up",
            "1 while the node is far behind and refuses client transactions (503 CATCHING_UP)",
            registry=r,
        )
        self.invalid_messages = Counter(
            "seqnet_invalid_messages", "Invalid inbound input by kind", ["kind"], registry=r
        )
        self.peer_offenses = Gauge(
            "seqnet_peer_offenses",
            "Offenses charged to peers since start, by kind (framing, crypto, flood, ...)",
            ["kind"],
            registry=r,
        )
        self.peer_bans = Gauge("seqnet_peer_bans", "Peers banned since start", registry=r)
        self.handshake_failures = Gauge(
            "seqnet_handshake_failures", "Inbound handshakes refused or failed", registry=r
        )
        self.leader_changes = Counter(
            "seqnet_leader_changes", "Rounds whose leader differs from the previous one", registry=r
        )
        self.round_changes = Counter(
            "seqnet_round_changes", "Round changes by cause", ["via"], registry=r
        )
        self.evidence = Counter(
            "seqnet_evidence_found", "Equivocation evidence found, by kind", ["kind"], registry=r
        )
        self.slashing_submissions = Counter(
            "seqnet_slashing_submissions",
            "Evidence/downtime certificates sent to L1, by kind and outcome",
            ["kind", "outcome"],
            registry=r,
        )
        self.downtime_certificates = Counter(
            "seqnet_downtime_certificates", "Downtime certificates formed", registry=r
        )
        self.signatures_off_loop = Counter(
            "seqnet_tx_signatures_checked_off_loop",
            "Transfer signatures checked in worker threads, off the event loop",
            registry=r,
        )
        self.signature_warmups_given_up = Counter(
            "seqnet_tx_signature_warmups_given_up",
            "Worker-thread signature checks not waited for past their bound (the workers "
            "starved of the GIL by a busy event loop; the inline check did the rest)",
            registry=r,
        )
        self.rpc_tx = Counter(
            "seqnet_rpc_transactions",
            "Transactions submitted over RPC by outcome",
            ["outcome"],
            registry=r,
        )
        self.l1_head = Gauge("seqnet_l1_head", "L1 head block seen", registry=r)
        self.l1_finalized = Gauge("seqnet_l1_finalized", "L1 finalized block seen", registry=r)
        self.l1_errors = Counter("seqnet_l1_errors", "Failed L1 requests", registry=r)
        self.l1_up = Gauge("seqnet_l1_up", "1 while the L1 answers", registry=r)
        # What the node asks of its L1 endpoint (clients.l1.L1Observer): a hosted endpoint
        # meters requests, and each exchange costs the node ~1.5 ms of CPU (httpx).
        self.l1_requests = Counter(
            "seqnet_l1_requests",
            "HTTP requests to the L1 JSON-RPC endpoint by outcome (a batch is one request)",
            ["outcome"],
            registry=r,
        )
        self.l1_calls = Counter(
            "seqnet_l1_calls",
            "JSON-RPC calls to the L1 by method (a batch counts each of its calls)",
            ["method"],
            registry=r,
        )
        self.l1_request_seconds = Histogram(
            "seqnet_l1_request_seconds",
            "Wall time of an HTTP request to the L1 (event-loop waits included)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
            registry=r,
        )
        self.l1_blob_base_fee = Gauge(
            "seqnet_l1_blob_base_fee_wei", "The L1's blob base fee (wei per blob gas)", registry=r
        )
        self.sequencer_status = Gauge(
            "seqnet_sequencer_status",
            "1 for this node's sequencer status on L1 (active, jailed, slashed, unbonding, ...)",
            ["status"],
            registry=r,
        )
        # Compact blocks (shell.compact): proposals as batch digests instead of bodies.
        self.compact_blocks_sent = Counter(
            "seqnet_compact_blocks_sent", "Blocks broadcast as CompactBlock", registry=r
        )
        self.compact_inline_txs = Counter(
            "seqnet_compact_inline_transactions",
            "Transactions sent inline in CompactBlocks (in no batch this node knew)",
            registry=r,
        )
        self.compact_blocks_resolved = Counter(
            "seqnet_compact_blocks_resolved",
            "CompactBlocks received and rebuilt from known batches",
            registry=r,
        )
        self.compact_blocks_requested = Counter(
            "seqnet_compact_blocks_requested",
            "CompactBlocks that named an unknown batch: BlockRequests sent",
            registry=r,
        )
        self.compact_blocks_resolved_after_request = Counter(
            "seqnet_compact_blocks_resolved_after_request",
            "Requested blocks whose full Block arrived",
            registry=r,
        )
        # Filled by the batcher (through the ``metrics`` argument of BatcherService).
        self.batches = Counter("seqnet_batches", "Batches by state reached", ["state"], registry=r)
        self.batch_cost_wei = Counter(
            "seqnet_batch_cost_wei", "L1 fees paid for batches (wei)", registry=r
        )
        self.batch_bytes = Counter("seqnet_batch_bytes", "Bytes posted in batches", registry=r)
        for h in HEADS:
            self.head_height.labels(h).set(0)

    #: Sets the gauges that mirror the node's state (round, heads, peers...) just before
    #: they are read: they change on nearly every event, and setting them on every core
    #: tick instead cost an idle node a tenth of its CPU (issue 13).
    before_render: Callable[[], None] | None = None

    #: Distinct ``method`` labels kept (the client's methods are a fixed set; a bound anyway).
    MAX_L1_METHODS = 64

    def l1_exchange(self, methods: Sequence[str], seconds: float, ok: bool) -> None:
        """:class:`~sequencer_node.clients.l1.L1Observer`: count one HTTP request to the L1."""
        self.l1_requests.labels("ok" if ok else "failed").inc()
        self.l1_request_seconds.observe(seconds)
        for method in methods:
            if method not in self._l1_methods:
                if len(self._l1_methods) >= self.MAX_L1_METHODS:
                    method = "other"
                self._l1_methods.add(method)
            self.l1_calls.labels(method).inc()

    def render(self) -> bytes:
        if self.before_render is not None:
            self.before_render()
        return generate_latest(self.registry)


__all__ = ["HEADS", "NodeMetrics"]
