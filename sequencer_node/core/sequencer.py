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

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sequencer_node.core import api
from sequencer_node.core.downtime import DowntimeTracker
from sequencer_node.core.election import epoch_seed, leader_for, weighted_order
from sequencer_node.core.forced import ForcedQueue, ForcedQueueError, ForcedUnknown
from sequencer_node.core.ledger import InvalidBlock, Ledger, tx_root
from sequencer_node.core.mempool import Mempool, RejectReason
from sequencer_node.core.watermark import Kind, empty_record, may_sign, record_signature
from sequencer_node.wire.certificates import (
    CertificateError,
    SignatureError,
    has_quorum,
    verify_qc,
    verify_tc,
    vote_for,
)
from sequencer_node.wire.codec import message_id, signing_bytes
from sequencer_node.wire.crypto import sign_message, verify_message
from sequencer_node.wire.messages import (
    ZERO_HASH,
    Block,
    BlockHeader,
    CertifiedBlock,
    DoubleProposal,
    DoubleTimeout,
    DoubleVote,
    DowntimeCertificate,
    DowntimeReport,
    Endorsement,
    Evidence,
    EvidenceKind,
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
#: Rounds below the current one for which votes/timeouts are still kept (evidence horizon).
ROUND_HISTORY = 256
_VERIFIED_CACHE = 8_192


class _Wait(Exception):
    """A block cannot be judged yet (unknown parent, epoch table or L1 data): retry later."""


def _fault_of(exc: CertificateError) -> api.Fault:
    return api.Fault.BAD_SIGNATURE if isinstance(exc, SignatureError) else (
        api.Fault.INVALID_CERTIFICATE)  # fmt: skip


@dataclass(slots=True)
class _Pending:
    seq: int
    messages: list[object]


class SequencerCore:
    """One sequencer's (or follower's) protocol state. Single-threaded: one owner feeds it.

    Args:
        config: protocol parameters and the optional signing key.
        genesis: initial balances and the genesis stake snapshot.
        persisted: the last durable :class:`~sequencer_node.core.api.PersistedState`, if any.
        chain: this node's stored committed chain (certified blocks from height 1, in order),
            trusted as committed; replayed to rebuild the state.
        certified: blocks this node saw certified above its committed chain (the
            :class:`~sequencer_node.core.api.BlockCertified` effects it stored), in height
            order; checked like catch-up blocks once the needed stake tables are known. After
            a crash they let the node propose on top of its restored high QC even if no peer
            still has that block.
    """

    def __init__(
        self,
        config: api.CoreConfig,
        genesis: api.Genesis,
        *,
        persisted: api.PersistedState | None = None,
        chain: Sequence[CertifiedBlock] = (),
        certified: Sequence[CertifiedBlock] = (),
    ) -> None:
        self.cfg = config
        self.genesis = genesis
        self.key = config.key
        self.pk: bytes | None = config.key.public_key if config.key is not None else None
        ledger = Ledger.genesis(dict(genesis.balances))
        self._genesis_header = BlockHeader(
            0, 0, 0, ZERO_HASH, genesis.timestamp_ms, bytes(32), ZERO_HASH,
            ledger.state_root(), 0, 0,
        )  # fmt: skip
        self.genesis_hash = block_hash(self._genesis_header)
        self._headers: dict[bytes, BlockHeader] = {self.genesis_hash: self._genesis_header}
        self._blocks: dict[bytes, Block] = {}
        self._ledgers: dict[bytes, Ledger] = {self.genesis_hash: ledger}
        self._qc_of: dict[bytes, QuorumCertificate] = {}
        self.committed_height = 0
        self.committed_hash = self.genesis_hash
        self._recent: OrderedDict[int, CertifiedBlock] = OrderedDict()
        self._recent_heights: dict[bytes, int] = {}
        self._epoch_first: dict[int, BlockHeader] = {}
        self._epochs: dict[tuple[int, bytes], api.EpochInfo] = {}
        self._anchor_memo: OrderedDict[tuple[int, bytes], bytes] = OrderedDict()
        self._snapshots: dict[int, api.StakeSnapshot] = {
            genesis.snapshot.l1_epoch: genesis.snapshot
        }
        self.high_qc: QuorumCertificate | None = None
        self.last_tc: TimeoutCertificate | None = None
        self.round = 1
        self._deadline_ms: int | None = None
        self._consecutive_timeouts = 0
        self._votes: dict[tuple[int, bytes], dict[bytes, Vote]] = {}
        self._vote_slot: dict[tuple[bytes, int], Vote] = {}
        self._timeouts: dict[int, dict[bytes, Timeout]] = {}
        self._timeout_slot: dict[tuple[bytes, int], Timeout] = {}
        self._timeout_qcs: dict[tuple[int, bytes], QuorumCertificate] = {}
        self._proposal_slot: dict[tuple[bytes, int], Proposal] = {}
        self._evidence_keys: set[tuple[EvidenceKind, bytes, int]] = set()
        self.evidence: list[Evidence] = []
        self._orphans: dict[bytes, list[Block]] = {}
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._sync_asked_ms: dict[bytes, int] = {}
        self._helped_ms: dict[bytes, int] = {}
        self._my_timeout: TimeoutMessage | None = None
        self._certified_emitted: set[bytes] = set()
        self._restore: list[CertifiedBlock] = list(certified)
        self._peers: OrderedDict[bytes, None] = OrderedDict()
        self._sync_turn = 0
        #: Blocks that passed the proposal-time checks (clock, L1 view, forced window).
        self._fully_checked: set[bytes] = set()
        self._leader_memo: tuple[tuple[int, bytes], bytes | None] | None = None
        self._l1_head = 0
        self._l1_finalized = 0
        self.mempool = Mempool(
            chain_id=config.chain_id,
            max_txs=config.mempool_max_txs,
            max_per_sender=config.mempool_max_per_sender,
            max_nonce_gap=config.mempool_max_nonce_gap,
        )
        self.forced = ForcedQueue()
        self._downtime = DowntimeTracker(
            window=config.downtime_window, threshold_percent=config.downtime_threshold_percent
        )
        self._downtime_reports: dict[tuple[object, ...], dict[bytes, DowntimeReport]] = {}
        self._downtime_done: set[tuple[object, ...]] = set()
        # Watermark and outbox.
        self.record: api.PersistedState | None = None
        if self.pk is not None:
            self.record = (
                persisted if persisted is not None else empty_record(config.chain_id, self.pk)
            )
            if self.record.signer != self.pk or self.record.chain_id != config.chain_id:
                raise ValueError(
                    "the persisted watermark belongs to another key or chain; refusing to start"
                )
        self._seq = 0
        self._pending: list[_Pending] = []
        #: Effects found where no output list is at hand (evidence inside certificate checks).
        self._side_effects: list[api.Effect] = []
        self.epoch_info(0)
        self._replay(chain)
        if self.record is not None:
            r = self.record
            self.round = max(self.round, r.vote_round, r.timeout_round, r.proposal_round)
            if r.high_qc is not None and (
                self.high_qc is None or r.high_qc.round > self.high_qc.round
            ):
                self.high_qc = r.high_qc

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
            self._on_snapshot(event.snapshot, out)
        elif isinstance(event, api.ForcedEntriesSeen):
            for entry in event.entries:
                try:
                    self.forced.push(entry)
                except ForcedQueueError as exc:
                    self._refuse(api.LocalSource.L1, api.Fault.INCONSISTENT_L1,
                                 f"forced entry refused: {exc}", out)  # fmt: skip
                    break
        elif isinstance(event, api.L1HeadChanged):
            self._l1_head = max(self._l1_head, event.head)
            self._l1_finalized = max(self._l1_finalized, event.finalized)
        elif isinstance(event, api.CertifiedBlocksReceived):
            self._on_certified(api.LocalSource.STORE, event.blocks, now_ms, out)
        else:
            raise TypeError(f"unknown event {type(event).__name__}")
        self._step(now_ms, out)
        return self._flush(out)

    def _flush(self, out: list[api.Effect]) -> list[api.Effect]:
        if self._side_effects:
            out.extend(self._side_effects)
            self._side_effects = []
        return out

    def _on_snapshot(self, snap: api.StakeSnapshot, out: list[api.Effect]) -> None:
        # A finalized snapshot never changes; the genesis one is fixed by the genesis file.
        # Replacing one would let nodes derive different tables for one epoch.
        known = self._snapshots.get(snap.l1_epoch)
        if snap.l1_epoch <= self.genesis.snapshot.l1_epoch or known == snap:
            return
        if known is not None:
            self._refuse(api.LocalSource.L1, api.Fault.INCONSISTENT_L1,
                         f"stake snapshot {snap.l1_epoch} changed", out)  # fmt: skip
            return
        self._snapshots[snap.l1_epoch] = snap
        if len(self._snapshots) > 256:
            del self._snapshots[min(self._snapshots)]

    def tick(self, now_ms: int) -> list[api.Effect]:
        """Let time pass: round timeouts, retransmission, proposing."""
        out: list[api.Effect] = []
        if self._restore:
            self._restore_certified(now_ms, out)
        self._sync_if_stuck(now_ms, out)
        if self._deadline_ms is None:
            self._deadline_ms = now_ms + self._timeout_ms()
        elif now_ms >= self._deadline_ms:
            self._local_timeout(now_ms, out)
        self._step(now_ms, out)
        return self._flush(out)

    def _restore_certified(self, now_ms: int, out: list[api.Effect]) -> None:
        blocks, self._restore = self._restore, []
        try:
            self._on_certified(api.LocalSource.STORE, blocks, now_ms, out)
        except _Wait:
            if len(blocks) < 10_000:  # retry later: the stake tables may still be on the way
                self._restore = [b for b in blocks if b.block.header.height > self.committed_height]
        except CertificateError as exc:
            self._refuse(api.LocalSource.STORE, _fault_of(exc),
                         f"stored certified block refused: {exc}", out)  # fmt: skip

    def _sync_if_stuck(self, now_ms: int, out: list[api.Effect]) -> None:
        # A restored or gossiped high QC whose block this node lacks: without the block it
        # cannot lead or judge the next proposal. Ask the peers in turn.
        hq = self.high_qc
        if hq is None or hq.block_hash in self._headers or not self._peers:
            return
        if hq.height <= self.committed_height:
            return
        peers = list(self._peers)
        self._sync_turn += 1
        self._ask_sync(peers[self._sync_turn % len(peers)], hq.height, now_ms, out)

    def status(self) -> api.CoreStatus:
        return api.CoreStatus(
            round=self.round,
            epoch=self._epoch_of(self._qc_height(self.high_qc) + 1),
            leader=self._leader_of_round(self.round),
            committed_height=self.committed_height,
            committed_hash=self.committed_hash,
            certified_height=self._qc_height(self.high_qc),
            state_root=self._ledgers[self.committed_hash].state_root(),
            mempool_size=len(self.mempool),
            pending_evidence=len(self.evidence),
            forced_next_index=self.forced.next_index,
        )

    @property
    def config(self) -> api.CoreConfig:
        return self.cfg

    def is_pending(self, tx_hash: bytes) -> bool:
        """Whether ``tx_hash`` waits in this node's mempool."""
        return tx_hash in self.mempool

    def pending_nonce(self, address: bytes) -> int:
        """The nonce the account's next new transaction should carry: its nonce at the tip the
        pool builds on, past its transactions waiting in the pool (Ethereum's "pending")."""
        tip = self._ledgers.get(self._qc_hash(self.high_qc), self.committed_ledger)
        return self.mempool.pending_nonce_of(address, tip)

    @property
    def committed_ledger(self) -> Ledger:
        return self._ledgers[self.committed_hash]

    # --- epochs and leaders -----------------------------------------------------------------

    def _epoch_of(self, height: int) -> int:
        return 0 if height <= 0 else (height - 1) // self.cfg.epoch_length

    def _first_height(self, epoch: int) -> int:
        return epoch * self.cfg.epoch_length + 1

    def _anchor(self, epoch: int, via: bytes | None) -> BlockHeader | None:
        """The block at the first height of epoch ``epoch - 1`` on the chain through ``via``."""
        height = self._first_height(epoch - 1)
        committed = self._epoch_first.get(epoch - 1)
        if committed is not None or height <= self.committed_height or via is None:
            return committed  # committed: every valid chain goes through it
        memo = self._anchor_memo.get((epoch, via))
        if memo is not None:
            return self._headers.get(memo)
        cur = via
        for _ in range(3 * self.cfg.epoch_length + 2):
            header = self._headers.get(cur)
            if header is None or header.height < height:
                return None
            if header.height == height:
                self._anchor_memo[(epoch, via)] = cur
                if len(self._anchor_memo) > 4_096:
                    self._anchor_memo.popitem(last=False)
                return header
            cur = header.parent_hash
        return None

    def epoch_info(self, epoch: int, via: bytes | None = None) -> api.EpochInfo | None:
        """Stake table, leader order and L1 stake epoch of an L2 epoch, or None if unknown yet.

        Epoch 0 uses the genesis snapshot. Epoch e >= 1 uses the L1 snapshot named by the
        block at the first height of epoch e - 1 *on the chain being judged* (``via`` is a
        block of that chain at or above that height; once that height is committed, the
        committed block): L1 epoch ``l1_origin // slots_per_epoch - snapshot_lag_epochs``,
        never before genesis. See docs/protocol.md, section 2.
        """
        snap = self.genesis.snapshot
        anchor_hash = self.genesis_hash
        if epoch > 0:
            anchor = self._anchor(epoch, via)
            if anchor is None:
                return None
            anchor_hash = block_hash(anchor)
            cached = self._epochs.get((epoch, anchor_hash))
            if cached is not None:
                return cached
            l1_epoch = max(
                self.genesis.snapshot.l1_epoch,
                anchor.l1_origin // self.cfg.l1_slots_per_epoch - self.cfg.snapshot_lag_epochs,
            )
            found = self._snapshots.get(l1_epoch)
            if found is None:
                return None
            snap = found
        else:
            cached = self._epochs.get((0, anchor_hash))
            if cached is not None:
                return cached
        info = api.EpochInfo.of(snap, weighted_order(snap.table(), epoch_seed(snap.seed, epoch)))
        self._epochs[(epoch, anchor_hash)] = info
        if len(self._epochs) > 32:
            self._epochs.pop(next(iter(self._epochs)))
        return info

    def _leader_after(self, parent: BlockHeader, round_: int, parent_hash: bytes) -> bytes | None:
        epoch = self._epoch_of(parent.height + 1)
        info = self.epoch_info(epoch, parent_hash)
        if info is None or round_ <= parent.round:
            return None
        same = parent.height >= 1 and self._epoch_of(parent.height) == epoch
        return leader_for(info.order, round_, parent.round, parent.proposer if same else None)

    def _leader_of_round(self, round_: int) -> bytes | None:
        parent_hash = self._qc_hash(self.high_qc)
        parent = self._headers.get(parent_hash)
        return None if parent is None else self._leader_after(parent, round_, parent_hash)

    # --- small helpers ----------------------------------------------------------------------

    def _qc_hash(self, qc: QuorumCertificate | None) -> bytes:
        return self.genesis_hash if qc is None else qc.block_hash

    @staticmethod
    def _qc_height(qc: QuorumCertificate | None) -> int:
        return 0 if qc is None else qc.height

    @staticmethod
    def _qc_round(qc: QuorumCertificate | None) -> int:
        return 0 if qc is None else qc.round

    def _timeout_ms(self) -> int:
        shift = min(self._consecutive_timeouts, 30)
        return min(self.cfg.timeout_base_ms << shift, self.cfg.timeout_max_ms)

    def _remember_verified(self, key: bytes) -> None:
        self._verified[key] = None
        if len(self._verified) > _VERIFIED_CACHE:
            self._verified.popitem(last=False)

    def _check_qc(self, qc: QuorumCertificate) -> None:
        """Raise CertificateError or _Wait unless ``qc`` is valid."""
        key = message_id(qc)
        if key in self._verified:
            return
        info = self.epoch_info(qc.epoch, qc.block_hash)
        if info is None:
            raise _Wait(f"epoch {qc.epoch} table unknown")
        if qc.epoch != self._epoch_of(qc.height):
            raise CertificateError("QC epoch does not match its height")
        verify_qc(qc, info.table, self.cfg.chain_id)
        self._remember_verified(key)
        self._votes_from_qc(qc)

    def _votes_from_qc(self, qc: QuorumCertificate) -> None:
        # Every endorsement in a valid QC is a signed vote: a double voter that split its two
        # votes between halves of the network is still caught once a QC travels.
        if qc.round + ROUND_HISTORY < self.round:
            return
        for e in qc.signatures:
            vote = vote_for(qc, e.signer, e.signature)
            prev = self._vote_slot.setdefault((e.signer, qc.round), vote)
            if prev != vote:
                self._equivocation(prev, vote, self._side_effects)

    def _check_tc(self, tc: TimeoutCertificate) -> None:
        key = message_id(tc)
        if key in self._verified:
            return
        if tc.epoch != self._epoch_of(self._qc_height(tc.high_qc) + 1):
            raise CertificateError("TC epoch does not follow its high QC")
        info = self.epoch_info(tc.epoch, self._qc_hash(tc.high_qc))
        if info is None:
            raise _Wait(f"epoch {tc.epoch} table unknown")
        verify_tc(tc, info.table, self.cfg.chain_id)
        if tc.high_qc is not None:
            self._check_qc(tc.high_qc)
        self._remember_verified(key)

    def _ask_sync(
        self, peer: api.Source, to_height: int, now_ms: int, out: list[api.Effect]
    ) -> None:
        if not isinstance(peer, bytes) or peer == self.pk:
            return
        last = self._sync_asked_ms.get(peer)
        if last is not None and now_ms - last < self.cfg.block_time_ms:
            return
        if len(self._sync_asked_ms) > 1024:
            self._sync_asked_ms.clear()
        self._sync_asked_ms[peer] = now_ms
        start = self.committed_height + 1
        top = max(start, min(to_height, start + api.MAX_SYNC_BLOCKS - 1))
        out.append(api.SendTo(peer, api.SyncRequest(start, top)))

    # --- signing ----------------------------------------------------------------------------

    def _sign(self, kind: Kind, round_: int, digest: bytes, msg: object) -> object | None:
        """Sign ``msg`` if the watermark allows; queue it for release after persistence."""
        if self.key is None or self.record is None:
            return None
        if not may_sign(self.record, kind, round_, digest):
            return None
        self.record = record_signature(self.record, kind, round_, digest, self.high_qc)
        return sign_message(msg, self.key, self.cfg.chain_id)

    def _queue(self, messages: list[object], out: list[api.Effect]) -> None:
        assert self.record is not None
        self._seq += 1
        self._pending.append(_Pending(self._seq, messages))
        out.append(api.PersistWatermark(self.record, self._seq))

    def _release(self, seq: int, now_ms: int, out: list[api.Effect]) -> None:
        ready = [p for p in self._pending if p.seq <= seq]
        self._pending = [p for p in self._pending if p.seq > seq]
        for p in ready:
            for m in p.messages:
                out.append(api.Broadcast(m))
                if self.pk is not None:
                    self._on_message(api.LocalSource.SELF, m, now_ms, out)

    # --- dispatch ---------------------------------------------------------------------------

    def _on_message(
        self, sender: api.Source, msg: object, now_ms: int, out: list[api.Effect]
    ) -> None:
        if isinstance(sender, bytes) and sender != self.pk and sender not in self._peers:
            self._peers[sender] = None
            if len(self._peers) > 64:
                self._peers.popitem(last=False)
        try:
            if isinstance(msg, Block):
                self._on_block(sender, msg, now_ms, out)
            elif isinstance(msg, Vote):
                self._on_vote(sender, msg, now_ms, out)
            elif isinstance(msg, TimeoutMessage):
                self._on_timeout(sender, msg, now_ms, out)
            elif isinstance(msg, TimeoutCertificate):
                self._check_tc(msg)
                self._on_tc(msg, now_ms, out, sender)
            elif isinstance(msg, QuorumCertificate):
                self._check_qc(msg)
                self._on_qc(sender, msg, now_ms, out)
            elif isinstance(msg, api.SyncRequest):
                self._on_sync_request(sender, msg, out)
            elif isinstance(msg, api.SyncResponse):
                self._on_certified(sender, msg.blocks, now_ms, out)
                if msg.last_tc is not None:
                    self._check_tc(msg.last_tc)
                    self._on_tc(msg.last_tc, now_ms, out, sender)
            elif isinstance(msg, Transaction):
                self._on_peer_tx(sender, msg, out)
            elif isinstance(msg, DowntimeReport):
                self._on_downtime_report(msg, out)
            else:
                self._refuse(sender, api.Fault.UNEXPECTED_MESSAGE,
                             f"unexpected {type(msg).__name__}", out)  # fmt: skip
        except CertificateError as exc:
            self._refuse(sender, _fault_of(exc), str(exc), out)
        except _Wait:
            # Usually: the message belongs to an epoch whose table this node cannot derive
            # yet because it lags behind. Catch up from the sender.
            self._ask_sync(sender, self.committed_height + api.MAX_SYNC_BLOCKS, now_ms, out)

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

    def _on_peer_tx(self, sender: api.Source, tx: Transaction, out: list[api.Effect]) -> None:
        """Pool a gossiped transaction. A bad signature is the sender's fault (an honest node
        relays only what it checked); a stale nonce or a full pool is nobody's."""
        tip = self._ledgers.get(self._qc_hash(self.high_qc), self.committed_ledger)
        res = self.mempool.add(tx, tip)
        if res.reason is RejectReason.BAD_SIGNATURE:
            self._refuse(sender, api.Fault.BAD_SIGNATURE, f"transaction: {res.detail}", out)

    def _on_tx(self, event: api.TxSubmitted, out: list[api.Effect]) -> None:
        tip = self._ledgers.get(self._qc_hash(self.high_qc), self.committed_ledger)
        res = self.mempool.add(event.tx, tip)
        reason = None if res.reason is None else res.reason.value
        out.append(api.TxResult(res.tx_hash, res.accepted, reason, res.detail))
        if res.accepted:
            # Gossip: whoever leads next needs it in its pool.
            out.append(api.Broadcast(event.tx))

    # --- evidence ---------------------------------------------------------------------------

    def _known_signer(self, who: bytes) -> bool:
        return any(who in info.table for info in self._epochs.values())

    def _equivocation(
        self, old: Proposal | Vote | Timeout, new: Proposal | Vote | Timeout, out: list[api.Effect]
    ) -> None:
        """Record evidence (once per kind, signer and round) that ``old`` and ``new``, signed
        statements of one slot, differ."""
        if signing_bytes(old, self.cfg.chain_id) == signing_bytes(new, self.cfg.chain_id):
            return
        ev: Evidence
        if isinstance(old, Proposal) and isinstance(new, Proposal):
            ev = DoubleProposal(old, new)
        elif isinstance(old, Vote) and isinstance(new, Vote):
            ev = DoubleVote(old, new)
        elif isinstance(old, Timeout) and isinstance(new, Timeout):
            ev = DoubleTimeout(old, new)
        else:  # pragma: no cover - callers pass matching kinds
            raise AssertionError("mismatched evidence kinds")
        key = (ev.kind, ev.offender, ev.round)
        if key in self._evidence_keys:
            return
        self._evidence_keys.add(key)
        self.evidence.append(ev)
        if len(self.evidence) > 1024:
            del self.evidence[0]
        out.append(api.EvidenceFound(ev, ev.offender))

    # --- proposals --------------------------------------------------------------------------

    def _on_block(
        self, sender: api.Source, block: Block, now_ms: int, out: list[api.Effect]
    ) -> None:
        h = block.header
        # Evidence first: it needs only the signature, not the (maybe unknown) epoch tables.
        if not verify_message(block.proposal, h.proposer, self.cfg.chain_id):
            raise SignatureError("bad proposal signature")
        if self._known_signer(h.proposer) and h.round + ROUND_HISTORY > self.round:
            slot = (h.proposer, h.round)
            prev = self._proposal_slot.setdefault(slot, block.proposal)
            if prev is not block.proposal:
                self._equivocation(prev, block.proposal, out)
        if block.justify is not None:
            self._check_qc(block.justify)
        if block.timeout_cert is not None:
            self._check_tc(block.timeout_cert)
        if block.justify is not None:
            self._on_qc(sender, block.justify, now_ms, out)
        if block.timeout_cert is not None:
            self._on_tc(block.timeout_cert, now_ms, out, sender)
        bh = block_hash(h)
        if bh in self._headers:
            self._maybe_vote(block, now_ms, out)
            return
        if h.parent_hash not in self._headers:
            if (
                h.height > self.committed_height
                and len(self._orphans) < self.cfg.max_pending_blocks
            ):
                waiting = self._orphans.setdefault(h.parent_hash, [])
                if len(waiting) < 8:  # a flood of siblings of one parent stays bounded
                    waiting.append(block)
            self._ask_sync(sender, h.height - 1, now_ms, out)
            return
        try:
            reason = self._validate(block, now_ms, proposal=True)
        except _Wait:
            return
        if reason is not None:
            self._refuse(sender, api.Fault.INVALID_BLOCK,
                         f"invalid block {h.height}/{h.round}: {reason}", out)  # fmt: skip
            return
        self._maybe_vote(block, now_ms, out)
        self._adopt_orphans(bh, now_ms, out)

    def _validate(self, block: Block, now_ms: int, *, proposal: bool) -> str | None:
        """Check ``block`` against its (known) parent and insert it. Reason if invalid."""
        h = block.header
        parent = self._headers[h.parent_hash]
        jhash = self._qc_hash(block.justify)
        if jhash != h.parent_hash or self._qc_round(block.justify) != parent.round:
            return "justify does not certify the parent"
        if h.height != parent.height + 1:
            return f"height {h.height} does not follow the parent's {parent.height}"
        if h.epoch != self._epoch_of(h.height):
            return f"epoch {h.epoch} is not the epoch of height {h.height}"
        if h.round <= parent.round:
            return "round does not increase"
        if h.height <= self.committed_height:
            return "height already committed"
        if len(self._headers) >= self.cfg.max_pending_blocks:
            raise _Wait("block tree full: waiting for commits to prune it")
        leader = self._leader_after(parent, h.round, h.parent_hash)
        if leader is None:
            raise _Wait("epoch table unknown")
        if h.proposer != leader:
            return "proposer is not the leader of the round"
        if h.timestamp_ms <= parent.timestamp_ms:
            return "timestamp does not increase"
        if len(block.transactions) > self.cfg.max_block_txs:
            return "too many transactions"
        if h.l1_origin < parent.l1_origin:
            return "L1 origin goes backwards"
        if proposal:
            if h.timestamp_ms > now_ms + self.cfg.max_clock_skew_ms:
                return "timestamp too far in the future"
            if h.l1_origin > self._l1_head:
                raise _Wait("L1 origin ahead of this node's L1 view")
        pledger = self._ledgers[h.parent_hash]
        if proposal:
            problem = self.forced.check_block(
                block.forced,
                start_index=pledger.forced_index(),
                l1_origin=h.l1_origin,
                window=self.cfg.sequencing_window,
            )
            if isinstance(problem, ForcedUnknown):
                raise _Wait(problem.reason)
            if problem is not None:
                return problem.reason
        if tx_root(block.transactions, block.forced) != h.tx_root:
            return "tx root mismatch"
        try:
            ledger, _ = pledger.apply_block(
                block.transactions, block.forced, proposer=h.proposer, chain_id=self.cfg.chain_id
            )
        except InvalidBlock as exc:
            return f"execution failed: {exc.reason}"
        if ledger.state_root() != h.state_root:
            return "state root mismatch"
        if ledger.forced_index() != h.forced_index:
            return "forced index mismatch"
        bh = block_hash(h)
        self._headers[bh] = h
        self._blocks[bh] = block
        self._ledgers[bh] = ledger
        if proposal:
            self._fully_checked.add(bh)
        self._note_certified(bh)
        if block.justify is not None:
            self._qc_of.setdefault(block.justify.block_hash, block.justify)
        return None

    def _adopt_orphans(self, parent: bytes, now_ms: int, out: list[api.Effect]) -> None:
        queue = [parent]
        while queue:
            for child in self._orphans.pop(queue.pop(), []):
                ch = block_hash(child.header)
                if ch in self._headers:
                    continue
                try:
                    if self._validate(child, now_ms, proposal=True) is None:
                        self._maybe_vote(child, now_ms, out)
                        queue.append(ch)
                except _Wait:
                    continue
                if ch in self._qc_of:
                    self._try_commit(ch, out)

    def _maybe_vote(self, block: Block, now_ms: int, out: list[api.Effect]) -> None:
        h = block.header
        if self.pk is None or h.round != self.round:
            return
        if h.round <= self.record_round(Kind.VOTE) or h.round <= self.record_round(Kind.TIMEOUT):
            return
        jr = self._qc_round(block.justify)
        tc = block.timeout_cert
        ok = jr + 1 == h.round or (
            tc is not None and tc.round + 1 == h.round and jr >= self._qc_round(tc.high_qc)
        )
        if not ok:
            return
        bh = block_hash(h)
        if bh not in self._fully_checked:
            return  # known only from catch-up: its proposal-time checks never ran here
        vote = Vote(bh, h.height, h.round, h.epoch, self.pk, bytes(64))
        signed = self._sign(Kind.VOTE, h.round, bh, vote)
        if signed is not None:
            self._queue([signed], out)

    def record_round(self, kind: Kind) -> int:
        r = self.record
        if r is None:
            return 0
        if kind is Kind.VOTE:
            return r.vote_round
        if kind is Kind.TIMEOUT:
            return r.timeout_round
        return r.proposal_round

    # --- votes and QCs ----------------------------------------------------------------------

    def _on_vote(self, sender: api.Source, vote: Vote, now_ms: int, out: list[api.Effect]) -> None:
        if vote.round + ROUND_HISTORY < self.round:
            return
        if vote.round > self.round + self.cfg.max_future_rounds:
            return
        slot = (vote.voter, vote.round)
        prev = self._vote_slot.get(slot)
        if prev == vote:
            return
        if not self._known_signer(vote.voter):
            return
        if not verify_message(vote, vote.voter, self.cfg.chain_id):
            raise SignatureError("bad vote signature")
        if prev is not None:
            self._equivocation(prev, vote, out)
            return
        self._vote_slot[slot] = vote
        bucket = self._votes.setdefault((vote.round, vote.block_hash), {})
        bucket[vote.voter] = vote
        if vote.block_hash in self._qc_of and self._qc_of[vote.block_hash].round == vote.round:
            return
        info = self.epoch_info(vote.epoch, vote.block_hash)
        if info is None or vote.epoch != self._epoch_of(vote.height):
            return
        table = info.table
        votes = [v for v in bucket.values() if v.epoch == vote.epoch and v.height == vote.height]
        stake = sum(table.get(v.voter, 0) for v in votes)
        if not has_quorum(stake, sum(table.values())):
            return
        sigs = tuple(
            Endorsement(v.voter, v.signature)
            for v in sorted(votes, key=lambda v: v.voter)
            if table.get(v.voter, 0) > 0
        )
        qc = QuorumCertificate(vote.block_hash, vote.height, vote.round, vote.epoch, sigs)
        self._remember_verified(message_id(qc))
        self._on_qc(sender, qc, now_ms, out)

    def _on_qc(
        self, sender: api.Source, qc: QuorumCertificate, now_ms: int, out: list[api.Effect]
    ) -> None:
        known = self._qc_of.get(qc.block_hash)
        if known is None:
            self._qc_of[qc.block_hash] = qc
        self._note_certified(qc.block_hash)
        if qc.round > self._qc_round(self.high_qc):
            self.high_qc = qc
        self._enter_round(qc.round + 1, now_ms, api.RoundCause.QC, out)
        if qc.block_hash in self._headers:
            self._try_commit(qc.block_hash, out)
        elif qc.height > self.committed_height:
            self._ask_sync(sender, qc.height, now_ms, out)

    def _note_certified(self, bh: bytes) -> None:
        """Emit BlockCertified once per block that has both its body and a QC here."""
        if bh in self._certified_emitted or bh not in self._blocks or bh not in self._qc_of:
            return
        if self._headers[bh].height <= self.committed_height:
            return
        self._certified_emitted.add(bh)
        self._side_effects.append(
            api.BlockCertified(CertifiedBlock(self._blocks[bh], self._qc_of[bh]))
        )

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
        self._prune()
        out.append(api.RoundChanged(round_, self._epoch_of(self._qc_height(self.high_qc) + 1),
                                    self._leader_of_round(round_), via))  # fmt: skip

    def _prune(self) -> None:
        floor = self.round - ROUND_HISTORY
        if floor <= 0:
            return
        for d in (self._vote_slot, self._proposal_slot, self._timeout_slot):
            for k in [k for k in d if k[1] < floor]:
                del d[k]
        for k2 in [k for k in self._votes if k[0] < floor]:
            del self._votes[k2]
        for r in [r for r in self._timeouts if r < floor]:
            del self._timeouts[r]
        for k3 in [k for k in self._timeout_qcs if k[0] < floor]:
            del self._timeout_qcs[k3]
        self._evidence_keys = {k for k in self._evidence_keys if k[2] >= floor}

    # --- commit -----------------------------------------------------------------------------

    def _try_commit(self, certified: bytes, out: list[api.Effect]) -> None:
        child = self._headers.get(certified)
        if child is None or child.height == 0:
            return
        parent = self._headers.get(child.parent_hash)
        if parent is None or parent.height <= self.committed_height:
            return
        if child.round != parent.round + 1:
            return
        self._commit_to(child.parent_hash, out)

    def _commit_to(self, target: bytes, out: list[api.Effect]) -> None:
        path: list[bytes] = []
        cur = target
        while cur != self.committed_hash:
            header = self._headers.get(cur)
            if header is None or header.height <= self.committed_height:
                raise AssertionError(
                    "SAFETY: a block to commit does not extend the committed chain"
                )
            path.append(cur)
            cur = header.parent_hash
        for bh in reversed(path):
            self._commit_one(bh, out)
        self._prune_tree()

    def _commit_one(self, bh: bytes, out: list[api.Effect]) -> None:
        header = self._headers[bh]
        block = self._blocks[bh]
        qc = self._qc_of[bh]
        parent = self._headers[header.parent_hash]
        cb = CertifiedBlock(block, qc)
        self.committed_height = header.height
        self.committed_hash = bh
        self._recent[header.height] = cb
        self._recent_heights[bh] = header.height
        if len(self._recent) > RECENT_COMMITTED:
            _, old = self._recent.popitem(last=False)
            self._recent_heights.pop(block_hash(old.block.header), None)
        if header.height == self._first_height(header.epoch):
            self._epoch_first[header.epoch] = header
        ledger = self._ledgers[bh]
        self.mempool.remove_committed(ledger)
        self.forced.mark_consumed(ledger.forced_index())
        out.append(api.BlockCommitted(cb, ledger.state_root()))
        self._account_downtime(header, parent, qc, out)

    def _prune_tree(self) -> None:
        keep = self.committed_height
        for bh in [b for b, h in self._headers.items() if h.height < keep or (
                h.height == keep and b != self.committed_hash)]:  # fmt: skip
            if bh == self.genesis_hash:
                continue
            self._headers.pop(bh, None)
            self._fully_checked.discard(bh)
            self._certified_emitted.discard(bh)
            self._blocks.pop(bh, None)
            self._ledgers.pop(bh, None)
            self._qc_of.pop(bh, None)
        for ph in [p for p, kids in self._orphans.items()
                   if all(k.header.height <= keep for k in kids)]:  # fmt: skip
            del self._orphans[ph]
        if self.genesis_hash != self.committed_hash:
            self._ledgers.pop(self.genesis_hash, None)

    def _replay(self, chain: Sequence[CertifiedBlock]) -> None:
        """Adopt the node's own stored committed chain (trusted: it committed it before)."""
        sink: list[api.Effect] = []
        for cb in chain:
            block = cb.block
            h = block.header
            bh = block_hash(h)
            if h.parent_hash != self.committed_hash or cb.qc.block_hash != bh:
                raise ValueError(f"stored chain is broken at height {h.height}")
            parent_ledger = self._ledgers[h.parent_hash]
            try:
                # chain_id: forced entries' signatures are checked exactly as when the block
                # was first executed (a forged entry is skipped); without it the replay would
                # execute the forgery and disagree with the stored state root.
                ledger, _ = parent_ledger.apply_block(
                    block.transactions,
                    block.forced,
                    proposer=h.proposer,
                    chain_id=self.cfg.chain_id,
                )
            except InvalidBlock as exc:
                raise ValueError(f"stored block {h.height} does not execute: {exc}") from exc
            if ledger.state_root() != h.state_root:
                raise ValueError(f"stored block {h.height} has a wrong state root")
            self._headers[bh] = h
            self._blocks[bh] = block
            self._ledgers[bh] = ledger
            self._qc_of[bh] = cb.qc
            self._commit_one(bh, sink)
            if cb.qc.round > self._qc_round(self.high_qc):
                self.high_qc = cb.qc
            self._prune_tree()
        self.round = max(self.round, self._qc_round(self.high_qc) + 1)

    # --- timeouts ---------------------------------------------------------------------------

    def _local_timeout(self, now_ms: int, out: list[api.Effect]) -> None:
        self._deadline_ms = now_ms + self._timeout_ms()
        if self.pk is None:
            return
        if self._my_timeout is not None and self._my_timeout.timeout.round == self.round:
            # Retransmit, but never before the shell acknowledged the watermark.
            if not any(m is self._my_timeout for p in self._pending for m in p.messages):
                out.append(api.Broadcast(self._my_timeout))
            return
        hq = self.high_qc
        t = Timeout(
            self.round,
            self._epoch_of(self._qc_height(hq) + 1),
            self._qc_round(hq),
            self._qc_hash(hq) if hq is not None else ZERO_HASH,
            self.pk,
            bytes(64),
        )
        signed = self._sign(Kind.TIMEOUT, self.round, message_id(t), t)
        if signed is None:
            return
        assert isinstance(signed, Timeout)
        self._my_timeout = TimeoutMessage(signed, hq)
        self._queue([self._my_timeout], out)

    def _on_timeout(
        self, sender: api.Source, tm: TimeoutMessage, now_ms: int, out: list[api.Effect]
    ) -> None:
        t = tm.timeout
        if t.round > self.round + self.cfg.max_future_rounds:
            return
        slot = (t.voter, t.round)
        prev = self._timeout_slot.get(slot)
        if prev != t:
            if not self._known_signer(t.voter):
                return
            if not verify_message(t, t.voter, self.cfg.chain_id):
                raise SignatureError("bad timeout signature")
            if prev is not None:
                self._equivocation(prev, t, out)
                return
            if t.round + ROUND_HISTORY >= self.round:
                self._timeout_slot[slot] = t
        if tm.high_qc is not None:
            if (tm.high_qc.round, tm.high_qc.block_hash) != (t.high_qc_round, t.high_qc_block):
                raise CertificateError("timeout message carries another QC than it names")
            self._check_qc(tm.high_qc)
        elif t.high_qc_round != 0:
            raise CertificateError("timeout names a QC it does not carry")
        if t.round + ROUND_HISTORY >= self.round and self._timeout_slot.get(slot) == t:
            self._timeouts.setdefault(t.round, {})[t.voter] = t
        if tm.high_qc is not None:
            self._timeout_qcs[(tm.high_qc.round, tm.high_qc.block_hash)] = tm.high_qc
            self._on_qc(sender, tm.high_qc, now_ms, out)
        if t.round < self.round:
            if isinstance(sender, bytes):
                self._help(sender, t, now_ms, out)
            return
        self._try_form_tc(t.round, now_ms, out)

    def _try_form_tc(self, round_: int, now_ms: int, out: list[api.Effect]) -> None:
        if self.last_tc is not None and self.last_tc.round >= round_:
            return
        timeouts = [
            t
            for t in self._timeouts.get(round_, {}).values()
            if t.high_qc_round == 0 or (t.high_qc_round, t.high_qc_block) in self._timeout_qcs
        ]
        # The TC's high QC must be the highest among the timeouts it carries, and its epoch
        # (whose table counts the stake) follows that QC; filtering by the table can change
        # the highest, so settle both together (a few passes at most).
        usable = timeouts
        for _ in range(3):
            if not usable:
                return
            best = max(usable, key=lambda t: t.high_qc_round)
            high_qc = self._timeout_qcs.get((best.high_qc_round, best.high_qc_block))
            epoch = self._epoch_of(self._qc_height(high_qc) + 1)
            info = self.epoch_info(epoch, self._qc_hash(high_qc))
            if info is None:
                return
            table = info.table
            kept = [t for t in usable if t.epoch <= epoch and table.get(t.voter, 0) > 0]
            if len(kept) == len(usable):
                break
            usable = kept
        else:
            return
        usable = sorted(usable, key=lambda t: t.voter)
        top = max(usable, key=lambda t: t.high_qc_round)  # what verify_tc will pick
        if (top.high_qc_round, top.high_qc_block) != (best.high_qc_round, best.high_qc_block):
            return
        if not has_quorum(sum(table[t.voter] for t in usable), sum(table.values())):
            return
        tc = TimeoutCertificate(round_, epoch, tuple(usable), high_qc)
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
        last = self._helped_ms.get(peer)
        if last is not None and now_ms - last < self.cfg.block_time_ms:
            return
        self._helped_ms[peer] = now_ms
        if len(self._helped_ms) > 1024:
            self._helped_ms.clear()
        blocks = self._certified_range(self._qc_height_of_round(t), self._qc_height(self.high_qc))
        out.append(api.SendTo(peer, api.SyncResponse(tuple(blocks), self.last_tc)))

    def _qc_height_of_round(self, t: Timeout) -> int:
        header = self._headers.get(t.high_qc_block)
        if header is not None:
            return header.height + 1
        return self._recent_heights.get(t.high_qc_block, 0) + 1

    # --- catch-up ---------------------------------------------------------------------------

    def _certified_range(self, start: int, end: int) -> list[CertifiedBlock]:
        """Certified blocks with heights in [start, end]: committed ones, then the certified
        chain up to the high QC. At most MAX_SYNC_BLOCKS."""
        out: list[CertifiedBlock] = []
        start = max(start, 1)
        end = min(end, start + api.MAX_SYNC_BLOCKS - 1)
        for h in range(start, min(end, self.committed_height) + 1):
            cb = self._recent.get(h)
            if cb is not None:
                out.append(cb)
        if end > self.committed_height:
            chain: list[CertifiedBlock] = []
            cur = self._qc_hash(self.high_qc)
            while cur in self._blocks and self._headers[cur].height > self.committed_height:
                qc = self._qc_of.get(cur)
                if qc is None:
                    break
                chain.append(CertifiedBlock(self._blocks[cur], qc))
                cur = self._headers[cur].parent_hash
            for cb in reversed(chain):
                if start <= cb.block.header.height <= end:
                    out.append(cb)
        return out[: api.MAX_SYNC_BLOCKS]

    def _on_sync_request(
        self, sender: api.Source, req: api.SyncRequest, out: list[api.Effect]
    ) -> None:
        if req.to_height < req.from_height or not isinstance(sender, bytes):
            return
        blocks = self._certified_range(req.from_height, req.to_height)
        if blocks or self.last_tc is not None:
            out.append(api.SendTo(sender, api.SyncResponse(tuple(blocks), self.last_tc)))

    def _on_certified(
        self,
        sender: api.Source,
        blocks: Iterable[CertifiedBlock],
        now_ms: int,
        out: list[api.Effect],
    ) -> None:
        for cb in blocks:
            h = cb.block.header
            bh = block_hash(h)
            if cb.qc.block_hash != bh or cb.qc.height != h.height or cb.qc.round != h.round:
                raise CertificateError("certified block and QC do not match")
            if h.height <= self.committed_height:
                continue
            if bh not in self._headers:
                if h.parent_hash not in self._headers:
                    self._ask_sync(sender, h.height, now_ms, out)
                    return
                if cb.block.justify is not None:
                    self._check_qc(cb.block.justify)
                self._check_qc(cb.qc)
                if not verify_message(cb.block.proposal, h.proposer, self.cfg.chain_id):
                    raise SignatureError("bad proposal signature in a certified block")
                reason = self._validate(cb.block, now_ms, proposal=False)
                if reason is not None:
                    raise CertificateError(f"certified block {h.height} is invalid: {reason}")
            else:
                self._check_qc(cb.qc)
            if cb.block.justify is not None:
                self._on_qc(sender, cb.block.justify, now_ms, out)
            self._on_qc(sender, cb.qc, now_ms, out)
            self._adopt_orphans(bh, now_ms, out)

    # --- proposing --------------------------------------------------------------------------

    def _step(self, now_ms: int, out: list[api.Effect]) -> None:
        if self.pk is None or self.record is None:
            return
        if self.round <= self.record.proposal_round:
            return
        parent_hash = self._qc_hash(self.high_qc)
        parent = self._headers.get(parent_hash)
        if parent is None or parent_hash not in self._ledgers:
            return
        key = (self.round, parent_hash)
        if self._leader_memo is None or self._leader_memo[0] != key:
            leader = self._leader_after(parent, self.round, parent_hash)
            if leader is None:
                return  # table not known yet: ask again next time (no memo)
            self._leader_memo = (key, leader)
        if self._leader_memo[1] != self.pk:
            return
        jr = self._qc_round(self.high_qc)
        tc = None
        if jr + 1 != self.round:
            if self.last_tc is None or self.last_tc.round + 1 != self.round:
                return
            tc = self.last_tc
        if now_ms < parent.timestamp_ms + self.cfg.block_time_ms and tc is None:
            return
        if self.round <= self.record.timeout_round:
            return
        self._propose(parent_hash, parent, tc, now_ms, out)

    def _propose(
        self,
        parent_hash: bytes,
        parent: BlockHeader,
        tc: TimeoutCertificate | None,
        now_ms: int,
        out: list[api.Effect],
    ) -> None:
        assert self.pk is not None
        pledger = self._ledgers[parent_hash]
        l1_origin = max(parent.l1_origin, min(self._l1_finalized, self._l1_head))
        forced = self.forced.available(
            l1_origin, self.cfg.max_block_forced, from_index=pledger.forced_index()
        )
        candidates = self.mempool.select(pledger, self.cfg.max_block_txs)
        # Forced entries run first and may spend a balance or nonce the selection counted
        # on: leave out only the candidates that fail instead of proposing an empty block.
        ledger, txs, _, _ = pledger.build_block(
            candidates, forced, proposer=self.pk, chain_id=self.cfg.chain_id
        )
        height = parent.height + 1
        header = BlockHeader(
            height, self.round, self._epoch_of(height), parent_hash,
            max(now_ms, parent.timestamp_ms + 1), self.pk, tx_root(txs, forced),
            ledger.state_root(), ledger.forced_index(), l1_origin,
        )  # fmt: skip
        proposal = self._sign(Kind.PROPOSAL, self.round, block_hash(header),
                              Proposal(header, bytes(64)))  # fmt: skip
        if proposal is None:
            return
        assert isinstance(proposal, Proposal)
        block = Block(proposal, tuple(txs), tuple(forced), self.high_qc, tc)
        self._queue([block], out)

    # --- downtime ---------------------------------------------------------------------------

    def _account_downtime(
        self, header: BlockHeader, parent: BlockHeader, qc: QuorumCertificate, out: list[api.Effect]
    ) -> None:
        info = self.epoch_info(header.epoch)
        if info is None:
            return
        table, order, stake_epoch = info.table, info.order, info.stake_epoch
        same = parent.height >= 1 and self._epoch_of(parent.height) == header.epoch
        failed = [
            leader_for(order, r, parent.round, parent.proposer if same else None)
            for r in range(parent.round + 1, min(header.round, parent.round + 1 + len(order) * 4))
        ]
        found = self._downtime.on_commit(
            header.height,
            failed_leaders=failed,
            proposer=header.proposer,
            members=sorted(table),
            voters={e.signer for e in qc.signatures},
        )
        if self.key is None or self.pk is None or self.pk not in table:
            return
        for f in found:
            report = DowntimeReport(
                stake_epoch, f.offender, f.from_height, f.to_height,
                min(f.missed, 2**32 - 1), min(f.duties, 2**32 - 1), self.pk, bytes(64),
            )  # fmt: skip
            signed = sign_message(report, self.key, self.cfg.chain_id)
            out.append(api.Broadcast(signed))
            self._on_downtime_report(signed, out)

    def _on_downtime_report(self, r: DowntimeReport, out: list[api.Effect]) -> None:
        key = (r.stake_epoch, r.offender, r.from_height, r.to_height, r.missed, r.duties)
        if key in self._downtime_done:
            return
        infos = self._epochs.values()
        table = next((i.table for i in infos if i.stake_epoch == r.stake_epoch), None)
        if table is None or table.get(r.signer, 0) <= 0:
            return
        if not verify_message(r, r.signer, self.cfg.chain_id):
            raise SignatureError("bad downtime report signature")
        bucket = self._downtime_reports.setdefault(key, {})
        if len(self._downtime_reports) > 1024:
            self._downtime_reports.pop(next(iter(self._downtime_reports)))
        bucket[r.signer] = r
        if not has_quorum(sum(table.get(s, 0) for s in bucket), sum(table.values())):
            return
        self._downtime_done.add(key)
        del self._downtime_reports[key]
        sigs = tuple(Endorsement(s, bucket[s].signature) for s in sorted(bucket))
        out.append(api.DowntimeCertificateReady(DowntimeCertificate(r, sigs)))


__all__ = ["SequencerCore"]
