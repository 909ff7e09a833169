"""The node runner: one sequencer process built from the core, the store, the peer manager,
the L1 watcher, the RPC server and (when present) the batcher.

Theory of operation
-------------------
* **Restore.** The store is opened (and the data directory locked), the watermark and the
  stored certified chain are read, and the core is rebuilt from the newest usable snapshot
  plus the blocks above it (the core re-executes them and checks every state root). A snapshot
  that does not decode, whose ledger is not its block's state or whose blocks are not the
  stored ones is logged and skipped (the older one, else a full replay from height 1).
  ``BlockCommitted`` writes take a new snapshot every ``snapshot_every`` heights, in the same
  transaction as the block it describes; the store keeps the newest two.
* **One owner.** A single task owns the core. It consumes ONE bounded channel into which
  everything else feeds: peer messages (forwarded from the peer manager), transaction
  submissions from the RPC (each with a slot for its answer), and L1 events from the follower;
  a tick lets time pass, every ``tick_s`` while the core has timed work and otherwise at the
  core's next deadline (``SequencerCore.next_tick_ms``, at most ``idle_tick_s`` apart: an
  idle follower sleeps instead of waking 20 times a second). It waits once per batch of
  inputs, not once per input: after the first it takes what is already queued (at most
  ``_DRAIN_MAX``), feeds them to the core one by one, and writes what they committed once
  (issue 13: the per-item wait and cancel scope were a large share of a node's CPU under
  load). RPC *reads* (status, blocks, accounts) look at the core between two events; Trio's
  cooperative scheduling makes each read consistent.
* **Effects in order.** ``PersistWatermark`` is written and fsynced with the blocks its
  signatures vouch for (:meth:`Store.write_watermark`, in a worker thread while the core task
  waits: the fsync does not stall the event loop) and ``WatermarkPersisted`` is fed back at
  once, before any other input, so a signature never leaves before its record is durable,
  nor a vote or QC before its block is. ``BlockCertified`` blocks are kept until committed;
  on restart they (and the voted blocks whose QC is known) go back to the core. ``Broadcast`` /
  ``SendTo`` go to the peer manager (client transactions through the ingress batcher, as
  ``TxBatch`` frames). ``BlockCommitted`` is written to the store (one transaction per batch
  of handled inputs, off the event loop, before the next batch), then handed to the batcher
  and the metrics. Evidence and downtime certificates go to the follower's bounded L1
  submission queue. ``TxResult`` answers the waiting RPC request. ``PeerMisbehaved`` charges
  the peer.
* **Acknowledged means durable.** A client transaction the core accepts is journaled in the
  store (:meth:`Store.journal_txs`, fsynced) before the RPC answers "pending": a journal task
  writes everything accepted since its last write in one transaction (group commit), then
  releases those answers. Committed blocks drop their transactions from the journal in the
  transaction that stores them. On start the node gives the journal back to its core, in
  acknowledgement order, once its peers and RPC are up, so a transaction acknowledged just
  before a crash is gossiped and certified after the restart.
* **Gossip hygiene.** A validate hook (:meth:`Node.check_peer_message`) checks the signature
  of votes, proposals and timeouts, and of every transaction of a gossiped batch, before the
  peer manager relays them, so a bad signature is charged to the peer that sent it (once per
  forged item) and never travels on (a relaying honest node is never blamed for it). The same
  hook holds each peer to a catch-up budget (``SyncRequest``s per second, any range).
* **Compact blocks.** Blocks this node broadcasts go out as ``CompactBlock`` (batch digests
  and picks instead of transaction bodies) when that references a ``TxBatch``; on the way in,
  before the core's input queue, :class:`~sequencer_node.shell.compact.CompactBlocks` rebuilds
  them, or asks their proposer for the full block (``BlockRequest``), and answers such
  requests: the core only ever sees full blocks (:mod:`sequencer_node.shell.compact`).
* **Shutdown.** :meth:`Node.stop` (SIGTERM/SIGINT in the CLI): the RPC stops accepting, the
  core loop stops, pending store writes finish, peers are closed, the store is closed; all
  within ``shutdown_timeout_s``, after which the rest is cancelled.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import msgpack
import trio

from sequencer_node.batcher.config import BatcherConfig, DaMode
from sequencer_node.batcher.messages import BatchProposal
from sequencer_node.batcher.service import BatcherService
from sequencer_node.clients.da import DAClient
from sequencer_node.clients.l1 import L1Client, L1Error, L1Poll, SequencerInfo
from sequencer_node.core import api
from sequencer_node.core.fees import L1FeeInfo
from sequencer_node.core.ledger import verify_tx_signature
from sequencer_node.core.sequencer import RECENT_COMMITTED, SequencerCore
from sequencer_node.core.watermark import decode_record
from sequencer_node.genesis import L2Genesis
from sequencer_node.shell.api_views import ApiViews, StoredHead
from sequencer_node.shell.byzantine import Byzantine, Strategy
from sequencer_node.shell.compact import CompactBlocks, check_structure
from sequencer_node.shell.eth_rpc import eth_route
from sequencer_node.shell.fee_accounting import FeeAccounting
from sequencer_node.shell.l1_watcher import L1Event, L1Watcher, connect_l1
from sequencer_node.shell.metrics import NodeMetrics
from sequencer_node.shell.p2p_messages import BlockRequest, CompactBlock, TxBatch
from sequencer_node.shell.peers import PeerAddress, PeerConfig, PeerManager, run_tx_ingress
from sequencer_node.shell.rpc import Overloaded, serve_rpc
from sequencer_node.shell.scoring import Offense, RequestBudget
from sequencer_node.shell.signature_workers import SignatureWorkers
from sequencer_node.shell.stalls import install_from_env, write_summary
from sequencer_node.shell.store import DB_FILENAME, Store
from sequencer_node.system.files import DirectoryInUse, atomic_write, lock_directory
from sequencer_node.wire.codec import decode, encode, message_id
from sequencer_node.wire.crypto import SigningKey, verify_message
from sequencer_node.wire.eth import EthTransaction, decode_checked, eth_tx_hash
from sequencer_node.wire.hexstr import opt_hex
from sequencer_node.wire.messages import (
    BatchApproval,
    Block,
    CertifiedBlock,
    Timeout,
    TimeoutMessage,
    Transaction,
    Vote,
    block_hash,
)
from sequencer_node.wire.messages import tx_hash as transaction_hash

log = logging.getLogger(__name__)

#: Identity recorded in the data directory of a node that runs without a signing key.
FOLLOWER_IDENTITY = bytes(32)
_TX_INDEX = 200_000
#: Catch-up requests starting this far below the committed head are answered from the store
#: (the core keeps only the latest RECENT_COMMITTED blocks in memory).
_STORE_SYNC_LAG = RECENT_COMMITTED // 2
#: How long a restarted node waits for a first peer before re-submitting its journal.
_RESUBMIT_PEER_WAIT_S = 10.0
#: Mempool refusals after which a journaled transaction can never be included.
_NEVER_INCLUDED = frozenset({"nonce_too_low", "bad_signature"})
#: Committed blocks below a restart's snapshot whose transactions are indexed again (status).
_INDEX_BELOW_SNAPSHOT = 256
#: Least time between two catch-up answers served from the store to one peer.
_OLD_SYNC_INTERVAL_S = 0.05
#: Catch-up requests one peer may send (any range): an honest core asks a peer at most once
#: per block time, so this is several times what a lagging honest node needs.
_SYNC_REQUESTS_PER_S = 20.0
_SYNC_REQUEST_BURST = 40.0
#: Inputs the core-owning task takes from its channel per wait (the tick is checked between
#: two batches, so this bounds how late a tick can be: a few ms of inputs).
_DRAIN_MAX = 64
#: How long the core task works through a batch of inputs before it lets other tasks run.
_BATCH_SLICE_S = 0.002
LOCK_FILENAME = "LOCK"
#: Peer messages that pass through the compact-block state on their way to the core.
_COMPACT_TYPES = (TxBatch, CompactBlock, BlockRequest, Block)
#: Gossiped client transactions (not pooled while the node is catching up).
_TX_GOSSIP = (TxBatch, Transaction, EthTransaction)
#: Seed of the p2p identity of a node that runs without a signing key.
P2P_IDENTITY_FILENAME = "p2p-identity.key"


class NodeStartError(Exception):
    """The node cannot start; the message says what is wrong and what to do."""


@dataclass(frozen=True, slots=True)
class NodeSettings:
    data_dir: Path
    genesis: L2Genesis
    key: SigningKey | None
    l1_url: str = "http://127.0.0.1:8545"
    p2p_host: str = "0.0.0.0"
    p2p_port: int = 9000
    peers: tuple[PeerAddress, ...] = ()
    rpc_host: str = "127.0.0.1"
    rpc_port: int = 8600
    da: DaMode = "blobs"
    #: The external DA node (``da = "extda"``), and the failover to blobs after it has been
    #: unavailable this long (docs/da.md).
    da_url: str | None = None
    da_failover_s: float = 30.0
    #: How often the core's clock ticks while it has timed work (the leader pacing its
    #: proposals, a restore, a missing block) ...
    tick_s: float = 0.05
    #: ... and at most this long apart otherwise: an idle follower ticks at its round deadline
    #: (``SequencerCore.next_tick_ms``) or after this, whichever is first.
    idle_tick_s: float = 0.5
    l1_poll_s: float = 1.0
    l1_start_timeout_s: float = 30.0
    shutdown_timeout_s: float = 10.0
    inbound_buffer: int = 4096
    tx_wait_s: float = 5.0
    #: Ingress bounds (issue 13): client transactions are refused (429) while the mempool
    #: holds this many that no certified block holds yet (``core.backlog_size``: those of
    #: certified blocks wait only for their commit), or this many wait in the input queue for
    #: the core. Past saturation, admitting everything spent the CPU on transactions the
    #: chain could not order. 2,000 is one full block (``max_block_txs``): a smaller backlog
    #: bound keeps a leader from filling its blocks (1,000 capped 1 s blocks at ~700 tx/s).
    ingress_max_pool: int = 2_000
    ingress_max_queued: int = 1_024
    #: A node more than this many certified blocks behind (``core.blocks_behind``) is
    #: catching up: it refuses its own clients (503 ``CATCHING_UP``) and leaves gossiped
    #: client transactions unchecked and out of its pool, until it is at most a quarter of
    #: this behind again. Checking and pooling them cost it as much per transaction as the
    #: nodes that keep up spend, so under load it never caught up (docs/protocol.md section
    #: 7). 0: never. A node that keeps up is 0 behind (it holds its high QC's block), and a
    #: QC for a block still on its way counts 1-2.
    catch_up_blocks: int = 8
    #: Worker threads that check transfer signatures off the event loop (gossiped batches,
    #: client requests; :mod:`~sequencer_node.shell.signature_workers`). 0: off (the
    #: default: measured slower below saturation on 2 cores); None: one per core.
    signature_threads: int | None = 0
    peer_config: PeerConfig = field(default_factory=PeerConfig)
    #: Extra identities allowed as peers besides the genesis validators and the keys
    #: registered on L1 (tests, private networks).
    allow_peers: frozenset[bytes] = frozenset()
    #: Run the batcher (``--no-batcher``: off).
    batcher: bool = True
    #: Cut a batch when its oldest block is this old (None: the batcher's default).
    batch_max_age_ms: int | None = None
    #: Node-local CoreConfig bounds (mempool sizes...).
    core_overrides: dict[str, int] = field(default_factory=dict)
    #: Committed heights between two snapshots of the committed state (0: never write one).
    snapshot_every: int = 1_000
    #: Misbehave on purpose (fault tests only: :mod:`~sequencer_node.shell.byzantine`).
    byzantine: frozenset[Strategy] = frozenset()


@dataclass(frozen=True, slots=True)
class NodeAddresses:
    p2p_port: int
    rpc_url: str


@dataclass(slots=True)
class _TxRequest:
    """Client transactions handed to the core-owning task as one input (a whole ``POST
    /v1/txs`` batch is one: one channel item and one event instead of one per transaction)."""

    txs: Sequence[Transaction | EthTransaction]
    done: trio.Event = field(default_factory=trio.Event)
    #: The core's answer for each of ``txs``, in order (filled by the core-owning task).
    results: list[api.TxResult | None] = field(default_factory=list)
    #: Re-submitted from the journal after a restart (nobody waits for the answer).
    replayed: bool = False

    @property
    def result(self) -> api.TxResult | None:
        """The answer for the first (of a single transaction: the) transaction."""
        return self.results[0] if self.results else None

    def accepted(self) -> Iterator[tuple[bytes, Transaction | EthTransaction]]:
        """(hash, transaction) of each one the core accepted."""
        for tx, r in zip(self.txs, self.results, strict=False):
            if r is not None and r.accepted:
                yield r.tx_hash, tx


def _hash_of(tx: Transaction | EthTransaction) -> bytes:
    return eth_tx_hash(tx) if isinstance(tx, EthTransaction) else transaction_hash(tx)


def _tx_hashes(block: Block) -> Iterator[bytes]:
    """The hashes a client knows a block's transactions by (Ethereum ones: keccak256)."""
    for tx in block.transactions:
        yield message_id(tx)
    for etx in block.eth_transactions:
        yield eth_tx_hash(etx)


