"""Settings of the batcher (:class:`BatcherConfig`), with the defaults and their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sequencer_node.batching.blobs import MAX_BLOB_DATA_SIZE
from sequencer_node.batching.compression import DEFAULT_ALGORITHM, Algorithm
from sequencer_node.wire.da.shares import MAX_BLOB_BYTES
from sequencer_node.wire.l1calls import MAX_CALLDATA

DaMode = Literal["blobs", "calldata", "extda"]


@dataclass(frozen=True, slots=True)
class BatcherConfig:
    """How batches are cut, priced and posted.

    ``max_blobs`` is clamped to the L1 fork's per-transaction limit at run time (6 from Osaka
    on). ``max_batch_bytes`` bounds the *payload* (compressed); in blob mode the builder also
    never exceeds ``max_blobs`` full blobs. A batch is cut as soon as the pending blocks
    would fill ``fill_target`` of that size, or when the oldest pending block is older than
    ``max_age_ms`` (so a quiet chain still reaches L1).
    """

    da: DaMode = "blobs"
    max_blobs: int = 6
    max_batch_bytes: int = 6 * MAX_BLOB_DATA_SIZE
    fill_target: float = 0.9
    max_age_ms: int = 10_000
    #: The age cut when the pending blocks carry no transaction at all.
    max_age_empty_ms: int = 60_000
    algorithm: Algorithm = DEFAULT_ALGORITHM
    #: maxFeePerBlobGas = blob base fee * (1 + fee_margin), at most fee_cap_wei.
    fee_margin: float = 1.0
    fee_cap_wei: int = 10**12
    #: How long poster *i* in the schedule waits (i * this) before posting a certified batch
    #: that the posters before it have not posted.
    posting_deadline_s: float = 12.0
    #: How often the service looks at L1 and the pending blocks.
    poll_interval_s: float = 1.0
    #: A proposal that has not gathered > 2/3 of stake within this time is proposed again.
    proposal_timeout_s: float = 10.0
    #: L1 blocks a certified batch may need to land (posting failover, a busy blob market).
    #: Co-signers refuse a header the inbox would refuse for good that many blocks from now
    #: (a forced transaction falling due, a stake epoch expiring), not only at the next block.
    landing_blocks: int = 8
    #: A header this node approved but never saw certified stops binding it (it approves
    #: another header for the batch number) after this long. See docs/batcher.md.
    approval_lock_s: float = 60.0
    #: A certified batch that the L1 keeps refusing at submission for a reason the inbox
    #: rules do not classify as final is abandoned after this long.
    abandon_after_s: float = 120.0
    #: ``extda``: after the DA layer has been unavailable this long, batches go to blobs
    #: (the OP Stack's Alt-DA failover); back to the DA layer once it answers again.
    da_failover_s: float = 30.0
    #: ``extda``: how long a blob may take to be included and attested on the L1.
    da_attest_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.da not in ("blobs", "calldata", "extda"):
            raise ValueError(f"da must be 'blobs', 'calldata' or 'extda', got {self.da!r}")
        if self.da_failover_s < 0 or self.da_attest_timeout_s <= 0:
            raise ValueError("da_failover_s must be >= 0 and da_attest_timeout_s > 0")
        if not 1 <= self.max_blobs <= 21:
            raise ValueError(f"max_blobs must be in [1, 21], got {self.max_blobs}")
        if not 1024 <= self.max_batch_bytes <= MAX_CALLDATA:
            raise ValueError(f"max_batch_bytes must be in [1024, {MAX_CALLDATA}]")
        if not 0.1 <= self.fill_target <= 1.0:
            raise ValueError(f"fill_target must be in [0.1, 1.0], got {self.fill_target}")
        if self.max_age_ms < 0 or self.fee_margin < 0 or self.fee_cap_wei < 1:
            raise ValueError("max_age_ms and fee_margin must be >= 0 and fee_cap_wei >= 1")
        if self.posting_deadline_s <= 0 or self.poll_interval_s <= 0:
            raise ValueError("posting_deadline_s and poll_interval_s must be > 0")
        if self.landing_blocks < 1 or self.approval_lock_s <= 0 or self.abandon_after_s <= 0:
            raise ValueError("landing_blocks must be >= 1, approval_lock_s, abandon_after_s > 0")

    def max_payload(self, fork_max_blobs: int | None = None) -> int:
        """Largest payload one batch may carry in this DA mode."""
        if self.da == "calldata":
            return self.max_batch_bytes
        if self.da == "extda":
            return min(self.max_batch_bytes, MAX_BLOB_BYTES)
        blobs = self.max_blobs if fork_max_blobs is None else min(self.max_blobs, fork_max_blobs)
        return min(self.max_batch_bytes, blobs * MAX_BLOB_DATA_SIZE)


def max_fee_per_blob_gas(base_fee: int, margin: float, cap: int) -> int:
    """``base_fee * (1 + margin)`` rounded up, at least ``base_fee + 1``, at most ``cap``."""
    scaled = base_fee * (1000 + round(margin * 1000))
    want = max(base_fee + 1, -(-scaled // 1000))
    return min(cap, want)


__all__ = ["BatcherConfig", "DaMode", "max_fee_per_blob_gas"]
