"""Never sign twice: the signed watermark (EIP-3076 style) and its rules.

For each kind of slashable message (proposal, vote, timeout) the record holds the highest round
this key signed and a digest of what it signed there. A new signature of that kind at round
``r`` with digest ``d`` is allowed iff ``r > round`` or (``r == round`` and ``d == digest``):
re-signing identical bytes is harmless (Ed25519 is deterministic, so it is the very same
signature), anything else at or below the watermark could be a conflicting statement.

The record is what the shell fsyncs before a signature leaves the process (see
:mod:`sequencer_node.core.api`); a node restarted from it can never contradict itself. A node
restarted *without* its record (disk lost) must not sign before the chain has moved past
anything it might have signed: that is the operator's job (see ``docs/protocol.md``).
"""

from __future__ import annotations

import enum
from dataclasses import replace

from sequencer_node.core.api import PersistedState
from sequencer_node.wire.messages import ZERO_HASH, QuorumCertificate


class Kind(enum.Enum):
    PROPOSAL = "proposal"
    VOTE = "vote"
    TIMEOUT = "timeout"


def empty_record(chain_id: int, signer: bytes) -> PersistedState:
    return PersistedState(chain_id, signer, 0, ZERO_HASH, 0, ZERO_HASH, 0, ZERO_HASH, None)


def _slot(record: PersistedState, kind: Kind) -> tuple[int, bytes]:
    if kind is Kind.PROPOSAL:
        return record.proposal_round, record.proposal_digest
    if kind is Kind.VOTE:
        return record.vote_round, record.vote_digest
    return record.timeout_round, record.timeout_digest


def may_sign(record: PersistedState, kind: Kind, round_: int, digest: bytes) -> bool:
    """True iff signing (kind, round, digest) cannot contradict anything in ``record``."""
    last_round, last_digest = _slot(record, kind)
    if round_ > last_round:
        return True
    return round_ == last_round and digest == last_digest and round_ > 0


def record_signature(
    record: PersistedState,
    kind: Kind,
    round_: int,
    digest: bytes,
    high_qc: QuorumCertificate | None,
) -> PersistedState:
    """The record after signing; raises if the signature is not allowed (a bug upstream)."""
    if not may_sign(record, kind, round_, digest):
        raise AssertionError(f"refusing to sign {kind.value} at round {round_}: watermark")
    if high_qc is not None and (record.high_qc is None or high_qc.round > record.high_qc.round):
        record = replace(record, high_qc=high_qc)
    if kind is Kind.PROPOSAL:
        return replace(record, proposal_round=round_, proposal_digest=digest)
    if kind is Kind.VOTE:
        return replace(record, vote_round=round_, vote_digest=digest)
    return replace(record, timeout_round=round_, timeout_digest=digest)
