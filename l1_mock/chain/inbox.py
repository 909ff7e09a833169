"""The batch inbox and the forced-inclusion queue.

The inbox's acceptance rules for a batch header are one pure function,
:func:`check_batch_header`, over plain inputs (:class:`InboxRules` from the chain's
configuration, :class:`InboxView` of what the inbox holds at the block that would include the
batch), so a co-signer can judge a batch exactly as the inbox will. :func:`check_batch_shape`
holds the fork's blob limits. The stake table check (> 2/3 of the snapshot's stake approved the
header) needs the snapshot and stays with :class:`Inbox`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from l1_mock.chain.config import ChainConfig
from l1_mock.chain.errors import CallFailed
from l1_mock.chain.staking import stake_epoch_problem
from sequencer_node.wire.blobs import BlobParams
from sequencer_node.wire.certificates import CertificateError, verify_batch_certificate
from sequencer_node.wire.l1calls import QueueForced, SubmitBatch
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_CALLDATA,
    ZERO_HASH,
    BatchHeader,
    ForcedTransaction,
    batch_hash,
)


class BatchRefused(ValueError):
    """A batch the inbox would refuse; the message says which rule it breaks."""


@dataclass(frozen=True, slots=True)
class InboxRules:
    """The chain parameters the inbox's rules depend on."""

    l2_chain_id: int
    #: ``first_height`` of batch 0.
    first_height: int
    #: A forced entry must be included within this many L1 blocks of its own block.
    sequencing_window: int
    #: A batch's stake epoch may be at most this many epochs old.
    max_stake_epoch_age: int

    @staticmethod
    def of(cfg: ChainConfig) -> InboxRules:
        return InboxRules(
            cfg.l2_chain_id, cfg.inbox_first_height, cfg.sequencing_window, cfg.unbonding_epochs
        )


@dataclass(frozen=True, slots=True)
class InboxView:
    """What the inbox holds when it judges a batch."""

    #: The last accepted batch's header (None before batch 0).
    last: BatchHeader | None
    #: The forced-inclusion queue, every entry ever queued, in queue order.
    forced: Sequence[ForcedTransaction]
    #: Number of the L1 block that would include the batch.
    l1_block: int
    #: The L1 epoch of that block.
    epoch: int


def check_batch_header(header: BatchHeader, rules: InboxRules, view: InboxView) -> None:
    """Raise :class:`BatchRefused` unless the inbox accepts ``header`` (certificate aside):
    continuity with the last accepted batch, stake epoch age and finality, forced inclusion."""
    _check_continuity(header, rules, view.last)
    e = header.stake_epoch
    problem = stake_epoch_problem(e, view.epoch, rules.max_stake_epoch_age)
    if problem:
        raise BatchRefused(problem)
    if view.last and e < view.last.stake_epoch:
        raise BatchRefused(
            f"stake epoch {e} is older than the previous batch's {view.last.stake_epoch}"
        )
    _check_forced(header, rules, view)


def _check_continuity(header: BatchHeader, rules: InboxRules, last: BatchHeader | None) -> None:
    if header.chain_id != rules.l2_chain_id:
        raise BatchRefused(
            f"batch for L2 chain {header.chain_id}; this inbox is {rules.l2_chain_id}"
        )
    want_number = last.batch_number + 1 if last else 0
    want_parent = batch_hash(last) if last else ZERO_HASH
    want_first = last.last_height + 1 if last else rules.first_height
    if header.batch_number != want_number:
        raise BatchRefused(f"batch number {header.batch_number}; expected {want_number}")
    if header.parent_batch_hash != want_parent:
        raise BatchRefused("wrong parent: parent_batch_hash is not the last accepted batch")
    if header.first_height != want_first:
        raise BatchRefused(f"first_height {header.first_height}; expected {want_first}")


def _check_forced(header: BatchHeader, rules: InboxRules, view: InboxView) -> None:
    prev = view.last.forced_index if view.last else 0
    queued = len(view.forced)
    if not prev <= header.forced_index <= queued:
        raise BatchRefused(f"forced_index {header.forced_index} outside [{prev}, {queued}]")
    if header.forced_index < queued:
        # Entries are in L1 order: only the oldest one left out can be overdue.
        f = view.forced[header.forced_index]
        if f.l1_block + rules.sequencing_window <= view.l1_block:
            raise BatchRefused(
                f"skips forced transaction {f.queue_index} queued at L1 block {f.l1_block}, "
                f"older than the sequencing window of {rules.sequencing_window} blocks"
            )


