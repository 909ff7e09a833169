"""The sequencer's protocol core: a deterministic state machine (no I/O, no clock, no randomness).

Theory of operation (the full argument is in ``docs/protocol.md``)
------------------------------------------------------------------
Agreement is a two-chain protocol in the Jolteon / HotStuff-2 family, with rounds:

* A block at round ``r`` carries ``justify``, a QC for its parent, and, when the previous round
  ended in a timeout, the TC of round ``r - 1``.
* **Vote rule.** A node votes at most once per round, only for rounds above every round it has
  voted or timed out in, and only for a valid block whose justify is of round ``r - 1``, or
  which carries a TC of round ``r - 1`` and a justify at least as high as the TC's high QC.
* **Timeout rule.** A node that makes no progress in its round signs a timeout naming its
  highest QC; after timing out in a round it never votes in it.
* **Commit rule.** When block B' (round ``r + 1``) is certified and its parent B has round
  ``r``, B and all its ancestors are committed.
* **Leader rule** (:mod:`sequencer_node.core.election`): stable leader, next back-up after each
  failed round.
* **Quorum**: > 2/3 of the stake of the block's epoch table, a table fixed by committed data.

Every signature goes through the watermark (:mod:`sequencer_node.core.watermark`) and leaves
the core only after the shell acknowledged the persisted record.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sequencer_node.core import api
from sequencer_node.core.blocktree import BlockTree
from sequencer_node.core.catchup import CatchUp
from sequencer_node.core.downtime import DowntimeReports, DowntimeTracker
from sequencer_node.core.election import leader_for
from sequencer_node.core.epochs import EpochSchedule
from sequencer_node.core.fees import L1FeeInfo
from sequencer_node.core.forced import ForcedQueue, ForcedQueueError, ForcedUnknown
from sequencer_node.core.ledger import (
    FeeInput,
    InvalidBlock,
    Ledger,
    base_fee_of,
    split_txs,
    tx_root,
)
from sequencer_node.core.mempool import Mempool, RejectReason
from sequencer_node.core.reconfig import (
    EMPTY_TX_ROOT,
    BlockKind,
    check_epoch_proof,
    check_suffix,
    kind_of,
    last_height,
    qc_epoch_fits,
    rank,
)
from sequencer_node.core.votepool import ROUND_HISTORY, VotePool
from sequencer_node.core.watermark import Kind, Outbox, empty_record
from sequencer_node.wire.certificates import (
    CertificateError,
    SignatureError,
    verify_qc,
    verify_tc,
)
from sequencer_node.wire.codec import message_id
from sequencer_node.wire.crypto import sign_message, verify_message
from sequencer_node.wire.eth import EthTransaction, eth_tx_hash
from sequencer_node.wire.messages import (
    MAX_SUFFIX,
    ZERO_HASH,
    Block,
    BlockHeader,
    CertifiedBlock,
    DowntimeReport,
    EpochProof,
    Evidence,
    ForcedTransaction,
    Proposal,
    QuorumCertificate,
    Timeout,
    TimeoutCertificate,
    TimeoutMessage,
    Transaction,
    Vote,
    block_hash,
)

#: Committed blocks kept in memory to serve catch-up (older ones come from the shell's store).
RECENT_COMMITTED = 4_096
_VERIFIED_CACHE = 8_192
#: Blocks walked from the high QC down to the committed head to count the pooled
#: transactions they hold (two-chain commit: normally one or two; more after a timeout).
_IN_FLIGHT_WALK = 64
#: Orphans adopted per input or tick, each a block executed: a few tens of ms of work each
#: when full, so a node catching up answers between two steps.
_ADOPT_PER_STEP = 4
#: Certified blocks of sync answers executed per input or tick (the same reason: an answer
#: holds up to ``MAX_SYNC_BLOCKS``), and queued at most; an answer that finds the queue full
#: is dropped (no fault: the node asks again once it has worked through the queue).
_SYNC_PER_STEP = 4
_SYNC_QUEUE_MAX = 4 * api.MAX_SYNC_BLOCKS
#: Stored certified blocks kept for a retry while the stake tables they need are unknown.
_RESTORE_MAX = 10_000
#: Messages kept for a retry while what judges them is unknown here (the oldest go first).
_PARKED_MAX = 512
#: A transaction that holds up its sender's others and stayed ready this many block times is
#: sent to the peers again (at most _RESEND_MAX per period).
_RESEND_BLOCKS = 20
_RESEND_MAX = 256
#: Stored uncertified blocks whose certificates a restart learns, at most (the newest).
_RESTORE_CERTS_MAX = 64
#: Epoch proofs remembered (closing suffix block -> proof), the most recent ones.
_CLOSINGS = 8
#: L1 blocks' fee data kept (those above the committed chain's L1 origin), at most.
_L1_FEES_MAX = 65_536


@dataclass(slots=True)
class _SyncAnswer:
    """What is left of a sync answer: its certified blocks in order, then its TC."""

    sender: api.Source
    blocks: deque[CertifiedBlock]
    last_tc: TimeoutCertificate | None


class _Wait(Exception):
    """A block cannot be judged yet (unknown parent, epoch table or L1 data): retry later."""


class _Stale(Exception):
    """A certificate names an epoch that ended before this node's committed head: its table
    judges nothing any more (its members may have left with their keys), so it is dropped."""


#: Refusals of a gossiped transaction that only a faulty or hostile relay causes.
_PEER_FAULTS = (
    RejectReason.BAD_SIGNATURE,
    RejectReason.INVALID_TRANSACTION,
    RejectReason.WRONG_CHAIN,
)


def _fault_of(exc: CertificateError) -> api.Fault:
    return api.Fault.BAD_SIGNATURE if isinstance(exc, SignatureError) else (
        api.Fault.INVALID_CERTIFICATE)  # fmt: skip


def _check_qc_matches(cb: CertifiedBlock) -> None:
    """Raise CertificateError unless ``cb``'s QC names its block (hash, height, round, epoch)."""
    h = cb.block.header
    if cb.qc.block_hash != block_hash(h) or _qc_slot(cb.qc) != (h.height, h.round, h.epoch):
        raise CertificateError("certified block and QC do not match")


def _qc_height(qc: QuorumCertificate | None) -> int:
    return 0 if qc is None else qc.height


def _qc_round(qc: QuorumCertificate | None) -> int:
    return 0 if qc is None else qc.round


def _qc_slot(qc: QuorumCertificate | None) -> tuple[int, int, int]:
    """(height, round, epoch) a QC certifies; the genesis block's without one."""
    return (0, 0, 0) if qc is None else (qc.height, qc.round, qc.epoch)


