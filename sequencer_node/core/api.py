"""The public face of the protocol core: configuration, genesis, events in, effects out.

The node shell (Trio) and the simulator drive one
:class:`~sequencer_node.core.sequencer.SequencerCore` with this vocabulary::

    core = SequencerCore(config, genesis, persisted=record_or_None, chain=stored_blocks)
    # or, after a restart, from a ChainSnapshot (core.snapshot()) and the blocks above it:
    core = SequencerCore(config, genesis, persisted=..., snapshot=snap, chain=blocks_above)
    effects = core.handle(event, now_ms)     # one input
    effects = core.tick(now_ms)              # time passing (call every ~50-100 ms)
    core.status()                            # a CoreStatus record

and read it only through a few read-only queries (``epoch_info``, ``committed_ledger``,
``is_pending``, ``pending_nonce``, ``config``, ``snapshot``), never through its parts.

Every event and effect is a frozen dataclass; ``handle`` and ``tick`` return every effect in one
list (there is no other output). The shell carries out effects in list order.

The never-sign-twice contract: a signed consensus message (proposal, vote, timeout) never
appears in an effect before the shell has made the matching :class:`PersistWatermark` durable
(fsync) and fed back :class:`WatermarkPersisted` with the same ``seq``. The core emits the
``PersistWatermark`` effect, holds the signed messages back, and releases them as ``Broadcast``
effects in the ``handle`` call that receives the ack. If the process dies
before the ack, the signatures never left and the (possibly persisted) record only makes the
node more careful after the restart.

Durability before votes: the same ``PersistWatermark`` names in ``blocks`` the blocks that the
held-back messages vouch for (the block a vote is for; the block of the QC that a proposal or
timeout carries). The shell makes them durable with the record, before the ack, so a node never
votes for, or sends a QC of, a block it could lose in a crash, and a whole-network restart
always finds every certified block on some disk (issue 11, finding 6).

``PersistedState`` and the node-only sync messages are wire messages (tags 64-79), so the shell
stores the record with :func:`sequencer_node.wire.codec.encode` and reads it back with
:func:`~sequencer_node.wire.codec.decode`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated

from sequencer_node.core.fees import FeeParams, FeeState, L1FeeInfo
from sequencer_node.core.ledger import Ledger
from sequencer_node.wire.codec import U64, Hash32, MaxItems, PubKey, decode, encode, wire_message
from sequencer_node.wire.crypto import SigningKey
from sequencer_node.wire.eth import EthTransaction
from sequencer_node.wire.messages import (
    Block,
    BlockHeader,
    CertifiedBlock,
    DowntimeCertificate,
    EpochProof,
    Evidence,
    ForcedTransaction,
    QuorumCertificate,
    TimeoutCertificate,
    Transaction,
)

#: Most certified blocks in one sync response.
MAX_SYNC_BLOCKS = 64

# --- configuration ------------------------------------------------------------------------


#: Default ``CoreConfig.seed_lead_blocks``: the L1 mock's finality lag (up to 64 blocks), plus
#: the default ``max_l1_origin_lag`` (32), plus one L1 epoch (32).
DEFAULT_SEED_LEAD_BLOCKS = 128


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Protocol parameters. Every node of a network must agree on all but ``key`` and the
    local bounds (mempool sizes)."""

    chain_id: int
    #: This node's signing key; None for a follower that validates and never signs.
    key: SigningKey | None
    block_time_ms: int = 1_000
    #: Pace of proposals while there is nothing to order (0: always ``block_time_ms``). Only
    #: the leader reads it; below half the base round timeout, so an idle round never times
    #: out. An idle 250 ms chain made and fsynced four empty blocks a second per node.
    idle_block_ms: int = 0
    #: First round timeout; doubled after each consecutive timeout, up to ``timeout_max_ms``.
    timeout_base_ms: int = 4_000
    timeout_max_ms: int = 60_000
    #: L2 blocks per epoch (one leader schedule per epoch). At least 3.
    epoch_length: int = 1_000
    max_block_txs: int = 2_000
    max_block_forced: int = 256
    #: Forced-inclusion window in L1 blocks (see :mod:`sequencer_node.core.forced`); the L1
    #: inbox's window must be the same.
    sequencing_window: int = 100
    #: How far, at most, the L1's finalized head lags its head (L1 blocks; the mock: 2 epochs),
    #: and how many L1 blocks a batch takes to land after its blocks are committed. A forced
    #: entry is included once its L1 block is final and its batch must land inside the window,
    #: so the window must cover both (checked here, and by the L1 mock's genesis).
    l1_finality_blocks: int = 64
    batch_latency_blocks: int = 8
    #: A proposal's timestamp may be at most this far ahead of the validator's clock.
    max_clock_skew_ms: int = 2_000
    #: A proposal's ``l1_origin`` may be at most this many L1 blocks behind the validator's
    #: finalized L1 head (the OP Stack's sequencer drift, seen from L1): a leader cannot stop
    #: L1 time, so a forced entry queued at L1 block ``b`` is due in every block voted for once
    #: the voters' finalized heads pass ``b + sequencing_window + max_l1_origin_lag``.
    max_l1_origin_lag: int = 32
    #: L1 slots per L1 epoch.
    l1_slots_per_epoch: int = 32
    #: Epoch e's stake table and seed come from the snapshot named by its *anchor*, the first
    #: block of epoch ``e - seed_anchor_epochs``: the first L1 epoch starting after L1 block
    #: ``anchor.l1_origin + seed_lead_blocks``, which validators require to lie beyond their
    #: L1 head when they vote for the anchor (docs/protocol.md, section 2). The lead must exceed
    #: the L1's finality lag plus one L1 epoch (the mock finalizes up to 64 blocks behind its
    #: head), and the anchor distance must cover the time that snapshot takes to be finalized,
    #: else the new epoch waits for it.
    seed_lead_blocks: int = DEFAULT_SEED_LEAD_BLOCKS
    seed_anchor_epochs: int = 2
    #: Downtime: window of committed L2 heights, and the missed share (percent) that reports.
    downtime_window: int = 100
    downtime_threshold_percent: int = 50
    #: A vote that reaches this node up to this many committed heights after its block (so
    #: also after the QC formed) still counts as a duty done (see ``core/downtime.py``).
    downtime_grace_heights: int = 4
    mempool_max_txs: int = 50_000
    mempool_max_per_sender: int = 256
    mempool_max_nonce_gap: int = 64
    #: Bound of the in-memory block tree above the committed head (blocks), and of buffered
    #: future-round messages.
    max_pending_blocks: int = 1_024
    max_future_rounds: int = 64

    def __post_init__(self) -> None:
        if self.epoch_length < 3:
            raise ValueError("epoch_length must be at least 3 L2 blocks")
        if self.block_time_ms <= 0 or self.timeout_base_ms <= 0:
            raise ValueError("block_time_ms and timeout_base_ms must be positive")
        if self.idle_block_ms and not (
            self.block_time_ms <= self.idle_block_ms <= self.timeout_base_ms // 2
        ):
            raise ValueError("idle_block_ms must be 0 or in [block_time_ms, timeout_base_ms / 2]")
        if self.timeout_max_ms < self.timeout_base_ms:
            raise ValueError("timeout_max_ms must be >= timeout_base_ms")
        if not 0 < self.downtime_threshold_percent <= 100 or self.downtime_window < 1:
            raise ValueError("downtime_threshold_percent must be in 1..100, window >= 1")
        if self.downtime_grace_heights < 0:
            raise ValueError("downtime_grace_heights cannot be negative")
        if self.max_l1_origin_lag < 0:
            raise ValueError("max_l1_origin_lag cannot be negative")
        self._check_l1_windows()
        if not 1 <= self.seed_anchor_epochs < MAX_SNAPSHOT_ANCHORS:
            raise ValueError(
                f"seed_anchor_epochs must be in 1..{MAX_SNAPSHOT_ANCHORS - 1} (a snapshot of "
                f"the chain keeps the anchors of the last {MAX_SNAPSHOT_ANCHORS} epochs)"
            )

    def _check_l1_windows(self) -> None:
        """L1 block counts that must cover the L1's finality lag (errors name the fix)."""
        need = self.l1_finality_blocks + self.batch_latency_blocks
        if self.sequencing_window < need:
            raise ValueError(
                f"sequencing_window of {self.sequencing_window} L1 blocks is below the L1's "
                f"finality lag ({self.l1_finality_blocks} blocks) plus the batch latency "
                f"({self.batch_latency_blocks} blocks): forced transactions are included only "
                "once their L1 block is final, so each one would make its batch land after the "
                f"window and stall batch posting; set sequencing_window to at least {need} "
                "(in the L2 genesis params and the L1 genesis alike)"
            )
        # Then the anchor rule refuses no origin the lag rule accepts (o >= F - lag >= H -
        # finality - lag), so it adds no liveness condition of its own.
        lead = self.l1_finality_blocks + self.max_l1_origin_lag + self.l1_slots_per_epoch
        if self.l1_slots_per_epoch < 1 or self.seed_lead_blocks < lead:
            raise ValueError(
                f"seed_lead_blocks of {self.seed_lead_blocks} is below the L1's finality lag "
                f"({self.l1_finality_blocks}) plus max_l1_origin_lag "
                f"({self.max_l1_origin_lag}) plus one L1 epoch ({self.l1_slots_per_epoch}): "
                "validators would refuse an epoch's first block whose origin the lag rule "
                "allows, because the snapshot seed it names is less than an L1 epoch past "
                f"their L1 head; set seed_lead_blocks to at least {lead}"
            )


