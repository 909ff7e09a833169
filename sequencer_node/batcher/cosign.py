"""Co-signing: approve a batch header only after rebuilding it, and aggregate approvals.

A validator never signs what it is told. It encodes the proposed range from ITS OWN
certified chain, accepts the proposer's compressed payload only if it decompresses to exactly
those bytes, and checks the proposer's KZG commitments against that payload's blobs with the
proposer's proofs (:func:`~sequencer_node.batcher.kzg_worker.check`: a batch verification of
a few ms per blob; recomputing a commitment cost ~130 ms per blob, compressing again ~60 % of
the rest), takes the batch number and parent batch hash from ITS view of the L1 inbox and the
stake epoch from ITS stake view, and signs a
:class:`~sequencer_node.wire.messages.BatchApproval` only if the rebuilt header equals the
proposed one field by field (:func:`review`). So the
header's blob versioned hashes, data hash, last block hash and state root are vouched for by
> 2/3 of stake that each recomputed or checked them against its own data, unlike co-signers
that check nothing. :func:`proposal_of` is what the proposer broadcasts.

:class:`ApprovalCollector` gathers approvals (verified one by one) per header and yields the
:class:`~sequencer_node.wire.messages.BatchCertificate` once more than 2/3 of the stake of
the header's stake epoch signed. Pure apart from signature checks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from sequencer_node.batcher.builder import header_mismatch, make_header
from sequencer_node.batcher.kzg_worker import Prepared
from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.wire.certificates import approval_for, has_quorum
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import SigningKey, sign_message, verify_message
from sequencer_node.wire.messages import (
    BatchApproval,
    BatchCertificate,
    BatchHeader,
    Endorsement,
)

#: Headers tracked at once (a few batch numbers and competing proposals); oldest dropped.
MAX_TRACKED_HEADERS = 16


def proposal_of(header: BatchHeader, prepared: Prepared) -> BatchProposal:
    """The proposal of ``header``: its algorithm, its compressed payload, and its blobs'
    commitments and proofs, so that co-signers can check rather than recompute them."""
    d = prepared.draft
    return BatchProposal(header, d.algorithm, d.payload, prepared.commitments, prepared.proofs)


def sign_approval(header: BatchHeader, key: SigningKey, chain_id: int) -> BatchApproval:
    return sign_message(approval_for(header, key.public_key), key, chain_id)


def review(
    proposed: BatchHeader,
    prepared: Prepared,
    *,
    chain_id: int,
    batch_number: int,
    parent_batch_hash: bytes,
    stake_epoch: int,
) -> tuple[BatchHeader, str | None]:
    """The header this validator rebuilt, and why it differs from ``proposed`` (or None)."""
    mine = make_header(
        prepared.draft,
        chain_id=chain_id,
        batch_number=batch_number,
        parent_batch_hash=parent_batch_hash,
        stake_epoch=stake_epoch,
        blob_hashes=prepared.blob_hashes,
    )
    return mine, header_mismatch(proposed, mine)


@dataclass
class _Tally:
    header: BatchHeader
    stakes: Mapping[bytes, int]
    signatures: dict[bytes, bytes] = field(default_factory=dict)
    certificate: BatchCertificate | None = None


class ApprovalCollector:
    """Approvals per header; a certificate once > 2/3 of the header's stake signed."""

    def __init__(self, chain_id: int) -> None:
        self.chain_id = chain_id
        self._tallies: OrderedDict[bytes, _Tally] = OrderedDict()
        # Approvals that arrive before this node reviewed the header (bounded).
        self._early: OrderedDict[bytes, list[BatchApproval]] = OrderedDict()

    def track(self, header: BatchHeader, stakes: Mapping[bytes, int]) -> BatchCertificate | None:
        """Start counting approvals of ``header`` (which this node reviewed) against
        ``stakes``; approvals that came early are counted now."""
        hid = message_id(header)
        if hid not in self._tallies:
            self._tallies[hid] = _Tally(header, dict(stakes))
            while len(self._tallies) > MAX_TRACKED_HEADERS:
                self._tallies.popitem(last=False)
        cert = None
        for a in self._early.pop(hid, []):
            cert = self.add(a) or cert
        return cert or self._tallies[hid].certificate

    def add(self, approval: BatchApproval) -> BatchCertificate | None:
        """Count ``approval``; return the certificate when (or if already) complete.

        Invalid signatures and signers without stake are dropped (returns None).
        """
        hid = message_id(approval.header)
        tally = self._tallies.get(hid)
        if tally is None:
            early = self._early.setdefault(hid, [])
            if len(early) < 512:
                early.append(approval)
            while len(self._early) > MAX_TRACKED_HEADERS:
                self._early.popitem(last=False)
            return None
        if tally.certificate is not None:
            return tally.certificate
        if tally.stakes.get(approval.signer, 0) <= 0 or approval.signer in tally.signatures:
            return None
        if not verify_message(approval, approval.signer, self.chain_id):
            return None
        tally.signatures[approval.signer] = approval.signature
        signed = sum(tally.stakes[s] for s in tally.signatures)
        if has_quorum(signed, sum(tally.stakes.values())):
            tally.certificate = BatchCertificate(
                tally.header,
                tuple(Endorsement(s, sig) for s, sig in sorted(tally.signatures.items())),
            )
        return tally.certificate

    def certificate(self, header: BatchHeader) -> BatchCertificate | None:
        tally = self._tallies.get(message_id(header))
        return tally.certificate if tally else None

    def forget_below(self, batch_number: int) -> None:
        """Drop tallies of batches the inbox has already accepted."""
        for hid in [h for h, t in self._tallies.items() if t.header.batch_number < batch_number]:
            del self._tallies[hid]


__all__ = ["ApprovalCollector", "proposal_of", "review", "sign_approval"]