def check_batch_data(header: BatchHeader, calldata: bytes, blob_count: int) -> None:
    """The data the header commits to: a calldata batch's hash and length, or some blobs."""
    if header.da_kind == DA_CALLDATA:
        if hashlib.sha256(calldata).digest() != header.data_hash:
            raise BatchRefused("data_hash is not sha256 of the calldata")
        if header.data_bytes != len(calldata):
            raise BatchRefused("data_bytes is not the calldata length")
    elif header.da_kind == DA_BLOBS and not blob_count:
        raise BatchRefused("a blob batch needs blobs")


def check_batch_shape(header: BatchHeader, p: SubmitBatch, params: BlobParams) -> None:
    """The fork's limits on a batch's blobs (``params``: the fork of the next block)."""
    n = len(p.blobs)
    if header.da_kind == DA_CALLDATA:
        if n or p.commitments or p.proofs:
            raise BatchRefused("a calldata batch carries no blobs")
        return
    if n == 0:
        raise BatchRefused("a blob batch needs at least one blob")
    if n > params.max_per_tx:
        raise BatchRefused(
            f"{n} blobs in one transaction; {params.fork} allows at most {params.max_per_tx}"
        )
    if n > params.max:
        raise BatchRefused(f"{n} blobs exceed the per-block maximum of {params.max}")
    if len(p.commitments) != n or len(p.proofs) != n:
        raise BatchRefused("each blob needs exactly one commitment and one proof")


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    header: BatchHeader
    l1_block: int
    tx_hash: bytes
    signers: tuple[bytes, ...]


class Inbox:
    """Accepted batches and the forced-inclusion queue."""

    def __init__(self, config: ChainConfig) -> None:
        self.rules = InboxRules.of(config)
        self.reward_per_block = config.reward_per_block
        self.batches: list[AcceptedBatch] = []
        self.forced: list[ForcedTransaction] = []

    @property
    def last(self) -> BatchHeader | None:
        return self.batches[-1].header if self.batches else None

    def forced_consumed(self) -> int:
        """How many forced entries the accepted batches included."""
        return self.batches[-1].header.forced_index if self.batches else 0

    def forced_pending(self) -> list[ForcedTransaction]:
        return self.forced[self.forced_consumed() :]

    def apply_queue_forced(self, p: QueueForced, l1_block: int) -> None:
        self.forced.append(ForcedTransaction(len(self.forced), l1_block, p.tx))

    def check_batch(
        self, p: SubmitBatch, l1_block: int, epoch: int, stakes: dict[bytes, int] | None
    ) -> None:
        """Raise :class:`CallFailed` unless the inbox accepts ``p`` in block ``l1_block``;
        ``stakes`` is the snapshot of the header's stake epoch (None if there is none)."""
        header = p.certificate.header
        try:
            check_batch_data(header, p.calldata, len(p.commitments))
            check_batch_header(
                header, self.rules, InboxView(self.last, self.forced, l1_block, epoch)
            )
        except BatchRefused as e:
            raise CallFailed(str(e)) from None
        if stakes is None:
            raise CallFailed(f"no stake snapshot for epoch {header.stake_epoch}")
        try:
            verify_batch_certificate(p.certificate, stakes, self.rules.l2_chain_id)
        except CertificateError as err:
            raise CallFailed(f"bad certificate: {err}") from None

    def apply_batch(self, p: SubmitBatch, tx_hash: bytes, l1_block: int) -> AcceptedBatch:
        header = p.certificate.header
        signers = tuple(s.signer for s in p.certificate.signatures)
        accepted = AcceptedBatch(header, l1_block, tx_hash, signers)
        self.batches.append(accepted)
        return accepted

    def reward(self, header: BatchHeader) -> int:
        """What an accepted batch mints, to be split among its signers."""
        return (header.last_height - header.first_height + 1) * self.reward_per_block


__all__ = [
    "AcceptedBatch",
    "BatchRefused",
    "Inbox",
    "InboxRules",
    "InboxView",
    "check_batch_data",
    "check_batch_header",
    "check_batch_shape",
]