@dataclass(frozen=True, slots=True)
class _PeerInput:
    sender: bytes
    message: object


#: Everything the core-owning task consumes, from its one input channel.
_Input = _PeerInput | _TxRequest | L1Event


def _describe(item: _Input) -> str:
    """An input, for the stall diagnosis: its type (and size of a batch)."""
    if isinstance(item, _PeerInput):
        msg = item.message
        n = len(msg.transactions) if isinstance(msg, TxBatch) else None
        return type(msg).__name__ + ("" if n is None else f"({n})")
    if isinstance(item, _TxRequest):
        return f"TxRequest({len(item.txs)})"
    return type(item).__name__


def offense_for(offense: api.Offense) -> Offense:
    """The scoring offense for what the core found wrong with a peer's input."""
    if offense.fault is api.Fault.BAD_SIGNATURE:
        return Offense.INVALID_SIGNATURE
    return Offense.INVALID_MESSAGE


def lock_data_dir(data_dir: Path) -> int:
    """Lock ``data_dir`` for this process (created if missing); returns the lock's descriptor
    (close it to unlock). Raises NodeStartError if another node process holds it."""
    try:
        return lock_directory(data_dir, LOCK_FILENAME)
    except DirectoryInUse:
        raise NodeStartError(
            f"{data_dir} is in use by another node process (lock {data_dir / LOCK_FILENAME}); "
            "stop it first, or give this node its own --data-dir"
        ) from None


