"""Every message shared by the sequencer nodes and the L1: transactions, consensus, batches,
evidence, downtime reports and signed L1 calls.

These are the formats that both sides verify, so they live here, in one module that
``sequencer_node`` and ``l1_mock`` both import. Messages used by only one side register their
own tags in their own modules (see ``codec.TAG_RANGES``).

Naming: a *statement* is a signable message with a ``signature`` field (Vote, Timeout,
BatchApproval, DowntimeReport); a *certificate* carries many signatures over one statement as
:class:`Endorsement` entries, and :mod:`sequencer_node.wire.certificates` checks them by stake.
The *slot* of a signed consensus message is its round: two different messages of one kind,
signed by one key for one round, are slashable evidence.

Epochs: ``epoch`` in consensus messages (BlockHeader, Vote, Timeout, QC, TC) is the *L2* epoch
(a run of L2 blocks with one leader schedule). ``stake_epoch`` in what is submitted to L1
(BatchHeader, DowntimeReport) is the *L1* epoch (32 slots) whose stake snapshot the signers'
stake is counted in, so that the L1 can check a certificate without knowing L2 epochs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated

from sequencer_node.wire.codec import (
    MEMO,
    U8,
    U32,
    U64,
    Address,
    Bytes,
    Hash32,
    MaxItems,
    PubKey,
    Signature,
    Str,
    message_id,
    wire_message,
)
from sequencer_node.wire.da.attest import DAPointer
from sequencer_node.wire.eth import EthTransaction

#: Maximum transactions in one L2 block.
MAX_BLOCK_TXS = 20_000
#: Maximum signers in one certificate (the validator set is far smaller; this bounds decoding).
MAX_SIGNERS = 512
#: Blobs in one batch (EIP-7594 caps a transaction at 6 blobs; BPO2 allows 21 per block).
MAX_BATCH_BLOBS = 21
ZERO_HASH = bytes(32)


# --- L2 transactions -----------------------------------------------------------------------


@wire_message(1, domain="l2-transfer")
@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed L2 transfer of ``amount`` from the sender's account to ``to``."""

    sender: PubKey
    to: Address
    amount: U64
    nonce: U64
    fee: U64
    signature: Signature
    #: Its message id once computed (not on the wire, not compared): see ``codec.MEMO``.
    _id: bytes | None = field(default=None, init=False, repr=False, compare=False, metadata=MEMO)
    #: The chain id its signature was verified good for, once it was (not on the wire, not
    #: compared): see ``core.ledger.verify_tx_signature``.
    _good_for: int | None = field(
        default=None, init=False, repr=False, compare=False, metadata=MEMO
    )


@wire_message(2)
@dataclass(frozen=True, slots=True)
class ForcedTransaction:
    """An L2 transaction queued on L1 (forced inclusion), in L1 queue order."""

    queue_index: U64
    l1_block: U64
    tx: Transaction


# --- consensus ------------------------------------------------------------------------------


@wire_message(3)
@dataclass(frozen=True, slots=True)
class BlockHeader:
    """An L2 block header. Its hash (:func:`block_hash`) identifies the block."""

    height: U64
    round: U64
    epoch: U64
    parent_hash: Hash32
    timestamp_ms: U64
    proposer: PubKey
    tx_root: Hash32
    state_root: Hash32
    #: Forced-inclusion queue entries consumed by the chain up to and including this block.
    forced_index: U64
    #: The L1 block this block's forced inclusions were read against.
    l1_origin: U64


@wire_message(4, domain="proposal")
@dataclass(frozen=True, slots=True)
class Proposal:
    """The leader's signature over a header. Slot: ``header.round``."""

    header: BlockHeader
    signature: Signature


@wire_message(6, domain="vote")
@dataclass(frozen=True, slots=True)
class Vote:
    """A validator's vote for a block. Slot: ``round``."""

    block_hash: Hash32
    height: U64
    round: U64
    epoch: U64
    voter: PubKey
    signature: Signature


@wire_message(7)
@dataclass(frozen=True, slots=True)
class Endorsement:
    """One signer's signature inside a certificate."""

    signer: PubKey
    signature: Signature


@wire_message(8)
@dataclass(frozen=True, slots=True)
class QuorumCertificate:
    """Votes of > 2/3 of the epoch's stake for one block at one round."""

    block_hash: Hash32
    height: U64
    round: U64
    epoch: U64
    signatures: Annotated[tuple[Endorsement, ...], MaxItems(MAX_SIGNERS)]


@wire_message(9, domain="timeout")
@dataclass(frozen=True, slots=True)
class Timeout:
    """A validator gives up on ``round``; it reports the highest QC it knows. Slot: ``round``.

    ``epoch`` is the epoch of that QC (0 without one): with ``high_qc_round`` it is the QC's
    rank, so a TC's high QC is the highest by (epoch, round), never by round alone.
    """

    round: U64
    epoch: U64
    high_qc_round: U64
    high_qc_block: Hash32
    voter: PubKey
    signature: Signature