@dataclass(frozen=True, slots=True)
class StakeSnapshot:
    """The active sequencers of one L1 epoch (jailed and slashed ones left out) and the
    finalized L1 randomness of that epoch (e.g. the epoch's last finalized block hash)."""

    l1_epoch: int
    stakes: tuple[tuple[bytes, int], ...]  # (public key, stake), any order
    seed: bytes

    def table(self) -> dict[bytes, int]:
        return {pk: s for pk, s in self.stakes if s > 0}


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """Who counts in one L2 epoch: the stake table, the leader schedule and the L1 epoch whose
    stake snapshot gave them."""

    #: Stake per sequencer public key (read-only; only staked sequencers appear).
    table: Mapping[bytes, int]
    #: The epoch's stake-weighted leader order (see :mod:`sequencer_node.core.election`).
    order: tuple[bytes, ...]
    #: The L1 epoch of the stake snapshot.
    stake_epoch: int

    @staticmethod
    def of(snapshot: StakeSnapshot, order: tuple[bytes, ...]) -> EpochInfo:
        return EpochInfo(MappingProxyType(snapshot.table()), order, snapshot.l1_epoch)

    @property
    def total_stake(self) -> int:
        return sum(self.table.values())


@dataclass(frozen=True, slots=True)
class Genesis:
    """What every node starts from: initial balances and the genesis stake snapshot; with
    ``fees``, the fee model of the L2 genesis (None: the historical flat rule without fee
    state, see :mod:`sequencer_node.core.fees`)."""

    balances: tuple[tuple[bytes, int], ...]  # (20-byte address, amount)
    snapshot: StakeSnapshot
    timestamp_ms: int = 0
    fees: FeeParams | None = None


