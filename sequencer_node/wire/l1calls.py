"""Parameter messages of the L1 mock's state-changing calls.

A call is an :class:`~sequencer_node.wire.messages.L1Call` whose ``method`` names one of the
messages below and whose ``params`` is that message's canonical encoding. The account signs
the call with ``sign_message(call, key, l1_chain_id)``; ``nonce`` is its L1 account nonce.
Nodes and the CLI build calls with :func:`make_call` and never import ``l1_mock``.

Amounts in call parameters are in gwei (``*_gwei`` fields, 10**9 gwei = 1 token) so that they
fit the codec's 64-bit integers; balances and fees on the L1 are in wei (10**18 wei = 1 token).
One native balance pays fees and stake. ``max_fee_per_blob_gas`` is in wei per blob gas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from sequencer_node.wire.codec import (
    U64,
    Address,
    Bytes,
    MaxItems,
    PubKey,
    Str,
    decode,
    encode,
    wire_message,
)
from sequencer_node.wire.crypto import SigningKey, sign_message
from sequencer_node.wire.da.attest import Attestation, DataCommitment, PointerProof
from sequencer_node.wire.messages import (
    MAX_BATCH_BLOBS,
    BatchCertificate,
    DoubleProposal,
    DoubleTimeout,
    DoubleVote,
    DowntimeCertificate,
    Evidence,
    L1Call,
    Transaction,
)

#: One token in gwei, the unit of every ``*_gwei`` amount.
GWEI = 10**9
Blob = Annotated[bytes, Bytes(131072, 131072)]
KzgBytes = Annotated[bytes, Bytes(48, 48)]
#: Most DA committee members whose signatures one data commitment call carries.
MAX_COMMITTEE = 256
#: Calldata batches are bounded by the L1Call params limit (4 MiB) minus the certificate.
MAX_CALLDATA = 3 * 1024 * 1024


@wire_message(45)
@dataclass(frozen=True, slots=True)
class Transfer:
    """Move native balance to another L1 account."""

    to: Address
    amount_gwei: U64


@wire_message(46)
@dataclass(frozen=True, slots=True)
class RegisterSequencer:
    """Register ``signing_key`` as a sequencer owned by the calling account, locking ``stake``."""

    signing_key: PubKey
    p2p_address: Annotated[str, Str(256)]
    rpc_address: Annotated[str, Str(256)]
    stake_gwei: U64


@wire_message(47)
@dataclass(frozen=True, slots=True)
class LockStake:
    signing_key: PubKey
    amount_gwei: U64


@wire_message(48)
@dataclass(frozen=True, slots=True)
class UnlockStake:
    """Start unbonding ``amount_gwei`` (0 means all the bonded stake)."""

    signing_key: PubKey
    amount_gwei: U64


@wire_message(49)
@dataclass(frozen=True, slots=True)
class WithdrawStake:
    """Return every unbonding entry whose unbonding period has passed to the owner's balance."""

    signing_key: PubKey


@wire_message(50)
@dataclass(frozen=True, slots=True)
class ClaimRewards:
    signing_key: PubKey


@wire_message(51)
@dataclass(frozen=True, slots=True)
class Unjail:
    signing_key: PubKey


@wire_message(52)
@dataclass(frozen=True, slots=True)
class UpdateSequencer:
    """Change the advertised p2p and RPC addresses."""

    signing_key: PubKey
    p2p_address: Annotated[str, Str(256)]
    rpc_address: Annotated[str, Str(256)]


@wire_message(53)
@dataclass(frozen=True, slots=True)
class SubmitEvidence:
    """Equivocation evidence: exactly one of the three fields is set."""

    double_proposal: DoubleProposal | None
    double_vote: DoubleVote | None
    double_timeout: DoubleTimeout | None

    def __post_init__(self) -> None:
        n = sum(
            x is not None for x in (self.double_proposal, self.double_vote, self.double_timeout)
        )
        if n != 1:
            raise ValueError("SubmitEvidence carries exactly one piece of evidence")

    @property
    def evidence(self) -> Evidence:
        e = self.double_proposal or self.double_vote or self.double_timeout
        assert e is not None
        return e

    @staticmethod
    def of(evidence: Evidence) -> SubmitEvidence:
        if isinstance(evidence, DoubleProposal):
            return SubmitEvidence(evidence, None, None)
        if isinstance(evidence, DoubleVote):
            return SubmitEvidence(None, evidence, None)
        return SubmitEvidence(None, None, evidence)


@wire_message(54)
@dataclass(frozen=True, slots=True)
class ReportDowntime:
    certificate: DowntimeCertificate


@wire_message(55)
@dataclass(frozen=True, slots=True)
class QueueForced:
    """Queue an L2 transaction for forced inclusion."""

    tx: Transaction