@wire_message(10, version=2)
@dataclass(frozen=True, slots=True)
class TimeoutCertificate:
    """Timeouts of > 2/3 of stake for one round, with the highest QC among them (by rank).

    It names what it certifies: ``height`` and ``epoch`` are those of the block that will
    extend its high QC (the QC's height + 1, or the first height of the next epoch after a
    block that closes its epoch; 1 without a QC), and ``epoch``'s table counts the timeouts
    (docs/protocol.md, sections 2 and 3a; version 2: version 1 had no ``height``).
    """

    round: U64
    height: U64
    epoch: U64
    timeouts: Annotated[tuple[Timeout, ...], MaxItems(MAX_SIGNERS)]
    high_qc: QuorumCertificate | None


@wire_message(11, version=2)
@dataclass(frozen=True, slots=True)
class TimeoutMessage:
    """A timeout as gossiped: the signed statement plus the QC it names (unsigned proof).

    ``last_tc`` is the TC of the round before the timeout's, when that TC is how the sender
    entered the round (Jolteon's timeout carries it, Aptos' sync info): a peer still in the
    round before learns from the timeout itself why the sender moved on, and moves on too.
    Without it, two nodes that formed a TC the others never saw time out alone in the next
    round for good (docs/reliability.md). Version 2: version 1 had no ``last_tc``.
    """

    timeout: Timeout
    high_qc: QuorumCertificate | None
    last_tc: TimeoutCertificate | None = None


#: Most suffix blocks between an epoch's last block and the block that closes the epoch.
MAX_SUFFIX = 64


@wire_message(13)
@dataclass(frozen=True, slots=True)
class EpochProof:
    """That epoch ``e``'s own table committed its last block R (height ``(e + 1) * L``).

    ``suffix`` are the empty blocks S_1..S_k of epoch ``e`` on top of R (S_1's parent is R);
    the first block of epoch ``e + 1`` carries QC(S_k) as its ``justify``, and ``parent_qc``
    is QC(S_k's parent), one round below S_k: a two-chain inside epoch ``e``, which commits R
    under ``e``'s table (docs/protocol.md, "Reconfiguration"). ``last_qc`` is QC(R).
    """

    suffix: Annotated[tuple[BlockHeader, ...], MaxItems(MAX_SUFFIX)]
    parent_qc: QuorumCertificate
    #: QC(R): R's own certificate, so every node can store R as a certified block.
    last_qc: QuorumCertificate


@wire_message(5, version=2)
@dataclass(frozen=True, slots=True)
class Block:
    """A full proposal: the signed header, its transactions and its justification.

    Version 2: version 1 had no ``epoch_proof`` (and its TC no ``height``). Messages that carry
    a block inside (:class:`CertifiedBlock`, the core's ``SyncResponse`` and ``SnapshotHead``)
    are version 2 as well, because only the outer envelope names a version: data written by
    version 1 is refused as "unsupported version 1", not as a wrong field count.
    Execution order: ``forced``, then ``transactions``, then ``eth_transactions`` (also new in
    version 2).
    """

    proposal: Proposal
    transactions: Annotated[tuple[Transaction, ...], MaxItems(MAX_BLOCK_TXS)]
    forced: Annotated[tuple[ForcedTransaction, ...], MaxItems(1024)]
    #: QC for the parent (None only for the first block after genesis).
    justify: QuorumCertificate | None
    #: Present when the previous round ended in a timeout rather than a QC.
    timeout_cert: TimeoutCertificate | None
    #: Only in the first block of an epoch >= 1: the previous table committed its last block.
    epoch_proof: EpochProof | None = None
    #: Signed Ethereum value transfers (:mod:`sequencer_node.wire.eth`), after ``transactions``.
    eth_transactions: Annotated[tuple[EthTransaction, ...], MaxItems(MAX_BLOCK_TXS)] = ()

    @property
    def header(self) -> BlockHeader:
        return self.proposal.header


@wire_message(12, version=2)
@dataclass(frozen=True, slots=True)
class CertifiedBlock:
    """A block with the QC that certifies it: what catch-up transfers and stores (version 2:
    the version of :class:`Block` inside)."""

    block: Block
    qc: QuorumCertificate


# --- batches --------------------------------------------------------------------------------

DA_BLOBS = 0
DA_CALLDATA = 1
#: The data sits on an external DA layer; ``da_pointer`` says where (docs/da.md).
DA_EXTERNAL = 2
DA_KINDS = {DA_BLOBS: "blobs", DA_CALLDATA: "calldata", DA_EXTERNAL: "extda"}