# --- persisted record (never-sign-twice watermark) -----------------------------------------


@wire_message(64, version=3)
@dataclass(frozen=True, slots=True)
class PersistedState:
    """What this node signed, per message kind (EIP-3076 style), plus its lock.

    A node may sign a message of one kind at round ``r`` only if ``r`` is above the recorded
    round of that kind, or equal with the same digest (re-signing identical bytes). ``high_qc``
    is the highest QC (by rank: epoch, then round) this node has signed on top of: after a
    restart the node never reports a lower one in a timeout (that would undo its lock and break
    the two-chain argument). ``high_qc_proof`` is the epoch proof when that QC certifies a block
    that closes its epoch (docs/protocol.md, section 3a): a restarted node that knows the block
    only from a proof can still tell that the next block starts an epoch, and propose it.
    ``last_tc`` is the highest TC this node entered a round by and signed a timeout in: a
    restarted node still in that round sends it with its timeout (see
    :class:`~sequencer_node.wire.messages.TimeoutMessage`); without it, peers that never saw
    the TC stay a round behind for good. Version 3: version 2 had no ``last_tc`` (it is read
    as version 3 without one, see :func:`~sequencer_node.core.watermark.decode_record`);
    version 1 had no ``high_qc_proof``.
    """

    chain_id: U64
    signer: PubKey
    proposal_round: U64
    proposal_digest: Hash32
    vote_round: U64
    vote_digest: Hash32
    timeout_round: U64
    timeout_digest: Hash32
    high_qc: QuorumCertificate | None
    high_qc_proof: EpochProof | None = None
    last_tc: TimeoutCertificate | None = None


