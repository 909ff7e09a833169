"""The batch inbox and the forced-inclusion queue.

The inbox's acceptance rules for a batch header are one pure function shared with the
sequencers' co-signers, :func:`sequencer_node.batching.inbox_rule.check_batch` (continuity,
data and the fork's blob limits, stake epoch age, forced inclusion), so a co-signer judges a
batch exactly as the inbox will and the two cannot drift apart. The stake table check (> 2/3
of the snapshot's stake approved the header) needs the snapshot and stays with :class:`Inbox`.

An external-DA batch (``DA_EXTERNAL``) carries a DA pointer in its header and, in the call, a
proof of it against a data commitment the L1 accepted (:mod:`l1_mock.chain.da_bridge`); the
inbox keeps the proven data root tuple with the batch, so readers learn the data root from
the L1. It cannot check ``data_hash`` against bytes it never sees: co-signers and followers do.
"""

from __future__ import annotations

from dataclasses import dataclass

from l1_mock.chain.config import ChainConfig
from l1_mock.chain.errors import CallFailed
from sequencer_node.batching.inbox_rule import (
    ExternalProof,
    InboxView,
    Landing,
    check_batch,
    check_data,
)
from sequencer_node.wire.blobs import BlobParams
from sequencer_node.wire.certificates import CertificateError, verify_batch_certificate
from sequencer_node.wire.da.attest import DataCommitment, DataRootTuple
from sequencer_node.wire.l1calls import QueueForced, SubmitBatch
from sequencer_node.wire.messages import (
    DA_BLOBS,
    DA_EXTERNAL,
    BatchHeader,
    ForcedTransaction,
)


class BatchRefused(ValueError):
    """A batch the inbox would refuse; the message says which rule it breaks."""


def check_batch_shape(
    header: BatchHeader, p: SubmitBatch, params: BlobParams, da_namespace: bytes = b""
) -> None:
    """At submission: the fork's limits on a batch's blobs (``params``: the fork of the next
    block), one commitment and proof per blob, an extda batch's pointer shape and proof."""
    refusal = check_data(
        header,
        Landing.at(0, 0, params),
        blob_count=len(p.blobs),
        calldata=p.calldata if header.da_kind == DA_EXTERNAL else None,
        da_namespace=da_namespace,
    )
    if refusal is not None:
        raise BatchRefused(refusal.message)
    if len(p.commitments) != len(p.blobs) or len(p.proofs) != len(p.blobs):
        raise BatchRefused("each blob needs exactly one commitment and one proof")
    if (header.da_kind == DA_EXTERNAL) != (p.da_proof is not None):
        raise BatchRefused("an extda batch, and only it, carries a DA pointer proof")


@dataclass(frozen=True, slots=True)
class AcceptedBatch:
    header: BatchHeader
    l1_block: int
    tx_hash: bytes
    signers: tuple[bytes, ...]
    #: The DA block an extda batch's data sits in, as proven against an attested commitment.
    da_tuple: DataRootTuple | None = None


class Inbox:
    """Accepted batches and the forced-inclusion queue."""

    def __init__(self, config: ChainConfig) -> None:
        self.config = config
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
        self,
        p: SubmitBatch,
        l1_block: int,
        epoch: int,
        stakes: dict[bytes, int] | None,
        params: BlobParams,
        attested: DataCommitment | None = None,
    ) -> None:
        """Raise :class:`CallFailed` unless the inbox accepts ``p`` in block ``l1_block``
        (of ``epoch``, under the fork ``params``); ``stakes`` is the snapshot of the header's
        stake epoch (None if there is none); ``attested`` the data commitment of the call's
        ``da_nonce`` (None if the L1 holds none)."""
        header = p.certificate.header
        cfg = self.config
        queued_at = None
        if header.forced_index < len(self.forced):
            queued_at = self.forced[header.forced_index].l1_block
        view = InboxView(
            l2_chain_id=cfg.l2_chain_id,
            first_height=cfg.inbox_first_height,
            last=self.last,
            forced_count=len(self.forced),
            skipped_forced_at=queued_at,
            snapshot_exists=stakes is not None,
            unbonding_epochs=cfg.unbonding_epochs,
            sequencing_window=cfg.sequencing_window,
            da_namespace=cfg.da_namespace,
        )
        refusal = check_batch(
            header,
            view,
            Landing.at(l1_block, epoch, params),
            blob_count=len(p.commitments),
            calldata=p.calldata if header.da_kind != DA_BLOBS else None,
            external=ExternalProof(p.da_proof, attested),
        )
        if refusal is not None:
            raise CallFailed(refusal.message)
        assert stakes is not None
        try:
            verify_batch_certificate(p.certificate, stakes, cfg.l2_chain_id)
        except CertificateError as err:
            raise CallFailed(f"bad certificate: {err}") from None

    def apply_batch(self, p: SubmitBatch, tx_hash: bytes, l1_block: int) -> AcceptedBatch:
        header = p.certificate.header
        signers = tuple(s.signer for s in p.certificate.signatures)
        da_tuple = p.da_proof.root_tuple if p.da_proof is not None else None
        accepted = AcceptedBatch(header, l1_block, tx_hash, signers, da_tuple)
        self.batches.append(accepted)
        return accepted

    def reward(self, header: BatchHeader) -> int:
        """What an accepted batch mints, to be split among its signers."""
        return (header.last_height - header.first_height + 1) * self.config.reward_per_block


__all__ = ["AcceptedBatch", "BatchRefused", "Inbox", "check_batch_shape"]