@wire_message(20)
@dataclass(frozen=True, slots=True)
class BatchHeader:
    """What the L1 inbox stores for a batch of certified L2 blocks."""

    chain_id: U64
    batch_number: U64
    #: The L1 epoch whose stake snapshot certifies this batch (see the module docstring).
    stake_epoch: U64
    first_height: U64
    last_height: U64
    last_block_hash: Hash32
    parent_batch_hash: Hash32
    state_root: Hash32
    forced_index: U64
    da_kind: U8
    blob_hashes: Annotated[tuple[Hash32, ...], MaxItems(MAX_BATCH_BLOBS)]
    #: sha256 of the batch payload (the calldata, or the concatenated blob payloads).
    data_hash: Hash32
    data_bytes: U32
    #: Where the payload sits on the external DA layer (``DA_EXTERNAL`` batches only).
    da_pointer: DAPointer | None = None

    def __post_init__(self) -> None:
        if self.first_height > self.last_height:
            raise ValueError("first_height is above last_height")
        if self.da_kind not in DA_KINDS:
            raise ValueError(f"unknown da_kind {self.da_kind}")
        if self.da_kind != DA_BLOBS and self.blob_hashes:
            raise ValueError(f"a {DA_KINDS[self.da_kind]} batch carries no blob hashes")
        if (self.da_kind == DA_EXTERNAL) != (self.da_pointer is not None):
            raise ValueError("an extda batch, and only it, carries a DA pointer")


@wire_message(21, domain="batch")
@dataclass(frozen=True, slots=True)
class BatchApproval:
    """A co-signer's approval of a batch header it rebuilt from its own chain."""

    header: BatchHeader
    signer: PubKey
    signature: Signature


@wire_message(22)
@dataclass(frozen=True, slots=True)
class BatchCertificate:
    header: BatchHeader
    signatures: Annotated[tuple[Endorsement, ...], MaxItems(MAX_SIGNERS)]


# --- downtime -------------------------------------------------------------------------------


@wire_message(25, domain="downtime")
@dataclass(frozen=True, slots=True)
class DowntimeReport:
    """``offender`` missed ``missed`` of ``duties`` duties in L2 heights [from, to].

    ``stake_epoch`` is the L1 epoch whose stake snapshot the signers belong to.
    """

    stake_epoch: U64
    offender: PubKey
    from_height: U64
    to_height: U64
    missed: U32
    duties: U32
    signer: PubKey
    signature: Signature


@wire_message(26)
@dataclass(frozen=True, slots=True)
class DowntimeCertificate:
    report: DowntimeReport  # its signer/signature fields are ignored; signatures hold them
    signatures: Annotated[tuple[Endorsement, ...], MaxItems(MAX_SIGNERS)]


# --- evidence -------------------------------------------------------------------------------


class EvidenceKind(enum.Enum):
    """What a key signed twice for one round; the values name the kind in APIs and metrics."""

    DOUBLE_PROPOSAL = "double_proposal"
    DOUBLE_VOTE = "double_vote"
    DOUBLE_TIMEOUT = "double_timeout"


def signed_slot(statement: Proposal | Vote | Timeout) -> tuple[bytes, int]:
    """(signer, round) of a signed consensus statement: its slot for the never-sign-twice rule."""
    if isinstance(statement, Proposal):
        return statement.header.proposer, statement.header.round
    return statement.voter, statement.round


@wire_message(30)
@dataclass(frozen=True, slots=True)
class DoubleProposal:
    a: Proposal
    b: Proposal

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.DOUBLE_PROPOSAL

    @property
    def round(self) -> int:
        """The round of the first statement (a valid piece of evidence has one round)."""
        return self.a.header.round

    @property
    def offender(self) -> bytes:
        """The claimed signer of the first statement (``verify_evidence`` checks both)."""
        return self.a.header.proposer


@wire_message(31)
@dataclass(frozen=True, slots=True)
class DoubleVote:
    a: Vote
    b: Vote

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.DOUBLE_VOTE

    @property
    def round(self) -> int:
        return self.a.round

    @property
    def offender(self) -> bytes:
        return self.a.voter


@wire_message(32)
@dataclass(frozen=True, slots=True)
class DoubleTimeout:
    a: Timeout
    b: Timeout

    @property
    def kind(self) -> EvidenceKind:
        return EvidenceKind.DOUBLE_TIMEOUT

    @property
    def round(self) -> int:
        return self.a.round

    @property
    def offender(self) -> bytes:
        return self.a.voter


Evidence = DoubleProposal | DoubleVote | DoubleTimeout


# --- signed L1 calls ------------------------------------------------------------------------


@wire_message(40, domain="l1-call")
@dataclass(frozen=True, slots=True)
class L1Call:
    """A state-changing call to the L1 mock, signed by the calling account.

    ``params`` is the canonical encoding of the method's own parameter message; ``nonce`` is
    the account's L1 nonce, so a replayed call is refused.
    """

    method: Annotated[str, Str(64)]
    params: Annotated[bytes, Bytes(0, 4 * 1024 * 1024)]
    sender: PubKey
    nonce: U64
    signature: Signature


def block_hash(header: BlockHeader) -> bytes:
    return message_id(header)


def batch_hash(header: BatchHeader) -> bytes:
    return message_id(header)


def tx_hash(tx: Transaction) -> bytes:
    return message_id(tx)