#: Most epoch anchors a snapshot carries (the committed first blocks of the latest epochs).
MAX_SNAPSHOT_ANCHORS = 8


@wire_message(67, version=2)
@dataclass(frozen=True, slots=True)
class SnapshotHead:
    """The committed-chain part of a :class:`ChainSnapshot` (its wire form; version 2: the
    version of the :class:`Block` inside)."""

    head: CertifiedBlock
    anchors: Annotated[tuple[BlockHeader, ...], MaxItems(MAX_SNAPSHOT_ANCHORS)]


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    """The committed state after block ``head``: what a restart needs instead of the chain
    below it.

    ``ledger`` is the state after ``head`` (its root is ``head``'s state root); ``anchors``
    are the committed first blocks of the latest epochs, which fix the stake tables of the
    epochs a node still judges (:mod:`~sequencer_node.core.epochs`). Encoded as a 4-byte
    length, the canonical :class:`SnapshotHead` and the ledger's own snapshot bytes
    (:meth:`Ledger.to_bytes`), because a ledger can outgrow one wire message.
    """

    head: CertifiedBlock
    anchors: tuple[BlockHeader, ...]
    ledger: Ledger

    @property
    def height(self) -> int:
        return self.head.block.header.height

    def to_bytes(self) -> bytes:
        meta = encode(SnapshotHead(self.head, self.anchors))
        return len(meta).to_bytes(4, "big") + meta + self.ledger.to_bytes()

    @staticmethod
    def from_bytes(data: bytes) -> ChainSnapshot:
        """Decode strictly; the ledger's recomputed root must match its head's state root.

        Raises:
            ValueError: malformed bytes, or a ledger that is not the head's state.
        """
        n = int.from_bytes(data[:4], "big")
        if len(data) < 4 + n:
            raise ValueError("chain snapshot: truncated")
        meta = decode(data[4 : 4 + n], SnapshotHead)
        snap = ChainSnapshot(meta.head, meta.anchors, Ledger.from_bytes(data[4 + n :]))
        if snap.ledger.state_root() != snap.head.block.header.state_root:
            raise ValueError("chain snapshot: the ledger is not the state of its head block")
        return snap


@wire_message(65)
@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Ask a peer for certified blocks with heights in ``[from_height, to_height]``."""

    from_height: U64
    to_height: U64


@wire_message(66, version=2)
@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Certified blocks in height order (each with its QC), and the sender's latest TC
    (version 2: the versions of :class:`Block` and :class:`TimeoutCertificate` inside)."""

    blocks: Annotated[tuple[CertifiedBlock, ...], MaxItems(MAX_SYNC_BLOCKS)]
    last_tc: TimeoutCertificate | None


@dataclass(frozen=True, slots=True)
class ProposalHeard:
    """A peer's signed proposal whose transactions are not here yet (not a wire message: the
    shell makes it when a block came by reference to batches this node does not hold, and asks
    for the block). The core takes from it what needs only the proposer's signature and the
    certificates: evidence of a double proposal, the QC and TC it carries. It neither votes
    nor judges the block, and ``block.transactions`` is not looked at; the block itself comes
    later (rebuilt, answered, or by catch-up once certified). Without this a proposer could
    equivocate unseen by sending some nodes a proposal nobody can rebuild."""

    block: Block


