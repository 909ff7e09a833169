"""Stake-weighted checks of certificates and evidence, shared by the nodes and the L1.

A quorum is *more than two thirds of the epoch's total stake*: ``3 * signed > 2 * total``, in
integers, so no rounding can let a 2/3-exactly set through. Duplicate signers and signers
outside the stake table count nothing; one bad signature makes the whole certificate invalid
(an honest aggregator never includes one, so it signals a forger).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from sequencer_node.wire.codec import signing_bytes
from sequencer_node.wire.crypto import verify, verify_message
from sequencer_node.wire.messages import (
    BatchApproval,
    BatchCertificate,
    BatchHeader,
    DoubleProposal,
    DoubleTimeout,
    DoubleVote,
    DowntimeCertificate,
    DowntimeReport,
    Endorsement,
    Evidence,
    QuorumCertificate,
    Timeout,
    TimeoutCertificate,
    Vote,
    signed_slot,
)

#: Stake per sequencer public key, for one epoch.
StakeTable = Mapping[bytes, int]

_NO_SIG = bytes(64)


class CertificateError(ValueError):
    """A certificate or piece of evidence that does not prove what it claims."""


class SignatureError(CertificateError):
    """A signature that does not verify (a forger or a corrupted message, never an honest
    node that is merely behind)."""


def has_quorum(signed_stake: int, total_stake: int) -> bool:
    return total_stake > 0 and 3 * signed_stake > 2 * total_stake


def endorsed_stake(
    endorsements: Iterable[Endorsement],
    signing_input: Callable[[bytes], bytes],
    stakes: StakeTable,
) -> int:
    """Stake of the distinct, staked signers; raise on any invalid signature."""
    seen: set[bytes] = set()
    total = 0
    for e in endorsements:
        if e.signer in seen:
            raise CertificateError(f"signer {e.signer.hex()[:16]} appears twice")
        seen.add(e.signer)
        stake = stakes.get(e.signer, 0)
        if stake <= 0:
            raise CertificateError(f"signer {e.signer.hex()[:16]} has no stake in this epoch")
        if not verify(e.signer, e.signature, signing_input(e.signer)):
            raise SignatureError(f"bad signature from {e.signer.hex()[:16]}")
        total += stake
    return total


def _require_quorum(stake: int, stakes: StakeTable, what: str) -> None:
    total = sum(stakes.values())
    if not has_quorum(stake, total):
        raise CertificateError(
            f"{what} carries {stake} of {total} stake; more than 2/3 is required"
        )


def approval_for(header: BatchHeader, signer: bytes, signature: bytes = _NO_SIG) -> BatchApproval:
    return BatchApproval(header, signer, signature)


def vote_for(qc: QuorumCertificate, signer: bytes, signature: bytes = _NO_SIG) -> Vote:
    return Vote(qc.block_hash, qc.height, qc.round, qc.epoch, signer, signature)


def verify_qc(qc: QuorumCertificate, stakes: StakeTable, chain_id: int) -> None:
    """Raise CertificateError unless ``qc`` holds valid votes of > 2/3 of ``stakes``."""

    stake = endorsed_stake(
        qc.signatures, lambda signer: signing_bytes(vote_for(qc, signer), chain_id), stakes
    )
    _require_quorum(stake, stakes, "quorum certificate")


def verify_tc(tc: TimeoutCertificate, stakes: StakeTable, chain_id: int) -> None:
    """Raise unless ``tc`` holds valid timeouts for its round of > 2/3 of stake and its
    ``high_qc`` is the highest QC any of them reported."""
    qc = tc.high_qc
    if qc is None or tc.epoch == qc.epoch:
        follows = tc.height == (0 if qc is None else qc.height) + 1
    else:  # after a block that closes its epoch: the next epoch's first height (the core
        # checks it exactly; docs/protocol.md, section 3a)
        follows = tc.epoch == qc.epoch + 1 and tc.height <= qc.height
    if not follows:
        raise CertificateError("timeout certificate's height does not follow its high QC")
    seen: set[bytes] = set()
    total = 0
    for t in tc.timeouts:
        # ``t.epoch`` is the epoch of the signer's high QC, at most the TC's; stake counts in
        # ``stakes`` (the table of ``tc.epoch``, the epoch of the block that extends the
        # TC's high QC).
        if t.round != tc.round or t.epoch > tc.epoch:
            raise CertificateError("timeout for another round inside a timeout certificate")
        if t.voter in seen:
            raise CertificateError(f"voter {t.voter.hex()[:16]} appears twice")
        seen.add(t.voter)
        stake = stakes.get(t.voter, 0)
        if stake <= 0:
            raise CertificateError(f"voter {t.voter.hex()[:16]} has no stake in this epoch")
        if not verify_message(t, t.voter, chain_id):
            raise SignatureError(f"bad timeout signature from {t.voter.hex()[:16]}")
        total += stake
    _require_quorum(total, stakes, "timeout certificate")
    best = max(tc.timeouts, key=timeout_rank)
    if best.high_qc_round > 0 or tc.high_qc is not None:
        if tc.high_qc is None:
            raise CertificateError("timeout certificate lacks the highest QC it reports")
        named = (tc.high_qc.epoch, tc.high_qc.round, tc.high_qc.block_hash)
        if named != (best.epoch, best.high_qc_round, best.high_qc_block):
            raise CertificateError("timeout certificate's high QC is not the highest reported")


def timeout_rank(t: Timeout) -> tuple[int, int]:
    """The rank of the QC a timeout reports: (epoch, round). QCs of a later epoch outrank every
    QC of an earlier one, whatever their rounds (docs/protocol.md, "Reconfiguration")."""
    return (t.epoch, t.high_qc_round)


def verify_batch_certificate(cert: BatchCertificate, stakes: StakeTable, chain_id: int) -> None:
    """Raise unless > 2/3 of ``stakes`` approved ``cert.header``."""

    stake = endorsed_stake(
        cert.signatures,
        lambda signer: signing_bytes(approval_for(cert.header, signer), chain_id),
        stakes,
    )
    _require_quorum(stake, stakes, "batch certificate")


def verify_downtime_certificate(
    cert: DowntimeCertificate, stakes: StakeTable, chain_id: int
) -> None:
    """Raise unless > 2/3 of ``stakes`` signed the downtime report."""
    r = cert.report

    def statement(signer: bytes) -> bytes:
        stmt = DowntimeReport(
            r.stake_epoch,
            r.offender,
            r.from_height,
            r.to_height,
            r.missed,
            r.duties,
            signer,
            _NO_SIG,
        )
        return signing_bytes(stmt, chain_id)

    _require_quorum(
        endorsed_stake(cert.signatures, statement, stakes), stakes, "downtime certificate"
    )


def verify_evidence(evidence: Evidence, chain_id: int) -> bytes:
    """Check that ``evidence`` proves an equivocation; return the offender's public key.

    Two messages of the same kind, signed by the same key, for the same round, that differ.
    Needs no other state: the L1 can verify it alone.
    """
    if not isinstance(evidence, DoubleProposal | DoubleVote | DoubleTimeout):
        raise CertificateError(f"{type(evidence).__name__} is not evidence")
    a, b = evidence.a, evidence.b
    (signer, slot_a), (signer_b, slot_b) = signed_slot(a), signed_slot(b)
    if signer_b != signer:
        raise CertificateError("the two statements have different signers")
    if slot_a != slot_b:
        raise CertificateError(f"the messages are for different rounds ({slot_a}, {slot_b})")
    if signing_bytes(a, chain_id) == signing_bytes(b, chain_id):
        raise CertificateError("the two messages are the same statement")
    for m in (a, b):
        if not verify_message(m, signer, chain_id):
            raise SignatureError("a signature in the evidence does not verify")
    return signer


__all__ = [
    "CertificateError",
    "SignatureError",
    "StakeTable",
    "has_quorum",
    "verify_batch_certificate",
    "verify_downtime_certificate",
    "verify_evidence",
    "verify_qc",
    "timeout_rank",
    "verify_tc",
    "vote_for",
]