@wire_message(56)
@dataclass(frozen=True, slots=True)
class SubmitBatch:
    """A batch for the inbox. Blob batches carry the sidecars (blob, commitment, proof);
    calldata batches carry the data in ``calldata``; external-DA batches carry the proof of
    their header's DA pointer against the L1's attested data commitment ``da_nonce``."""

    certificate: BatchCertificate
    max_fee_per_blob_gas: U64
    blobs: Annotated[tuple[Blob, ...], MaxItems(MAX_BATCH_BLOBS)]
    commitments: Annotated[tuple[KzgBytes, ...], MaxItems(MAX_BATCH_BLOBS)]
    proofs: Annotated[tuple[KzgBytes, ...], MaxItems(MAX_BATCH_BLOBS)]
    calldata: Annotated[bytes, Bytes(0, MAX_CALLDATA)]
    da_nonce: U64 = 0
    da_proof: PointerProof | None = None


@wire_message(73)
@dataclass(frozen=True, slots=True)
class CommitteeSignature:
    """A DA committee member's signature of a data commitment."""

    key: PubKey
    signature: Annotated[bytes, Bytes(64, 64)]


@wire_message(74)
@dataclass(frozen=True, slots=True)
class SubmitDataCommitment:
    """A relayer posts a data commitment the DA committee signed (Blobstream's
    ``submitDataRootTupleRoot``): the DA blocks ``[start, end)`` whose tuples hash to
    ``tuple_root``, attestation number ``nonce``. Any funded account may send it."""

    nonce: U64
    start: U64
    end: U64
    tuple_root: Annotated[bytes, Bytes(32, 32)]
    signatures: Annotated[tuple[CommitteeSignature, ...], MaxItems(MAX_COMMITTEE)]

    @staticmethod
    def of(att: Attestation) -> SubmitDataCommitment:
        c = att.commitment
        sigs = tuple(CommitteeSignature(k, s) for k, s in att.signatures)
        return SubmitDataCommitment(c.nonce, c.start, c.end, c.tuple_root, sigs)

    @property
    def attestation(self) -> Attestation:
        c = DataCommitment(self.nonce, self.start, self.end, self.tuple_root)
        return Attestation(c, tuple((s.key, s.signature) for s in self.signatures))


#: Most bytes of a fee-model setting (a JSON object).
MAX_FEE_PARAMS = 4096


@wire_message(60)
@dataclass(frozen=True, slots=True)
class SetFeeModel:
    """The rollup owner sets the L2 fee model: ``fee_params`` is a JSON object as in the L2
    genesis's ``fees`` section (``{"model": "op-ecotone", ...}``, see docs/fees.md). The L2
    applies it from the first block of the first epoch that starts after the L2 block whose
    L1 origin passes this call's (finalized) L1 block."""

    fee_params: Annotated[str, Str(MAX_FEE_PARAMS)]


#: Method name (the ``L1Call.method``) of each parameter message.
METHODS: dict[str, type] = {
    "transfer": Transfer,
    "registerSequencer": RegisterSequencer,
    "lockStake": LockStake,
    "unlockStake": UnlockStake,
    "withdrawStake": WithdrawStake,
    "claimRewards": ClaimRewards,
    "unjail": Unjail,
    "updateSequencer": UpdateSequencer,
    "submitEvidence": SubmitEvidence,
    "reportDowntime": ReportDowntime,
    "queueForced": QueueForced,
    "submitBatch": SubmitBatch,
    "submitDataCommitment": SubmitDataCommitment,
    "setFeeModel": SetFeeModel,
}
_NAMES = {cls: name for name, cls in METHODS.items()}


def method_name(params: Any) -> str:
    try:
        return _NAMES[type(params)]
    except KeyError:
        raise TypeError(f"{type(params).__name__} is not an L1 call parameter message") from None


def make_call(params: Any, key: SigningKey, nonce: int, l1_chain_id: int) -> L1Call:
    """A signed :class:`L1Call` carrying ``params`` from ``key``'s account."""
    call = L1Call(method_name(params), encode(params), key.public_key, nonce, bytes(64))
    return sign_message(call, key, l1_chain_id)


def decode_params(call: L1Call) -> Any:
    """The parameter message of ``call`` (raises CodecError or KeyError for unknown methods)."""
    cls = METHODS.get(call.method)
    if cls is None:
        raise KeyError(f"unknown L1 method {call.method!r}; known: {', '.join(METHODS)}")
    return decode(call.params, cls)


__all__ = [
    "MAX_FEE_PARAMS",
    "METHODS",
    "ClaimRewards",
    "LockStake",
    "QueueForced",
    "RegisterSequencer",
    "ReportDowntime",
    "CommitteeSignature",
    "SetFeeModel",
    "SubmitBatch",
    "SubmitDataCommitment",
    "SubmitEvidence",
    "Transfer",
    "Unjail",
    "UnlockStake",
    "UpdateSequencer",
    "WithdrawStake",
    "decode_params",
    "make_call",
    "method_name",
]