# --- events (inputs) ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A decoded wire message from a peer. ``sender`` is the peer's id (its public key)."""

    sender: bytes
    message: object


@dataclass(frozen=True, slots=True)
class TxSubmitted:
    """A transaction from a local client (RPC). Answered by a :class:`TxResult`."""

    tx: Transaction | EthTransaction


@dataclass(frozen=True, slots=True)
class StakeSnapshotAvailable:
    """The shell read a (finalized) stake snapshot from L1."""

    snapshot: StakeSnapshot


@dataclass(frozen=True, slots=True)
class ForcedEntriesSeen:
    """Forced-inclusion entries read from L1, in queue order."""

    entries: tuple[ForcedTransaction, ...]


@dataclass(frozen=True, slots=True)
class L1HeadChanged:
    """The L1 head and finalized block numbers the shell last read (they never go back here)."""

    head: int
    finalized: int


@dataclass(frozen=True, slots=True)
class L1FeeInfoSeen:
    """Fee data of finalized L1 blocks, in block order (base fees, batch posting costs, the
    owner's fee-model settings): what a chain with a fee model executes its blocks with.
    Feed it from :attr:`CoreStatus.l1_fee_next` on; a block whose L1 data is missing waits."""

    infos: tuple[L1FeeInfo, ...]


@dataclass(frozen=True, slots=True)
class WatermarkPersisted:
    """The shell made the :class:`PersistWatermark` with this ``seq`` durable."""

    seq: int


@dataclass(frozen=True, slots=True)
class CertifiedBlocksReceived:
    """Certified blocks from the node's own store: refused ones give
    :class:`InputRefused` (:attr:`LocalSource.STORE`), ones whose stake tables are not known
    yet are retried on ``tick`` (like ``certified=`` at construction); blocks from peers arrive
    as a :class:`SyncResponse` in a :class:`MessageReceived`."""

    blocks: tuple[CertifiedBlock, ...]


Event = (
    MessageReceived
    | TxSubmitted
    | StakeSnapshotAvailable
    | ForcedEntriesSeen
    | L1HeadChanged
    | L1FeeInfoSeen
    | WatermarkPersisted
    | CertifiedBlocksReceived
)

# --- effects (outputs) --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Broadcast:
    message: object


@dataclass(frozen=True, slots=True)
class SendTo:
    peer: bytes
    message: object


@dataclass(frozen=True, slots=True)
class PersistWatermark:
    """Write ``record`` and ``blocks`` durably (fsync), then feed back
    ``WatermarkPersisted(seq)``."""

    record: PersistedState
    seq: int
    blocks: tuple[Block, ...] = ()


@dataclass(frozen=True, slots=True)
class BlockCommitted:
    """A block is final under the BFT rule (in height order, each exactly once).

    ``certified.qc`` certifies ``certified.block``; ``state_root`` is the post-state;
    ``fee_state`` its fee state (None without a fee model), for fee reporting.
    """

    certified: CertifiedBlock
    state_root: bytes
    fee_state: FeeState | None = None


@dataclass(frozen=True, slots=True)
class BlockCertified:
    """A block above the committed head got a QC here (once per block). Optional to store:
    a shell that keeps these (until committed) and passes them back as
    ``SequencerCore(..., certified=...)`` after a crash lets the node rebuild on its restored
    high QC even when no peer has that block any more. No fsync needed."""

    certified: CertifiedBlock


@dataclass(frozen=True, slots=True)
class EvidenceFound:
    evidence: Evidence
    offender: bytes


@dataclass(frozen=True, slots=True)
class DowntimeCertificateReady:
    certificate: DowntimeCertificate


@dataclass(frozen=True, slots=True)
class TxResult:
    tx_hash: bytes
    accepted: bool
    reason: str | None = None
    detail: str = ""


class RoundCause(enum.Enum):
    """How the node left its round: a QC (progress) or a TC (a timed-out round). The values
    are metric labels."""

    QC = "qc"
    TC = "tc"


@dataclass(frozen=True, slots=True)
class RoundChanged:
    """Informational (logs, metrics): the node entered ``round``; ``leader`` is its leader."""

    round: int
    epoch: int
    leader: bytes | None
    via: RoundCause