def _find_os_error(exc: BaseException) -> OSError | None:
    if isinstance(exc, OSError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _find_os_error(inner)
            if found is not None:
                return found
    return None


def _os_error(exc: BaseException) -> OSError:
    """The OSError inside ``exc`` (possibly nested in exception groups), else re-raise."""
    found = _find_os_error(exc)
    if found is None:
        raise exc
    return found


def restore_certified(
    store: Store, persisted: api.PersistedState | None, committed_height: int
) -> list[CertifiedBlock]:
    """The stored blocks above the committed chain that a restart can rebuild on: each one
    whose QC is known (stored with it, carried by a stored child as its justify, or the
    watermark's high QC), in height order."""
    rows = [(b, qc) for b, qc in store.uncommitted() if b.header.height > committed_height]
    qcs = {qc.block_hash: qc for _, qc in rows if qc is not None}
    for block, _ in rows:
        if block.justify is not None:
            qcs.setdefault(block.justify.block_hash, block.justify)
    if persisted is not None and persisted.high_qc is not None:
        qcs.setdefault(persisted.high_qc.block_hash, persisted.high_qc)
    out = []
    for block, _ in rows:
        qc = qcs.get(block_hash(block.header))
        if qc is not None:
            out.append(CertifiedBlock(block, qc))
    return out


def restore_uncertified(store: Store, committed_height: int) -> list[Block]:
    """The stored blocks above the committed chain whose QC is not known (voted for or
    proposed): a restart learns the certificates they carry (the TC of the node's round)."""
    rows = [(b, qc) for b, qc in store.uncommitted() if b.header.height > committed_height]
    certified = {qc.block_hash for _, qc in rows if qc is not None}
    return [b for b, qc in rows if qc is None and block_hash(b.header) not in certified]


def load_chain(store: Store, start: int = 1, end: int | None = None) -> list[CertifiedBlock]:
    """Every stored certified block from ``start`` (to ``end``, default the top), in order
    (stops at the first gap)."""
    chain: list[CertifiedBlock] = []
    top = (store.highest_height() or 0) if end is None else end
    while start + len(chain) <= top:
        part = store.get_blocks(start + len(chain), top)
        if not part:
            break
        chain.extend(part)
    return chain


def load_snapshot(store: Store) -> api.ChainSnapshot | None:
    """The newest stored snapshot that decodes, whose ledger is its block's state and whose
    blocks are the stored ones; None if there is none. Each refused one is logged."""
    for height in store.snapshot_heights():
        data = store.get_snapshot(height)
        try:
            snap = api.ChainSnapshot.from_bytes(data or b"")
            for h in (snap.head.block.header, *snap.anchors):
                if store.block_hash(h.height) != block_hash(h):
                    raise ValueError(f"its block at height {h.height} is not the stored one")
            if snap.height != height:
                raise ValueError(f"it is of height {snap.height}")
        except ValueError as exc:
            log.warning("snapshot at height %d is unusable (%s); skipping it", height, exc)
            continue
        return snap
    return None


class Node:
    """One node process. ``addresses = await nursery.start(node.run)``; ``node.stop()``."""

    def __init__(
        self,
        settings: NodeSettings,
        *,
        metrics: NodeMetrics | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.genesis = settings.genesis
        self.key = settings.key
        self.pk = settings.key.public_key if settings.key is not None else None
        self.metrics = metrics or NodeMetrics()
        self.metrics.before_render = self._update_gauges
        self._clock = clock
        self._rng = rng or random.Random()
        self._send, self._recv = trio.open_memory_channel[_Input](settings.inbound_buffer)
        self._stop = trio.Event()
        self._rpc_stop = trio.Event()
        self.store: Store | None = None
        self.core: SequencerCore | None = None
        self.pm: PeerManager | None = None
        self.follower: L1Watcher | None = None
        self.batcher: BatcherService | None = None
        self.fee_accounting = FeeAccounting()
        self.views = ApiViews(self)
        self._tx_send: trio.MemorySendChannel[Transaction] | None = None
        #: Accepted client transactions waiting for the journal task (bounded by the input
        #: channel: each is one request from it).
        self._unjournaled: list[_TxRequest] = []
        self._journal_wakeup = trio.Event()
        #: Client transactions in the input channel, not yet handled by the core.
        self._queued_txs = 0
        self._tx_index: OrderedDict[bytes, int] = OrderedDict()
        self._committed: list[api.BlockCommitted] = []
        #: Blocks certified above the committed chain, written with the next commits.
        self._certified: list[CertifiedBlock] = []
        self._unsafe: tuple[int, bytes] = (0, b"")
        #: (height, hash, state root) of the last committed block written to the store: what
        #: the RPC reports as the certified head, so /v1/blocks/{height} always has it.
        self._stored = StoredHead(0, b"", b"")
        #: The height the core was restored from (its snapshot; 0: a full replay): the core
        #: holds no committed block below it, so catch-up below it is served from the store.
        self._snapshot_floor = 0
        self._last_leader: bytes | None = None
        self._lock_fd: int | None = None
        self._core_scope = trio.CancelScope()
        #: When the core task next lets time pass in the core (trio clock).
        self._next_tick = 0.0
        self._sync_served: dict[bytes, float] = {}
        self._sync_budget = RequestBudget(_SYNC_REQUESTS_PER_S, _SYNC_REQUEST_BURST)
        self.compact = CompactBlocks(self.metrics)
        self.signatures = SignatureWorkers(
            self.genesis.chain_id,
            threads=settings.signature_threads,
            on_give_up=self.metrics.signature_warmups_given_up.inc,
        )
        #: Client requests reach the core in the order they came (a Trio lock is FIFO) while
        #: a batch's signatures are checked in a worker, so one client's nonces stay in order:
        #: every client path (single transactions too) takes its turn here.
        self._client_turn = trio.Lock()
        self.started_at = 0.0
        self.addresses: NodeAddresses | None = None
        #: Whether the node was catching up at the last look (see ``catching_up``).
        self._catching_up = False
        #: The core-owning task and what it handles now (the stall diagnosis only).
        self._core_task: trio.lowlevel.Task | None = None
        self._activity = ""
        self._byzantine = (
            Byzantine(settings.byzantine, settings.key, self.genesis.chain_id, settings.data_dir)
            if settings.byzantine and settings.key is not None
            else None
        )

    # --- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Begin a graceful shutdown (idempotent)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def open(self) -> None:
        """Lock the data directory, open the store and rebuild the core from it."""
        s = self.settings
        self._lock_fd = lock_data_dir(s.data_dir)
        try:
            identity = self.pk if self.pk is not None else FOLLOWER_IDENTITY
            self.store = Store.open(s.data_dir, chain_id=self.genesis.chain_id, identity=identity)
            raw = self.store.read_watermark()
            persisted = decode_record(raw) if raw is not None else None
            t0 = time.monotonic()
            self.core, chain = self._restore_core(persisted)
            st = self.core.status()
            self._stored = StoredHead(st.committed_height, st.committed_hash, st.state_root)
            fee_state = self.core.committed_ledger.fee_state()
            self.fee_accounting.on_commit(st.committed_height, fee_state)
            self._snapshot_floor = st.committed_height - len(chain)
            below = load_chain(self.store, max(1, self._snapshot_floor - _INDEX_BELOW_SNAPSHOT),
                               self._snapshot_floor)  # fmt: skip
            for cb in [*below, *chain][-_TX_INDEX:]:  # tx status survives a restart
                for tx_hash in _tx_hashes(cb.block):
                    self._tx_index[tx_hash] = cb.block.header.height
            log.info(
                "restored %d certified blocks in %.2f s (%s, watermark: %s)",
                st.committed_height,
                time.monotonic() - t0,
                f"snapshot at {self._snapshot_floor} + {len(chain)} replayed"
                if self._snapshot_floor
                else "full replay",
                "none" if persisted is None else f"vote round {persisted.vote_round}",
                extra={"fields": {"height": st.committed_height}},
            )
        except BaseException:
            self.close()
            raise

    def _restore_core(
        self, persisted: api.PersistedState | None
    ) -> tuple[SequencerCore, list[CertifiedBlock]]:
        """The core rebuilt from the newest usable snapshot and the blocks above it, else
        from the whole stored chain; and the blocks it replayed."""
        assert self.store is not None
        snap = load_snapshot(self.store)
        if snap is not None:
            chain = load_chain(self.store, snap.height + 1)
            try:
                return self._new_core(persisted, snap, chain), chain
            except ValueError as exc:
                log.warning("snapshot at height %d refused (%s): replaying the whole chain",
                            snap.height, exc)  # fmt: skip
        chain = load_chain(self.store)
        return self._new_core(persisted, None, chain), chain

    def _new_core(
        self,
        persisted: api.PersistedState | None,
        snap: api.ChainSnapshot | None,
        chain: list[CertifiedBlock],
    ) -> SequencerCore:
        assert self.store is not None
        base = 0 if snap is None else snap.height
        return SequencerCore(
            self.genesis.core_config(self.key, **self.settings.core_overrides),
            self.genesis.core_genesis(),
            persisted=persisted,
            chain=chain,
            certified=restore_certified(self.store, persisted, base + len(chain)),
            uncertified=restore_uncertified(self.store, base + len(chain)),
            snapshot=snap,
            l1_fees=[L1FeeInfo.from_bytes(b) for b in self.store.l1_fees()],
            stake_snapshots=self._stored_stake_snapshots(),
        )

    def _stored_stake_snapshots(self) -> list[api.StakeSnapshot]:
        """The stake snapshots fed to the core before the restart: given to the new core at
        once, before any peer message (the L1 keeps a snapshot only for a while, and the L1
        watcher's first poll comes after the first peer messages)."""
        assert self.store is not None
        out = []
        for data in self.store.stake_snapshots():
            try:
                out.append(stake_snapshot_from_bytes(data))
            except (ValueError, TypeError, msgpack.UnpackException) as e:
                log.warning("a stored stake snapshot is unreadable (%s); skipped", e)
        return out

    def p2p_identity(self) -> SigningKey:
        """The key this node shows its peers: the signing key, or for a node without one a
        stable identity kept in the data directory (so operators can allowlist it)."""
        if self.key is not None:
            return self.key
        path = self.settings.data_dir / P2P_IDENTITY_FILENAME
        if path.exists():
            seed = path.read_bytes()
            if len(seed) != 32:
                raise NodeStartError(f"{path} is damaged (expected 32 bytes); delete it")
            return SigningKey.from_seed(seed)
        key = SigningKey.generate()
        atomic_write(path, key.seed(), mode=0o600, overwrite=False)
        return key

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    async def run(
        self, *, task_status: trio.TaskStatus[NodeAddresses] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Start everything, report the bound addresses, serve until :meth:`stop`."""
        s = self.settings
        if self.store is None:
            self.open()
        assert self.core is not None
        assert self.store is not None
        self.started_at = self._clock()
        try:
            async with L1Client(s.l1_url, observer=self.metrics) as l1:
                await connect_l1(
                    l1, expected_chain_id=self.genesis.l1_chain_id, timeout_s=s.l1_start_timeout_s
                )
                self.follower = L1Watcher(
                    l1,
                    events=self._send.clone(),
                    key=self.key,
                    genesis_stake_epoch=self.genesis.stake_epoch,
                    forced_start=self.core.status().forced_next_index,
                    fee_start=self.core.status().l1_fee_next,
                    metrics=self.metrics,
                    poll_s=s.l1_poll_s,
                    on_sequencers=self._sequencers_changed,
                    rng=self._rng,
                    on_poll=self._l1_polled,
                )
                try:
                    await self.follower.refresh_sequencers()
                except L1Error as e:
                    log.warning("could not read the registered sequencers yet: %s", e)
                await self._serve(l1, task_status)
        finally:
            self.close()

    async def _serve(self, l1: L1Client, task_status: trio.TaskStatus[NodeAddresses]) -> None:
        assert self.follower is not None
        pm = self.pm = self._make_peer_manager()
        tx_send, tx_recv = trio.open_memory_channel[Transaction](4096)
        self._tx_send = tx_send
        core_done, rpc_done = trio.Event(), trio.Event()
        stalls = install_from_env(self._activity_of)  # diagnosis only (SEQNET_STALL_DIR)
        try:
            await self._serve_all(pm, l1, tx_send, tx_recv, core_done, rpc_done, task_status)
        finally:
            write_summary(stalls)
        log.info("stopped")

    async def _serve_all(
        self,
        pm: PeerManager,
        l1: L1Client,
        tx_send: trio.MemorySendChannel[Transaction],
        tx_recv: trio.MemoryReceiveChannel[Transaction],
        core_done: trio.Event,
        rpc_done: trio.Event,
        task_status: trio.TaskStatus[NodeAddresses],
    ) -> None:
        s = self.settings
        assert self.follower is not None
        async with trio.open_nursery() as nursery:
            p2p_port = await self._start_p2p(nursery, pm)
            self.batcher = self._start_batcher(l1)
            if self.batcher is not None:
                await nursery.start(self.batcher.run)
            await nursery.start(self.follower.run)
            nursery.start_soon(self._forward_peers)
            nursery.start_soon(run_tx_ingress, pm, tx_recv, None, self.compact.batch_sent)
            nursery.start_soon(self._journal_loop)
            nursery.start_soon(self._core_loop, core_done)
            if self._byzantine is not None:  # fault tests only
                nursery.start_soon(self._byzantine.run, pm, lambda: self._stored.height)
            rpc_url = await self._start_rpc(nursery, rpc_done)
            nursery.start_soon(self._resubmit_journal)
            self.addresses = NodeAddresses(p2p_port, rpc_url)
            log.info(
                "node running: p2p port %d, rpc %s, role %s",
                p2p_port,
                rpc_url,
                self.views.role(),
                extra={"fields": {"p2p_port": p2p_port, "rpc": rpc_url}},
            )
            task_status.started(self.addresses)
            await self._stop.wait()
            log.info("shutting down (deadline %.1f s)", s.shutdown_timeout_s)
            with trio.move_on_after(s.shutdown_timeout_s) as scope:
                self._rpc_stop.set()  # hypercorn stops accepting and drains requests
                await rpc_done.wait()
                # The core loop stops between two inputs; a block write in flight finishes.
                self._core_scope.cancel()
                await core_done.wait()
                await tx_send.aclose()
                # Flush what is queued to each peer (e.g. our last votes), then close.
                await pm.shutdown(timeout_s=min(2.0, s.shutdown_timeout_s / 2))
            if scope.cancelled_caught:
                log.warning("graceful shutdown deadline passed; cancelling the rest")
            pm.close()
            nursery.cancel_scope.cancel()

    def _activity_of(self, task: trio.lowlevel.Task) -> str:
        """What the core task was doing (for the stall diagnosis), else ''."""
        return self._activity if task is self._core_task else ""

    def _make_peer_manager(self) -> PeerManager:
        s = self.settings
        return PeerManager(
            self.p2p_identity(),
            self.genesis.chain_id,
            is_allowed=self.is_allowed,
            peers=self._dial_list(),
            listen_host=s.p2p_host,
            listen_port=s.p2p_port,
            config=s.peer_config,
            rng=self._rng,
            validate=self.check_peer_message,
            # off (the default): no hook, no await per peer message
            prepare=self.prepare_peer_message if self.signatures.threads else None,
        )

    async def _start_p2p(self, nursery: trio.Nursery, pm: PeerManager) -> int:
        s = self.settings
        try:
            port: int = await nursery.start(pm.run)
        except (OSError, BaseExceptionGroup) as exc:
            e = _os_error(exc)
            raise NodeStartError(
                f"cannot listen for p2p on {s.p2p_host}:{s.p2p_port}: {e.strerror or e} "
                "(port in use? choose another with --p2p-listen)"
            ) from None
        return port

    async def _start_rpc(self, nursery: trio.Nursery, done: trio.Event) -> str:
        s = self.settings

        async def rpc(task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve_rpc(
                    self, s.rpc_host, s.rpc_port, self._rpc_stop.wait,
                    extra_routes=[eth_route(self)], task_status=task_status,
                )  # fmt: skip
            finally:
                done.set()

        try:
            url: str = await nursery.start(rpc)
        except (OSError, BaseExceptionGroup) as exc:
            e = _os_error(exc)
            raise NodeStartError(
                f"cannot serve the RPC on {s.rpc_host}:{s.rpc_port}: {e.strerror or e} "
                "(port in use? choose another with --rpc-listen)"
            ) from None
        return url

    def _start_batcher(self, l1: L1Client) -> BatcherService | None:
        if not self.settings.batcher:
            log.info("batching disabled (--no-batcher)")
            return None
        assert self.store is not None
        s = self.settings
        config = BatcherConfig(da=s.da, da_failover_s=s.da_failover_s)
        da = None if s.da_url is None else DAClient(s.da_url, b"", key=self.key)
        if s.batch_max_age_ms is not None:
            config = dataclasses.replace(config, max_age_ms=s.batch_max_age_ms)
        return BatcherService(
            config=config,
            blocks=self.store,
            data_dir=self.store.path.parent,
            l1=l1,
            key=self.key,
            chain_id=self.genesis.chain_id,
            l1_chain_id=self.genesis.l1_chain_id,
            broadcast=self._batcher_broadcast,
            schedule=self.posting_order,
            stake_view=self.stake_view,
            metrics=self.metrics,
            da=da,
        )

    def _batcher_broadcast(self, msg: object) -> None:
        if self.pm is not None:
            self.pm.broadcast(msg)

    # --- peers -----------------------------------------------------------------------------

    def is_allowed(self, pubkey: bytes) -> bool:
        """Genesis validators, keys registered on L1, and the explicit allowlist."""
        if pubkey in self.settings.allow_peers or pubkey in self.genesis.validator_keys():
            return True
        return self.follower is not None and pubkey in self.follower.registered

    def _l1_polled(self, poll: L1Poll, inbox_from: int) -> None:
        """The follower's poll, shared with the batcher (one L1 read a second, not two)."""
        if self.batcher is not None:
            self.batcher.l1_polled(poll, inbox_from)

    def _sequencers_changed(self, registered: dict[bytes, SequencerInfo]) -> None:
        """The registered set changed on L1: dial new sequencers, drop peers that are no
        longer admitted."""
        if self.pm is None:
            return
        for address in self._dial_list():
            if self.pm.add_peer(address):
                log.info("dialling %s (registered on L1)", address)
        for p in self.pm.peers():
            if not self.is_allowed(p.identity):
                log.info("peer %s is no longer registered on L1; disconnecting",
                         p.identity.hex()[:16])  # fmt: skip
                self.pm.disconnect(p.identity)

    def _dial_list(self) -> list[PeerAddress]:
        out = list(self.settings.peers)
        seen = {str(a) for a in out}
        own = {f"{self.settings.p2p_host}:{self.settings.p2p_port}"}
        if self.follower is not None:
            for pk, info in sorted(self.follower.registered.items()):
                if pk == self.pk or not info.p2p_address or info.p2p_address in seen | own:
                    continue
                try:
                    out.append(PeerAddress.parse(info.p2p_address))
                except ValueError:
                    log.warning("sequencer %s registered a bad p2p address %r", pk.hex()[:16],
                                info.p2p_address)  # fmt: skip
                    continue
                seen.add(info.p2p_address)
        return out

    def _max_plausible_round(self) -> int:
        """A round no honest node can have reached yet.

        Rounds are paced: a proposal waits a block time after its parent, and a timeout
        certificate needs honest validators to wait out their round timer. So an honest round is
        at most about ``elapsed / min(block time, base timeout)``; twice that plus a margin
        leaves room for clock skew. Bounding by time, not by this node's own round, keeps a
        node that lags from punishing the honest peers that are ahead of it.
        """
        cfg = self.core.config if self.core is not None else None
        pace = min(cfg.block_time_ms, cfg.timeout_base_ms) if cfg is not None else 1
        elapsed = max(0, self.now_ms() - self.genesis.timestamp_ms)
        return 2 * elapsed // max(1, pace) + 1_000

    async def prepare_peer_message(self, sender: bytes, msg: object) -> None:
        """Check the signatures of a gossiped batch's transfers in worker threads before the
        validate hook and the core ask (the peer manager's prepare hook): they then find them
        remembered, and the event loop was free meanwhile (signature_workers).

        Only batches, whose every transfer the validate hook checks anyway: a block or a
        catch-up answer is judged first by its proposer's signature or its QC, and checking
        its transfers before that would let a peer make the node check thousands of them
        for a message it then refuses (an old certified block replayed, a forged proposal)."""
        if isinstance(msg, TxBatch) and not self._ignoring_tx_gossip():
            await self.warm_signatures(msg.transactions)

    async def warm_signatures(self, txs: Sequence[Transaction | EthTransaction]) -> None:
        """Check the signatures of the transfers of ``txs`` in worker threads now, so that
        the checks that decide find them remembered (signature_workers)."""
        if not self.signatures.threads:
            return  # off: nothing to sort out of the request
        checked = await self.signatures.warm([t for t in txs if isinstance(t, Transaction)])
        if checked:
            self.metrics.signatures_off_loop.inc(checked)

    def check_peer_message(self, sender: bytes, msg: object) -> Offense | Iterator[Offense] | None:
        """Cheap checks before delivery and relay (the peer manager's validate hook; see the
        module docstring): the catch-up budget; a round that cannot exist yet, then signatures;
        every transaction of a gossiped batch (one offense per invalid item)."""
        if isinstance(msg, api.SyncRequest):
            if self._sync_budget.take(sender, trio.current_time()):
                return None
            return self._charged(Offense.FLOOD)
        if isinstance(msg, TxBatch | Transaction | EthTransaction) and self._ignoring_tx_gossip():
            return None  # not checked, not pooled (_forward_peers), not relayed (full mesh)
        if isinstance(msg, TxBatch):
            return self._invalid_transactions(msg.transactions)
        if isinstance(msg, BlockRequest):
            ok = self.compact.allow_request(sender, trio.current_time())
            return None if ok else self._charged(Offense.FLOOD)
        if isinstance(msg, Transaction):
            return self._invalid_transactions((msg,))
        if isinstance(msg, EthTransaction):
            # Decoded and its sender recovered once (cached for the core): a transaction that
            # can never run here is the relay's fault, as a bad signature is.
            bad = isinstance(decode_checked(msg, self.genesis.chain_id), str)
            return self._charged(Offense.INVALID_SIGNATURE) if bad else None
        signed: object
        if isinstance(msg, Vote):
            round_, signed, signer = msg.round, msg, msg.voter
        elif isinstance(msg, Block):
            p = msg.proposal
            round_, signed, signer = p.header.round, p, p.header.proposer
        elif isinstance(msg, CompactBlock):
            if check_structure(msg) is not None:
                return self._charged(Offense.MALFORMED_MESSAGE)
            p = msg.block.proposal
            round_, signed, signer = p.header.round, p, p.header.proposer
        elif isinstance(msg, TimeoutMessage):
            t: Timeout = msg.timeout
            round_, signed, signer = t.round, t, t.voter
        else:
            return None
        if round_ > self._max_plausible_round():
            return self._charged(Offense.OUT_OF_RANGE)
        if not verify_message(signed, signer, self.genesis.chain_id):
            return self._charged(Offense.INVALID_SIGNATURE)
        return None

    def _ignoring_tx_gossip(self) -> bool:
        """While catching up, gossiped client transactions are neither checked nor pooled:
        the node could not order them before it is back, they are in the blocks it executes
        (whose QCs vouch for their signatures) or still in its peers' pools, and checking
        them kept a node behind under load behind for good. Only on a full mesh, where
        nobody relays them: a relay must check what it relays."""
        pm = self.pm
        return self.catching_up and pm is not None and pm.config.fanout is None

    def _charged(self, offense: Offense) -> Offense:
        self.metrics.invalid_messages.labels(offense.value).inc()
        return offense

    def _invalid_transactions(self, txs: Sequence[Transaction]) -> Iterator[Offense]:
        """One INVALID_SIGNATURE per transaction whose signature fails (lazily: the peer
        manager stops asking once the sender is banned). Good signatures are cached, so the
        core does not verify them again."""
        chain = self.genesis.chain_id
        for tx in txs:
            if not verify_tx_signature(tx, chain):
                yield self._charged(Offense.INVALID_SIGNATURE)

    async def _forward_peers(self) -> None:
        """Move peer messages into the core's input channel: a wait per burst, not per
        message (what is already queued moves without a yield while the channel has room;
        a full channel still blocks the forwarder, hence the readers). Batches, blocks and
        compact blocks pass through the compact-block state first (a compact block reaches
        the core as the full block, or not yet)."""
        pm = self.pm
        assert pm is not None
        inbound, send = pm.inbound, self._send
        try:
            async for sender, msg in inbound:
                while True:
                    if isinstance(msg, _COMPACT_TYPES):
                        now = trio.current_time()
                        items = [
                            _PeerInput(s, m) for s, m in self.compact.receive(sender, msg, now, pm)
                        ]
                    else:
                        items = [_PeerInput(sender, msg)]
                    if self._ignoring_tx_gossip():  # indexed above, for compact blocks
                        items = [i for i in items if not isinstance(i.message, _TX_GOSSIP)]
                    for item in items:
                        try:
                            send.send_nowait(item)
                        except trio.WouldBlock:
                            await send.send(item)
                    try:
                        sender, msg = inbound.receive_nowait()
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return  # shutting down

    # --- the core-owning task --------------------------------------------------------------

    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _core_loop(self, done: trio.Event) -> None:
        assert self.core is not None
        self._core_task = trio.lowlevel.current_task()
        self._next_tick = trio.current_time()
        try:
            with self._core_scope:
                while True:
                    await self._tick_if_due()
                    # Only the wait is bounded by the tick: handling inputs is never cut short.
                    first: _Input | None = None
                    with trio.move_on_at(self._next_tick):
                        try:
                            first = await self._recv.receive()
                        except (trio.EndOfChannel, trio.ClosedResourceError):
                            return
                    if first is not None:
                        await self._handle_all(self._drain(first))
        finally:
            done.set()

    async def _tick_if_due(self) -> None:
        """Let time pass in the core when its tick is due (between two inputs, as before)."""
        assert self.core is not None
        if trio.current_time() >= self._next_tick:
            self._activity = "tick"
            await self._apply(self.core.tick(self.now_ms()))
            self._follow_catch_up()
            self._schedule_tick()

    def _schedule_tick(self, *, sooner_only: bool = False) -> None:
        """The next tick: when the core next has timed work (``next_tick_ms``), but no sooner
        than ``tick_s`` and no later than ``idle_tick_s`` from now. ``sooner_only`` (after
        inputs): only ever move the next tick earlier."""
        assert self.core is not None
        s = self.settings
        now_ms = self.now_ms()
        wait_s = (self.core.next_tick_ms(now_ms) - now_ms) / 1000
        at = trio.current_time() + min(max(wait_s, s.tick_s), max(s.idle_tick_s, s.tick_s))
        self._next_tick = min(self._next_tick, at) if sooner_only else at

    def _drain(self, first: _Input) -> list[_Input]:
        """``first`` and what is already queued behind it (at most ``_DRAIN_MAX`` in all):
        one wait and one cancel scope per batch of inputs, not per input. The channel's
        bound is unchanged: items leave it only as the core takes them."""
        items = [first]
        while len(items) < _DRAIN_MAX:
            try:
                items.append(self._recv.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
                break
        return items

    async def _handle_all(self, items: Sequence[_Input]) -> None:
        """Feed ``items`` to the core in order, carrying out each one's effects before the
        next input (a watermark is persisted and released at once, as for one input); the
        blocks they commit are written once, after the last (or when a shutdown cancels the
        batch: the core already counts them). Other tasks (the RPC, the readers) get the loop
        every ``_BATCH_SLICE_S`` of a long batch, so a batch is no longer an event-loop stall
        than one input."""
        try:
            since = time.perf_counter()
            for item in items:
                await self._handle(item)
                self._follow_catch_up()
                self._schedule_tick(sooner_only=True)  # an input can make work due sooner
                await self._tick_if_due()  # a long batch does not delay the core's clock
                if time.perf_counter() - since > _BATCH_SLICE_S:
                    await trio.lowlevel.cancel_shielded_checkpoint()
                    since = time.perf_counter()
        finally:
            if self._committed or self._certified:
                await self._flush_committed()

    async def _handle(self, item: _Input) -> None:
        """One input to the core and its effects, except the store write of what it commits
        (the caller's: :meth:`_handle_all`)."""
        core = self.core
        assert core is not None
        now = self.now_ms()
        self._activity = _describe(item)
        if isinstance(item, _PeerInput):
            msg = item.message
            if self.batcher is not None and self.batcher.handles(msg):
                self.batcher.message_received(item.sender, msg)
                return
            if self.batcher is None and isinstance(msg, BatchProposal | BatchApproval):
                return  # --no-batcher: co-signing is not for us, and not the peer's fault
            if isinstance(msg, TxBatch):  # one input, one pass over the effects
                sender = item.sender
                await self._feed([api.MessageReceived(sender, tx) for tx in msg.transactions], now)
                return
            if isinstance(msg, api.SyncRequest):
                if self._committed or self._certified:  # the store answers: bring it up to date
                    await self._flush_committed()
                if self._serve_old_sync(item.sender, msg):
                    return
            if isinstance(msg, Block):
                self._saw_block(msg)
            await self._carry_out(core.handle(api.MessageReceived(item.sender, msg), now))
        elif isinstance(item, _TxRequest):
            self._queued_txs -= len(item.txs)
            outs = await self._feed([api.TxSubmitted(one) for one in item.txs], now)
            for out in outs:
                item.results.append(next((e for e in out if isinstance(e, api.TxResult)), None))
            self._answer(item)
        else:  # an L1 event from the follower
            if isinstance(item, api.L1FeeInfoSeen):
                await self._store_l1_fees(item)
            elif isinstance(item, api.StakeSnapshotAvailable):
                await self._store_stake_snapshot(item.snapshot)
            await self._carry_out(core.handle(item, now))

    async def _feed(self, events: Sequence[api.Event], now: int) -> list[list[api.Effect]]:
        """Feed ``events`` (the transactions of one batch) to the core in order and carry out
        their effects in order; returns each one's effects. In a long batch the effects so far
        are carried out and other tasks get the loop every ``_BATCH_SLICE_S`` (the core is
        between two inputs there): a batch of hundreds of transactions was one 30-40 ms step."""
        core = self.core
        assert core is not None
        outs: list[list[api.Effect]] = []
        pending: list[api.Effect] = []
        since = time.perf_counter()
        for event in events:
            out = core.handle(event, now)
            outs.append(out)
            pending.extend(out)
            if time.perf_counter() - since > _BATCH_SLICE_S:
                await self._carry_out(pending)
                pending = []
                await trio.lowlevel.cancel_shielded_checkpoint()
                since = time.perf_counter()
        await self._carry_out(pending)
        return outs

    async def _store_stake_snapshot(self, snap: api.StakeSnapshot) -> None:
        """Keep what the core judges epochs by (a restart gives it back, see
        :meth:`_stored_stake_snapshots`)."""
        store = self.store
        if store is None:
            return
        data = stake_snapshot_bytes(snap)
        await trio.to_thread.run_sync(lambda: store.put_stake_snapshot(snap.l1_epoch, data))

    async def _store_l1_fees(self, item: api.L1FeeInfoSeen) -> None:
        """Keep the fee data the core executes with (a restart replays with it)."""
        store, core = self.store, self.core
        if store is None or core is None:
            return
        rows = [(i.number, i.to_bytes()) for i in item.infos]
        keep = core.status().l1_fee_next or 0
        await trio.to_thread.run_sync(lambda: store.put_l1_fees(rows, keep_from=keep))

    # --- the journal of acknowledged transactions ------------------------------------------

    def _answer(self, req: _TxRequest) -> None:
        """Release the RPC's answer: at once for a refusal, after the journal write for an
        acceptance (the client is told "pending" only once a crash cannot lose the tx)."""
        if req.replayed or self.store is None or not any(req.accepted()):
            req.done.set()
            return
        self._unjournaled.append(req)
        self._journal_wakeup.set()

    async def _journal_loop(self) -> None:
        """Group commit: one fsynced store transaction for everything accepted since the last
        one, then the answers go out."""
        while True:
            await self._journal_wakeup.wait()
            self._journal_wakeup = trio.Event()
            batch, self._unjournaled = self._unjournaled, []
            store = self.store
            if store is None:
                return
            rows = [(h, encode(tx)) for r in batch for h, tx in r.accepted()]
            # Shielded: an acknowledgement must not be half-written by a shutdown.
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(store.journal_txs, rows)
            for r in batch:
                r.done.set()

    async def _resubmit_journal(self) -> None:
        """Give the journal back to the core after a restart, oldest first; forget entries the
        core refuses for good (already committed, or never valid)."""
        store = self.store
        if store is None:
            return
        entries = await trio.to_thread.run_sync(store.journaled_txs)
        if not entries:
            return
        # Each is gossiped once, when the core takes it: give the peers a moment to connect.
        for _ in range(int(_RESUBMIT_PEER_WAIT_S / 0.2)):  # a bounded poll: no event for it
            if self.pm is not None and self.pm.statistics().connected > 0:
                break
            await trio.sleep(0.2)
        stale: list[bytes] = []
        sent: list[tuple[bytes, _TxRequest]] = []
        for tx_hash, data in entries:
            try:
                tx: object = decode(data)
            except ValueError:
                tx = None
            if not isinstance(tx, Transaction | EthTransaction):
                stale.append(tx_hash)
                continue
            req = _TxRequest((tx,), replayed=True)
            # Queued like a client's: the core task takes it off the count when it handles it
            # (uncounted, each replayed one raised the ingress bounds for good after a restart).
            self._queued_txs += 1
            try:
                await self._send.send(req)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                return  # shutting down
            sent.append((tx_hash, req))
        for tx_hash, req in sent:
            await req.done.wait()
            if req.result is not None and req.result.reason in _NEVER_INCLUDED:
                stale.append(tx_hash)
        if stale:
            await trio.to_thread.run_sync(store.drop_journaled, stale)
        log.info("re-submitted %d journaled transactions (%d dropped as stale)",
                 len(entries), len(stale))  # fmt: skip

    def _serve_old_sync(self, sender: bytes, req: api.SyncRequest) -> bool:
        """Answer a catch-up request below the core's in-memory window from the store."""
        assert self.core is not None
        assert self.store is not None
        assert self.pm is not None
        committed = self.core.committed_height
        in_core = req.from_height > committed - _STORE_SYNC_LAG
        if req.to_height < req.from_height or (in_core and req.from_height >= self._snapshot_floor):
            return False
        # Reading the store costs real I/O: one old-range answer per peer per interval.
        now = trio.current_time()
        last = self._sync_served.get(sender)
        if last is not None and now - last < _OLD_SYNC_INTERVAL_S:
            self.pm.penalize(sender, Offense.FLOOD)
            return True
        if len(self._sync_served) > 1024:
            self._sync_served.clear()
        self._sync_served[sender] = now
        top = min(req.to_height, committed, req.from_height + api.MAX_SYNC_BLOCKS - 1)
        blocks = self.store.get_blocks(req.from_height, top)
        self.pm.send_to(sender, api.SyncResponse(tuple(blocks), None))
        return True

    def _saw_block(self, block: Block) -> None:
        h = block.proposal.header
        if h.height > self._unsafe[0]:
            self._unsafe = (h.height, block_hash(h))

    async def _apply(self, effects: Sequence[api.Effect]) -> None:
        """Carry out the core's effects in order; then write the blocks they committed."""
        await self._carry_out(effects)
        if self._committed or self._certified:
            await self._flush_committed()

    async def _carry_out(self, effects: Sequence[api.Effect]) -> None:
        assert self.core is not None
        assert self.store is not None
        for e in effects:
            if isinstance(e, api.PersistWatermark):
                # Durable before anything signed leaves; then release it at once. The fsync
                # (2-15 ms here) runs in a worker thread: the core task waits (no input is
                # handled before the release), the RPC and the readers do not.
                write, record = self.store.write_watermark, encode(e.record)
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(write, record, e.blocks)
                await self._carry_out(
                    self.core.handle(api.WatermarkPersisted(e.seq), self.now_ms())
                )
            elif isinstance(e, api.Broadcast):
                byz = self._byzantine  # fault tests only: it may send something else instead
                if byz is None or not (self.pm and byz.on_broadcast(e.message, self.pm)):
                    self._broadcast(e.message)
            elif isinstance(e, api.SendTo):
                assert self.pm is not None
                self.pm.send_to(e.peer, e.message)
            elif isinstance(e, api.BlockCommitted):
                self._committed.append(e)
                self.fee_accounting.on_commit(e.certified.block.header.height, e.fee_state)
            elif isinstance(e, api.BlockCertified):
                self._certified.append(e.certified)
            elif isinstance(e, api.EvidenceFound | api.DowntimeCertificateReady):
                self._submit_to_l1(e)
            elif isinstance(e, api.TxResult):
                self.metrics.rpc_tx.labels("accepted" if e.accepted else "rejected").inc()
            elif isinstance(e, api.RoundChanged):
                self._round_changed(e)
            elif isinstance(e, api.PeerMisbehaved):
                self._peer_misbehaved(e)
            elif isinstance(e, api.InputRefused):
                self.metrics.invalid_messages.labels(offense_for(e.offense).value).inc()
                log.warning("core refused input from %s: %s", e.source.value, e.offense)

    def _broadcast(self, msg: object) -> None:
        """Client transactions go out through the ingress batcher (TxBatch frames), Ethereum
        ones disseminated one frame each; everything else straight to the peer manager."""
        assert self.pm is not None
        if isinstance(msg, Transaction) and self._tx_send is not None:
            try:
                self._tx_send.send_nowait(msg)
                return
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass
        if isinstance(msg, Block):
            self._saw_block(msg)
            self.pm.broadcast(self.compact.outgoing(msg, trio.current_time()))
            return
        if isinstance(msg, EthTransaction):
            # Like a TxBatch: once to every peer, not relayed on a full mesh (each relayed
            # copy cost a peer a decrypt before it was dropped as a duplicate).
            self.pm.disseminate(msg)
            return
        self.pm.broadcast(msg)

    def _submit_to_l1(self, e: api.EvidenceFound | api.DowntimeCertificateReady) -> None:
        assert self.follower is not None
        if isinstance(e, api.DowntimeCertificateReady):
            self.follower.submit_downtime(e.certificate)
            self.metrics.downtime_certificates.inc()
            return
        sub = self.follower.submit_evidence(e.evidence, e.offender)
        self.metrics.evidence.labels(sub.kind.value).inc()
        log.warning("equivocation found: %s by %s at round %d", sub.kind.value,
                    e.offender.hex()[:16], sub.round)  # fmt: skip

    def _round_changed(self, e: api.RoundChanged) -> None:
        self.metrics.round_changes.labels(e.via.value).inc()
        if e.leader is not None and e.leader != self._last_leader:
            if self._last_leader is not None:
                self.metrics.leader_changes.inc()
                log.info("leader changed to %s at round %d (%s)",
                         opt_hex(e.leader), e.round, e.via.value)  # fmt: skip
            self._last_leader = e.leader

    def _peer_misbehaved(self, e: api.PeerMisbehaved) -> None:
        assert self.pm is not None
        offense = offense_for(e.offense)
        self.metrics.invalid_messages.labels(offense.value).inc()
        log.info("peer %s misbehaved: %s", e.peer.hex()[:16], e.offense)
        self.pm.penalize(e.peer, offense)

    async def _flush_committed(self) -> None:
        assert self.store is not None
        self._activity = f"{self._activity} + flush"  # the stall diagnosis only
        done, self._committed = self._committed, []
        certified, self._certified = self._certified, []
        store = self.store
        # Index first: the core already counts these blocks (accounts, nonces) for readers.
        included: list[bytes] = []
        for c in done:
            for tx_hash in _tx_hashes(c.certified.block):
                included.append(tx_hash)
                self._tx_index[tx_hash] = c.certified.block.header.height
        snap = self._snapshot_due(done)

        def write() -> None:  # in a worker thread: encoding a snapshot takes a while
            blob = None if snap is None else (snap.height, snap.to_bytes())
            store.put_blocks([c.certified for c in done], certified, blob, included)

        # Shielded: a shutdown must not drop blocks the core already counts as committed.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(write)
        if not done:
            return
        now = self._clock()
        for c in done:
            h = c.certified.block.header
            self.metrics.blocks_committed.inc()
            b = c.certified.block
            self.metrics.txs_committed.inc(len(b.transactions) + len(b.eth_transactions))
            self.metrics.certificate_latency.observe(max(0.0, now - h.timestamp_ms / 1000))
            if self.batcher is not None:
                self.batcher.block_committed(c.certified, c.state_root)
        while len(self._tx_index) > _TX_INDEX:
            self._tx_index.popitem(last=False)
        last = done[-1].certified.block.header
        self._stored = StoredHead(last.height, block_hash(last), done[-1].state_root)
        log.debug("committed up to height %d", last.height)

    def _snapshot_due(self, done: Sequence[api.BlockCommitted]) -> api.ChainSnapshot | None:
        """A snapshot of the last of ``done`` if they reach a multiple of ``snapshot_every``
        (the core's committed head is that block: nothing was handled since)."""
        every = self.settings.snapshot_every
        assert self.core is not None
        if not done or every <= 0:
            return None
        first, last = done[0].certified.block.header.height, done[-1].certified.block.header.height
        if last // every == (first - 1) // every:
            return None
        snap = self.core.snapshot()
        return snap if snap is not None and snap.height == last else None

    def _update_gauges(self) -> None:
        """The gauges that mirror the core's and the peers' state (``NodeMetrics.before_render``:
        at each scrape)."""
        if self.core is None:
            return
        st = self.core.status()
        m = self.metrics
        m.round.set(st.round)
        m.epoch.set(st.epoch)
        m.is_leader.set(1 if st.leader is not None and st.leader == self.pk else 0)
        m.mempool_size.set(st.mempool_size)
        m.mempool_backlog.set(st.mempool_backlog)
        m.blocks_behind.set(self.core.blocks_behind)
        m.catching_up.set(1 if self.catching_up else 0)
        if self.pm is not None:
            pst = self.pm.statistics()
            m.peers.set(pst.connected)
            for kind, n in pst.offenses.items():
                m.peer_offenses.labels(kind).set(n)
            m.peer_bans.set(pst.bans)
            m.handshake_failures.set(pst.handshake_failures)
        for name, head in self.views.heads().items():
            m.head_height.labels(name).set(head.height)

    # --- RPC-facing writes and the state the views read -----------------------------------

    @property
    def catching_up(self) -> bool:
        """True while the node is far behind the network (``NodeSettings.catch_up_blocks``,
        with the hysteresis described there): it then takes no client transaction, from
        its own clients or from its peers' gossip, and spends its CPU on the blocks. Kept by
        :meth:`_follow_catch_up` after each pass of the core."""
        return self._catching_up

    def _follow_catch_up(self) -> None:
        """Enter or leave the catching-up state from the core's ``blocks_behind``; only the
        core's inputs and ticks change it, so the core task calls this after each of them."""
        core, limit = self.core, self.settings.catch_up_blocks
        if core is None or limit <= 0:
            self._catching_up = False
            return
        behind = core.blocks_behind
        if behind > limit and not self._catching_up:
            log.info("catching up: %d certified blocks behind; clients are refused", behind)
            self._catching_up = True
        elif self._catching_up and behind <= limit // 4:
            log.info("caught up (%d blocks behind): clients are served again", behind)
            self._catching_up = False

    def ingress_closed(self) -> str | None:
        """Why the node takes no client transaction at all now (it is catching up), else
        None. The RPC answers 503 ``CATCHING_UP`` with it: the client should use another
        node (or retry later), where 429 ``OVERLOADED`` says only "not now"."""
        if not self.catching_up:
            return None
        assert self.core is not None
        return (
            f"this node is catching up ({self.core.blocks_behind} certified blocks behind the "
            "network); send to another node or retry later"
        )

    def ingress_room(self) -> int:
        """How many more client transactions the node takes now (the RPC sheds the rest with
        429 before decoding them): room below the ingress bounds of the backlog (pooled, in no
        certified block yet) and the queue; none while catching up."""
        core, s = self.core, self.settings
        if core is None or self.catching_up:
            return 0
        queued = self._queued_txs
        return max(0, min(s.ingress_max_pool - core.backlog_size - queued,
                          s.ingress_max_queued - queued))  # fmt: skip

    def _refuse(self, n: int) -> NoReturn:
        """Refuse ``n`` client transactions for lack of room (``ingress_room``): counted under
        ``catching_up`` or ``overloaded``, and raised as Overloaded with the reason."""
        closed = self.ingress_closed()
        self.metrics.rpc_tx.labels("overloaded" if closed is None else "catching_up").inc(n)
        raise Overloaded(closed or "the node's ingress is full; retry later")

    def _enqueue(self, txs: Sequence[Transaction | EthTransaction]) -> _TxRequest:
        """Hand ``txs`` to the core-owning task as one input; Overloaded if it has no room."""
        if self.ingress_room() < len(txs):
            self._refuse(len(txs))
        req = _TxRequest(txs)
        try:
            self._send.send_nowait(req)
        except trio.WouldBlock:
            self.metrics.rpc_tx.labels("overloaded").inc(len(txs))
            raise Overloaded("the node's input queue is full; retry later") from None
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            raise Overloaded("the node is shutting down") from None
        self._queued_txs += len(txs)
        return req

    async def submit_tx(self, tx: Transaction | EthTransaction) -> api.TxResult:
        """Give ``tx`` to the core; raises Overloaded if the ingress is full, and
        trio.TooSlowError if it is not answered within ``tx_wait_s`` (its turn behind the
        requests that came before it included)."""
        if self.ingress_room() <= 0:
            self._refuse(1)
        with trio.fail_after(self.settings.tx_wait_s):
            async with self._client_turn:
                req = self._enqueue((tx,))
            await req.done.wait()
        assert req.result is not None
        return req.result

    async def submit_txs(self, txs: Sequence[Transaction | EthTransaction]) -> list[api.TxResult]:
        """Give ``txs`` to the core as one input (each admitted by every rule, in order),
        after the requests that came before it, their transfers' signatures checked in a
        worker first. Raises Overloaded if not even the first fits the ingress bounds; the
        ones past the room, or not answered within ``tx_wait_s`` of the call, come back
        refused (``overloaded``, ``timeout``)."""
        deadline = trio.current_time() + self.settings.tx_wait_s
        room = self.ingress_room()
        if room <= 0 or not txs:
            self._refuse(len(txs))
        req: _TxRequest | None = None
        with trio.move_on_at(deadline):
            async with self._client_turn:
                # Read again in turn: the requests before this one may have filled it, and a
                # request refused must not have cost its checks.
                room = self.ingress_room()
                if room <= 0:
                    self._refuse(len(txs))
                await self.warm_signatures(txs[:room])
                await trio.lowlevel.checkpoint_if_cancelled()  # past the deadline: not handed over
                room = min(room, self.ingress_room())
                if room <= 0:
                    self._refuse(len(txs))
                req = self._enqueue(txs[:room])
            await req.done.wait()
        if req is None:  # the deadline passed in its turn: none went to the core
            return [api.TxResult(_hash_of(tx), False, "timeout", "no answer in time") for tx in txs]
        # Only an answered request counts: an acceptance is answered after its journal write.
        results = req.results if req.done.is_set() else []
        out = [
            results[i] or api.TxResult(_hash_of(tx), False, "timeout", "no answer in time")
            if i < len(results)
            else api.TxResult(_hash_of(tx), False, "timeout", "no answer in time")
            for i, tx in enumerate(req.txs)
        ]
        for tx in txs[room:]:
            self.metrics.rpc_tx.labels("overloaded").inc()
            out.append(api.TxResult(_hash_of(tx), False, "overloaded", "ingress full"))
        return out

    @property
    def da(self) -> str:
        return self.settings.da

    @property
    def uptime_s(self) -> float:
        return self._clock() - self.started_at

    @property
    def stored_head(self) -> StoredHead:
        return self._stored

    @property
    def unsafe_head(self) -> tuple[int, bytes]:
        return self._unsafe

    def tx_height(self, tx_hash: bytes) -> int | None:
        """Height of the certified block that holds ``tx_hash`` (recent ones), else None."""
        return self._tx_index.get(tx_hash)

    # --- batcher views ---------------------------------------------------------------------

    def posting_order(self) -> Sequence[bytes]:
        """Current leader first, then the epoch's back-ups in schedule order."""
        if self.core is None:
            return ()
        st = self.core.status()
        info = self.core.epoch_info(st.epoch)
        if info is None:
            return ()
        order = list(dict.fromkeys(info.order))
        if st.leader in order:
            i = order.index(st.leader)
            order = order[i:] + order[:i]
        return order

    def stake_view(self) -> tuple[int, dict[bytes, int]]:
        assert self.core is not None
        info = self.core.epoch_info(self.core.status().epoch)
        if info is None:
            return self.genesis.stake_epoch, dict(self.genesis.validators)
        return info.stake_epoch, dict(info.table)


def stake_snapshot_bytes(snap: api.StakeSnapshot) -> bytes:
    """A stake snapshot as the store keeps it (stakes as decimal strings: wei exceed 64 bits)."""
    packed = msgpack.packb([snap.l1_epoch, [[k, str(v)] for k, v in snap.stakes], snap.seed])
    assert isinstance(packed, bytes)
    return packed


def stake_snapshot_from_bytes(data: bytes) -> api.StakeSnapshot:
    """The inverse of :func:`stake_snapshot_bytes`; ValueError/TypeError on damaged data."""
    l1_epoch, stakes, seed = msgpack.unpackb(data)
    return api.StakeSnapshot(
        int(l1_epoch), tuple((bytes(k), int(v)) for k, v in stakes), bytes(seed)
    )


def data_dir_summary(data_dir: Path) -> dict[str, Any]:
    """What a data directory holds (for --check-config)."""
    db = data_dir / DB_FILENAME
    return {"data_dir": str(data_dir), "database": str(db), "exists": db.exists()}


__all__ = [
    "FOLLOWER_IDENTITY",
    "Node",
    "NodeAddresses",
    "NodeSettings",
    "NodeStartError",
    "Overloaded",
    "data_dir_summary",
    "load_chain",
    "offense_for",
]