class SequencerCore:
    """One sequencer's (or follower's) protocol state. Single-threaded: one owner feeds it.

    Args:
        config: protocol parameters and the optional signing key.
        genesis: initial balances and the genesis stake snapshot.
        persisted: the last durable :class:`~sequencer_node.core.api.PersistedState`, if any.
        chain: this node's stored committed chain (certified blocks from height 1, or from
            just above ``snapshot``, in order), trusted as committed; replayed to rebuild the
            state.
        snapshot: the node's own :class:`~sequencer_node.core.api.ChainSnapshot` of a
            committed block (see :meth:`snapshot`): the state starts there and only ``chain``
            above it is replayed. Its ledger must be its block's state (else ValueError).
        certified: blocks this node saw certified above its committed chain (the
            :class:`~sequencer_node.core.api.BlockCertified` effects it stored), in height
            order; checked like catch-up blocks once the needed stake tables are known. After
            a crash they let the node propose on top of its restored high QC even if no peer
            still has that block.

    The state is split as etcd raft splits its ``raft`` struct: the block tree
    (:mod:`~sequencer_node.core.blocktree`), the vote pool (:mod:`~sequencer_node.core.votepool`),
    the epoch schedule (:mod:`~sequencer_node.core.epochs`), the watermark outbox
    (:mod:`~sequencer_node.core.watermark`) and catch-up bookkeeping
    (:mod:`~sequencer_node.core.catchup`); this class holds the round state and the rules.
    """

    def __init__(
        self,
        config: api.CoreConfig,
        genesis: api.Genesis,
        *,
        persisted: api.PersistedState | None = None,
        chain: Sequence[CertifiedBlock] = (),
        certified: Sequence[CertifiedBlock] = (),
        snapshot: api.ChainSnapshot | None = None,
        l1_fees: Sequence[L1FeeInfo] = (),
        stake_snapshots: Sequence[api.StakeSnapshot] = (),
        uncertified: Sequence[Block] = (),
    ) -> None:
        self._cfg = config
        self.genesis = genesis
        self.pk: bytes | None = config.key.public_key if config.key is not None else None
        #: Fee data of L1 blocks by number (a chain with a fee model executes with it).
        self._l1_fees: dict[int, L1FeeInfo] = {i.number: i for i in l1_fees}
        #: The rest of the stored committed chain, when a replay had to stop for the L1 fee
        #: data of a block: replayed (trusted, not reported again) once the data arrives.
        self._replay_rest: list[CertifiedBlock] = []
        ledger = Ledger.genesis(dict(genesis.balances), genesis.fees)
        genesis_header = BlockHeader(
            0, 0, 0, ZERO_HASH, genesis.timestamp_ms, bytes(32), ZERO_HASH,
            ledger.state_root(), 0, 0,
        )  # fmt: skip
        self.tree = BlockTree(
            genesis_header, ledger, max_blocks=config.max_pending_blocks, recent=RECENT_COMMITTED
        )
        self.genesis_hash = self.tree.genesis_hash
        self.epochs = EpochSchedule(config, genesis.snapshot, self.tree)
        self.pool = VotePool(config.chain_id)
        self.catchup = CatchUp(self.pk, config.block_time_ms)
        self.outbox = Outbox(config.key, self._own_record(persisted), config.chain_id)
        self.high_qc: QuorumCertificate | None = None
        self.last_tc: TimeoutCertificate | None = None
        self.round = 1
        self._deadline_ms: int | None = None
        self._consecutive_timeouts = 0
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._my_timeout: TimeoutMessage | None = None
        #: Peer messages that could not be judged yet (_Wait), retried when L1 data or
        #: blocks arrive: gossip is not sent twice (the shell drops repeats of a message it
        #: saw), so one dropped here is gone for good. A whole-network restart stalled for
        #: good on that: every timeout of the round arrived before the stake table.
        self._parked: deque[tuple[api.Source, object]] = deque(maxlen=_PARKED_MAX)
        self._retrying = False
        #: A round whose counted timeouts could not form a TC for want of its table.
        self._tc_waits: int | None = None
        self._restore: list[CertifiedBlock] = list(certified)
        #: Stored blocks this node voted for or proposed whose QC it never saw: the
        #: certificates they carry are learned at start (see _restore_certificates).
        self._restore_certs: list[Block] = list(uncertified)[-_RESTORE_CERTS_MAX:]
        #: The same blocks by hash until a QC for one of them is known here (see
        #: _insert_stored): this node's vote vouched for each, and after its voters restarted
        #: their stores may hold the only copies of a block the network certified.
        self._stored_blocks: dict[bytes, Block] = {
            block_hash(b.header): b for b in self._restore_certs
        }
        #: Stored certified blocks kept as orphans (hash -> height; see
        #: _keep_certified_orphan), until the committed chain passes them.
        self._stored_orphans: dict[bytes, int] = {}
        #: When to look for stuck transactions next, and the ones ready at the last look.
        self._resend_at = 0
        self._ready_before: set[bytes] = set()
        #: Closing suffix blocks seen here (hash -> the proof a first block would carry).
        self._closings: OrderedDict[bytes, EpochProof] = OrderedDict()
        self._leader_memo: tuple[tuple[int, bytes], bytes | None] | None = None
        self._l1_head = 0
        self._l1_finalized = 0
        self._mempool = Mempool(
            chain_id=config.chain_id,
            max_txs=config.mempool_max_txs,
            max_per_sender=config.mempool_max_per_sender,
            max_nonce_gap=config.mempool_max_nonce_gap,
        )
        self._forced = ForcedQueue()
        #: Blocks whose orphans are still to adopt (a stack: :meth:`_adopt_some`). Each entry
        #: is a block inserted here, so it holds at most the orphans' count plus one per input.
        self._adoptable: list[bytes] = []
        #: Sync answers still to work through, oldest first (:meth:`_sync_some`).
        self._syncing: deque[_SyncAnswer] = deque()
        #: (high QC block, committed head) -> pooled transactions in the blocks between them.
        self._in_flight: tuple[tuple[bytes, bytes], int] = ((b"", b""), 0)
        #: Committed blocks waiting out the downtime grace (late votes may still arrive).
        self._downtime_due: deque[tuple[BlockHeader, BlockHeader, int, QuorumCertificate]] = deque()
        self._downtime = DowntimeTracker(
            window=config.downtime_window, threshold_percent=config.downtime_threshold_percent
        )
        self._reports = DowntimeReports()
        #: Height -> the L2 base fee that block pays, for recent blocks (see base_fee).
        self._base_fees: OrderedDict[int, int] = OrderedDict({1: base_fee_of(ledger)})
        self.epochs.info(0)
        for snap in stake_snapshots:  # the shell's stored copies: they never change
            self.epochs.add_snapshot(snap)
        if snapshot is not None:
            self._adopt_snapshot(snapshot)
        self._replay(chain)
        self._resume_from_record()

    def _own_record(self, persisted: api.PersistedState | None) -> api.PersistedState | None:
        if self.pk is None:
            return None
        record = persisted if persisted is not None else empty_record(self._cfg.chain_id, self.pk)
        if record.signer != self.pk or record.chain_id != self._cfg.chain_id:
            raise ValueError(
                "the persisted watermark belongs to another key or chain; refusing to start"
            )
        return record

    def _resume_from_record(self) -> None:
        """Never sign below what the record says was signed; keep its lock, and what makes
        its block usable when it closes an epoch (the node may know it only from a proof)."""
        r = self.outbox.record
        if r is None:
            return
        self.round = max(self.round, r.vote_round, r.timeout_round, r.proposal_round)
        if r.high_qc is not None and rank(r.high_qc) > rank(self.high_qc):
            self.high_qc = r.high_qc
        if r.high_qc is not None and r.high_qc_proof is not None:
            self._remember_closing(r.high_qc.block_hash, r.high_qc_proof)
            self.tree.add_qc(r.high_qc_proof.last_qc)
        if r.last_tc is not None and (self.last_tc is None or r.last_tc.round > self.last_tc.round):
            # Our own durable record: it was checked when we entered its round by it.
            self.last_tc = r.last_tc
            self._remember_verified(message_id(r.last_tc))

    def _lock(self) -> tuple[QuorumCertificate | None, EpochProof | None]:
        """The high QC a signature is made on top of, with its epoch proof if it closes its
        epoch (both go into the persisted record)."""
        hq = self.high_qc
        return hq, None if hq is None else self._closings.get(hq.block_hash)

    # --- public entry points ----------------------------------------------------------------

    def handle(self, event: api.Event, now_ms: int) -> list[api.Effect]:
        """Process one input; return the effects to carry out, in order."""
        out: list[api.Effect] = []
        if isinstance(event, api.MessageReceived):
            self._on_message(event.sender, event.message, now_ms, out)
        elif isinstance(event, api.WatermarkPersisted):
            self._release(event.seq, now_ms, out)
        elif isinstance(event, api.TxSubmitted):
            self._on_tx(event, out)
        elif isinstance(event, api.StakeSnapshotAvailable):
            problem = self.epochs.add_snapshot(event.snapshot)
            if problem is not None:
                self._refuse(api.LocalSource.L1, api.Fault.INCONSISTENT_L1, problem, out)
        elif isinstance(event, api.ForcedEntriesSeen):
            self._on_forced(event.entries, out)
        elif isinstance(event, api.L1HeadChanged):
            self._l1_head = max(self._l1_head, event.head)
            self._l1_finalized = max(self._l1_finalized, event.finalized)
        elif isinstance(event, api.L1FeeInfoSeen):
            self._on_l1_fees(event.infos)
            self._resume_replay()
        elif isinstance(event, api.CertifiedBlocksReceived):
            self._restore.extend(event.blocks)
            if not self._replay_rest:
                self._restore_certified(now_ms, out)
        else:
            raise TypeError(f"unknown event {type(event).__name__}")
        if not isinstance(event, api.MessageReceived | api.WatermarkPersisted | api.TxSubmitted):
            self._retry_parked(now_ms, out)
        self._propose_if_leader(now_ms, out)
        return out

    def tick(self, now_ms: int) -> list[api.Effect]:
        """Let time pass: round timeouts, retransmission, proposing."""
        out: list[api.Effect] = []
        if self._restore and not self._replay_rest:  # they build on the stored chain
            self._restore_certified(now_ms, out)
        if self._restore_certs and not self._replay_rest:
            self._restore_certificates(now_ms, out)
        if self._adoptable:
            self._adopt_some(now_ms, out)
        if self._syncing:
            self._sync_some(now_ms, out)
        self._sync_if_stuck(now_ms, out)
        self._resend_stuck(now_ms, out)
        record = self.outbox.record
        if (
            self._deadline_ms is None
            and record is not None
            and 0 < record.timeout_round == self.round
        ):
            # Restarted in a round it timed out in: that timeout may have died with the process
            # and the round's TC may need it, so it goes out again now, not a timeout later.
            self._local_timeout(now_ms, out)
        elif self._deadline_ms is None:
            self._deadline_ms = now_ms + self._timeout_ms()
        elif now_ms >= self._deadline_ms:
            self._local_timeout(now_ms, out)
        self._propose_if_leader(now_ms, out)
        return out

    def next_tick_ms(self, now_ms: int) -> int:
        """The earliest time :meth:`tick` may have something to do (``now_ms``: as soon as the
        caller's finest tick). A caller may tick sooner (such a tick does nothing); it must not
        tick later, nor keep a time it got before its last input: an input can make work due
        sooner (a QC that makes this node the leader), so ask again after each input.

        Due now while restoring, while orphans wait to be adopted, while a certified block is
        missing here, before the round has a deadline, and while this node leads the round
        and has not proposed or timed out in it yet (its proposal is paced by the block time
        and the pool's content; after it, the votes are inputs); otherwise at the
        round's deadline or the next resend of stuck transactions, whichever is first. An idle
        follower thus needs a tick per round timeout, not one per tick period (issue 13: the
        20 Hz tick was a third of an idle node's CPU)."""
        if (self._restore or self._restore_certs) and not self._replay_rest:
            return now_ms
        if self._adoptable or self._syncing:
            return now_ms  # orphans left to adopt or certified blocks to insert, a few per tick
        hq = self.high_qc
        if hq is not None and hq.block_hash not in self.tree and hq.height > self.committed_height:
            return now_ms  # _sync_if_stuck asks a peer per tick
        if self._deadline_ms is None:
            return now_ms
        record = self.outbox.record
        if self.pk is not None and record is not None and self._may_propose(record):
            base_hash = self._qc_hash(self.high_qc)
            base = self._base_header(base_hash)
            if base is not None and self._leader_here(base, base_hash) == self.pk:
                return now_ms
        return max(now_ms, min(self._deadline_ms, self._resend_at))

    def status(self) -> api.CoreStatus:
        return api.CoreStatus(
            round=self.round,
            epoch=self._next_epoch_or_guess(self.high_qc),
            leader=self._leader_of_round(self.round),
            committed_height=self.committed_height,
            committed_hash=self.committed_hash,
            certified_height=_qc_height(self.high_qc),
            state_root=self.committed_ledger.state_root(),
            mempool_size=len(self._mempool),
            mempool_backlog=self.backlog_size,
            pending_evidence=len(self.pool.evidence),
            forced_next_index=self._forced.next_index,
            l1_fee_next=self._l1_fee_next(),
        )

    # --- queries ----------------------------------------------------------------------------

    @property
    def config(self) -> api.CoreConfig:
        return self._cfg

    @property
    def committed_height(self) -> int:
        return self.tree.committed_height

    @property
    def committed_hash(self) -> bytes:
        return self.tree.committed_hash

    @property
    def mempool_size(self) -> int:
        """Transactions in the mempool, those in certified blocks not yet committed included."""
        return len(self._mempool)

    @property
    def blocks_behind(self) -> int:
        """How far behind the network this node is: 0 while it holds the block its high QC
        names (the high QC is raised by every valid QC it hears, for a block it has or not),
        else the high QC's height less the committed height. The shell sheds its own clients
        and gossip while it is large (docs/protocol.md section 7, catching up under load).
        A suffix block at an epoch's end is never committed, so the committed height alone
        would count the suffix of an epoch as lag."""
        hq = self.high_qc
        if hq is None or hq.block_hash in self.tree:
            return 0
        return max(0, hq.height - self.committed_height)

    @property
    def backlog_size(self) -> int:
        """Pooled transactions that no certified block holds yet: what the chain has still
        to order (the shell's ingress bound reads it). The pool keeps a transaction until its
        block is committed, a block or more after it is certified; counting those too made a
        fixed bound cap throughput at the bound over the commit latency whatever the CPU
        (issue 13: about 500 tx/s with 1 s blocks and a bound of 1,000)."""
        top = self._qc_hash(self.high_qc)
        key = (top, self.committed_hash)
        if self._in_flight[0] != key:
            self._in_flight = (key, self._pooled_in_chain(top))
        return max(0, len(self._mempool) - self._in_flight[1])

    def _pooled_in_chain(self, top: bytes) -> int:
        """Pooled transactions held by the blocks above the committed head up to ``top``.
        Exact for a given (top, committed head): a transaction of those blocks that is not
        pooled now cannot enter the pool later (its nonce is below the tip's)."""
        count, cur = 0, top
        for _ in range(_IN_FLIGHT_WALK):
            if cur == self.committed_hash:
                break
            block = self.tree.block(cur)
            if block is None:
                break
            count += sum(1 for tx in block.transactions if message_id(tx) in self._mempool)
            count += sum(1 for e in block.eth_transactions if eth_tx_hash(e) in self._mempool)
            cur = block.header.parent_hash
        return count

    def pending_nonce(self, address: bytes) -> int:
        """The nonce the account's next new transaction should carry: its nonce at the tip the
        pool builds on, past its transactions waiting in the pool (Ethereum's "pending")."""
        return self._mempool.pending_nonce_of(address, self._tip_ledger())

    @property
    def committed_ledger(self) -> Ledger:
        return self.tree.committed_ledger

    @property
    def record(self) -> api.PersistedState | None:
        """What this node signed (the watermark), None for a follower."""
        return self.outbox.record

    @property
    def evidence(self) -> list[Evidence]:
        """Equivocation evidence found here (the most recent ones)."""
        return self.pool.evidence

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether ``tx_hash`` waits in this node's mempool."""
        return tx_hash in self._mempool

    def pending_tx(self, tx_hash: bytes) -> Transaction | EthTransaction | None:
        """The transaction ``tx_hash`` if it waits in this node's mempool."""
        return self._mempool.get(tx_hash)

    def epoch_of(self, height: int) -> int:
        return self.epochs.epoch_of(height)

    def epoch_info(self, epoch: int, via: bytes | None = None) -> api.EpochInfo | None:
        """Stake table, leader order and L1 stake epoch of an L2 epoch, or None if unknown yet.

        Epochs below ``seed_anchor_epochs`` use the genesis snapshot. Epoch e uses the L1
        snapshot named by its anchor, the block at the first height of epoch e -
        ``seed_anchor_epochs`` *on the chain being judged* (``via`` is a block of that chain at
        or above that height; once that height is committed, the committed block); see
        :func:`~sequencer_node.core.epochs.snapshot_epoch` and docs/protocol.md, section 2.
        """
        return self.epochs.info(epoch, via)

    # --- inputs from L1 and the store --------------------------------------------------------

    def _on_forced(self, entries: Iterable[ForcedTransaction], out: list[api.Effect]) -> None:
        for entry in entries:
            try:
                self._forced.push(entry)
            except ForcedQueueError as exc:
                self._refuse(api.LocalSource.L1, api.Fault.INCONSISTENT_L1,
                             f"forced entry refused: {exc}", out)  # fmt: skip
                return

    def _on_l1_fees(self, infos: Iterable[L1FeeInfo]) -> None:
        """Keep L1 fee data (finalized, so never contradicted) above what the committed chain
        consumed; bounded."""
        floor = self._l1_fee_next()
        if floor is None:
            return
        for info in infos:
            if info.number >= floor:
                self._l1_fees[info.number] = info
        for n in [n for n in self._l1_fees if n < floor]:
            del self._l1_fees[n]
        while len(self._l1_fees) > _L1_FEES_MAX:
            del self._l1_fees[max(self._l1_fees)]  # the farthest ahead is needed last

    def _l1_fee_next(self) -> int | None:
        """The first L1 block whose fee data blocks above the committed one may need."""
        state = self.committed_ledger.fee_state()
        if state is None:
            return None
        if state.l1_origin is None:
            return self.tree.header(self.committed_hash).l1_origin  # type: ignore[union-attr]
        return state.l1_origin + 1

    def _fee_input(self, pledger: Ledger, l1_origin: int, first: bool) -> FeeInput | None:
        """The fee input of a block with ``l1_origin`` on ``pledger`` (``first``: the first
        block of an epoch); None without a fee model. Raises _Wait while the L1 fee data it
        needs is unknown here."""
        if pledger.fee_state() is None:
            return None
        infos = []
        for n in pledger.l1_needed(l1_origin):
            info = self._l1_fees.get(n)
            if info is None:
                raise _Wait(f"L1 fee data of L1 block {n} unknown here")
            infos.append(info)
        return FeeInput(l1_origin, tuple(infos), first)

    def _block_fee_input(self, pledger: Ledger, h: BlockHeader) -> FeeInput | None:
        return self._fee_input(pledger, h.l1_origin,
                               kind_of(h, self._cfg.epoch_length) is BlockKind.FIRST)  # fmt: skip

    def _restore_certified(self, now_ms: int, out: list[api.Effect]) -> None:
        blocks, self._restore = self._restore, []
        waiting: list[CertifiedBlock] = []
        for cb in blocks:  # the node's own store, before it serves: all in one step
            try:
                _check_qc_matches(cb)
                # A block whose parent is not here is kept as a certified orphan, not the
                # end: the store keeps certified blocks of abandoned forks too, and a later
                # one at the same or a higher height may extend the chain (a fork's block at
                # height h ahead of the chain's own stalled a whole-network restart for good).
                self._on_certified(api.LocalSource.STORE, cb, now_ms, out)
            except _Wait:
                waiting.append(cb)  # its table may be on the way: the others go on
            except CertificateError as exc:
                self._refuse(api.LocalSource.STORE, _fault_of(exc),
                             f"stored certified block refused: {exc}", out)  # fmt: skip
        # The lowest first, at most _RESTORE_MAX (the store gives them in height order).
        h = self.committed_height
        self._restore = [b for b in waiting if b.block.header.height > h][:_RESTORE_MAX]

    def _restore_certificates(self, now_ms: int, out: list[api.Effect]) -> None:
        """Learn the QC and TC that this node's stored, uncertified blocks carry (its own
        proposal, the proposals it voted for). The TC that moved it to its round is not in
        the record: without it, after a whole-network restart a node one round ahead could
        not show it to the others, which cannot form that TC again (its timeout for their
        round is gone), and the network deadlocked (seen on real processes after an epoch
        change: docs/reliability.md)."""
        pending, self._restore_certs = self._restore_certs, []
        for block in pending:
            if self.tree.stale(block.header):
                continue  # the chain has passed it: what it carries is of no use any more
            try:
                self._take_certificates(api.LocalSource.STORE, block, now_ms, out)
            except _Wait:
                self._restore_certs.append(block)  # its table is on the way: next tick
            except _Stale:
                continue
            except CertificateError as exc:
                self._refuse(api.LocalSource.STORE, _fault_of(exc),
                             f"stored block's certificate refused: {exc}", out)  # fmt: skip

    def _resend_stuck(self, now_ms: int, out: list[api.Effect]) -> None:
        """Gossip again each transaction that was ready to run (its sender's next nonce) at
        the last look and still is: whoever leads may never have got it. Gossip goes out
        once, and a transaction can sit in the pool of a node that does not lead: e.g. one
        submitted again from the journal after a whole-network restart, before its peers
        were back (acknowledged, never certified)."""
        if now_ms < self._resend_at:
            return
        self._resend_at = now_ms + _RESEND_BLOCKS * self._cfg.block_time_ms
        heads = self._mempool.heads(self._tip_ledger(), _RESEND_MAX)
        for tx_hash, tx in heads:
            if tx_hash in self._ready_before:
                out.append(api.Broadcast(tx))
        self._ready_before = {tx_hash for tx_hash, _ in heads}

    def _sync_if_stuck(self, now_ms: int, out: list[api.Effect]) -> None:
        # A restored or gossiped high QC whose block this node lacks: without the block it
        # cannot lead or judge the next proposal. Its own store first, then the peers in turn.
        hq = self.high_qc
        if hq is None or hq.block_hash in self.tree or hq.height <= self.committed_height:
            return
        if self._syncing:
            return  # an answer is being worked through: asking again would fetch it again
        if self._insert_stored(hq, now_ms, out):
            return
        peer = self.catchup.next_peer()
        if peer is not None:
            self._ask_sync(peer, hq.height, now_ms, out)

    def _insert_stored(self, hq: QuorumCertificate, now_ms: int, out: list[api.Effect]) -> bool:
        """Insert the stored blocks a known QC certifies (``hq`` or one in the tree) whose
        parent is here, lowest first; True if ``hq``'s block is here now or orphans are due
        for adoption (it may be one of them: the peers are asked once they are worked off).

        A block's voters store it before their votes leave, so a certified block is on the
        disks of more than a third of the stake even when no node holds it in memory: votes
        in flight when its voters restarted can still form its QC on a node that never got
        the block, and every record then names that QC while nobody could serve the block
        (a random fault sweep stalled for good on it). The high QC's block may also be a
        certified orphan whose parent is such a block, certified by the orphan's justify.
        The blocks are this node's own; each QC is checked against its block's header here
        and verified on insertion, as a sync answer's."""
        for bh, block in sorted(self._stored_blocks.items(), key=lambda e: e[1].header.height):
            if bh in self.tree:  # inserted since (those at or below the commit are pruned)
                self._stored_blocks.pop(bh, None)
                continue
            qc = hq if hq.block_hash == bh else self.tree.qc_of(bh)
            if qc is None or block.header.parent_hash not in self.tree:
                continue
            cb = CertifiedBlock(block, qc)
            try:
                _check_qc_matches(cb)
                self._on_certified(api.LocalSource.STORE, cb, now_ms, out)
            except _Wait:
                continue  # its table is on the way: tried again at the next tick
            except CertificateError as exc:
                self._refuse(api.LocalSource.STORE, _fault_of(exc),
                             f"stored block refused with its QC: {exc}", out)  # fmt: skip
            self._stored_blocks.pop(bh, None)
        # Progress towards the high QC's block (it, or an orphan of it now adoptable): the
        # peers are asked only if not, so an unrelated fork block does not hold them up.
        return hq.block_hash in self.tree or bool(self._adoptable)

    # --- epochs and leaders -----------------------------------------------------------------

    def _leader_after(
        self, base: BlockHeader, round_: int, base_hash: bytes, *, first: bool = False
    ) -> bytes | None:
        """The leader of ``round_`` for the block that extends ``base`` (the block its justify
        certifies): the same epoch's schedule (stable leader), or for the first block of an
        epoch (``first``: known from the block's own proof) the new schedule from its start.
        None while unknown here."""
        kind = BlockKind.FIRST if first else self._next_kind(base, base_hash)
        if kind is None or round_ <= base.round:
            return None
        if kind is BlockKind.FIRST:
            info = self.epochs.info(base.epoch + 1, base_hash)
            return None if info is None else leader_for(info.order, round_, base.round, None)
        epoch = base.epoch if kind is BlockKind.SUFFIX else self.epoch_of(base.height + 1)
        info = self.epochs.info(epoch, base_hash)
        if info is None:
            return None
        same = base.height >= 1 and base.epoch == epoch
        return leader_for(info.order, round_, base.round, base.proposer if same else None)

    def _next_kind(self, base: BlockHeader, base_hash: bytes) -> BlockKind | None:
        """What the block extending ``base`` is: inside the epoch, a suffix block (``base`` is
        the epoch's last block or a suffix that does not close it), or the first block of the
        next epoch (``base`` closes its epoch). None while that cannot be told here."""
        if base.height < last_height(base.epoch, self._cfg.epoch_length):
            return BlockKind.NORMAL
        if base_hash in self._closings:
            return BlockKind.FIRST
        if base.height == last_height(base.epoch, self._cfg.epoch_length):
            return BlockKind.SUFFIX
        return BlockKind.SUFFIX if base_hash in self.tree else None

    def _next_epoch(self, qc: QuorumCertificate | None) -> int | None:
        """The epoch of the block that will extend ``qc``'s block (whose table judges a TC
        with that high QC); None while that cannot be told here."""
        if qc is None:
            return 0
        if qc.height < last_height(qc.epoch, self._cfg.epoch_length):
            return qc.epoch
        base = self._base_header(qc.block_hash)
        if base is None:
            return None
        kind = self._next_kind(base, qc.block_hash)
        if kind is None:
            return None
        return qc.epoch + 1 if kind is BlockKind.FIRST else qc.epoch

    def _extension_of(self, qc: QuorumCertificate | None) -> tuple[int, int] | None:
        """(height, epoch) of the block that will extend ``qc``'s block (what a TC with that
        high QC names); None while that cannot be told here."""
        epoch = self._next_epoch(qc)
        if epoch is None:
            return None
        if qc is None:
            return (1, 0)
        if epoch > qc.epoch:  # after a closing suffix block: the next epoch's first height
            return (last_height(qc.epoch, self._cfg.epoch_length) + 1, epoch)
        return (qc.height + 1, epoch)

    def _next_epoch_or_guess(self, qc: QuorumCertificate | None) -> int:
        epoch = self._next_epoch(qc)
        return epoch if epoch is not None else (0 if qc is None else qc.epoch)

    def _base_header(self, bh: bytes) -> BlockHeader | None:
        """A block's header from the tree, or from an epoch proof when it is a closing suffix
        block this node knows only from the proof."""
        header = self.tree.header(bh)
        if header is None and bh in self._closings:
            return self._closings[bh].suffix[-1]
        return header

    def _leader_of_round(self, round_: int) -> bytes | None:
        base_hash = self._qc_hash(self.high_qc)
        base = self._base_header(base_hash)
        return None if base is None else self._leader_after(base, round_, base_hash)

    # --- small helpers ----------------------------------------------------------------------

    def _qc_hash(self, qc: QuorumCertificate | None) -> bytes:
        return self.genesis_hash if qc is None else qc.block_hash

    def _vouched(self, bh: bytes) -> tuple[Block, ...]:
        """The block a signed message vouches for, for the shell to make durable with the
        record (api.PersistWatermark.blocks); none if it is not held here (genesis)."""
        block = self.tree.block(bh)
        return () if block is None else (block,)

    def _tip_ledger(self) -> Ledger:
        """The state after the highest certified block known here (what a new tx runs on)."""
        return self.tree.ledger(self._qc_hash(self.high_qc)) or self.committed_ledger

    def _timeout_ms(self) -> int:
        shift = min(self._consecutive_timeouts, 30)
        return min(self._cfg.timeout_base_ms << shift, self._cfg.timeout_max_ms)

    def _remember_verified(self, key: bytes) -> None:
        self._verified[key] = None
        if len(self._verified) > _VERIFIED_CACHE:
            self._verified.popitem(last=False)

    def _known_signer(self, who: bytes) -> bool:
        """The cheap spam filter before a signature check: ``who`` has stake in a table
        derived here. While this node's own epoch has no table yet (e.g. just restarted, its
        L1 snapshot not fed yet), anyone may be a member of it: the message waits instead
        (raises _Wait: parked, in a bounded buffer)."""
        if self.epochs.known_signer(who):
            return True
        hq = self.high_qc
        if self.epochs.info(self._next_epoch_or_guess(hq), self._qc_hash(hq)) is None:
            raise _Wait("this node's epoch table is unknown")
        # That table may have just been derived: ``who`` may be in it. (Before the tick
        # schedule, the 20 Hz status() for the gauges derived it first and hid this.)
        return self.epochs.known_signer(who)

    def _check_qc(self, qc: QuorumCertificate, out: list[api.Effect]) -> None:
        """Raise CertificateError or _Wait unless ``qc`` is valid; keep the votes it holds."""
        key = message_id(qc)
        if key in self._verified:
            return
        if not qc_epoch_fits(qc.epoch, qc.height, self._cfg.epoch_length):
            raise CertificateError("QC epoch does not match its height")
        header = self._base_header(qc.block_hash)
        if header is not None and (header.height, header.round, header.epoch) != (
            qc.height, qc.round, qc.epoch,
        ):  # fmt: skip
            raise CertificateError("QC names another height, round or epoch than its block")
        # Judged by the table of the epoch the QC names, on the QC's own chain.
        info = self.epochs.info(qc.epoch, qc.block_hash)
        if info is None:
            raise _Wait(f"epoch {qc.epoch} table unknown")
        verify_qc(qc, info.table, self._cfg.chain_id)
        self._remember_verified(key)
        if qc.round + ROUND_HISTORY >= self.round:
            for ev in self.pool.votes_of_qc(qc):
                out.append(api.EvidenceFound(ev, ev.offender))

    def _check_tc(self, tc: TimeoutCertificate, out: list[api.Effect]) -> None:
        key = message_id(tc)
        if key in self._verified:
            return
        if tc.epoch < self.epoch_of(self.committed_height):
            # Before anything that waits: its high QC's block may be a closed epoch's suffix,
            # pruned for good, and a stored block carrying it was retried every tick forever.
            raise _Stale(f"TC of epoch {tc.epoch}")
        if tc.high_qc is not None:
            self._check_qc(tc.high_qc, out)
        follows = self._extension_of(tc.high_qc)
        if follows is None:
            raise _Wait("the TC's high QC block is unknown here")
        if (tc.height, tc.epoch) != follows:
            raise CertificateError("TC height and epoch do not follow its high QC")
        info = self.epochs.info(tc.epoch, self._qc_hash(tc.high_qc))
        if info is None:
            raise _Wait(f"epoch {tc.epoch} table unknown")
        verify_tc(tc, info.table, self._cfg.chain_id)
        self._remember_verified(key)

    def _ask_sync(
        self, peer: api.Source, to_height: int, now_ms: int, out: list[api.Effect]
    ) -> None:
        req = self.catchup.request(peer, self.committed_height, to_height, now_ms)
        if req is not None:
            assert isinstance(peer, bytes)
            out.append(api.SendTo(peer, req))

    def _found(self, ev: Evidence | None, out: list[api.Effect]) -> None:
        if ev is not None:
            out.append(api.EvidenceFound(ev, ev.offender))

    # --- signing ----------------------------------------------------------------------------

    def _release(self, seq: int, now_ms: int, out: list[api.Effect]) -> None:
        for m in self.outbox.release(seq):
            out.append(api.Broadcast(m))
            if self.pk is not None:
                self._on_message(api.LocalSource.SELF, m, now_ms, out)

    # --- dispatch ---------------------------------------------------------------------------

    def _on_message(
        self,
        sender: api.Source,
        msg: object,
        now_ms: int,
        out: list[api.Effect],
        *,
        retry: bool = False,
    ) -> None:
        self.catchup.note_peer(sender)
        try:
            self._dispatch(sender, msg, now_ms, out)
        except CertificateError as exc:
            self._refuse(sender, _fault_of(exc), str(exc), out)
        except _Stale:
            return  # a lagging honest peer may still send these: no fault, nothing to do
        except _Wait:
            # The message belongs to an epoch whose table (or L1 data, or chain) this node
            # does not have yet: keep it for a retry, and catch up from the sender (it may
            # lag behind).
            self._parked.append((sender, msg))
            if not retry:
                self._ask_sync(sender, self.committed_height + api.MAX_SYNC_BLOCKS, now_ms, out)

    def _retry_parked(self, now_ms: int, out: list[api.Effect]) -> None:
        """Judge the parked messages again (after new L1 data or blocks), oldest first; those
        still not judgeable are parked again. Also form a TC from timeouts already counted
        while the table that judges it was unknown (nothing else would try again)."""
        if self._retrying or (not self._parked and self._tc_waits is None):
            return
        self._retrying = True
        try:
            parked = list(self._parked)
            self._parked.clear()
            for sender, msg in parked:
                self._on_message(sender, msg, now_ms, out, retry=True)
            if self._tc_waits is not None and self._tc_waits >= self.round:
                self._try_form_tc(self._tc_waits, now_ms, out)
        finally:
            self._retrying = False

    def _dispatch(
        self, sender: api.Source, msg: object, now_ms: int, out: list[api.Effect]
    ) -> None:
        if isinstance(msg, Block):
            self._on_block(sender, msg, now_ms, out)
        elif isinstance(msg, api.ProposalHeard):
            self._proposal_statements(sender, msg.block, now_ms, out)
        elif isinstance(msg, Vote):
            self._on_vote(sender, msg, now_ms, out)
        elif isinstance(msg, TimeoutMessage):
            self._on_timeout(sender, msg, now_ms, out)
        elif isinstance(msg, TimeoutCertificate):
            self._check_tc(msg, out)
            self._on_tc(msg, now_ms, out, sender)
        elif isinstance(msg, QuorumCertificate):
            self._check_qc(msg, out)
            self._on_qc(sender, msg, now_ms, out)
        elif isinstance(msg, api.SyncRequest):
            self._on_sync_request(sender, msg, out)
        elif isinstance(msg, api.SyncResponse):
            self._queue_sync_answer(sender, msg, now_ms, out)
        elif isinstance(msg, Transaction | EthTransaction):
            self._on_peer_tx(sender, msg, out)
        elif isinstance(msg, DowntimeReport):
            self._on_downtime_report(msg, out)
        else:
            self._refuse(sender, api.Fault.UNEXPECTED_MESSAGE,
                         f"unexpected {type(msg).__name__}", out)  # fmt: skip

    def _refuse(
        self, source: api.Source, fault: api.Fault, detail: str, out: list[api.Effect]
    ) -> None:
        offense = api.Offense(fault, detail)
        if isinstance(source, api.LocalSource):
            out.append(api.InputRefused(source, offense))
        elif source == self.pk:  # a twin or a loop back of our own key: no peer to charge
            out.append(api.InputRefused(api.LocalSource.SELF, offense))
        else:
            out.append(api.PeerMisbehaved(source, offense))

    def _on_peer_tx(
        self, sender: api.Source, tx: Transaction | EthTransaction, out: list[api.Effect]
    ) -> None:
        """Pool a gossiped transaction. A bad signature (or an Ethereum transaction that can
        never run here) is the sender's fault (an honest node relays only what it checked);
        a stale nonce or a full pool is nobody's."""
        res = self._mempool.add(tx, self._tip_ledger())
        if res.reason in _PEER_FAULTS:
            self._refuse(sender, api.Fault.BAD_SIGNATURE, f"transaction: {res.detail}", out)

    def _on_tx(self, event: api.TxSubmitted, out: list[api.Effect]) -> None:
        res = self._mempool.add(event.tx, self._tip_ledger())
        reason = None if res.reason is None else res.reason.value
        out.append(api.TxResult(res.tx_hash, res.accepted, reason, res.detail))
        if res.accepted:
            # Gossip: whoever leads next needs it in its pool.
            out.append(api.Broadcast(event.tx))

    # --- proposals --------------------------------------------------------------------------

    def _on_block(
        self, sender: api.Source, block: Block, now_ms: int, out: list[api.Effect]
    ) -> None:
        h = block.header
        self._proposal_statements(sender, block, now_ms, out)
        if self.tree.stale(h):
            return  # late, not wrong: an honest leader may not have seen the commit yet
        bh = block_hash(h)
        if bh in self.tree:
            self._maybe_vote(block, out)
            return
        if h.parent_hash not in self.tree:
            self.tree.add_orphan(block)
            self._ask_sync(sender, h.height - 1, now_ms, out)
            return
        try:
            reason = self._accept_proposal(block, now_ms, out)
        except _Wait:
            self._parked.append((sender, block))
            return
        if reason is not None:
            self._refuse(sender, api.Fault.INVALID_BLOCK,
                         f"invalid block {h.height}/{h.round}: {reason}", out)  # fmt: skip
            return
        self._maybe_vote(block, out)
        self._adopt_orphans(bh, now_ms, out)

    def _proposal_statements(
        self, sender: api.Source, block: Block, now_ms: int, out: list[api.Effect]
    ) -> None:
        """What a proposal says whatever its transactions: evidence of a double proposal (it
        needs only the signature, not the maybe unknown epoch tables), then its QC and TC."""
        h = block.header
        if not verify_message(block.proposal, h.proposer, self._cfg.chain_id):
            raise SignatureError("bad proposal signature")
        if self.epochs.known_signer(h.proposer) and h.round + ROUND_HISTORY > self.round:
            first = self.pool.first_proposal(block.proposal)
            if first is not block.proposal:
                self._found(self.pool.evidence_of(first, block.proposal), out)
        self._take_certificates(sender, block, now_ms, out)

    def _take_certificates(
        self, sender: api.Source, block: Block, now_ms: int, out: list[api.Effect]
    ) -> None:
        """Check the QC and TC a block carries, then learn from them (both checked first)."""
        if block.justify is not None:
            self._check_qc(block.justify, out)
        if block.epoch_proof is not None:
            self._check_qc(block.epoch_proof.parent_qc, out)
            self._check_qc(block.epoch_proof.last_qc, out)
        if block.timeout_cert is not None:
            self._check_tc(block.timeout_cert, out)
        if block.justify is not None:
            self._on_qc(sender, block.justify, now_ms, out)
        if block.timeout_cert is not None:
            self._on_tc(block.timeout_cert, now_ms, out, sender)

    def _accept_proposal(self, block: Block, now_ms: int, out: list[api.Effect]) -> str | None:
        """Check a proposal (all rules, including the proposal-time ones: clock, L1 view,
        forced window) and insert it as a block this node may vote for. Reason if invalid."""
        parent = self._parent_of(block)
        reason = self._check_header(block, parent) or self._check_timely(block, parent, now_ms)
        if reason is not None:
            return reason
        ledger = self._execute(block, parent)
        if isinstance(ledger, str):
            return ledger
        bh = self._insert(block, ledger, out)
        self.tree.mark_vote_ready(bh)
        return None

    def _accept_certified(self, block: Block, out: list[api.Effect]) -> str | None:
        """Check a block that comes with a QC (catch-up, store): every rule except the
        proposal-time ones, which only held when it was proposed, and its transfers'
        signatures, which the QC vouches for (see :meth:`_execute`). Reason if invalid."""
        parent = self._parent_of(block)
        reason = self._check_header(block, parent)
        if reason is not None:
            return reason
        ledger = self._execute(block, parent, certified=True)
        if isinstance(ledger, str):
            return ledger
        self._insert(block, ledger, out)
        return None

    def _insert(self, block: Block, ledger: Ledger, out: list[api.Effect]) -> bytes:
        """Insert a checked block; learn what it says about the end of its epoch."""
        bh = self.tree.insert(block, ledger)
        h = block.header
        kind = kind_of(h, self._cfg.epoch_length)
        j = block.justify
        if kind is BlockKind.SUFFIX and j is not None and j.round + 1 == h.round:
            self._remember_closing(bh, self._proof_for(h, bh, j))
        elif kind is BlockKind.FIRST and block.epoch_proof is not None and j is not None:
            # The proof shows the parent committed by its own table: commit it here too,
            # even if the suffix blocks never reached this node.
            self._remember_closing(j.block_hash, block.epoch_proof)
            self.tree.add_qc(block.epoch_proof.last_qc)
            if h.parent_hash != self.committed_hash:
                self._commit_through(h.parent_hash, out)
        self._note_certified(bh, out)
        return bh

    def _remember_closing(self, closing: bytes, proof: EpochProof) -> None:
        self._closings[closing] = proof
        if len(self._closings) > _CLOSINGS:
            self._closings.popitem(last=False)

    def _proof_for(
        self, closing: BlockHeader, closing_hash: bytes, parent_qc: QuorumCertificate
    ) -> EpochProof:
        """The epoch proof of a closing suffix block in the tree: the suffix up to it."""
        suffix: list[BlockHeader] = []
        last = last_height(closing.epoch, self._cfg.epoch_length)
        cur = closing_hash
        while True:
            header = self.tree.header(cur)
            assert header is not None, "a suffix block's ancestors down to R are in the tree"
            if header.height <= last:
                break
            suffix.append(header)
            cur = header.parent_hash
        suffix.reverse()
        last_qc = self.tree.qc_of(cur)
        assert last_qc is not None, "S_1's justify certifies R"
        return EpochProof(tuple(suffix), parent_qc, last_qc)

    def _parent_of(self, block: Block) -> BlockHeader:
        parent = self.tree.header(block.header.parent_hash)
        assert parent is not None, "callers check that the parent is known"
        return parent

    def _check_header(self, block: Block, parent: BlockHeader) -> str | None:
        """The rules every block obeys: chain shape, leader, limits. Raises _Wait when the
        block cannot be judged yet."""
        h = block.header
        if h.height != parent.height + 1:
            return f"height {h.height} does not follow the parent's {parent.height}"
        reason = self._check_place(block, parent)
        if reason is not None:
            return reason
        if h.height <= self.committed_height:
            return "height already committed"
        if self.tree.full():
            raise _Wait("block tree full: waiting for commits to prune it")
        base_hash = self._qc_hash(block.justify)
        first = block.epoch_proof is not None
        base = block.epoch_proof.suffix[-1] if block.epoch_proof else self._base_header(base_hash)
        if base is None or h.round <= base.round:
            return "round does not increase"
        leader = self._leader_after(base, h.round, base_hash, first=first)
        if leader is None:
            raise _Wait("epoch table unknown")
        if h.proposer != leader:
            return "proposer is not the leader of the round"
        if h.timestamp_ms <= parent.timestamp_ms:
            return "timestamp does not increase"
        if len(block.transactions) + len(block.eth_transactions) > self._cfg.max_block_txs:
            return "too many transactions"
        if h.l1_origin < parent.l1_origin:
            return "L1 origin goes backwards"
        return None

    def _check_place(self, block: Block, parent: BlockHeader) -> str | None:
        """Where the block stands: inside its epoch on a parent it certifies, a suffix block,
        or the first block of an epoch with the proof that the last one was committed."""
        h = block.header
        kind = kind_of(h, self._cfg.epoch_length)
        if block.timeout_cert is not None and block.timeout_cert.epoch != h.epoch:
            # A TC is judged by the table of the epoch it names; only that epoch's blocks
            # may use it (a TC of another table must not unlock this one).
            return "the block carries a TC of another epoch"
        if kind is not BlockKind.FIRST:
            if block.epoch_proof is not None:
                return "only the first block of an epoch carries an epoch proof"
            parent_slot = (parent.height, parent.round, parent.epoch)
            j = block.justify
            if self._qc_hash(j) != h.parent_hash or _qc_slot(j) != parent_slot:
                return "justify does not certify the parent (hash, height, round and epoch)"
            if kind is BlockKind.SUFFIX:
                return check_suffix(h, parent, self._cfg.epoch_length)
            if h.epoch != self.epoch_of(h.height) or (parent.height and parent.epoch != h.epoch):
                return f"epoch {h.epoch} is not the epoch of height {h.height}"
            return None
        proof, j = block.epoch_proof, block.justify
        if proof is None or j is None:
            return "the first block of an epoch carries the proof that the last one committed"
        if parent.height != last_height(h.epoch - 1, self._cfg.epoch_length) or (
            parent.epoch != h.epoch - 1
        ):
            return "the first block of an epoch extends the previous epoch's last block"
        return check_epoch_proof(proof, j, parent, h.parent_hash, self._cfg.epoch_length)

    def _check_timely(self, block: Block, parent: BlockHeader, now_ms: int) -> str | None:
        """The rules a proposal obeys when it is proposed: its clock, its L1 origin and the
        forced-inclusion window as this node sees them now."""
        h = block.header
        if h.timestamp_ms > now_ms + self._cfg.max_clock_skew_ms:
            return "timestamp too far in the future"
        if kind_of(h, self._cfg.epoch_length) is BlockKind.SUFFIX:
            return None  # empty, origin unchanged: nothing else to judge at proposal time
        if h.l1_origin > self._l1_head:
            raise _Wait("L1 origin ahead of this node's L1 view")
        if h.l1_origin + self._cfg.max_l1_origin_lag < self._l1_finalized:
            return "L1 origin too far behind this node's finalized L1 head"
        if self.epochs.is_anchor(h):
            # Its origin names a later epoch's snapshot: only one whose seed is unknown yet.
            refusal = self.epochs.anchor_refusal(h.l1_origin, self._l1_head, self._l1_finalized)
            if refusal is not None:
                return refusal
        pledger = self.tree.ledger(h.parent_hash)
        assert pledger is not None
        problem = self._forced.check_block(
            block.forced,
            start_index=pledger.forced_index(),
            l1_origin=h.l1_origin,
            window=self._cfg.sequencing_window,
        )
        if isinstance(problem, ForcedUnknown):
            raise _Wait(problem.reason)
        return None if problem is None else problem.reason

    def _execute(self, block: Block, parent: BlockHeader, certified: bool = False) -> Ledger | str:
        """The block's post-state, or why it does not execute to its header's claims.

        ``certified``: the block comes with a valid QC, so validators with more than 2/3 of
        the stake executed it with every signature checked, at least one of them honest
        (f < 1/3): its transfers' signatures are not checked again. A node catching up
        executes everything the network certified, and checking each signature again made
        it as slow per block as the nodes that keep up: under load it never caught up
        (docs/protocol.md section 7). Forced entries are still checked (a forged one is
        skipped, not refused: the check decides the state), and so is everything else."""
        h = block.header
        if tx_root(block.transactions, block.forced, block.eth_transactions) != h.tx_root:
            return "tx root mismatch"
        pledger = self.tree.ledger(h.parent_hash)
        assert pledger is not None
        if kind_of(h, self._cfg.epoch_length) is BlockKind.SUFFIX:
            return pledger  # empty (tx root checked), state unchanged (check_suffix)
        try:
            ledger, _ = pledger.apply_block(
                block.transactions, block.forced, proposer=h.proposer,
                chain_id=self._cfg.chain_id, eth_txs=block.eth_transactions,
                fee_input=self._block_fee_input(pledger, h), vouched=certified,
            )  # fmt: skip
        except InvalidBlock as exc:
            return f"execution failed: {exc.reason}"
        if ledger.state_root() != h.state_root:
            return "state root mismatch"
        if ledger.forced_index() != h.forced_index:
            return "forced index mismatch"
        return ledger

    def _adopt_orphans(self, parent: bytes, now_ms: int, out: list[api.Effect]) -> None:
        """Adopt the orphans ``parent`` connects, :data:`_ADOPT_PER_STEP` blocks now and the
        rest in the next ticks (:meth:`next_tick_ms` says they are due at once)."""
        self._adoptable.append(parent)
        self._adopt_some(now_ms, out)

    def _adopt_some(self, now_ms: int, out: list[api.Effect]) -> None:
        """Execute and insert up to :data:`_ADOPT_PER_STEP` orphans whose parent is now here
        (depth first, as they chain). Every one is a full block's execution: a node that was
        behind kept up to the orphan bound while its gap was open, and adopting them all in
        one input stalled its event loop for seconds (issue 13: 4-11 s steps of a node
        catching up after a resume)."""
        stack, budget = self._adoptable, _ADOPT_PER_STEP
        while stack and budget > 0:
            parent = stack.pop()
            if parent not in self.tree:
                continue  # pruned by a commit since (its orphans went with it)
            for child in self.tree.take_orphans(parent):
                ch = block_hash(child.header)
                if ch in self.tree:
                    continue
                budget -= 1
                qc = self.tree.qc_of(ch)
                try:
                    if qc is not None:
                        # Certified already (a later block's justify): no vote is due in its
                        # round, and its QC vouches for its transfers (see _execute).
                        if self._accept_certified(child, out) is None:
                            stack.append(ch)
                    elif self._accept_proposal(child, now_ms, out) is None:
                        self._maybe_vote(child, out)
                        stack.append(ch)
                except _Wait:
                    if qc is not None and ch in self._stored_orphans:
                        # Tried again each tick with the stored blocks: it may be this node's
                        # only copy of a certified block, and its QC the high QC nobody else
                        # can serve the block of. (A gossiped orphan is dropped: a peer sends
                        # it again, and its refusal must not be blamed on the store.)
                        self._restore.append(CertifiedBlock(child, qc))
                    continue
                if self.tree.qc_of(ch) is not None:
                    self._try_commit(ch, out)

    def _maybe_vote(self, block: Block, out: list[api.Effect]) -> None:
        h = block.header
        if self.pk is None or h.round != self.round:
            return
        signed_vote = self.outbox.signed_round(Kind.VOTE)
        if h.round <= signed_vote or h.round <= self.outbox.signed_round(Kind.TIMEOUT):
            return
        j = block.justify
        tc = block.timeout_cert
        # Ranks, not rounds: a justify of an earlier epoch never beats a lock of a later one
        # (the first block of an epoch must not reopen it; docs/protocol.md).
        ok = (_qc_round(j) + 1 == h.round and rank(j) >= rank(self.high_qc)) or (
            tc is not None and tc.round + 1 == h.round and rank(j) >= rank(tc.high_qc)
        )
        if not ok:
            return
        if kind_of(h, self._cfg.epoch_length) is BlockKind.SUFFIX and (
            self.committed_height >= last_height(h.epoch, self._cfg.epoch_length)
            and self._qc_hash(self.high_qc) in self._closings
        ):
            # The epoch is closed and this node's lock can start the next one. (With a lock on
            # a later, non-closing suffix block, only a closing block above it lets a first
            # block pass the rank rule: refusing those votes deadlocked the hand-over.)
            return
        bh = block_hash(h)
        if not self.tree.vote_ready(bh):
            return  # known only from catch-up: its proposal-time checks never ran here
        vote = Vote(bh, h.height, h.round, h.epoch, self.pk, bytes(64))
        signed = self.outbox.sign(Kind.VOTE, h.round, bh, vote, *self._lock())
        if signed is not None:
            out.append(self.outbox.hold([signed], self._vouched(bh)))

    # --- votes and QCs ----------------------------------------------------------------------

    def _admit_signed(
        self, stmt: Vote | Timeout, prev: Vote | Timeout | None, out: list[api.Effect]
    ) -> bool:
        """Whether a vote or timeout not seen before may be kept: its signer has stake here,
        its signature holds (else the peer is charged) and its slot (signer, round) was empty.
        A second, different statement in a filled slot is evidence, never kept."""
        if not self._known_signer(stmt.voter):
            return False
        if not verify_message(stmt, stmt.voter, self._cfg.chain_id):
            raise SignatureError(f"bad {'vote' if isinstance(stmt, Vote) else 'timeout'} signature")
        if prev is not None:
            self._found(self.pool.evidence_of(prev, stmt), out)
            return False
        return True

    def _on_vote(self, sender: api.Source, vote: Vote, now_ms: int, out: list[api.Effect]) -> None:
        if vote.round + ROUND_HISTORY < self.round:
            return
        if vote.round > self.round + self._cfg.max_future_rounds:
            return
        prev = self.pool.vote_in_slot(vote)
        if prev != vote:
            if not self._admit_signed(vote, prev, out):
                return
            self.pool.add_vote(vote)
        elif not self._retrying:
            return  # a repeat: counted already
        known = self.tree.qc_of(vote.block_hash)
        if known is not None and known.round == vote.round:
            return
        if not qc_epoch_fits(vote.epoch, vote.height, self._cfg.epoch_length):
            return
        info = self.epochs.info(vote.epoch, vote.block_hash)
        if info is None:
            self._parked.append((sender, vote))  # a retry forms the QC
            return
        qc = self.pool.form_qc(vote, info.table)
        if qc is not None:
            self._remember_verified(message_id(qc))
            self._on_qc(sender, qc, now_ms, out)

    def _on_qc(
        self, sender: api.Source, qc: QuorumCertificate, now_ms: int, out: list[api.Effect]
    ) -> None:
        if qc.epoch < self.epoch_of(self.committed_height):
            return  # stale table (see _Stale): it neither raises the high QC nor the round
        self.tree.add_qc(qc)
        self._note_certified(qc.block_hash, out)
        if rank(qc) > rank(self.high_qc):
            self.high_qc = qc
        self._enter_round(qc.round + 1, now_ms, api.RoundCause.QC, out)
        if qc.block_hash in self.tree:
            self._try_commit(qc.block_hash, out)
        elif qc.height > self.committed_height:
            self._ask_sync(sender, qc.height, now_ms, out)

    def _note_certified(self, bh: bytes, out: list[api.Effect]) -> None:
        """Emit BlockCertified once per block that has both its body and a QC here."""
        cb = self.tree.newly_certified(bh)
        if cb is not None:
            out.append(api.BlockCertified(cb))

    def _enter_round(
        self, round_: int, now_ms: int, via: api.RoundCause, out: list[api.Effect]
    ) -> None:
        if round_ <= self.round and not (round_ == self.round and self._deadline_ms is None):
            return
        if via is api.RoundCause.QC:
            self._consecutive_timeouts = 0
        else:
            self._consecutive_timeouts += 1
        self.round = round_
        self._deadline_ms = now_ms + self._timeout_ms()
        self._my_timeout = None
        if round_ - ROUND_HISTORY > 0:
            self.pool.prune(round_ - ROUND_HISTORY)
        out.append(api.RoundChanged(round_, self._next_epoch_or_guess(self.high_qc),
                                    self._leader_of_round(round_), via))  # fmt: skip

    # --- commit -----------------------------------------------------------------------------

    def _try_commit(self, certified: bytes, out: list[api.Effect]) -> None:
        """Two-chain rule: a certified block whose parent is one round below commits it."""
        child = self.tree.header(certified)
        if child is None or child.height == 0:
            return
        parent = self.tree.header(child.parent_hash)
        if parent is None or parent.height <= self.committed_height:
            return
        if child.round != parent.round + 1:
            return
        target = child.parent_hash
        if kind_of(parent, self._cfg.epoch_length) is BlockKind.SUFFIX:
            # Suffix blocks are never committed: the pair commits their epoch's last block.
            last = last_height(parent.epoch, self._cfg.epoch_length)
            if last <= self.committed_height:
                return
            found = self.tree.ancestor_at(target, last, parent.height - last + 1)
            if found is None:
                return
            target = found
        self._commit_through(target, out)

    def _commit_through(self, target: bytes, out: list[api.Effect]) -> None:
        for bh in self.tree.path_to(target):
            self._commit_one(bh, out)
        self.tree.prune()
        h = self.committed_height
        if self._stored_blocks:  # stored voted blocks the chain has passed are of no use now
            self._stored_blocks = {
                k: b for k, b in self._stored_blocks.items() if not self.tree.stale(b.header)
            }
        if self._stored_orphans:
            self._stored_orphans = {k: x for k, x in self._stored_orphans.items() if x > h}

    def _commit_one(self, bh: bytes, out: list[api.Effect]) -> None:
        header = self.tree.header(bh)
        assert header is not None
        parent = self.tree.header(header.parent_hash)
        assert parent is not None
        cb = self.tree.commit(bh)
        self._after_commit(cb, parent, out)

    def _after_commit(self, cb: CertifiedBlock, parent: BlockHeader, out: list[api.Effect]) -> None:
        header = cb.block.header
        self.epochs.note_committed(header)
        ledger = self.committed_ledger
        self._mempool.remove_committed(ledger)
        self._forced.mark_consumed(ledger.forced_index())
        self._note_base_fee(header.height + 1, ledger)
        out.append(api.BlockCommitted(cb, ledger.state_root(), ledger.fee_state()))
        # The first block of an epoch follows the old table's suffix rounds, not its parent's.
        j = cb.block.justify
        first = cb.block.epoch_proof is not None and j is not None
        base_round = j.round if first and j is not None else parent.round
        self._account_downtime(header, parent, base_round, cb.qc, out)

    def _note_base_fee(self, height: int, ledger: Ledger) -> None:
        """Remember the L2 base fee block ``height`` pays (the Ethereum RPC shows it); the
        most recent :data:`RECENT_COMMITTED` are kept."""
        self._base_fees[height] = base_fee_of(ledger)
        while len(self._base_fees) > RECENT_COMMITTED:
            self._base_fees.popitem(last=False)

    def base_fee(self, height: int) -> int | None:
        """The L2 base fee of block ``height`` (wei per gas; 0 without a model that charges
        one): recent committed blocks and the next one; None for older ones. A model change
        that takes over at an epoch's first block is seen from the block after it."""
        return self._base_fees.get(height)

    def _replay(self, chain: Sequence[CertifiedBlock]) -> None:
        """Adopt the node's own stored committed chain (trusted: it committed it before)."""
        sink: list[api.Effect] = []
        for i, cb in enumerate(chain):
            h = cb.block.header
            if h.parent_hash != self.committed_hash or cb.qc.block_hash != block_hash(h):
                raise ValueError(f"stored chain is broken at height {h.height}")
            parent = self.tree.header(h.parent_hash)
            assert parent is not None
            try:
                ledger = self._replay_execute(cb.block)
            except _Wait:
                # A fee model's L1 data is not here yet: the rest is replayed the same way
                # once it arrives (CoreStatus.l1_fee_next says from where). Not as certified
                # blocks: the commit rule would leave the top of the stored chain uncommitted
                # (its committing QC is not stored), and the node already reported it.
                self._replay_rest = list(chain[i:])
                break
            self._after_commit(self.tree.adopt_committed(cb, ledger), parent, sink)
            if rank(cb.qc) > rank(self.high_qc):
                self.high_qc = cb.qc
            self.tree.prune()
        self.round = max(self.round, _qc_round(self.high_qc) + 1)

    def _resume_replay(self) -> None:
        """Replay the rest of the stored chain that waited for L1 fee data (what catch-up
        committed meanwhile is skipped; a rest that no longer continues the chain is
        dropped: the shell's store is then behind, not ahead)."""
        rest = [cb for cb in self._replay_rest if cb.block.header.height > self.committed_height]
        self._replay_rest = []
        if rest and rest[0].block.header.parent_hash == self.committed_hash:
            self._replay(rest)

    def _adopt_snapshot(self, snap: api.ChainSnapshot) -> None:
        """Start from a stored snapshot instead of genesis (trusted like the stored chain,
        but its ledger must be its block's state: a corrupted one is refused)."""
        h = snap.head.block.header
        if snap.head.qc.block_hash != block_hash(h) or h.height < 1:
            raise ValueError("snapshot: its head block and QC do not match")
        if snap.ledger.state_root() != h.state_root:
            raise ValueError(f"snapshot at height {h.height}: ledger does not match the block")
        for a in snap.anchors:
            if a.height != self.epochs.first_height(a.epoch) or a.height > h.height:
                raise ValueError(f"snapshot: {a.height} is not a committed epoch anchor")
        self.tree.adopt_committed(snap.head, snap.ledger)
        self.tree.prune()
        for a in (*snap.anchors, h):
            self.epochs.note_committed(a)
        self._forced.mark_consumed(snap.ledger.forced_index())
        self.high_qc = snap.head.qc

    def snapshot(self) -> api.ChainSnapshot | None:
        """The committed state now, for a later restart (None at genesis): the committed
        head with its QC, its ledger and the committed first blocks of the latest epochs."""
        height = self.committed_height
        head = self.tree.certified_range(height, height, self.committed_hash, 1)
        if height == 0 or not head:
            return None
        epoch = self.epochs.epoch_of(height)
        anchors = self.epochs.committed_anchors(epoch - api.MAX_SNAPSHOT_ANCHORS + 1, epoch)
        return api.ChainSnapshot(head[0], anchors, self.committed_ledger)

    def _replay_execute(self, block: Block) -> Ledger:
        h = block.header
        try:
            # chain_id: forced entries' signatures are checked exactly as when the block
            # was first executed (a forged entry is skipped); without it the replay would
            # execute the forgery and disagree with the stored state root. The transfers'
            # signatures were checked when this node first executed the block.
            pledger = self.committed_ledger
            ledger, _ = pledger.apply_block(
                block.transactions, block.forced, proposer=h.proposer,
                chain_id=self._cfg.chain_id, eth_txs=block.eth_transactions,
                fee_input=self._block_fee_input(pledger, h), vouched=True,
            )  # fmt: skip
        except InvalidBlock as exc:
            raise ValueError(f"stored block {h.height} does not execute: {exc}") from exc
        if ledger.state_root() != h.state_root:
            raise ValueError(f"stored block {h.height} has a wrong state root")
        return ledger

    # --- timeouts ---------------------------------------------------------------------------

    def _local_timeout(self, now_ms: int, out: list[api.Effect]) -> None:
        self._deadline_ms = now_ms + self._timeout_ms()
        if self.pk is None:
            return
        if self._my_timeout is not None and self._my_timeout.timeout.round == self.round:
            # Retransmit, but never before the shell acknowledged the watermark.
            if not self.outbox.holds(self._my_timeout):
                out.append(api.Broadcast(self._my_timeout))
            return
        hq = self._timeout_qc()
        t = Timeout(
            self.round,
            0 if hq is None else hq.epoch,  # with the round: the rank of the QC it reports
            _qc_round(hq),
            self._qc_hash(hq) if hq is not None else ZERO_HASH,
            self.pk,
            bytes(64),
        )
        tc = self._entry_tc()
        # Signed on top of the QC it reports (the record's lock must stay that QC, see
        # _timeout_qc: a second restart in the round re-signs the same bytes again).
        proof = None if hq is None else self._closings.get(hq.block_hash)
        signed = self.outbox.sign(Kind.TIMEOUT, self.round, message_id(t), t, hq, proof, tc=tc)
        if signed is None:
            return
        self._my_timeout = TimeoutMessage(signed, hq, tc)
        out.append(self.outbox.hold([self._my_timeout], self._vouched(self._qc_hash(hq))))

    def _timeout_qc(self) -> QuorumCertificate | None:
        """The QC this node's timeout of the current round reports: its high QC, unless it
        timed out in this round before a restart. Then the record's: nothing is signed in a
        round after its timeout, so the record still names the QC that timeout reported, and
        those very bytes are the only timeout it may sign in the round (one with a QC learned
        since would conflict with it). Peers may never have got the first copy, and without it
        the round's TC may be out of reach: a random fault sweep stalled for good on this (seed
        85222: two of five nodes restarted after timing out, then learned a higher QC). The
        record's QC ranks at least as high as every QC the node signed on top of, which is
        what the lock argument asks of a timeout."""
        r = self.outbox.record
        if r is not None and r.timeout_round == self.round:
            return r.high_qc
        return self.high_qc

    def _entry_tc(self) -> TimeoutCertificate | None:
        """The TC this node entered its round by, if that is how it did."""
        tc = self.last_tc
        return tc if tc is not None and tc.round + 1 == self.round else None

    def _on_timeout(
        self, sender: api.Source, tm: TimeoutMessage, now_ms: int, out: list[api.Effect]
    ) -> None:
        t = tm.timeout
        if t.round > self.round + self._cfg.max_future_rounds:
            return
        in_window = t.round + ROUND_HISTORY >= self.round
        prev = self.pool.timeout_in_slot(t)
        if prev != t:
            if not self._admit_signed(t, prev, out):
                return
            if in_window:
                self.pool.keep_timeout(t)
        self._check_timeout_qc(tm, out)
        if in_window:
            self.pool.count_timeout(t)
        if tm.high_qc is not None:
            self.pool.add_timeout_qc(tm.high_qc)
            self._on_qc(sender, tm.high_qc, now_ms, out)
        if tm.last_tc is not None and tm.last_tc.round >= self.round:
            # Only a TC that moves us on is judged (an older one is no news: no cost).
            self._check_tc(tm.last_tc, out)
            self._on_tc(tm.last_tc, now_ms, out, sender)
        if t.round < self.round:
            if isinstance(sender, bytes):
                self._help(sender, t, now_ms, out)
            return
        self._try_form_tc(t.round, now_ms, out)

    def _check_timeout_qc(self, tm: TimeoutMessage, out: list[api.Effect]) -> None:
        t = tm.timeout
        if tm.high_qc is not None:
            named = (tm.high_qc.epoch, tm.high_qc.round, tm.high_qc.block_hash)
            if named != (t.epoch, t.high_qc_round, t.high_qc_block):
                raise CertificateError("timeout message carries another QC than it names")
            self._check_qc(tm.high_qc, out)
        elif t.high_qc_round != 0 or t.epoch != 0:
            raise CertificateError("timeout names a QC it does not carry")
        if tm.last_tc is not None and tm.last_tc.round + 1 != t.round:
            raise CertificateError("timeout carries a TC of another round than the one before")

    def _try_form_tc(self, round_: int, now_ms: int, out: list[api.Effect]) -> None:
        if self.last_tc is not None and self.last_tc.round >= round_:
            return

        def table_of(high_qc: QuorumCertificate | None) -> tuple[int, int, api.EpochInfo] | None:
            follows = self._extension_of(high_qc)
            if follows is None:
                return None
            info = self.epochs.info(follows[1], self._qc_hash(high_qc))
            return None if info is None else (*follows, info)

        missing: list[int] = []

        def judged_by(high_qc: QuorumCertificate | None) -> tuple[int, int, api.EpochInfo] | None:
            found = table_of(high_qc)
            if found is None:
                missing.append(round_)
            return found

        tc = self.pool.form_tc(round_, judged_by)
        self._tc_waits = round_ if missing else None
        if tc is not None:
            self._remember_verified(message_id(tc))
            self._on_tc(tc, now_ms, out)

    def _on_tc(
        self,
        tc: TimeoutCertificate,
        now_ms: int,
        out: list[api.Effect],
        sender: api.Source = api.LocalSource.SELF,
    ) -> None:
        if self.last_tc is None or tc.round > self.last_tc.round:
            self.last_tc = tc
        if tc.high_qc is not None:
            self._on_qc(sender, tc.high_qc, now_ms, out)
        self._enter_round(tc.round + 1, now_ms, api.RoundCause.TC, out)

    def _help(self, peer: bytes, t: Timeout, now_ms: int, out: list[api.Effect]) -> None:
        """A peer is stuck in an old round: send it what moved us on."""
        if not self.catchup.may_help(peer, now_ms):
            return
        start = (self.tree.height_of(t.high_qc_block) or 0) + 1
        blocks = self._certified_range(start, _qc_height(self.high_qc))
        out.append(api.SendTo(peer, api.SyncResponse(tuple(blocks), self.last_tc)))

    # --- catch-up ---------------------------------------------------------------------------

    def _certified_range(self, start: int, end: int) -> list[CertifiedBlock]:
        top = self._qc_hash(self.high_qc)
        return self.tree.certified_range(start, end, top, api.MAX_SYNC_BLOCKS)

    def _on_sync_request(
        self, sender: api.Source, req: api.SyncRequest, out: list[api.Effect]
    ) -> None:
        if req.to_height < req.from_height or not isinstance(sender, bytes):
            return
        blocks = self._certified_range(req.from_height, req.to_height)
        if blocks or self.last_tc is not None:
            out.append(api.SendTo(sender, api.SyncResponse(tuple(blocks), self.last_tc)))

    def _queue_sync_answer(
        self, sender: api.Source, msg: api.SyncResponse, now_ms: int, out: list[api.Effect]
    ) -> None:
        """Check that every block of a sync answer matches its QC (a mismatch refuses the
        whole answer, before anything is inserted), queue it, and work through the first
        :data:`_SYNC_PER_STEP` blocks. The rest, and the answer's TC after them, are due at
        the next ticks (:meth:`next_tick_ms`): an answer holds up to 64 certified blocks,
        each a block's execution, and a node catching up under load stalled for 1.3-2.9 s
        of CPU in one such input (issue 13, ``scripts/resume_after_overload.py``)."""
        for cb in msg.blocks:
            _check_qc_matches(cb)
        blocks = deque(cb for cb in msg.blocks if cb.block.header.height > self.committed_height)
        queued = sum(len(a.blocks) for a in self._syncing)
        if queued + len(blocks) > _SYNC_QUEUE_MAX:
            return
        self._syncing.append(_SyncAnswer(sender, blocks, msg.last_tc))
        self._sync_some(now_ms, out)

    def _sync_some(self, now_ms: int, out: list[api.Effect]) -> None:
        """Insert queued certified blocks in order, up to :data:`_SYNC_PER_STEP` executions,
        then each answer's TC. A problem ends its answer as it would have ended the whole
        answer in one input: a bad certificate charges the sender, an unknown epoch table
        parks what is left of it for a retry, a missing parent asks for the gap. Once an
        answer has ended, the parked messages are judged again (what it inserted may be what
        they waited for), as they were after a whole answer."""
        budget, ended = _SYNC_PER_STEP, 0
        while self._syncing and budget > 0:
            answer = self._syncing[0]
            if not answer.blocks:
                self._syncing.popleft()
                ended += 1
                if answer.last_tc is not None:
                    # retry=True: a TC whose blocks are still unknown is parked, not asked for
                    self._on_message(answer.sender, answer.last_tc, now_ms, out, retry=True)
                continue
            cb = answer.blocks[0]
            try:
                executed = self._on_certified(answer.sender, cb, now_ms, out)
            except CertificateError as exc:
                executed = None
                self._refuse(answer.sender, _fault_of(exc), str(exc), out)
            except _Stale:
                executed = None
            except _Wait:
                executed = None
                rest = api.SyncResponse(tuple(answer.blocks), answer.last_tc)
                self._parked.append((answer.sender, rest))
            if executed is None:  # ended (or its parent is missing: the rest cannot connect)
                self._syncing.popleft()
                ended += 1
                continue
            answer.blocks.popleft()
            budget -= executed
        if ended:
            self._retry_parked(now_ms, out)

    def _on_certified(
        self, sender: api.Source, cb: CertifiedBlock, now_ms: int, out: list[api.Effect]
    ) -> int | None:
        """Insert one certified block of a sync answer (its QC checked against its header by
        :meth:`_queue_sync_answer`). Returns how many blocks it executed (0 or 1), or None
        when its parent is unknown here (the gap is asked for)."""
        h = cb.block.header
        bh = block_hash(h)
        if self.tree.stale(h):
            return 0
        executed = 0
        if bh not in self.tree:
            if h.parent_hash not in self.tree:
                if sender is api.LocalSource.STORE:
                    self._keep_certified_orphan(cb, now_ms, out)
                self._ask_sync(sender, h.height, now_ms, out)
                return None
            self._check_certified_block(cb, out)
            executed = 1
        else:
            self._check_qc(cb.qc, out)
        if cb.block.justify is not None:
            self._on_qc(sender, cb.block.justify, now_ms, out)
        self._on_qc(sender, cb.qc, now_ms, out)
        if self.tree.has_orphans(bh):
            self._adoptable.append(bh)  # adopted in the next steps, within their own budget
        return executed

    def _keep_certified_orphan(
        self, cb: CertifiedBlock, now_ms: int, out: list[api.Effect]
    ) -> None:
        """Keep a stored certified block whose parent is not here yet, with its QC, so that
        it is adopted as certified when the parent comes (a stored voted block inserted by
        :meth:`_insert_stored`, or a sync answer). Its QCs are verified first: they vouch for
        it on adoption, and its justify may be the only QC this node learns for its parent."""
        # Adoption checks its body, not its proposal signature: a damaged one would be served.
        self._check_certified_signatures(cb, out)
        justify = cb.block.justify
        self.tree.add_orphan(cb.block)
        self._stored_orphans[block_hash(cb.block.header)] = cb.block.header.height
        if justify is not None:
            self._on_qc(api.LocalSource.STORE, justify, now_ms, out)
        self._on_qc(api.LocalSource.STORE, cb.qc, now_ms, out)

    def _check_certified_block(self, cb: CertifiedBlock, out: list[api.Effect]) -> None:
        """Check a new certified block whose parent is known, and insert it."""
        self._check_certified_signatures(cb, out)
        reason = self._accept_certified(cb.block, out)
        if reason is not None:
            raise CertificateError(f"certified block {cb.block.header.height} is invalid: {reason}")

    def _check_certified_signatures(self, cb: CertifiedBlock, out: list[api.Effect]) -> None:
        """Verify a certified block's QCs (its justify and its own) and its proposal signature:
        what vouches for it before it is inserted or kept as an orphan."""
        if cb.block.justify is not None:
            self._check_qc(cb.block.justify, out)
        self._check_qc(cb.qc, out)
        if not verify_message(cb.block.proposal, cb.block.header.proposer, self._cfg.chain_id):
            raise SignatureError("bad proposal signature in a certified block")

    # --- proposing --------------------------------------------------------------------------

    def _may_propose(self, record: api.PersistedState) -> bool:
        """Whether the current round still allows this node's proposal: one per round, and
        none after timing out in it (the watermark refuses both; as Diem's safety rules). So a
        node signs nothing in a round after its timeout, and while it is in that round the
        record's QC is the one that timeout reported (see :meth:`_timeout_qc`)."""
        return self.round > max(record.proposal_round, record.timeout_round)

    def _propose_if_leader(self, now_ms: int, out: list[api.Effect]) -> None:
        """Propose on the high QC if this node leads the current round and may sign in it
        (not after its proposal or its timeout there: see :meth:`_may_propose`)."""
        record = self.outbox.record
        if self.pk is None or record is None or not self._may_propose(record):
            return
        base_hash = self._qc_hash(self.high_qc)
        base = self._base_header(base_hash)
        if base is None or self._leader_here(base, base_hash) != self.pk:
            return
        kind = self._next_kind(base, base_hash)
        if kind is None:
            return
        parent_hash = base_hash
        if kind is BlockKind.FIRST:  # extend the committed last block R, not the suffix
            parent_hash = self._closings[base_hash].last_qc.block_hash
        elif kind is BlockKind.SUFFIX and (
            base.height - last_height(base.epoch, self._cfg.epoch_length) >= MAX_SUFFIX
        ):
            # The suffix is full. (A suffix block is proposed even once the epoch's last block
            # is committed here: the high QC is then a later, non-closing suffix block, and only
            # a closing block above it can start the next epoch; see _vote.)
            return
        parent = self.tree.header(parent_hash)
        if parent is None or self.tree.ledger(parent_hash) is None:
            return
        tc = None
        if _qc_round(self.high_qc) + 1 != self.round:
            if self.last_tc is None or self.last_tc.round + 1 != self.round:
                return
            tc = self.last_tc
        # Suffix blocks exist only to close the epoch: no reason to wait a block time.
        waited = now_ms >= parent.timestamp_ms + self._pace_ms(kind, base)
        if tc is None and kind is not BlockKind.SUFFIX and not waited:
            return
        if kind is BlockKind.SUFFIX:
            self._propose_suffix(base_hash, base, tc, now_ms, out)
        else:
            proof = self._closings[base_hash] if kind is BlockKind.FIRST else None
            self._propose(parent_hash, parent, max(parent.timestamp_ms, base.timestamp_ms),
                          tc, proof, now_ms, out)  # fmt: skip

    def _pace_ms(self, kind: BlockKind, base: BlockHeader) -> int:
        """How long a proposal waits after its parent: a block time, or ``idle_block_ms`` when
        there is nothing to order (no transaction in the mempool, no forced entry pending, and
        neither the base nor its parent carries any). The two blocks after one with content
        keep the block time, so that block commits as fast as before (two-chain rule)."""
        cfg = self._cfg
        if cfg.idle_block_ms <= cfg.block_time_ms or kind is not BlockKind.NORMAL:
            return cfg.block_time_ms
        if len(self._mempool) or len(self._forced):
            return cfg.block_time_ms
        for h in (base, self.tree.header(base.parent_hash)):
            if h is not None and h.tx_root != EMPTY_TX_ROOT:
                return cfg.block_time_ms
        return cfg.idle_block_ms

    def _leader_here(self, base: BlockHeader, base_hash: bytes) -> bytes | None:
        """The leader of the current round on ``base`` (memoized; None while unknown)."""
        key = (self.round, base_hash)
        if self._leader_memo is None or self._leader_memo[0] != key:
            leader = self._leader_after(base, self.round, base_hash)
            if leader is None:
                return None  # table not known yet: ask again next time (no memo)
            self._leader_memo = (key, leader)
        return self._leader_memo[1]

    def _propose(
        self,
        parent_hash: bytes,
        parent: BlockHeader,
        after_ms: int,
        tc: TimeoutCertificate | None,
        proof: EpochProof | None,
        now_ms: int,
        out: list[api.Effect],
    ) -> None:
        """Propose a block with transactions on ``parent`` (``proof``: the first block of an
        epoch, on the last block of the previous one); its timestamp is above ``after_ms``."""
        assert self.pk is not None
        pledger = self.tree.ledger(parent_hash)
        assert pledger is not None
        l1_origin = max(parent.l1_origin, min(self._l1_finalized, self._l1_head))
        height = parent.height + 1
        try:
            fee_input = self._proposal_fee_input(pledger, parent, l1_origin, proof is not None)
        except _Wait:
            return  # not even the parent's L1 origin has its fee data here yet
        if fee_input is not None:
            l1_origin = fee_input.l1_origin
        if height == self.epochs.first_height(self.epoch_of(height)) and (
            self.epochs.anchor_refusal(l1_origin, self._l1_head, self._l1_finalized)
        ):
            return  # validators would refuse this anchor's origin: keep the round's proposal
        forced = self._forced.available(
            l1_origin, self._cfg.max_block_forced, from_index=pledger.forced_index()
        )
        candidates = self._mempool.select(pledger, self._cfg.max_block_txs)
        # Forced entries run first and may spend a balance or nonce the selection counted
        # on: leave out only the candidates that fail instead of proposing an empty block.
        ledger, txs, _, _ = pledger.build_block(
            candidates, forced, proposer=self.pk, chain_id=self._cfg.chain_id,
            fee_input=fee_input,
        )  # fmt: skip
        native, eth = split_txs(txs)
        header = BlockHeader(
            height, self.round, self.epoch_of(height), parent_hash,
            max(now_ms, after_ms + 1), self.pk, tx_root(native, forced, eth),
            ledger.state_root(), ledger.forced_index(), l1_origin,
        )  # fmt: skip
        self._sign_block(header, txs, tuple(forced), tc, proof, out)

    def _proposal_fee_input(
        self, pledger: Ledger, parent: BlockHeader, l1_origin: int, first: bool
    ) -> FeeInput | None:
        """The fee input of a new block: at the wanted L1 origin, or at the highest one
        between the parent's and it whose fee data is all here. Raises _Wait when none is."""
        state = pledger.fee_state()
        if state is None:
            return None
        origin = l1_origin
        if state.l1_origin is None:  # the chain's first block: only its origin's data
            while origin > parent.l1_origin and origin not in self._l1_fees:
                origin -= 1
        else:  # the data is consumed in order: stop before the first gap
            origin = state.l1_origin
            while origin < l1_origin and origin + 1 in self._l1_fees:
                origin += 1
        return self._fee_input(pledger, max(origin, parent.l1_origin), first)

    def _propose_suffix(
        self,
        base_hash: bytes,
        base: BlockHeader,
        tc: TimeoutCertificate | None,
        now_ms: int,
        out: list[api.Effect],
    ) -> None:
        """Propose an empty suffix block of ``base``'s epoch (it helps commit the epoch's last
        block; see :mod:`~sequencer_node.core.reconfig`)."""
        assert self.pk is not None
        header = BlockHeader(
            base.height + 1, self.round, base.epoch, base_hash,
            max(now_ms, base.timestamp_ms + 1), self.pk, EMPTY_TX_ROOT,
            base.state_root, base.forced_index, base.l1_origin,
        )  # fmt: skip
        self._sign_block(header, (), (), tc, None, out)

    def _sign_block(
        self,
        header: BlockHeader,
        txs: Sequence[Transaction | EthTransaction],
        forced: tuple[ForcedTransaction, ...],
        tc: TimeoutCertificate | None,
        proof: EpochProof | None,
        out: list[api.Effect],
    ) -> None:
        proposal = self.outbox.sign(
            Kind.PROPOSAL, self.round, block_hash(header), Proposal(header, bytes(64)),
            *self._lock(),
        )  # fmt: skip
        if proposal is None:
            return
        native, eth = split_txs(txs)
        block = Block(proposal, native, forced, self.high_qc, tc, proof, eth)
        # Durable with the record: the parent, and the block the justify certifies (they
        # differ for the first block of an epoch: R and the closing suffix block).
        vouched = self._vouched(header.parent_hash)
        if proof is not None:
            vouched += self._vouched(self._qc_hash(self.high_qc))
        if tc is not None:
            # And the proposal itself: its TC is what moved this node to its round, and the
            # record does not keep it; a restart learns it back from the stored block.
            vouched += (block,)
        out.append(self.outbox.hold([block], vouched))

    # --- downtime ---------------------------------------------------------------------------

    def _account_downtime(
        self,
        header: BlockHeader,
        parent: BlockHeader,
        base_round: int,
        qc: QuorumCertificate,
        out: list[api.Effect],
    ) -> None:
        """Account committed blocks once the grace after them has passed (in height order)."""
        self._downtime_due.append((header, parent, base_round, qc))
        grace = self._cfg.downtime_grace_heights
        while self._downtime_due and self._downtime_due[0][0].height + grace <= header.height:
            self._account_block(*self._downtime_due.popleft(), out)

    def _account_block(
        self,
        header: BlockHeader,
        parent: BlockHeader,
        base_round: int,
        qc: QuorumCertificate,
        out: list[api.Effect],
    ) -> None:
        info = self.epochs.info(header.epoch)
        if info is None:
            return
        same = parent.height >= 1 and parent.epoch == header.epoch
        failed = [
            leader_for(info.order, r, base_round, parent.proposer if same else None)
            for r in range(base_round + 1, min(header.round, base_round + 1 + len(info.order) * 4))
        ]
        found = self._downtime.on_commit(
            header.height,
            failed_leaders=failed,
            proposer=header.proposer,
            members=sorted(info.table),
            voters={e.signer for e in qc.signatures},
            seen={e.signer for e in qc.signatures} | self.pool.voters(qc.round),
        )
        key = self._cfg.key
        if key is None or self.pk is None or self.pk not in info.table:
            return
        for f in found:
            report = DowntimeReport(
                info.stake_epoch, f.offender, f.from_height, f.to_height,
                min(f.missed, 2**32 - 1), min(f.duties, 2**32 - 1), self.pk, bytes(64),
            )  # fmt: skip
            signed = sign_message(report, key, self._cfg.chain_id)
            out.append(api.Broadcast(signed))
            self._on_downtime_report(signed, out)

    def _on_downtime_report(self, r: DowntimeReport, out: list[api.Effect]) -> None:
        if self._reports.certified(r):
            return
        info = self.epochs.table_of_stake_epoch(r.stake_epoch)
        if info is None or info.table.get(r.signer, 0) <= 0:
            return
        if not verify_message(r, r.signer, self._cfg.chain_id):
            raise SignatureError("bad downtime report signature")
        cert = self._reports.add(r, info.table)
        if cert is not None:
            out.append(api.DowntimeCertificateReady(cert))


__all__ = ["RECENT_COMMITTED", "SequencerCore"]