class Fault(enum.Enum):
    """What was wrong with a refused input. The values name it in logs."""

    #: A signature that does not verify (in a message, a certificate or evidence).
    BAD_SIGNATURE = "bad_signature"
    #: A certificate (QC, TC, certified block) that does not prove what it claims.
    INVALID_CERTIFICATE = "invalid_certificate"
    #: A well-signed block that breaks a validity rule (wrong leader, state root...).
    INVALID_BLOCK = "invalid_block"
    #: A message of a type the core does not take from peers.
    UNEXPECTED_MESSAGE = "unexpected_message"
    #: L1 data that contradicts what was read before (forced queue, stake snapshot).
    INCONSISTENT_L1 = "inconsistent_l1"


@dataclass(frozen=True, slots=True)
class Offense:
    """Why the core refused an input: a kind to act on and a sentence for the log."""

    fault: Fault
    detail: str

    def __str__(self) -> str:
        return f"{self.fault.value}: {self.detail}"


class LocalSource(enum.Enum):
    """Where an input came from when it was not a peer."""

    #: Data the shell read from the L1 (stake snapshots, forced entries).
    L1 = "l1"
    #: The node's own store (stored certified blocks after a restart).
    STORE = "store"
    #: This node's own signed messages, fed back after the watermark was persisted.
    SELF = "self"


#: Who an input came from: a peer (its public key) or a local source.
Source = bytes | LocalSource


@dataclass(frozen=True, slots=True)
class PeerMisbehaved:
    """A peer sent something invalid (bad signature, malformed certificate...): charge it."""

    peer: bytes
    offense: Offense


@dataclass(frozen=True, slots=True)
class InputRefused:
    """A local input was refused (L1 data, stored blocks, the node's own message): no peer to
    charge; the shell logs it, since it points at a bug or a broken L1 or store."""

    source: LocalSource
    offense: Offense


Effect = (
    Broadcast
    | SendTo
    | PersistWatermark
    | BlockCommitted
    | BlockCertified
    | EvidenceFound
    | DowntimeCertificateReady
    | TxResult
    | RoundChanged
    | PeerMisbehaved
    | InputRefused
)


@dataclass(frozen=True, slots=True)
class CoreStatus:
    """What ``SequencerCore.status()`` reports: heads, round, leader, pool sizes."""

    round: int
    epoch: int
    leader: bytes | None
    committed_height: int
    committed_hash: bytes
    certified_height: int
    state_root: bytes
    mempool_size: int
    pending_evidence: int = 0
    #: Pooled transactions no certified block holds yet (what the ingress bound counts).
    mempool_backlog: int = 0
    #: The next forced-queue index this node expects to read from L1 (where an L1 reader
    #: starts).
    forced_next_index: int = 0
    #: The first L1 block whose fee data (:class:`L1FeeInfoSeen`) this node may still need;
    #: None when the chain has no fee model (no fee data needed).
    l1_fee_next: int | None = None


__all__ = [
    "MAX_SNAPSHOT_ANCHORS",
    "MAX_SYNC_BLOCKS",
    "BlockCertified",
    "BlockCommitted",
    "Broadcast",
    "CertifiedBlocksReceived",
    "ChainSnapshot",
    "CoreConfig",
    "CoreStatus",
    "DowntimeCertificateReady",
    "Effect",
    "EpochInfo",
    "Event",
    "EvidenceFound",
    "Fault",
    "ForcedEntriesSeen",
    "Genesis",
    "InputRefused",
    "L1FeeInfoSeen",
    "L1HeadChanged",
    "LocalSource",
    "MessageReceived",
    "ProposalHeard",
    "Offense",
    "PeerMisbehaved",
    "PersistWatermark",
    "PersistedState",
    "RoundCause",
    "RoundChanged",
    "SendTo",
    "SnapshotHead",
    "Source",
    "StakeSnapshot",
    "StakeSnapshotAvailable",
    "SyncRequest",
    "SyncResponse",
    "TxResult",
    "TxSubmitted",
    "WatermarkPersisted",
]
