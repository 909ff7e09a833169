"""Never sign twice: the signed watermark (EIP-3076 style) and its rules.

For each kind of slashable message (proposal, vote, timeout) the record holds the highest round
this key signed and a digest of what it signed there. A new signature of that kind at round
``r`` with digest ``d`` is allowed iff ``r > round`` or (``r == round`` and ``d == digest``):
re-signing identical bytes is harmless (Ed25519 is deterministic, so it is the very same
signature), anything else at or below the watermark could be a conflicting statement. A vote
or proposal also needs ``r`` above the timeout's round: after its timeout a key signs nothing
more in the round (see :func:`may_sign`).

The record is what the shell fsyncs before a signature leaves the process (see
:mod:`sequencer_node.core.api`); a node restarted from it can never contradict itself. A node
restarted *without* its record (disk lost) must not sign before the chain has moved past
anything it might have signed: that is the operator's job (see ``docs/protocol.md``).

:class:`Outbox` applies the rule for the core: it signs only what the record allows and holds
every signed message back until the shell has made the record durable.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import TypeVar

import msgpack

from sequencer_node.core.api import PersistedState, PersistWatermark
from sequencer_node.wire.codec import CodecError, decode, message_tag
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    EpochProof,
    QuorumCertificate,
    TimeoutCertificate,
)

M = TypeVar("M")


class Kind(enum.Enum):
    PROPOSAL = "proposal"
    VOTE = "vote"
    TIMEOUT = "timeout"


def empty_record(chain_id: int, signer: bytes) -> PersistedState:
    return PersistedState(chain_id, signer, 0, ZERO_HASH, 0, ZERO_HASH, 0, ZERO_HASH, None)


def decode_record(raw: bytes) -> PersistedState:
    """The stored record, read strictly; a version 2 record (written before ``last_tc``
    existed) is read as version 3 without a TC: refusing it would leave the operator only the
    choice of deleting the record, the one thing that makes double signing possible.

    Raises:
        CodecError: anything else than a canonical version 2 or 3 record.
    """
    try:
        return decode(raw, PersistedState)
    except CodecError:
        try:
            obj = msgpack.unpackb(raw, raw=False, use_list=True, strict_map_key=True)
        except (ValueError, msgpack.UnpackException):
            raise CodecError("the watermark record is not valid msgpack") from None
        if not (isinstance(obj, list) and len(obj) == 3 and isinstance(obj[2], list)):
            raise
        if obj[0] != message_tag(PersistedState) or obj[1] != 2:
            raise
        upgraded = msgpack.packb([obj[0], 3, [*obj[2], None]], use_bin_type=True)
        record = decode(upgraded, PersistedState)
        if msgpack.packb([obj[0], 2, list(obj[2])], use_bin_type=True) != bytes(raw):
            raise CodecError("PersistedState: not the canonical encoding") from None
        return record


def _slot(record: PersistedState, kind: Kind) -> tuple[int, bytes]:
    if kind is Kind.PROPOSAL:
        return record.proposal_round, record.proposal_digest
    if kind is Kind.VOTE:
        return record.vote_round, record.vote_digest
    return record.timeout_round, record.timeout_digest


def may_sign(record: PersistedState, kind: Kind, round_: int, digest: bytes) -> bool:
    """True iff signing (kind, round, digest) cannot contradict anything in ``record``, and
    it is not a vote or proposal in (or below) a round this key timed out in: after its timeout
    a key signs nothing more in the round, so the record's QC stays the one the timeout
    reported, and a restart can sign that very timeout again (the core relies on it)."""
    if kind is not Kind.TIMEOUT and round_ <= record.timeout_round:
        return False
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
    proof: EpochProof | None = None,
    tc: TimeoutCertificate | None = None,
) -> PersistedState:
    """The record after signing; raises if the signature is not allowed (a bug upstream).

    ``high_qc`` replaces the recorded QC if it ranks higher, by (epoch, round) like every QC
    comparison (a closing QC of an old epoch may carry a higher round than the new epoch's
    first QCs); ``proof`` is its epoch proof if it closes its epoch. ``tc`` replaces the
    recorded TC if its round is higher.
    """
    if not may_sign(record, kind, round_, digest):
        raise AssertionError(f"refusing to sign {kind.value} at round {round_}: watermark")
    if tc is not None and (record.last_tc is None or tc.round > record.last_tc.round):
        record = replace(record, last_tc=tc)
    if high_qc is not None and (record.high_qc is None or _rank(high_qc) > _rank(record.high_qc)):
        record = replace(record, high_qc=high_qc, high_qc_proof=proof)
    elif high_qc is not None and high_qc == record.high_qc and record.high_qc_proof is None:
        record = replace(record, high_qc_proof=proof)
    if kind is Kind.PROPOSAL:
        return replace(record, proposal_round=round_, proposal_digest=digest)
    if kind is Kind.VOTE:
        return replace(record, vote_round=round_, vote_digest=digest)
    return replace(record, timeout_round=round_, timeout_digest=digest)


def _rank(qc: QuorumCertificate) -> tuple[int, int]:
    return (qc.epoch, qc.round)


@dataclass(slots=True)
class _Held:
    seq: int
    messages: list[object]


class Outbox:
    """Signs within the watermark and holds what it signed until the record is durable.

    :meth:`sign` advances the record; :meth:`hold` asks the shell to persist it (the returned
    :class:`~sequencer_node.core.api.PersistWatermark`) and keeps the messages back;
    :meth:`release` hands them out once the shell acknowledged that ``seq``.
    """

    def __init__(self, key: SigningKey | None, record: PersistedState | None, chain_id: int):
        self._key = key
        self.record = record
        self._chain_id = chain_id
        self._seq = 0
        self._held: list[_Held] = []

    def sign(
        self,
        kind: Kind,
        round_: int,
        digest: bytes,
        msg: M,
        high_qc: QuorumCertificate | None,
        proof: EpochProof | None = None,
        tc: TimeoutCertificate | None = None,
    ) -> M | None:
        """``msg`` signed, if the watermark allows (the record then names it); else None."""
        if self._key is None or self.record is None:
            return None
        if not may_sign(self.record, kind, round_, digest):
            return None
        self.record = record_signature(self.record, kind, round_, digest, high_qc, proof, tc)
        return sign_message(msg, self._key, self._chain_id)

    def hold(self, messages: list[object], blocks: tuple[Block, ...] = ()) -> PersistWatermark:
        """Keep ``messages`` back until the returned record, and the ``blocks`` they vouch
        for, are acknowledged durable."""
        assert self.record is not None
        self._seq += 1
        self._held.append(_Held(self._seq, messages))
        return PersistWatermark(self.record, self._seq, blocks)

    def release(self, seq: int) -> list[object]:
        """Messages whose record the shell made durable (acknowledged ``seq``)."""
        ready = [m for h in self._held if h.seq <= seq for m in h.messages]
        self._held = [h for h in self._held if h.seq > seq]
        return ready

    def holds(self, msg: object) -> bool:
        return any(m is msg for h in self._held for m in h.messages)

    def signed_round(self, kind: Kind) -> int:
        """The highest round this key signed a ``kind`` in (0 without a key)."""
        return 0 if self.record is None else _slot(self.record, kind)[0]
